"""Tracking webhooks in production: served only with ANYMAIL_WEBHOOK_SECRET, and then only to
the provider (anymail's real Postmark webhook view, posted the way Postmark posts)."""

import base64
import re

import pytest
from anymail import urls as anymail_urls
from anymail.exceptions import AnymailInsecureWebhookWarning
from django.core.checks import run_checks
from django.test import Client
from django.urls import resolve, reverse

from emails.models import DeliveryStatus
from tests.factories import MessageFactory
from tests.helpers import use_providers
from tests.test_tracking import delivery

pytestmark = pytest.mark.django_db

URL = "/anymail/postmark/tracking/"
SECRET = "hook:s3cret"


def basic(credentials: str) -> str:
    return "Basic " + base64.b64encode(credentials.encode()).decode()


@pytest.fixture
def production(settings):
    """Debug off, a provider reached through anymail, and no webhook secret."""
    settings.DEBUG = False
    use_providers(settings, "postmark")
    settings.ANYMAIL = {"POSTMARK_SERVER_TOKEN": "token"}
    return settings


@pytest.fixture
def provider():
    # A provider sends no CSRF token: the gate must keep anymail's views CSRF-exempt.
    client = Client(enforce_csrf_checks=True)

    def post(event, authorization=None):
        extra = {"HTTP_AUTHORIZATION": authorization} if authorization else {}
        return client.post(URL, event, content_type="application/json", **extra)

    return post


def every_anymail_path() -> list[str]:
    """One concrete path for each of anymail's webhook URLs (tracking, inbound, Mandrill)."""
    return [
        "/anymail/" + re.sub(r"\([^)]*\)\?", "", str(pattern.pattern)).strip("^$")
        for pattern in anymail_urls.urlpatterns
    ]


def webhook_warnings() -> list[str]:
    return [message.id for message in run_checks() if message.id in ("emails.W004", "emails.W005")]


def test_without_a_secret_production_serves_no_webhook_and_the_check_says_so(production, provider):
    # Given a sent message and no ANYMAIL_WEBHOOK_SECRET
    message = MessageFactory(status="sent", provider_message_id="pm-open-1")
    # When anyone posts a delivery event for it
    response = provider(delivery("pm-open-1"))
    # Then the webhook is not there, nothing is recorded, and `manage.py check` warns
    assert response.status_code == 404
    message.refresh_from_db()
    assert message.delivery_status == "" and message.events.count() == 0
    assert webhook_warnings() == ["emails.W004"]


def test_without_a_secret_every_anymail_url_answers_404(production):
    client = Client()
    paths = every_anymail_path()
    assert len(paths) > 20 and "/anymail/mailgun/inbound/" in paths
    assert reverse("anymail:postmark_tracking_webhook") == URL  # anymail's URL names kept
    for path in paths:
        resolve(path)  # the route exists: the 404 comes from the gate
        assert client.post(path, "{}", content_type="application/json").status_code == 404, path


@pytest.mark.parametrize("authorization", [None, basic("hook:wrong"), basic("x:y"), "Bearer x"])
def test_with_the_secret_wrong_or_missing_credentials_are_refused(
    production, provider, authorization
):
    production.ANYMAIL = {**production.ANYMAIL, "WEBHOOK_SECRET": SECRET}
    message = MessageFactory(status="sent", provider_message_id="pm-wrong-1")
    # anymail refuses with AnymailWebhookValidationFailure, a SuspiciousOperation: 400
    assert provider(delivery("pm-wrong-1"), authorization).status_code == 400
    assert message.events.count() == 0


def test_with_the_secret_the_provider_is_heard_and_the_check_is_quiet(production, provider):
    production.ANYMAIL = {**production.ANYMAIL, "WEBHOOK_SECRET": SECRET}
    message = MessageFactory(status="sent", provider_message_id="pm-right-1")
    assert provider(delivery("pm-right-1"), basic(SECRET)).status_code == 200
    message.refresh_from_db()
    assert message.delivery_status == DeliveryStatus.DELIVERED
    assert webhook_warnings() == []


def test_a_rotation_list_of_secrets_accepts_each(production, provider):
    production.ANYMAIL = {**production.ANYMAIL, "WEBHOOK_SECRET": ["old:one", SECRET]}
    MessageFactory(status="sent", provider_message_id="pm-rot-1")
    assert provider(delivery("pm-rot-1"), basic("old:one")).status_code == 200
    assert provider(delivery("pm-rot-1"), basic(SECRET)).status_code == 200
    assert provider(delivery("pm-rot-1"), basic("older:gone")).status_code == 400


def test_a_secret_without_a_colon_is_reported(production, provider):
    production.ANYMAIL = {**production.ANYMAIL, "WEBHOOK_SECRET": "s3cret"}
    # Basic auth always sends user:password, so nothing can match it
    assert provider(delivery("pm-x"), basic("s3cret:")).status_code == 400
    assert webhook_warnings() == ["emails.W005"]


def test_with_debug_on_and_no_secret_the_webhooks_stay_open_for_local_trials(production, provider):
    production.DEBUG = True
    message = MessageFactory(status="sent", provider_message_id="pm-dev-1")
    with pytest.warns(AnymailInsecureWebhookWarning):
        assert provider(delivery("pm-dev-1")).status_code == 200
    message.refresh_from_db()
    assert message.delivery_status == DeliveryStatus.DELIVERED
    assert webhook_warnings() == []


@pytest.mark.parametrize("provider", ["smtp", "console"])
def test_no_webhook_warning_without_an_anymail_provider(production, provider):
    # SMTP has no webhooks to turn on (console in production is emails.E005's business)
    use_providers(production, provider)
    assert webhook_warnings() == []


def test_the_webhook_warning_covers_an_anymail_provider_later_in_the_list(production):
    use_providers(production, "smtp", "postmark")
    assert webhook_warnings() == ["emails.W004"]


def test_an_authenticated_post_that_is_not_json_gets_a_short_400_not_a_500(production):
    production.ANYMAIL = {**production.ANYMAIL, "WEBHOOK_SECRET": SECRET}
    response = Client().post(
        URL, "not json", content_type="application/json", HTTP_AUTHORIZATION=basic(SECRET)
    )
    assert (response.status_code, response.json()) == (
        400,
        {"message": "Webhook body is not valid JSON."},
    )


def test_a_provider_view_missing_its_signing_key_is_a_404_not_a_500(production, caplog):
    """Found in review: Mailgun's view raises when built without its signing key, before
    any authentication, so an anonymous POST was a 500 with a traceback."""
    production.ANYMAIL = {**production.ANYMAIL, "WEBHOOK_SECRET": SECRET}
    for _ in range(2):
        response = Client().post("/anymail/mailgun/tracking/", {}, content_type="application/json")
        assert response.status_code == 404
    said = [r.getMessage() for r in caplog.records if "webhook /anymail/mailgun" in r.getMessage()]
    assert len(said) == 1 and "MAILGUN_WEBHOOK_SIGNING_KEY" in said[0]
