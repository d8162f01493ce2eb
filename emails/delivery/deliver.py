"""Delivering one message: claim, render, send through Django's mail API (django-anymail),
record the outcome.

Failure contract, by what the provider said:
- sent: ``sent`` with the provider's message id; code and link wiped from the record.
  (``expired`` wipes them too; ``failed`` keeps them for a resend until the sweeper wipes them.)
- network error, HTTP 5xx or 429, SMTP 4xx, a hung provider (soft time limit): back to
  ``queued`` with ``next_attempt_at`` after an exponential, jittered backoff that honours
  Retry-After; the caller publishes the retry. When the next try would land after the code
  expires, ``expired``; after the retry window or EMAILS_MAX_ATTEMPTS, ``failed``.
- a configuration error (a missing setting or AWS credential or region, a certificate that
  does not verify): retried like an outage, logged at ERROR on every attempt.
- refused or invalid recipient, any other 4xx, a template error, anything unexpected:
  ``failed`` at once, with the reason. Nothing loops forever.
"""

from __future__ import annotations

import logging
import os
import random
import smtplib
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import make_msgid
from functools import partial

from anymail.exceptions import AnymailAPIError, AnymailError, AnymailRecipientsRefused
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from emails.content.composer import compose_content, template_content
from emails.content.selectors import sending_templates
from emails.delivery.provider_check import configuration_message, is_configuration_error
from emails.logto import SECRET_PAYLOAD_KEYS
from emails.models import Message, MessageEvent, MessageStatus

logger = logging.getLogger(__name__)

MAX_ERROR_LENGTH = 1000
MAX_RETRY_AFTER = 300.0


@dataclass(frozen=True)
class DeliveryOutcome:
    status: str
    retry_in: float | None = None  # seconds, when the message should be tried again


def message_deliver(*, message_id) -> DeliveryOutcome | None:
    """Try to deliver one message. Returns None when there was nothing to claim (another
    worker has it, it is final, or its retry is not due): a task delivered twice sends once.
    """
    now = timezone.now()
    if not _claim(message_id, now):
        return None
    return _deliver_claimed(Message.objects.get(pk=message_id), now=now)


def message_deliver_next() -> tuple[str, DeliveryOutcome] | None:
    """Claim the message that has waited longest among those due, and deliver it. Returns
    its id and outcome, or None when nothing is due (or every due one is claimed already).

    What the relay's ``deliver_due`` task loops on: one statement claims the next message,
    so a worker drains the queue without a broker round trip per email."""
    now = timezone.now()
    message = _claim_next(now)
    if message is None:
        return None
    return str(message.pk), _deliver_claimed(message, now=now)


def _due(messages, now):
    # One second of slack: a retry published with a countdown may run a moment early.
    return messages.filter(
        status=MessageStatus.QUEUED, next_attempt_at__lte=now + timedelta(seconds=1)
    )


def _claim(message_id, now) -> bool:
    """The claim: one conditional UPDATE, so only one worker ever holds a message."""
    return bool(
        _due(Message.objects.filter(pk=message_id), now).update(
            status=MessageStatus.SENDING, attempts=F("attempts") + 1, claimed_at=now
        )
    )


_CLAIM_NEXT_SQL = """
UPDATE emails_message SET status = %s, attempts = attempts + 1, claimed_at = %s
WHERE id = (
    SELECT id FROM emails_message WHERE status = %s AND next_attempt_at <= %s
    ORDER BY next_attempt_at LIMIT 1 FOR UPDATE SKIP LOCKED
)
RETURNING *
"""


def _claim_next(now) -> Message | None:
    """The claimed message, or None."""
    if connection.vendor == "postgresql":
        # One round trip, which also returns the claimed row; SKIP LOCKED lets concurrent
        # workers take different messages.
        claimed = Message.objects.raw(
            _CLAIM_NEXT_SQL,
            [MessageStatus.SENDING, now, MessageStatus.QUEUED, now + timedelta(seconds=1)],
        )
        return next(iter(claimed), None)
    # Elsewhere (SQLite): pick the oldest due message, then claim it conditionally.
    for message_id in (
        _due(Message.objects.all(), now)
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:5]
    ):
        if _claim(message_id, now):
            return Message.objects.get(pk=message_id)
    return None


def _deliver_claimed(message: Message, *, now) -> DeliveryOutcome:
    if message.attempts > settings.EMAILS_MAX_ATTEMPTS:
        # Tries that never came back (a worker killed mid-send) count too: dead letter.
        return _finish(message, MessageStatus.FAILED, error=_dead_letter_reason(message))
    if message.expires_at is not None and now >= message.expires_at:
        return _finish(message, MessageStatus.EXPIRED, error="the code expired before sending")
    template = sending_templates.get(message.template_id) if message.template_id else None
    # A test send from the admin renders the (possibly unsaved) content it was given.
    content = message.test_content or (template_content(template) if template else None)
    if content is None:
        return _finish(message, MessageStatus.FAILED, error="its template was deleted")
    if template is not None and not message.test_content:
        message.template_version = template.version  # saved with the outcome
    rendered = compose_content(
        content,
        payload=message.payload,
        locale=message.template_locale or "en",
        layout=template.layout if template and not message.test_content else None,
    )
    if rendered.errors:
        # A template error or one over its budget: no retry makes it render.
        return _finish(message, MessageStatus.FAILED, error=f"template error: {rendered.errors[0]}")

    from_email = (template.from_email if template else "") or settings.DEFAULT_FROM_EMAIL
    reply_to = template.reply_to if template else ""
    email = EmailMultiAlternatives(
        subject=rendered.subject,
        body=rendered.text,
        from_email=from_email,
        to=[message.to],
        reply_to=[reply_to] if reply_to else None,
    )
    email.attach_alternative(rendered.html, "text/html")
    own_message_id = None
    if not settings.EMAIL_BACKEND.startswith("anymail."):
        # Django's own backends report no id: give the email a Message-ID we can record.
        own_message_id = make_msgid(domain=_sender_domain(email.from_email))
        email.extra_headers["Message-ID"] = own_message_id

    try:
        email.connection = provider_connection()
        email.send(fail_silently=False)
    except Exception as exc:
        provider_connection.reset()  # a broken connection is not reused
        return _after_failure(message, exc)

    status = getattr(email, "anymail_status", None)
    provider_id = (status.message_id if status else None) or own_message_id or ""
    return _finish(message, MessageStatus.SENT, provider_message_id=str(provider_id))


class _ProviderConnection:
    """One open email backend connection per worker process, reused for every message: HTTP
    keep-alive (and one TLS handshake) with an anymail provider, one SMTP session with a
    server, instead of a new one per email. Rebuilt after a fork, after a failed send, and
    when the settings change (tests)."""

    def __init__(self):
        self._key = None
        self._connection = None

    def __call__(self):
        key = (os.getpid(), settings.EMAIL_BACKEND, repr(getattr(settings, "ANYMAIL", None)))
        if self._connection is None or self._key != key:
            self.reset()
            self._connection = get_connection(fail_silently=False)
            self._connection.open()
            self._key = key
        return self._connection

    def reset(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.close()
            except Exception:  # noqa: S110  (closing a broken connection may fail too)
                pass


provider_connection = _ProviderConnection()


def _after_failure(message: Message, exc: Exception) -> DeliveryOutcome:
    reason = _describe(exc)
    if is_configuration_error(exc):
        # Every email fails this way until an operator acts: say so at ERROR on each attempt.
        logger.error(
            "message %s not sent, fix the email provider's settings: %s",
            message.pk,
            reason.splitlines()[0],
        )
    if not _is_transient(exc):
        logger.warning("message %s failed: %s", message.pk, reason.splitlines()[0])
        return _finish(message, MessageStatus.FAILED, error=reason)
    now = timezone.now()
    delay = max(retry_delay(message.attempts), _retry_after(exc))
    next_attempt_at = now + timedelta(seconds=delay)
    if message.expires_at is not None and next_attempt_at >= message.expires_at:
        return _finish(
            message, MessageStatus.EXPIRED, error=f"the code expired while retrying: {reason}"
        )
    if (
        next_attempt_at >= _retry_deadline(message)
        or message.attempts >= settings.EMAILS_MAX_ATTEMPTS
    ):
        return _finish(message, MessageStatus.FAILED, error=f"gave up retrying: {reason}")
    message.status = MessageStatus.QUEUED
    message.next_attempt_at = next_attempt_at
    message.error = reason[:MAX_ERROR_LENGTH]
    message.save(update_fields=["status", "next_attempt_at", "error", "updated_at"])
    # Each failed try stays on the message's timeline, beside the provider's own events.
    MessageEvent.objects.get_or_create(
        event_id=f"mailroom:{message.pk}:attempt:{message.attempts}",
        defaults={
            "message": message,
            "event_type": "retry",
            "occurred_at": now,
            "description": f"attempt {message.attempts} failed, next in {delay:.1f}s: {reason}"[
                :MAX_ERROR_LENGTH
            ],
        },
    )
    logger.info(
        "message %s will be retried in %.1fs: %s", message.pk, delay, reason.splitlines()[0]
    )
    return DeliveryOutcome(MessageStatus.QUEUED, retry_in=delay)


def retry_delay(attempts: int) -> float:
    """Exponential backoff with jitter: about base × 2^(attempts-1), between half and all of it."""
    ceiling = settings.EMAILS_RETRY_BASE_DELAY * 2 ** max(0, attempts - 1)
    return random.uniform(ceiling / 2, ceiling)  # noqa: S311  (jitter, not security)


def _retry_after(exc: Exception) -> float:
    """Seconds the provider asked us to wait (Retry-After, in seconds form), capped."""
    response = getattr(exc, "response", None)
    value = response.headers.get("Retry-After") if response is not None else None
    try:
        return min(float(value), MAX_RETRY_AFTER) if value else 0.0
    except ValueError:
        return 0.0


def _retry_deadline(message: Message) -> datetime:
    return message.created_at + timedelta(seconds=settings.EMAILS_RETRY_WINDOW)


def _dead_letter_reason(message: Message) -> str:
    last = f"; last error: {message.error}" if message.error else ""
    return f"dead-lettered after {message.attempts - 1} attempts{last}"


def _finish(message: Message, status: str, *, error: str = "", provider_message_id: str = ""):
    """Record a final status (or a retry's error): final messages lose their secrets."""
    message.status = status
    message.error = error[:MAX_ERROR_LENGTH]
    fields = ["status", "error", "updated_at", "template_version"]
    if status == MessageStatus.SENT:
        message.provider_message_id = provider_message_id[:255]
        message.sent_at = timezone.now()
        fields += ["provider_message_id", "sent_at"]
    if status in (MessageStatus.SENT, MessageStatus.EXPIRED):
        message.payload = wipe_secrets(message.payload)
        fields.append("payload")
    # A failed message keeps its code or link while it could still be resent from the admin;
    # the sweeper wipes it when the code dies or the retry window ends.
    message.save(update_fields=fields)
    return DeliveryOutcome(status)


def secrets_expired(message: Message, *, now) -> bool:
    """Whether the message's code is dead, or (no code) its retry window has ended."""
    if message.expires_at is not None:
        return now >= message.expires_at
    return now >= _retry_deadline(message)


def wipe_secrets(payload: dict) -> dict:
    return {key: value for key, value in payload.items() if key not in SECRET_PAYLOAD_KEYS}


def _is_transient(exc: Exception) -> bool:
    """Worth retrying: network errors, HTTP 5xx and 429, SMTP 4xx replies or dropped
    connections, a provider that hung past the soft time limit, a configuration error (a
    missing setting or credential, a certificate that does not verify: the email is fine, and
    an operator's fix and restart sends it while the code lives). Everything else is final."""
    if is_configuration_error(exc):
        return True
    if isinstance(exc, AnymailRecipientsRefused):
        return False
    if isinstance(exc, AnymailAPIError):
        status_code = getattr(exc, "status_code", None)
        return status_code is None or status_code >= 500 or status_code == 429
    if isinstance(exc, smtplib.SMTPRecipientsRefused | smtplib.SMTPSenderRefused):
        return False
    if isinstance(exc, smtplib.SMTPResponseException):
        return 400 <= exc.smtp_code < 500
    return isinstance(
        exc,
        smtplib.SMTPServerDisconnected | ConnectionError | TimeoutError | SoftTimeLimitExceeded,
    )


def _describe(exc: Exception) -> str:
    if is_configuration_error(exc) and not isinstance(exc, AnymailError):
        # A missing setting (anymail's text names it, never its value), no AWS credentials or
        # region, an SMTP certificate that does not verify.
        return f"configuration error: {configuration_message(exc)}"[:MAX_ERROR_LENGTH]
    if isinstance(exc, AnymailRecipientsRefused):
        # Name each refused recipient and the provider's words, not just "all rejected".
        status = getattr(exc.email_message, "anymail_status", None)
        recipients = (
            ", ".join(f"{address}: {item.status}" for address, item in status.recipients.items())
            if status is not None
            else ""
        )
        response = getattr(exc.response, "text", "") if exc.response is not None else ""
        parts = [str(exc).strip(), f"({recipients})" if recipients else "", response.strip()]
        return " ".join(part for part in parts if part)[:MAX_ERROR_LENGTH]
    if isinstance(exc, AnymailError):
        # anymail's text includes the provider's response, which is what an operator needs.
        return str(exc).strip()[:MAX_ERROR_LENGTH]
    return f"{type(exc).__name__}: {exc}"[:MAX_ERROR_LENGTH]


def _sender_domain(from_email: str) -> str:
    return from_email.rsplit("@", 1)[-1].strip(" >") or "localhost"


def messages_resend(messages) -> tuple[int, int]:
    """Queue failed messages again, from the admin. Returns (queued, skipped): a message whose
    code is dead or whose secrets are gone cannot be resent."""
    now = timezone.now()
    queued, skipped = [], 0
    for message in messages.filter(status=MessageStatus.FAILED):
        needs = [key for key in SECRET_PAYLOAD_KEYS if key in message.payload]
        if secrets_expired(message, now=now) or (not needs and not message.test_content):
            skipped += 1
            continue
        Message.objects.filter(pk=message.pk, status=MessageStatus.FAILED).update(
            status=MessageStatus.QUEUED,
            attempts=0,
            error="",
            next_attempt_at=now,
            created_at=message.created_at,
        )
        queued.append(message.pk)
    from emails.delivery.dispatch import message_publish

    for message_id in queued:
        transaction.on_commit(partial(message_publish, message_id=message_id))
    return len(queued), skipped
