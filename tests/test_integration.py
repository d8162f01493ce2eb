"""The whole path with real parts: gunicorn -> PostgreSQL -> Redis -> `celery worker` ->
anymail's Postmark backend -> a local HTTP server speaking Postmark's API.

Skips with the reason when PostgreSQL or Redis is absent on a developer's machine; under
CI=true it fails instead.
"""

import pytest
from django.db import connection

from emails.models import Message, MessageStatus
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
