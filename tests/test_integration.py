"""The whole path with real parts: gunicorn -> PostgreSQL -> Redis -> `celery worker` ->
anymail's Postmark backend -> a local HTTP server speaking Postmark's API.

Skips with the reason when PostgreSQL or Redis is absent on a developer's machine; under
CI=true it fails instead.
"""

import pytest
from django.db import connection

from emails.models import Message, MessageStatus, SenderProfile
from tests.factories import TemplateFactory
from tests.helpers import AUTHORIZATION, load_payload, require_postgres, require_service
from tests.processes import (
    celery_worker,
    database_url,
    free_port,
    gunicorn,
    post_to_logto_endpoint,
    running,
    service_env,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def post(port: int, body: dict, authorization: str = AUTHORIZATION):
    return post_to_logto_endpoint(port, body, authorization)


@pytest.fixture
def stack(provider_stub):
    require_postgres()
    require_service("Redis", "127.0.0.1", 6379)
    env = service_env(
        DATABASE_URL=database_url(connection.settings_dict),
        CELERY_BROKER_URL="redis://127.0.0.1:6379/0",
        LOGTO_AUTHORIZATION=f"Bearer rotated-out,{AUTHORIZATION}",
        EMAIL_PROVIDER="postmark",
        ANYMAIL_POSTMARK_SERVER_TOKEN="integration-token",
        ANYMAIL_POSTMARK_API_URL=provider_stub.url,
        DEFAULT_FROM_EMAIL="Acme <no-reply@acme.example>",
    )
    port = free_port()
    with running(gunicorn(env, port), celery_worker(env)):
        yield port, provider_stub


def test_a_logto_post_becomes_an_email_at_the_provider(stack):
    port, postmark = stack
    # Given a German template for password resets
    TemplateFactory(
        usage_type="ForgotPassword",
        locale="de",
        subject="Passwort zurücksetzen",
        html_body="<p>Ihr Code: <b>{{ code }}</b></p>",
        text_body="Ihr Code: {{ code }}",
    )
    body = load_payload("forgot-password-de.json")

    # When Logto posts the request to the running service
    status, answer = post(port, body)

    # Then it is accepted at once, and the worker delivers it through Postmark's API
    assert (status, answer["status"]) == (200, "queued")
    wait_for(lambda: postmark.requests, timeout=60, what="the email to reach the provider")
    [request] = postmark.requests
    sent = request.json()
    assert request.headers["X-Postmark-Server-Token"] == "integration-token"
    assert (sent["To"], sent["Subject"]) == ("jane.doe@example.com", "Passwort zurücksetzen")
    assert "<b>550271</b>" in sent["HtmlBody"] and "550271" in sent["TextBody"]
    message = wait_for(
        lambda: Message.objects.filter(pk=answer["id"], status=MessageStatus.SENT).first(),
        timeout=30,
        what="the message to be marked sent",
    )
    assert message.provider_message_id == postmark.responses[0]["MessageID"]
    assert (message.template_locale, message.ip) == ("de", "2001:db8::/64")  # its /64


def test_the_running_service_refuses_a_wrong_authorization(stack):
    port, postmark = stack
    status, answer = post(port, load_payload("register-en.json"), authorization="Bearer nope")
    assert (status, answer) == (401, {"message": "Authorization header is not valid."})
    assert not Message.objects.exists()
    assert postmark.requests == []


def test_two_applications_and_an_organization_get_their_own_email_and_sender(stack):
    port, postmark = stack
    # Given the shop's own sign-in email, the admin console's own sender, and an
    # organization with its own sign-in email and sender (the unscoped one serves the rest)
    body = load_payload("sign-in-fr.json")
    shop = body["payload"]["application"]["id"]
    TemplateFactory(usage_type="SignIn", locale="fr", subject="Connexion · tout le monde")
    TemplateFactory(
        usage_type="SignIn", locale="fr", application_id=shop, subject="Connexion · boutique"
    )
    TemplateFactory(
        usage_type="SignIn", locale="fr", organization_id="org-acme", subject="Connexion · Acme"
    )
    SenderProfile.objects.create(
        application_id=shop, from_name="La Boutique", from_address="shop@shop.example"
    )
    SenderProfile.objects.create(application_id="app-console", from_address="console@acme.example")
    SenderProfile.objects.create(
        organization_id="org-acme", from_name="Acme", from_address="acme@acme.example"
    )

    # When Logto posts a sign-in for each
    for to, application, organization in [
        ("shop@example.com", shop, None),
        ("console@example.com", "app-console", None),
        ("member@example.com", shop, {"id": "org-acme", "name": "Acme", "branding": {}}),
    ]:
        payload = {key: value for key, value in body["payload"].items() if key != "organization"}
        payload["application"] = {"id": application, "name": application}
        if organization:
            payload["organization"] = organization
        status, _ = post(port, {**body, "to": to, "payload": payload})
        assert status == 200

    # Then each reaches the provider with its own email and sender
    wait_for(lambda: len(postmark.requests) >= 3, timeout=60, what="three emails to be sent")
    sent = {r.json()["To"]: (r.json()["Subject"], r.json()["From"]) for r in postmark.requests}
    assert sent == {
        "shop@example.com": ("Connexion · boutique", "La Boutique <shop@shop.example>"),
        "console@example.com": ("Connexion · tout le monde", "Acme <console@acme.example>"),
        "member@example.com": ("Connexion · Acme", "Acme <acme@acme.example>"),
    }
    scopes = dict(Message.objects.values_list("to", "template_scope"))
    assert scopes == {
        "shop@example.com": "application",
        "console@example.com": "",
        "member@example.com": "organization",
    }
