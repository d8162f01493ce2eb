"""Delivery through anymail's real backends to a local stub of the provider's API."""

from datetime import timedelta
from urllib.parse import parse_qs

import pytest
from django.core import mail
from django.utils import timezone

from emails.delivery.deliver import message_deliver
from emails.models import Message, MessageStatus
from emails.tasks import deliver_due, deliver_message
from tests.factories import MessageFactory, TemplateFactory
from tests.helpers import use_providers

pytestmark = pytest.mark.django_db


def deliver(message):
    """Run the delivery task as a worker would (retries, eager here, included)."""
    deliver_message.apply(args=[str(message.pk)])
    message.refresh_from_db()
    return message


def test_sent_message_records_the_provider_id_and_forgets_the_code(postmark):
    message = MessageFactory(to="jane@example.com", payload={"code": "482913", "locale": "en"})

    deliver(message)

    [request] = postmark.requests
    sent = request.json()
    assert request.headers["X-Postmark-Server-Token"] == "stub-token"
    assert sent["To"] == "jane@example.com"
    assert sent["From"] == "Acme <no-reply@acme.example>"
    assert "482913" in sent["Subject"] and "482913" in sent["TextBody"]
    assert "<b>482913</b>" in sent["HtmlBody"]
    assert message.status == MessageStatus.SENT
    assert message.provider_message_id == postmark.responses[0]["MessageID"]
    assert message.attempts == 1 and message.sent_at is not None
    assert message.payload == {"locale": "en"}


def test_a_worker_reuses_one_connection_to_the_provider(postmark):
    for _ in range(3):
        deliver(MessageFactory())
    assert len(postmark.requests) == 3
    assert len({request.client_port for request in postmark.requests}) == 1


def test_template_sender_and_reply_to_are_used(postmark):
    template = TemplateFactory(
        from_email="Acme Support <help@acme.example>", reply_to="r@acme.example"
    )
    deliver(MessageFactory(template=template))
    sent = postmark.requests[0].json()
    assert sent["From"] == "Acme Support <help@acme.example>"
    assert sent["ReplyTo"] == "r@acme.example"


def test_refused_recipient_fails_at_once_without_retry(postmark):
    postmark.fail_next(
        1, 422, {"ErrorCode": 300, "Message": "Invalid 'To' address: 'x@example.com'."}
    )
    message = deliver(MessageFactory(to="x@example.com"))
    assert message.status == MessageStatus.FAILED
    assert "x@example.com: invalid" in message.error
    assert "Invalid 'To' address" in message.error
    assert len(postmark.requests) == 1


def test_other_4xx_fails_at_once(postmark):
    postmark.fail_next(1, 401, {"ErrorCode": 10, "Message": "Bad or missing API token"})
    message = deliver(MessageFactory())
    assert message.status == MessageStatus.FAILED
    assert "Bad or missing API token" in message.error
    assert len(postmark.requests) == 1


@pytest.mark.parametrize("status", [500, 502, 503, 429])
def test_provider_5xx_and_429_are_retried_then_sent(postmark, status):
    postmark.fail_next(2, status, {"ErrorCode": status, "Message": "try later"})
    message = deliver(MessageFactory())
    assert message.status == MessageStatus.SENT
    assert (message.attempts, len(postmark.requests)) == (3, 3)
    retries = [event.description for event in message.events.filter(event_type="retry")]
    assert len(retries) == 2 and all(str(status) in text for text in retries)


def test_retry_waits_at_least_retry_after(postmark):
    postmark.fail_next(1, 429, {"Message": "Rate limit exceeded"}, headers={"Retry-After": "30"})
    message = MessageFactory()
    before = timezone.now()

    outcome = message_deliver(message_id=message.pk)

    message.refresh_from_db()
    assert outcome.status == MessageStatus.QUEUED and outcome.retry_in >= 30
    assert message.status == MessageStatus.QUEUED
    assert message.next_attempt_at >= before + timedelta(seconds=30)
    assert "429" in message.error
    # Not due yet: a second task for it (say, a duplicate) does nothing.
    assert message_deliver(message_id=message.pk) is None
    assert len(postmark.requests) == 1


def test_provider_down_for_every_try_ends_failed_after_the_attempt_cap(postmark, settings):
    postmark.fail_next(20, 503, {"Message": "Service unavailable"})
    message = deliver(MessageFactory(payload={"link": "https://x.example/i"}))
    assert message.status == MessageStatus.FAILED
    assert message.error.startswith("gave up retrying:") and "503" in message.error
    assert len(postmark.requests) == settings.EMAILS_MAX_ATTEMPTS


def test_a_retry_that_would_outlive_the_code_expires_the_message(postmark, settings):
    settings.EMAILS_RETRY_BASE_DELAY = 60
    postmark.fail_next(1, 500, {"Message": "oops"})
    message = MessageFactory(expires_at=timezone.now() + timedelta(seconds=20))
    message_deliver(message_id=message.pk)
    message.refresh_from_db()
    assert message.status == MessageStatus.EXPIRED
    assert "expired while retrying" in message.error
    assert "code" not in message.payload


def test_a_dead_code_is_never_sent(postmark):
    message = MessageFactory(expires_at=timezone.now() - timedelta(seconds=1))
    message = deliver(message)
    assert message.status == MessageStatus.EXPIRED
    assert postmark.requests == []


def test_a_message_claimed_too_often_is_dead_lettered(postmark, settings):
    # Given a message whose every try so far died with its worker
    message = MessageFactory(attempts=settings.EMAILS_MAX_ATTEMPTS)
    message = deliver(message)
    assert message.status == MessageStatus.FAILED
    assert message.error.startswith(f"dead-lettered after {settings.EMAILS_MAX_ATTEMPTS}")
    assert postmark.requests == []


def test_unreachable_provider_is_retried(settings):
    use_providers(settings, "postmark")
    settings.ANYMAIL = {"POSTMARK_SERVER_TOKEN": "t", "POSTMARK_API_URL": "http://127.0.0.1:1/"}
    message = MessageFactory()
    outcome = message_deliver(message_id=message.pk)
    assert outcome.status == MessageStatus.QUEUED and outcome.retry_in is not None


def test_a_message_is_sent_once_even_if_the_task_runs_twice(postmark):
    message = MessageFactory()
    deliver(message)
    assert message_deliver(message_id=message.pk) is None
    assert len(postmark.requests) == 1


def test_broken_template_fails_the_message_with_the_reason(postmark):
    template = TemplateFactory(html_body="<p>{% if code %}{{ code }}</p>")
    message = deliver(MessageFactory(template=template))
    assert message.status == MessageStatus.FAILED
    assert message.error.startswith("template error: HTML body:")
    assert "endif" in message.error
    assert postmark.requests == []


def test_deleted_template_fails_the_message(postmark):
    message = MessageFactory()
    message.template.delete()
    message = deliver(message)
    assert (message.status, message.error) == (MessageStatus.FAILED, "its template was deleted")


def test_console_and_smtp_get_our_own_message_id():
    message = deliver(MessageFactory())
    [email] = mail.outbox
    assert email.extra_headers["Message-ID"] == message.provider_message_id
    assert message.provider_message_id.endswith("@acme.example>")


@pytest.mark.parametrize(
    ("backend", "anymail_settings", "path", "recipient_of"),
    [
        ("postmark", {"POSTMARK_SERVER_TOKEN": "pm"}, "/email", lambda r: r.json()["To"]),
        (
            "sendgrid",
            {"SENDGRID_API_KEY": "sg"},
            "/mail/send",
            lambda r: r.json()["personalizations"][0]["to"][0]["email"],
        ),
        (
            "mailgun",
            {"MAILGUN_API_KEY": "mg", "MAILGUN_SENDER_DOMAIN": "mg.acme.example"},
            "/mg.acme.example/messages",
            lambda r: parse_qs(r.body.decode())["to"][0],
        ),
    ],
)
@pytest.mark.filterwarnings("ignore::anymail.exceptions.AnymailNotSupportedWarning")
def test_switching_provider_is_only_settings(
    settings, provider_stub, backend, anymail_settings, path, recipient_of
):
    use_providers(settings, backend)
    settings.ANYMAIL = {**anymail_settings, f"{backend.upper()}_API_URL": provider_stub.url}

    message = deliver(MessageFactory(to="jane@example.com"))

    [request] = provider_stub.requests
    assert request.path.endswith(path)
    assert recipient_of(request) == "jane@example.com"
    assert message.status == MessageStatus.SENT
    assert message.provider_message_id


def test_deliver_due_drains_every_due_message_oldest_first(postmark):
    # Given three due messages stored at different times, one claimed by another worker, and
    # one whose retry is not due yet
    now = timezone.now()
    late = MessageFactory(to="late@example.com", next_attempt_at=now - timedelta(seconds=1))
    early = MessageFactory(to="early@example.com", next_attempt_at=now - timedelta(seconds=30))
    middle = MessageFactory(to="middle@example.com", next_attempt_at=now - timedelta(seconds=10))
    claimed = MessageFactory(status=MessageStatus.SENDING, claimed_at=now)
    later = MessageFactory(next_attempt_at=now + timedelta(minutes=5))

    # When one deliver_due task runs (what the relay publishes)
    delivered = deliver_due.apply().get()

    # Then it sends every due message, the longest waiting first, and nothing else
    assert delivered == 3
    assert [request.json()["To"] for request in postmark.requests] == [
        "early@example.com",
        "middle@example.com",
        "late@example.com",
    ]
    for message in (early, middle, late):
        message.refresh_from_db()
        assert message.status == MessageStatus.SENT
    claimed.refresh_from_db()
    later.refresh_from_db()
    assert (claimed.status, later.status) == (MessageStatus.SENDING, MessageStatus.QUEUED)


def test_deliver_due_with_nothing_due_sends_nothing(postmark):
    MessageFactory(next_attempt_at=timezone.now() + timedelta(minutes=5))
    assert deliver_due.apply().get() == 0
    assert postmark.requests == []


def test_workers_keep_templates_but_an_edit_applies_to_the_next_email(postmark, settings):
    # Given a worker that keeps templates in memory (as in production)
    settings.EMAILS_TEMPLATE_CACHE_SECONDS = 3600
    template = TemplateFactory(subject="First subject")
    deliver(MessageFactory(template=template))
    # When the template is edited and saved (the admin saves it)
    template.subject = "Second subject"
    template.save()
    # Then the next email uses the edit, and records the version that rendered it
    second = deliver(MessageFactory(template=template))
    assert [request.json()["Subject"] for request in postmark.requests] == [
        "First subject",
        "Second subject",
    ]
    assert second.template_version == template.version


def test_an_admin_resend_is_one_line_with_the_message_id(
    caplog, django_capture_on_commit_callbacks
):
    from emails.delivery.deliver import messages_resend

    failed = MessageFactory(status=MessageStatus.FAILED, error="boom")
    with caplog.at_level("INFO", logger="emails"), django_capture_on_commit_callbacks():
        assert messages_resend(Message.objects.filter(pk=failed.pk)) == (1, 0)
    [line] = [r for r in caplog.records if getattr(r, "message_id", None) == str(failed.pk)]
    assert line.state == "queued" and "queued again from the admin" in line.getMessage()
