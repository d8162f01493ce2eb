import json
import socket
import threading

import pytest
from django.core import mail
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from emails.locales import normalize_locale
from emails.models import Message, MessageStatus, Template
from tests.database import database_refusing
from tests.factories import TemplateFactory
from tests.helpers import all_payloads, celery_broker, load_payload

pytestmark = pytest.mark.django_db

URL = "/api/logto/email"


@pytest.mark.parametrize("name", all_payloads())
def test_every_logto_body_is_delivered_in_its_language(name, send):
    # Given only a template for the body's type and language (Generic bodies carry no locale)
    Template.objects.all().delete()
    body = load_payload(name)
    locale = body["payload"].get("locale", "en")
    TemplateFactory(usage_type=body["type"], locale=locale)

    # When Logto posts it
    response = send(body)

    # Then it is accepted, and the email in that language carries the code or the link
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "queued"
    message = Message.objects.get(pk=response.json()["id"])
    assert message.status == MessageStatus.SENT
    assert (message.template_locale, message.used_fallback) == (locale, False)
    [email] = mail.outbox
    assert email.to == [body["to"]]
    assert email.subject.startswith(f"[{locale}] {body['type']}")
    secret = body["payload"].get("code") or body["payload"]["link"]
    assert secret in email.body
    assert secret in email.alternatives[0][0]
    assert email.extra_headers["Message-ID"] == message.provider_message_id


def test_shipped_defaults_serve_every_logto_body_in_its_language(send):
    # A fresh database holds the shipped defaults (data migration): every body is served in
    # its own language, without fallback.
    for name in all_payloads():
        body = load_payload(name)
        message = Message.objects.get(pk=send(body).json()["id"])
        assert message.template_locale == body["payload"].get("locale", "en"), name
        assert message.used_fallback is False, name
    assert len(mail.outbox) == len(all_payloads())
    invitation = next(email for email in mail.outbox if email.to == ["bob@example.com"])
    assert invitation.subject == "Invitación para unirte a Acme Corp EU"
    assert "Jane Doe te ha invitado a unirte a Acme Corp EU." in invitation.body
    assert "https://app.example.com/invitation/accept/inv_9f8e7d6c5b4a3" in invitation.body
    german = next(email for email in mail.outbox if email.subject == "Passwort zurücksetzen")
    assert "550271" in german.body


def test_unshipped_language_falls_back_to_english_and_records_it(send):
    body = load_payload("sign-in-fr.json")
    body["payload"].update(locale="nl", uiLocales="nl-BE")
    response = send(body)
    message = Message.objects.get(pk=response.json()["id"])
    assert (message.template_locale, message.requested_locale) == ("en", "nl")
    assert message.used_fallback is True
    assert mail.outbox[0].subject == "Your sign-in code"
    assert "482913" in mail.outbox[0].body


@pytest.mark.parametrize(
    ("asked", "served", "distance", "fallback"),
    [
        ("zh-hant-tw", "zh-TW", 0, False),
        ("pt", "pt-BR", 0, False),
        ("pt-AO", "pt-PT", 4, True),
        ("en-GB", "en", 5, True),
        ("ca", "en", 0, True),
    ],
)
def test_the_closest_language_serves_and_the_match_is_recorded(
    send, asked, served, distance, fallback
):
    # The shipped templates: zh-TW, pt-BR and pt-PT, no zh-Hant, pt or Catalan.
    body = {"to": "a@example.com", "type": "SignIn", "payload": {"code": "1", "locale": asked}}
    message = Message.objects.get(pk=send(body).json()["id"])
    assert (message.template_locale, message.locale_distance) == (served, distance)
    assert message.used_fallback is fallback
    assert message.locale_matched == ("en" if asked == "ca" else normalize_locale(asked))
    assert f'lang="{served}"' in mail.outbox[0].alternatives[0][0]


def test_ui_locales_are_tried_before_the_default(send):
    TemplateFactory(usage_type="SignIn", locale="ko")
    body = {
        "to": "a@example.com",
        "type": "SignIn",
        "payload": {"code": "1", "locale": "sv", "uiLocales": "ko-KR en"},
    }
    send(body)
    assert mail.outbox[0].subject.startswith("[ko]")


@pytest.mark.parametrize("usage_type", ["Test", "SomethingNewerLogto"])
def test_unknown_type_is_served_by_generic(send, usage_type):
    body = {"to": "a@example.com", "type": usage_type, "payload": {"code": "424242"}}
    response = send(body)
    assert response.status_code == 200
    message = Message.objects.get(pk=response.json()["id"])
    assert (message.usage_type, message.template_usage_type) == (usage_type, "Generic")
    assert message.used_fallback is True
    assert "424242" in mail.outbox[0].body


def test_disabled_template_falls_back_to_generic(send):
    Template.objects.filter(usage_type="SignIn").update(enabled=False)
    response = send(load_payload("minimal-readme-example.json"))
    assert Message.objects.get(pk=response.json()["id"]).template_usage_type == "Generic"


def test_no_template_at_all_is_422_and_stores_nothing(send):
    Template.objects.update(enabled=False)
    response = send(load_payload("register-en.json"))
    assert response.status_code == 422
    assert response.json() == {"message": "No email template is available for this message."}
    assert not Message.objects.exists()
    assert mail.outbox == []


@pytest.mark.parametrize("path", [URL, URL + "/"])
def test_path_is_served_with_and_without_slash_never_redirected(api, path):
    response = api.post(path, load_payload("register-en.json"), format="json")
    assert response.status_code == 200
    assert response.json()["status"] == "queued"


# --- Authorization ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "status"),
    [
        (None, 401),
        ("", 401),
        ("Bearer wrong-token", 401),
        ("bearer test-token", 401),
        ("Bearer test-token ", 401),
        ("test-token", 401),
        ("Bearer tést-token", 401),
        ("Bearer test-token", 200),
    ],
)
def test_authorization_header_must_match_exactly(client, header, status):
    extra = {} if header is None else {"HTTP_AUTHORIZATION": header}
    response = client.post(
        URL, json.dumps(load_payload("register-en.json")), content_type="application/json", **extra
    )
    assert response.status_code == status
    if status == 401:
        assert response.json()["message"] in (
            "Authorization header is missing.",
            "Authorization header is not valid.",
        )
        assert Message.objects.count() == 0


def test_rotation_accepts_every_listed_value(client, settings):
    settings.LOGTO_AUTHORIZATION = ["Bearer old", "SampleToken"]
    body = json.dumps(load_payload("register-en.json"))
    for header, status in [("Bearer old", 200), ("SampleToken", 200), ("Bearer test-token", 401)]:
        response = client.post(
            URL, body, content_type="application/json", HTTP_AUTHORIZATION=header
        )
        assert response.status_code == status


def test_non_ascii_configured_value_matches_its_utf8_bytes(client, settings):
    settings.LOGTO_AUTHORIZATION = ["Bearer clé"]
    wsgi_header = "Bearer clé".encode().decode("latin-1")  # what a WSGI server hands over
    body = json.dumps(load_payload("register-en.json"))
    ok = client.post(URL, body, content_type="application/json", HTTP_AUTHORIZATION=wsgi_header)
    wrong = client.post(URL, body, content_type="application/json", HTTP_AUTHORIZATION="Bearer clé")
    assert (ok.status_code, wrong.status_code) == (200, 401)


def test_without_configured_value_the_endpoint_fails_closed(client, settings, caplog):
    settings.LOGTO_AUTHORIZATION = []
    response = client.post(
        URL,
        json.dumps(load_payload("register-en.json")),
        content_type="application/json",
        HTTP_AUTHORIZATION="anything",
    )
    assert response.status_code == 503
    # Logto shows the body to its end user: the generic text, no setting's name. The log
    # (and the system check emails.E001) say why.
    assert response.json() == {
        "message": "Email service is temporarily unavailable. Please try again."
    }
    assert "LOGTO_AUTHORIZATION is unset" in caplog.text
    assert not Message.objects.exists()


def test_debug_without_configured_value_is_open_for_development(client, settings):
    settings.LOGTO_AUTHORIZATION = []
    settings.DEBUG = True
    response = client.post(
        URL, json.dumps(load_payload("register-en.json")), content_type="application/json"
    )
    assert response.status_code == 200


# --- Bad input -------------------------------------------------------------------------


def with_changes(**changes):
    body = load_payload("sign-in-fr.json")
    for key, value in changes.items():
        if value is ...:
            body.pop(key)
        else:
            body[key] = value
    return body


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        (with_changes(to=...), "to", "'to' is required."),
        (with_changes(to=""), "to", "'to' must not be empty."),
        (with_changes(to="not-an-address"), "to", "'to' must be one email address."),
        (with_changes(to="a@example.com,b@example.com"), "to", "'to' must be one email address."),
        (with_changes(to="a@example.com b@example.com"), "to", "'to' must be one email address."),
        (with_changes(to="Jane <a@example.com>"), "to", "'to' must be one email address."),
        (
            with_changes(to="a@example.com\r\nBcc: x@evil.example"),
            "to",
            "'to' must not contain control characters.",
        ),
        (with_changes(to="a@example.com\n"), "to", "'to' must not contain control characters."),
        (with_changes(to=["a@example.com"]), "to", "'to' must be a string."),
        (
            with_changes(to="a" * 250 + "@example.com"),
            "to",
            "'to' must have no more than 254 characters.",
        ),
        (with_changes(type=...), "type", "'type' is required."),
        (with_changes(type=""), "type", "'type' must not be empty."),
        (with_changes(type=7), "type", "'type' must be a string."),
        (with_changes(type="X" * 65), "type", "'type' must have no more than 64 characters."),
        (with_changes(payload=...), "payload", "'payload' is required."),
        (with_changes(payload="code=1"), "payload", "'payload' must be a JSON object."),
        (with_changes(payload=[1]), "payload", "'payload' must be a JSON object."),
        (
            with_changes(payload={"code": "x" * 5000}),
            "payload",
            "'payload' has a value longer than 4096 characters.",
        ),
        (
            with_changes(payload={"code": "1\u0000"}),
            "payload",
            "'payload' has a value that is not valid text.",
        ),
        (
            with_changes(payload={"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {"i": {}}}}}}}}}}),
            "payload",
            "'payload' is nested too deeply.",
        ),
        (with_changes(ip=12), "ip", "'ip' must be a string."),
        (with_changes(ip="1" * 65), "ip", "'ip' must have no more than 64 characters."),
    ],
)
def test_bad_input_is_400_naming_the_field(post_email, body, field, message):
    response = post_email(body)
    assert response.status_code == 400
    assert response.json() == {"message": message, "field": field}
    assert not Message.objects.exists()


# Invisible characters: Unicode format characters (soft hyphen, zero-width, bidi controls,
# the BOM), variation selectors, line and paragraph separators. Each would make one mailbox
# look like many (delivery drops them), or one address display as another.
INVISIBLE = [
    "\u00ad",
    "\u200b",
    "\u200c",
    "\u200d",
    "\u2060",
    "\ufeff",
    "\u200e",
    "\u200f",
    *(chr(code) for code in range(0x202A, 0x202F)),
    *(chr(code) for code in range(0x2066, 0x206A)),
    "\u061c",
    "\ufe00",
    "\ufe0f",
    "\U000e0100",
    "\u180b",
    "\u034f",
    "\U000e0041",
    "\u2028",
    "\u2029",
]


@pytest.mark.parametrize("char", INVISIBLE, ids=lambda char: f"U+{ord(char):04X}")
@pytest.mark.parametrize(
    "where", ["ja{}ne@example.com", "jane@exa{}mple.com", "jane@example.com{}"]
)
def test_invisible_characters_in_the_address_are_400(post_email, char, where):
    response = post_email(with_changes(to=where.format(char)))
    assert response.status_code == 400
    assert response.json() == {
        "message": "'to' must not contain invisible characters.",
        "field": "to",
    }
    assert not Message.objects.exists()


@pytest.mark.parametrize(
    "to",
    [
        "=?utf-8?q?jane?=@example.com",  # an RFC 2047 encoded word
        "=?utf-8?b?amFuZQ==?=@example.com",
        "＝？utf-8？q？jane？＝@example.com",  # the same, in fullwidth forms
        '"jane doe"@example.com',  # quotes that are needed: refused
        '"jane@home"@example.com',
        '"ｊａｎｅ　ｄｏｅ"@example.com',
        "jane@[192.0.2.1]",  # domain literals
        "jane@[IPv6:2001:db8::1]",
        "jane@localhost",  # special-use and undeliverable domains
        "jane@mail.invalid",
        "jane@host.test",
        "jane@printer.local",
        "jane@hidden.onion",
        "jane@1.0.0.10.in-addr.arpa",
        "jane@example",
        "jane@192.0.2.1",
        "jané@example.com",  # a non-ASCII local part, refused as before
        "jane@@example.com",
        "jane@example..com",
        "jane@-example.com",
        "Jane ＜jane@example.com＞",  # a display name, in fullwidth brackets
        "jane@example.com，john@example.com",  # a list, with a fullwidth comma
        "jane@example.com\u00a0",  # a no-break space
        "jane\u3000@example.com",  # an ideographic space
        "jane@" + "b" * 64 + ".com",  # a label longer than DNS allows
        "jane@" + "\u0660" * 64 + ".com",  # the same in Arabic-Indic digits
        "\ufdfa" * 14 + "@example.com",  # 26 characters, 264 once folded
    ],
)
def test_addresses_that_cannot_be_one_mailbox_are_400(post_email, to):
    response = post_email(with_changes(to=to))
    assert response.status_code == 400
    assert response.json() == {"message": "'to' must be one email address.", "field": "to"}
    assert not Message.objects.exists()


def test_the_longest_label_dns_allows_is_accepted(post_email):
    to = "jane@" + "b" * 63 + ".example.com"
    response = post_email(with_changes(to=to))
    assert response.status_code == 200
    assert Message.objects.get(pk=response.json()["id"]).to == to


@pytest.mark.parametrize(
    "ip",
    [
        "not-an-ip",
        "localhost",
        "999.1.1.1",
        "203.0.113",
        "203.0.113.007",
        " 203.0.113.7",
        "203.0.113.7 ",
        "203.0.113.7, 10.0.0.1",
        "2001:db8::1/64",
        "2001:db8::g",
        "[2001:db8::1]",
        "２０３.0.113.7",
    ],
)
def test_an_ip_that_is_not_an_ip_address_is_400(post_email, ip):
    response = post_email(with_changes(ip=ip))
    assert response.status_code == 400
    assert response.json() == {"message": "'ip' must be an IP address.", "field": "ip"}
    assert not Message.objects.exists()


def raw_post(api, body: bytes, content_type="application/json"):
    return api.generic("POST", URL, body, content_type=content_type)


@pytest.mark.parametrize(
    ("raw", "status", "message"),
    [
        (b"{not json", 400, "Request body is not valid JSON."),
        (
            b'{"to": "a@example.com", "type": "SignIn", "payload": {"n": NaN}}',
            400,
            "Request body is not valid JSON.",
        ),
        (
            b'{"to": "a@example.com", "type": "SignIn", "payload": {"n": 1e999}}',
            400,
            "Request body has a number out of range.",
        ),
        (
            b'{"to": "a@example.com", "type": "SignIn", "payload": {"s": "\\ud800"}}',
            400,
            "'payload' has a value that is not valid text.",
        ),
        (b"\xff\xfe\x00garbage", 400, "Request body is not valid JSON."),
        (b"[" * 5000 + b"]" * 5000, 400, None),
        (b"[1, 2]", 400, "Request body must be a JSON object."),
        (b"null", 400, "Request body must be a JSON object."),
        (b"", 400, "'to' is required."),
    ],
)
def test_malformed_bodies_are_400(api, raw, status, message):
    response = raw_post(api, raw)
    assert response.status_code == status
    if message:
        assert response.json()["message"] == message
    assert not Message.objects.exists()


def test_body_over_the_cap_is_413(api, settings):
    body = json.dumps(with_changes(payload={f"k{i}": "v" * 4000 for i in range(20)})).encode()
    assert len(body) > settings.EMAILS_MAX_BODY_BYTES
    response = raw_post(api, body)
    assert response.status_code == 413
    assert response.json() == {"message": "Request body is too large."}


def test_non_json_content_type_is_415(api):
    response = raw_post(api, b"to=a@example.com", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415
    assert "Unsupported media type" in response.json()["message"]


def test_get_is_not_allowed(api):
    assert api.get(URL).status_code == 405


@hypothesis_settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(
                st.sampled_from(["to", "type", "payload", "ip", "code", "locale", "uiLocales", "x"])
                | st.text(max_size=5),
                children,
                max_size=5,
            )
        ),
        max_leaves=20,
    )
)
def test_no_input_of_any_shape_is_a_500(api, body):
    raw = json.dumps(body, allow_nan=True).encode()
    response = raw_post(api, raw)
    assert response.status_code in (200, 400, 422), response.content
    assert "message" in response.json() or response.json()["status"] == "queued"


# --- Answers that do not depend on input -----------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_database_down_is_503_not_200(api, settings):
    # Given the database cannot be reached (a real failed connection, not a mock)
    body = load_payload("register-en.json")
    with database_refusing():
        # When Logto posts
        response = api.post(URL, body, format="json")
    # Then it hears a short 503, and nothing was stored
    assert response.status_code == 503
    assert response.json() == {
        "message": "Email service is temporarily unavailable. Please try again."
    }
    assert not Message.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_broker_down_still_answers_200_and_keeps_the_message(api):
    # Given a broker that hangs up on every connection (a real commit, so publishing happens
    # in-request), counting how often the request tries it
    TemplateFactory(usage_type="Register", locale="en")
    with HangUpServer() as broker, celery_broker(f"redis://127.0.0.1:{broker.port}/0"):
        # When Logto posts
        response = api.post(URL, load_payload("register-en.json"), format="json")
    # Then it hears 200 and the message waits, stored, for the broker to come back
    assert response.status_code == 200
    message = Message.objects.get(pk=response.json()["id"])
    assert message.status == MessageStatus.QUEUED
    assert mail.outbox == []
    # The request gave up after one immediate retry, not kombu's retry policy with pauses.
    assert 1 <= broker.connections <= 2


class HangUpServer:
    """A TCP server that accepts and at once closes every connection, counting them."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.listener.close()

    def _serve(self):
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            connection.close()


@pytest.mark.django_db(transaction=True)
def test_a_template_deleted_behind_the_process_cache_is_not_a_500(api, settings):
    # Given a process that has cached the template list, and a template deleted elsewhere
    settings.EMAILS_TEMPLATE_CACHE_SECONDS = 3600
    old = TemplateFactory(usage_type="Register", locale="en")
    first = api.post(URL, load_payload("register-en.json"), format="json")
    Template.objects.filter(pk=old.pk).delete()  # a queryset delete: no signal reaches the cache
    new = TemplateFactory(usage_type="Register", locale="en", subject="Brand new")
    # When Logto posts again
    body = load_payload("register-en.json")
    body["payload"]["code"] = "111222"
    second = api.post(URL, body, format="json")
    # Then the message is stored against the template that exists
    assert (first.status_code, second.status_code) == (200, 200)
    assert Message.objects.get(pk=second.json()["id"]).template_id == new.pk
