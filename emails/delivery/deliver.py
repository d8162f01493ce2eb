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

With a failover list (``EMAIL_PROVIDER=a,b``), a failure that blames the provider
(emails/delivery/failures.py) sends the same email to the next provider at once, and counts
toward opening the provider's circuit (emails/delivery/circuits.py); the rules above apply
once the list is used up. A message that finds every circuit open is not claimed, or is put
back without counting a try.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import smtplib
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import make_msgid
from functools import partial

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.mail.backends.base import BaseEmailBackend
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from emails.content.composer import compose_content, template_content
from emails.content.scopes import scopes_seen, sender_for
from emails.content.selectors import sending_templates
from emails.delivery.circuits import (
    Candidate,
    any_usable,
    candidates,
    failover_enabled,
    record_failure,
    record_refusal,
    record_sent,
    seconds_until_usable,
)
from emails.delivery.failures import MAX_ERROR_LENGTH, SendFailure, send_failure
from emails.delivery.stats import record_finished, record_try
from emails.logto import SECRET_PAYLOAD_KEYS
from emails.models import Message, MessageEvent, MessageStatus

logger = logging.getLogger(__name__)

# An SMTP session unused for this many seconds is checked (NOOP) before the next email.
SMTP_IDLE_CHECK = 15.0


@dataclass(frozen=True)
class DeliveryOutcome:
    status: str
    retry_in: float | None = None  # seconds, when the message should be tried again


def message_deliver(*, message_id) -> DeliveryOutcome | None:
    """Try to deliver one message. Returns None when there was nothing to claim (another
    worker has it, it is final, or its retry is not due): a task delivered twice sends once.
    """
    now = timezone.now()
    if not any_usable(now) or not _claim(message_id, now):
        return None  # (every circuit open: the relay's poll or the sweeper brings it back)
    return _deliver_claimed(Message.objects.get(pk=message_id), now=now)


def message_deliver_next() -> tuple[str, DeliveryOutcome] | None:
    """Claim the message that has waited longest among those due, and deliver it. Returns
    its id and outcome, or None when nothing is due (or every due one is claimed already).

    What the relay's ``deliver_due`` task loops on: one statement claims the next message,
    so a worker drains the queue without a broker round trip per email."""
    now = timezone.now()
    if not any_usable(now):
        return None  # every provider's circuit is open: nothing can be sent now
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

    from_email, reply_to = sender_for(template, message.payload)

    def email_for(provider: str) -> EmailMultiAlternatives:
        email = EmailMultiAlternatives(
            subject=rendered.subject,
            body=rendered.text,
            from_email=from_email,
            to=[message.to],
            reply_to=[reply_to] if reply_to else None,
        )
        email.attach_alternative(rendered.html, "text/html")
        if not settings.EMAIL_PROVIDERS[provider].startswith("anymail."):
            # Django's own backends report no id: give the email a Message-ID we can record.
            email.extra_headers["Message-ID"] = make_msgid(domain=_sender_domain(from_email))
        return email

    outcome = _send(message, email_for, now=now)
    if not message.is_test:
        scopes_seen(message.payload)  # after the outcome is recorded: it can delay nothing
    return outcome


def _send(message: Message, email_for, *, now) -> DeliveryOutcome:
    """Try the providers in order (emails/delivery/circuits.py) until one takes the email, a
    failure says the email itself is refused, or the list ends (retried later)."""
    failures: list[SendFailure] = []
    pinned = _pinned_provider(message)
    only_probes = True  # every provider tried was an open circuit's probe
    for candidate in candidates(now, only=pinned):
        only_probes = only_probes and candidate.probe
        message.provider = candidate.provider
        email = email_for(candidate.provider)
        failure = None
        try:
            email.connection = provider_connection(candidate.provider)
        except Exception as exc:
            failure = send_failure(exc, provider=candidate.provider, connecting=True)
        else:
            try:
                email.send(fail_silently=False)
            except Exception as exc:
                failure = send_failure(exc, provider=candidate.provider)
        if failure is None:
            status = getattr(email, "anymail_status", None)
            provider_id = (status.message_id if status else None) or email.extra_headers.get(
                "Message-ID", ""
            )
            outcome = _finish(message, MessageStatus.SENT, provider_message_id=str(provider_id))
            record_try(message, candidate.provider, "sent")
            _after_sending(message, candidate, failures)
            return outcome
        if not failure.answered:
            provider_connection.reset(candidate.provider)  # a broken connection is not reused
        record_try(message, candidate.provider, _attempt_outcome(failure))
        if not failure.blames_provider:
            # Every provider would refuse this email the same way: no failover.
            record_refusal(candidate)
            _record_failovers(message, failures, sent_by=None)
            return _after_failure(message, [failure], pinned=pinned)
        record_failure(candidate, failure.reason, now=timezone.now())
        failures.append(failure)
        if failure.throttled and not _outlives_message(message, _wait_after(message, failure)):
            # Slow down on this provider, as it asked: the email still lives after the wait.
            break
        if failure.maybe_delivered:
            message.possible_duplicates += 1
            if not _may_fail_over_after_timeout(message):
                # Kept with this provider, as the operator chose: no second copy elsewhere.
                message.pinned_provider = pinned = candidate.provider
                break
        if failure.out_of_time:
            break  # no time left in this task for another provider
        if message.expires_at is not None and timezone.now() >= message.expires_at:
            # The code died while this provider hung: no other provider sends it late (and
            # none is asked, so no probe is claimed for nothing).
            _record_failovers(message, failures[:-1], sent_by=None)
            return _finish(
                message,
                MessageStatus.EXPIRED,
                error=f"the code expired while failing over: {_reason(failure)}",
            )
    else:
        if not failures:
            return _wait_for_a_provider(message, now, pinned=pinned)
    _record_failovers(message, failures[:-1], sent_by=None)
    if only_probes and failover_enabled():
        # The email was only the circuits' probe: that costs it no try (or, in a long outage,
        # the email that happens to probe would use up EMAILS_MAX_ATTEMPTS while it lives).
        message.attempts = max(0, message.attempts - 1)
    return _after_failure(message, failures, pinned=pinned)


def _attempt_outcome(failure: SendFailure) -> str:
    if not failure.blames_provider:
        return "refused"
    if failure.throttled:
        return "throttled"
    return "timed_out" if failure.maybe_delivered else "failed"


def _after_sending(message: Message, candidate: Candidate, failures: list[SendFailure]) -> None:
    """The circuit's and the timeline's record of a send that worked. The message is already
    ``sent``: a failure here must not make it look unsent (the sweeper would send it again)."""
    try:
        record_sent(candidate)
        _record_failovers(message, failures, sent_by=candidate.provider)
    except Exception:
        logger.exception(
            "message %s was sent by %s; its circuit or timeline was not updated",
            message.pk,
            candidate.provider,
            extra={"message_id": str(message.pk), "provider": candidate.provider},
        )


def _pinned_provider(message: Message) -> str | None:
    """The provider a message must stay with: a try on it timed out after the email left, and
    the operator does not accept a second copy from another provider (README, Failover). It
    is tried as that provider's circuit allows, with backoff, and never elsewhere (an admin
    resend releases it)."""
    if message.pinned_provider in settings.EMAIL_PROVIDERS:
        return message.pinned_provider
    return None


def _wait_after(message: Message, failure: SendFailure) -> float:
    """The longest this message would wait before its next try after ``failure``."""
    return max(_backoff_ceiling(message.attempts), failure.retry_after)


def _may_fail_over_after_timeout(message: Message) -> bool:
    policy = settings.EMAILS_FAILOVER_ON_TIMEOUT
    return policy == "true" or (policy == "codes" and message.expires_at is not None)


def _outlives_message(message: Message, wait: float) -> bool:
    """Whether waiting ``wait`` seconds would take the email past its code's life (or past its
    retry window), or there is no try left to wait for."""
    if message.attempts >= settings.EMAILS_MAX_ATTEMPTS:
        return True
    later = timezone.now() + timedelta(seconds=wait)
    return later >= _retry_deadline(message) or (
        message.expires_at is not None and later >= message.expires_at
    )


def _wait_for_a_provider(message: Message, now, *, pinned: str | None) -> DeliveryOutcome:
    """Every circuit it may use is open (or another worker won the one probe): put the message
    back without counting a try, to look again when a probe is due."""
    delay = seconds_until_usable(now, only=pinned)
    if message.expires_at is not None and now + timedelta(seconds=delay) >= message.expires_at:
        return _finish(
            message, MessageStatus.EXPIRED, error="the code expired while every provider was down"
        )
    message.status = MessageStatus.QUEUED
    message.attempts = max(0, message.attempts - 1)
    message.next_attempt_at = now + timedelta(seconds=delay)
    message.save(update_fields=["status", "attempts", "next_attempt_at", "updated_at"])
    return DeliveryOutcome(MessageStatus.QUEUED, retry_in=delay)


def _record_failovers(message: Message, failures: list[SendFailure], *, sent_by: str | None):
    """Each failed try that was followed at once by the next provider, on the timeline; and,
    when the email went out after a try that may have delivered it, the possible duplicate."""
    now = timezone.now()
    for failure in failures:
        maybe = " (it may have been delivered)" if failure.maybe_delivered else ""
        MessageEvent.objects.get_or_create(
            event_id=f"{_try_id(message, now)}:{failure.provider}",
            defaults={
                "message": message,
                "event_type": "failover",
                "provider": failure.provider,
                "occurred_at": now,
                "description": f"attempt {message.attempts} on {failure.provider} failed"
                f"{maybe}, the next provider tried at once: {failure.reason}"[:MAX_ERROR_LENGTH],
            },
        )
    if sent_by is not None and message.possible_duplicates:
        MessageEvent.objects.get_or_create(
            event_id=f"{_try_id(message, now)}:duplicate",
            defaults={
                "message": message,
                "event_type": "duplicate",
                "provider": sent_by,
                "occurred_at": now,
                "description": f"sent by {sent_by} after {message.possible_duplicates} "
                "earlier tr(y/ies) timed out once the email had left: the recipient may get "
                f"it {message.possible_duplicates + 1} times",
            },
        )


class _ProviderConnections:
    """One open email backend connection per provider and worker process, reused for every
    message: HTTP keep-alive (and one TLS handshake) with an anymail provider, one SMTP
    session with a server, instead of a new one per email. Rebuilt after a fork, after a
    failed send, and when the settings change (tests)."""

    def __init__(self):
        self._key: tuple | None = None
        self._connections: dict[str, BaseEmailBackend] = {}
        self._used: dict[str, float] = {}

    def __call__(self, provider: str):
        anymail = repr(getattr(settings, "ANYMAIL", None)).encode()  # (hashed: keys in it)
        key = (os.getpid(), repr(settings.EMAIL_PROVIDERS), hashlib.sha256(anymail).hexdigest())
        if self._key != key:
            self.reset()
            self._key = key
        connection = self._connections.get(provider)
        if connection is not None and self._dropped(provider, connection):
            self.reset(provider)
            connection = None
        if connection is None:
            connection = get_connection(settings.EMAIL_PROVIDERS[provider], fail_silently=False)
            connection.open()
            self._connections[provider] = connection
        self._used[provider] = time.monotonic()
        return connection

    def _dropped(self, provider: str, connection) -> bool:
        """An SMTP session idle for a while may have been closed by the server: ask (NOOP)
        before sending on it, so that a dropped session is not taken for a failed send (which
        might have been delivered). HTTP clients reconnect by themselves."""
        smtp = getattr(connection, "connection", None)
        if not isinstance(smtp, smtplib.SMTP):
            return False
        if smtp.sock is None:
            return True  # smtplib closed it (a 421 reply)
        if time.monotonic() - self._used.get(provider, 0.0) < SMTP_IDLE_CHECK:
            return False
        try:
            return smtp.noop()[0] != 250
        except (smtplib.SMTPException, OSError):
            return True

    def warm(self) -> None:
        """Open the connection of every provider reached over HTTP (anymail), which costs no
        network: SMTP connects when it opens, and an idle SMTP connection would be dropped."""
        for name, backend in settings.EMAIL_PROVIDERS.items():
            if backend.startswith("anymail."):
                try:
                    self(name)
                except Exception as exc:  # the start-up check has said why; not its text here
                    logger.warning(
                        "provider %s: client not built ahead (%s)", name, type(exc).__name__
                    )

    def reset(self, provider: str | None = None) -> None:
        names = [provider] if provider is not None else list(self._connections)
        for name in names:
            connection = self._connections.pop(name, None)
            if connection is not None:
                try:
                    connection.close()
                except Exception:  # noqa: S110  (closing a broken connection may fail too)
                    pass


provider_connection = _ProviderConnections()


def _after_failure(
    message: Message, failures: list[SendFailure], *, pinned: str | None = None
) -> DeliveryOutcome:
    """After the last failed try of this attempt: retry later when any provider may take the
    email then, else fail it with the reason."""
    failure = failures[-1]
    reason = _reason(failure)
    if any(item.configuration for item in failures):
        # Every email fails this way until an operator acts: say so at ERROR on each attempt.
        for item in failures:
            if item.configuration:
                logger.error(
                    "message %s not sent, fix the email provider's settings: %s",
                    message.pk,
                    _reason(item).splitlines()[0],
                    extra={"message_id": str(message.pk), "provider": item.provider},
                )
    # With a failover list, a failure that blames one provider (a revoked key, a suspended
    # account) leaves the others: the email is kept for them.
    keep = failover_enabled() and pinned is None
    if not any(item.transient or (keep and item.blames_provider) for item in failures):
        return _finish(message, MessageStatus.FAILED, error=reason)
    now = timezone.now()
    # (Only the last provider's Retry-After: the ones before it were failed over from.)
    delay = max(retry_delay(message.attempts), failure.retry_after)
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
    message.save(
        update_fields=[
            "status",
            "attempts",
            "next_attempt_at",
            "error",
            "provider",
            "pinned_provider",
            "possible_duplicates",
            "updated_at",
        ]
    )
    # Each failed try stays on the message's timeline, beside the provider's own events.
    MessageEvent.objects.get_or_create(
        event_id=_try_id(message, now),
        defaults={
            "message": message,
            "event_type": "retry",
            "provider": failure.provider,
            "occurred_at": now,
            "description": f"attempt {message.attempts} failed, next in {delay:.1f}s: {reason}"[
                :MAX_ERROR_LENGTH
            ],
        },
    )
    logger.info(
        "message %s will be retried in %.1fs: %s",
        message.pk,
        delay,
        reason.splitlines()[0],
        extra={"message_id": str(message.pk), "state": "queued", "provider": failure.provider},
    )
    return DeliveryOutcome(MessageStatus.QUEUED, retry_in=delay)


def _try_id(message: Message, now: datetime) -> str:
    """The id of a try's events: its number, and when (a resend counts tries from 0 again)."""
    return f"mailroom:{message.pk}:attempt:{message.attempts}:{now.timestamp():.6f}"


def _reason(failure: SendFailure) -> str:
    """The failure's text, naming the provider when there are several."""
    if failover_enabled():
        return f"{failure.provider}: {failure.reason}"[:MAX_ERROR_LENGTH]
    return failure.reason


def retry_delay(attempts: int) -> float:
    """Exponential backoff with jitter: about base × 2^(attempts-1), between half and all of it."""
    ceiling = _backoff_ceiling(attempts)
    return random.uniform(ceiling / 2, ceiling)  # noqa: S311  (jitter, not security)


def _backoff_ceiling(attempts: int) -> float:
    return settings.EMAILS_RETRY_BASE_DELAY * 2 ** max(0, attempts - 1)


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
    fields += ["provider", "pinned_provider", "possible_duplicates"]
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
    record_finished([message])
    return DeliveryOutcome(status)


def secrets_expired(message: Message, *, now) -> bool:
    """Whether the message's code is dead, or (no code) its retry window has ended."""
    if message.expires_at is not None:
        return now >= message.expires_at
    return now >= _retry_deadline(message)


def wipe_secrets(payload: dict) -> dict:
    return {key: value for key, value in payload.items() if key not in SECRET_PAYLOAD_KEYS}


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
        resent = Message.objects.filter(pk=message.pk, status=MessageStatus.FAILED).update(
            status=MessageStatus.QUEUED,
            attempts=0,
            error="",
            pinned_provider="",  # an operator's resend may go to any provider
            next_attempt_at=now,
            created_at=message.created_at,
        )
        if resent:
            logger.info(
                "message %s queued again from the admin",
                message.pk,
                extra={"message_id": str(message.pk), "state": "queued"},
            )
        queued.append(message.pk)
    from emails.delivery.dispatch import message_publish

    for message_id in queued:
        transaction.on_commit(partial(message_publish, message_id=message_id))
    return len(queued), skipped
