import pytest

from emails.locales import locale_chain, normalize_locale, requested_locales


@pytest.mark.parametrize(
    ("given", "normalized"),
    [
        ("en", "en"),
        ("EN", "en"),
        ("pt-br", "pt-BR"),
        ("pt_BR", "pt-BR"),
        ("zh-hant-tw", "zh-Hant-TW"),
        ("ZH-HANS", "zh-Hans"),
        ("fa-ir", "fa-IR"),
        ("es-419", "es-419"),
        ("sr-latn-rs", "sr-Latn-RS"),
        ("de-ch-x-phonebk", "de-CH-x-phonebk"),
        ("en-US-u-ca-GREGORY", "en-US-u-ca-gregory"),
    ],
)
def test_locale_case_is_normalized(given, normalized):
    assert normalize_locale(given) == normalized


@pytest.mark.parametrize("bad", ["", "e", "en--US", "en US", "12", "en-", "<script>", "x" * 40])
def test_malformed_locales_are_refused(bad):
    with pytest.raises(ValueError):
        normalize_locale(bad)


@pytest.mark.parametrize(
    ("tag", "chain"),
    [
        ("zh-Hant-TW", ["zh-Hant-TW", "zh-Hant", "zh"]),
        ("pt-BR", ["pt-BR", "pt"]),
        ("en", ["en"]),
        ("ZH-hant-tw", ["zh-Hant-TW", "zh-Hant", "zh"]),
    ],
)
def test_locale_chain_walks_up_to_the_language(tag, chain):
    assert locale_chain(tag) == chain


@pytest.mark.parametrize(
    ("payload", "default", "expected"),
    [
        ({}, "en", ["en"]),
        ({"locale": "fr"}, "en", ["fr", "en"]),
        ({"locale": "fr", "uiLocales": "fr-CA fr en"}, "en", ["fr", "fr-CA", "en"]),
        ({"locale": "zh-hant-tw"}, "en", ["zh-Hant-TW", "zh-Hant", "zh", "en"]),
        ({"locale": "pt-BR", "uiLocales": "pt-PT"}, "de", ["pt-BR", "pt", "pt-PT", "de"]),
        ({"uiLocales": "ja  ko"}, "en", ["ja", "ko", "en"]),
        ({"locale": "!!", "uiLocales": 42}, "en", ["en"]),
        ({"locale": None, "uiLocales": "not_a;tag de"}, "en", ["de", "en"]),
        ({"locale": "en-GB"}, "en-US", ["en-GB", "en", "en-US"]),
    ],
)
def test_requested_locales_in_order(payload, default, expected):
    assert requested_locales(payload, default=default) == expected
