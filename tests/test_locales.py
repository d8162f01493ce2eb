from pathlib import Path

import pytest

from emails.content.defaults import LOCALES
from emails.content.selectors import template_chain_pick
from emails.locales import (
    LocaleMatch,
    langcodes_caches,
    locale_match,
    normalize_locale,
    requested_locales,
)
from emails.logto import UsageType


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
    ("payload", "expected"),
    [
        ({}, []),
        ({"locale": "fr"}, ["fr"]),
        ({"locale": "fr", "uiLocales": "fr-CA fr en"}, ["fr", "fr-CA", "en"]),
        ({"locale": "zh-hant-tw"}, ["zh-Hant-TW"]),
        ({"uiLocales": "ja  ko"}, ["ja", "ko"]),
        ({"locale": "!!", "uiLocales": 42}, []),
        ({"locale": None, "uiLocales": "not_a;tag de"}, ["de"]),
    ],
)
def test_requested_locales_in_order(payload, expected):
    assert requested_locales(payload) == expected


def readme_examples() -> list[list[str]]:
    """The rows of the README's table of language matching examples."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    table = readme.split("| `locale` | `uiLocales` | templates | served | distance | why |")[1]
    rows = []
    for line in table.splitlines()[2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip().strip("`") for cell in line.strip("|").split("|")])
    return rows


def templates_from(cell: str) -> dict[tuple[str, str, str, str], bool]:
    """'shipped + he', 'en, zh', 'de, fr; Generic: en' as (usage type, locale) pairs."""
    typed, _, generic = cell.partition("; Generic:")
    if typed.startswith("shipped"):
        locales = [*LOCALES, *(extra.strip() for extra in typed.split("+")[1:])]
    else:
        locales = [locale.strip() for locale in typed.split(",")]
    available = {(UsageType.SIGN_IN.value, locale, "", ""): True for locale in locales}
    for locale in generic.split(",") if generic else []:
        available[(UsageType.GENERIC.value, locale.strip(), "", "")] = True
    return available


def test_the_readme_has_the_table_of_examples():
    assert len(readme_examples()) >= 20


@pytest.mark.parametrize("row", readme_examples(), ids=lambda row: f"{row[0]}|{row[1]}|{row[2]}")
def test_each_readme_example_is_how_a_template_is_chosen(row, settings):
    locale, ui_locales, templates, served, distance, _why = row
    settings.EMAILS_DEFAULT_LOCALE, settings.EMAILS_LOCALE_MAX_DISTANCE = "en", 9
    payload = {
        key: value for key, value in [("locale", locale), ("uiLocales", ui_locales)] if value
    }
    picked = template_chain_pick(
        usage_type=UsageType.SIGN_IN,
        wanted=requested_locales(payload),
        available=templates_from(templates),
    )
    if served == "none":
        assert picked is None
        return
    assert picked is not None
    usage_type, match, _ = picked
    expected_type, expected_locale = (
        ("Generic", served.removeprefix("Generic `"))
        if served.startswith("Generic")
        else ("SignIn", served)
    )
    assert (usage_type, match.locale, match.distance) == (
        expected_type,
        expected_locale,
        int(distance),
    )


def test_a_higher_cut_off_allows_related_languages(settings):
    available = {("SignIn", locale, "", ""): True for locale in LOCALES}
    settings.EMAILS_LOCALE_MAX_DISTANCE = 25
    picked = template_chain_pick(usage_type="SignIn", wanted=["ca"], available=available)
    assert picked is not None and (picked[1].locale, picked[1].distance) == ("es", 20)
    settings.EMAILS_LOCALE_MAX_DISTANCE = 9
    picked = template_chain_pick(usage_type="SignIn", wanted=["ca"], available=available)
    assert picked is not None and (picked[1].requested, picked[1].locale) == ("en", "en")


def test_the_same_locales_in_another_order_choose_the_same():
    # Ties are broken by the subtags shared with the request, then alphabetically, never by
    # the order templates happen to be listed in.
    forward = locale_match(["zh-Hant-TW"], ["zh-TW", "zh-Hant"], default="en", max_distance=9)
    backward = locale_match(["zh-Hant-TW"], ["zh-Hant", "zh-TW"], default="en", max_distance=9)
    assert forward == backward == LocaleMatch("zh-Hant-TW", "zh-Hant", 0)


def test_tags_from_end_users_do_not_grow_the_process_without_bound():
    # Logto passes the end user's ui_locales through: every one is a new tag to langcodes,
    # whose own caches never shrink.
    caches = langcodes_caches()
    assert len(caches) == 3  # a langcodes upgrade that renames them fails here
    available = frozenset(LOCALES)
    for number in range(30_000):
        for tag in (f"x{number % 26 + 10:x}-{number:05d}", f"en-{number:05d}"):
            locale_match([tag], available, default="en", max_distance=9)
    for cache in caches:
        assert len(cache) <= 10_100
