"""Delivery through anymail's real backends to a local stub of the provider's API."""

from urllib.parse import parse_qs

import pytest
from django.core import mail

from emails.models import MessageStatus
from emails.services import TransientDeliveryError, message_deliver
from emails.tasks import deliver_message
from tests.factories import MessageFactory, TemplateFactory

pytestmark = pytest.mark.django_db


def test_sent_message_records_postmarks_message_id(postmark):
    message = MessageFactory(to="jane@example.com", payload={"code": "482913", "locale": "en"})

    message_deliver(message_id=message.pk)

    [request] = postmark.requests
    sent = request.json()
    assert request.headers["X-Postmark-Server-Token"] == "stub-token"
    assert sent["To"] == "jane@example.com"
    assert sent["From"] == "Acme <no-reply@acme.example>"
    assert "482913" in sent["Subject"] and "482913" in sent["TextBody"]
    assert "<b>482913</b>" in sent["HtmlBody"]
    message.refresh_from_db()
    assert message.status == MessageStatus.SENT
    assert message.provider_message_id == postmark.responses[0]["MessageID"]
    assert message.attempts == 1 and message.sent_at is not None


def test_template_sender_and_reply_to_are_used(postmark):
    template = TemplateFactory(
        from_email="Acme Support <help@acme.example>", reply_to="r@acme.example"
    )
    message = MessageFactory(template=template)
    message_deliver(message_id=message.pk)
    sent = postmark.requests[0].json()
    assert sent["From"] == "Acme Support <help@acme.example>"
    assert sent["ReplyTo"] == "r@acme.example"


def test_refused_recipient_fails_at_once_without_retry(postmark):
    postmark.fail_next(
        1, 422, {"ErrorCode": 300, "Message": "Invalid 'To' address: 'x@example.com'."}
    )
    message = MessageFactory(to="x@example.com")
    deliver_message.apply(args=[str(message.pk)])
    message.refresh_from_db()
    assert message.status == MessageStatus.FAILED
    assert "x@example.com: invalid" in message.error
    assert "Invalid 'To' address" in message.error
    assert len(postmark.requests) == 1


def test_provider_5xx_is_retried_then_sent(postmark):
    postmark.fail_next(2, 500, {"ErrorCode": 500, "Message": "Internal error"})
    message = MessageFactory()
    deliver_message.apply(args=[str(message.pk)])  # eager: retries run at once
    message.refresh_from_db()
    assert message.status == MessageStatus.SENT
    assert (message.attempts, len(postmark.requests)) == (3, 3)


def test_transient_error_puts_the_message_back_in_the_queue(postmark):
    postmark.fail_next(1, 429, {"ErrorCode": 429, "Message": "Rate limit exceeded"})
    message = MessageFactory()
    with pytest.raises(TransientDeliveryError):
        message_deliver(message_id=message.pk, final_attempt=False)
    message.refresh_from_db()
    assert message.status == MessageStatus.QUEUED
    assert "429" in message.error


def test_provider_down_for_every_try_ends_failed(postmark):
    postmark.fail_next(10, 503, {"Message": "Service unavailable"})
    message = MessageFactory()
    deliver_message.apply(args=[str(message.pk)])
    message.refresh_from_db()
    assert message.status == MessageStatus.FAILED
    assert "503" in message.error
    assert len(postmark.requests) == 5  # MAX_RETRIES + 1 tries


def test_unreachable_provider_is_transient(settings):
    settings.EMAIL_BACKEND = "anymail.backends.postmark.EmailBackend"
    settings.ANYMAIL = {"POSTMARK_SERVER_TOKEN": "t", "POSTMARK_API_URL": "http://127.0.0.1:1/"}
    message = MessageFactory()
    with pytest.raises(TransientDeliveryError):
        message_deliver(message_id=message.pk, final_attempt=False)


def test_a_message_is_sent_once_even_if_the_task_runs_twice(postmark):
    message = MessageFactory()
    message_deliver(message_id=message.pk)
    assert message_deliver(message_id=message.pk) is None
    assert len(postmark.requests) == 1


def test_broken_template_fails_the_message_with_the_reason(postmark):
    template = TemplateFactory(html_body="<p>{% if code %}{{ code }}</p>")
    message = MessageFactory(template=template)
    message_deliver(message_id=message.pk)
    message.refresh_from_db()
    assert message.status == MessageStatus.FAILED
    assert message.error.startswith("template error: HTML body:")
    assert "endif" in message.error
    assert postmark.requests == []


def test_deleted_template_fails_the_message(postmark):
    message = MessageFactory()
    message.template.delete()
    message_deliver(message_id=message.pk)
    message.refresh_from_db()
    assert (message.status, message.error) == (MessageStatus.FAILED, "its template was deleted")


def test_console_and_smtp_get_our_own_message_id():
    message = MessageFactory()
    message_deliver(message_id=message.pk)
    message.refresh_from_db()
    [email] = mail.outbox
    assert email.extra_headers["Message-ID"] == message.provider_message_id
    assert message.provider_message_id.endswith("@acme.example>")


@pytest.mark.parametrize(
    ("backend", "anymail_settings", "path", "recipient_of"),
    [
        (
            "postmark",
            {"POSTMARK_SERVER_TOKEN": "pm"},
            "/email",
            lambda request: request.json()["To"],
        ),
        (
            "sendgrid",
            {"SENDGRID_API_KEY": "sg"},
            "/mail/send",
            lambda request: request.json()["personalizations"][0]["to"][0]["email"],
        ),
        (
            "mailgun",
            {"MAILGUN_API_KEY": "mg", "MAILGUN_SENDER_DOMAIN": "mg.acme.example"},
            "/mg.acme.example/messages",
            lambda request: parse_qs(request.body.decode())["to"][0],
        ),
    ],
)
def test_switching_provider_is_only_settings(
    settings, provider_stub, backend, anymail_settings, path, recipient_of
):
    settings.EMAIL_BACKEND = f"anymail.backends.{backend}.EmailBackend"
    settings.ANYMAIL = {**anymail_settings, f"{backend.upper()}_API_URL": provider_stub.url}
    message = MessageFactory(to="jane@example.com")

    message_deliver(message_id=message.pk)

    [request] = provider_stub.requests
    assert request.path.endswith(path)
    assert recipient_of(request) == "jane@example.com"
    message.refresh_from_db()
    assert message.status == MessageStatus.SENT
    assert message.provider_message_id
