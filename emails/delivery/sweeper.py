"""The sweeper (Celery beat, every EMAILS_SWEEP_INTERVAL seconds) and the retention purge.

The sweeper makes the database, not the broker, the source of truth:
- a code email still unsent when its code dies becomes ``expired`` (never a dead code sent);
- a message stuck in ``sending`` past EMAILS_SENDING_TIMEOUT (its worker died; the task time
  limit guarantees it is not still in flight) goes back to ``queued``, or is dead-lettered
  (``failed``) once it has used EMAILS_MAX_ATTEMPTS;
- a ``queued`` message nobody claimed for EMAILS_REPUBLISH_AFTER (publish lost, broker was
  down, worker crashed before acknowledging) is published again;
- dedup keys older than the code TTL are cleared;
- failed messages lose their code and link once their code is dead or their retry window over
  (until then an operator may resend them from the admin).

Two sweepers running at once take disjoint rows (SELECT ... FOR UPDATE SKIP LOCKED on
PostgreSQL), and a message published twice is still sent once (the worker's claim).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from emails.delivery.deliver import wipe_secrets
from emails.delivery.dispatch import message_publish
from emails.delivery.stats import record_finished, stats_compact
from emails.logto import SECRET_PAYLOAD_KEYS
from emails.models import Heartbeat, Message, MessageStatus

logger = logging.getLogger(__name__)

BATCH_SIZE = 500


@dataclass
class SweepReport:
    expired: int = 0
    requeued: int = 0
    dead_lettered: int = 0
    republished: int = 0
    dedup_keys_cleared: int = 0
    secrets_wiped: int = 0


def messages_sweep() -> SweepReport:
    report = SweepReport()
    now = timezone.now()
    _expire_dead_codes(now, report)
    _recover_stuck_sending(now, report)
    _republish_unclaimed(now, report)
    _wipe_failed_secrets(now, report)
    report.dedup_keys_cleared = Message.objects.filter(
        dedup_key__isnull=False, created_at__lt=now - timedelta(seconds=settings.EMAILS_CODE_TTL)
    ).update(dedup_key=None)
    Heartbeat.objects.update_or_create(name=SWEEPER, defaults={"at": now})
    return report


SWEEPER = "sweeper"


def sweeper_late() -> str:
    """ "" when the sweeper ran within three of its intervals (or there is no broker, so no
    beat), else what an operator should hear (celery beat is not running, or cannot reach the
    broker or the workers)."""
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return ""  # development without a broker: no beat to run (README, "Two commands")
    last = Heartbeat.objects.filter(name=SWEEPER).values_list("at", flat=True).first()
    interval = settings.EMAILS_SWEEP_INTERVAL
    hint = "is `celery -A project beat` running, with a worker and the same environment?"
    if last is None:
        return f"The sweeper has never run: {hint}"
    ago = (timezone.now() - last).total_seconds()
    if ago <= 3 * interval:
        return ""
    return f"The sweeper last ran {ago:.0f} s ago (it runs every {interval:.0f} s): {hint}"


def _locked(queryset):
    return list(queryset.select_for_update(skip_locked=True).order_by()[:BATCH_SIZE])


def _expire_dead_codes(now, report: SweepReport) -> None:
    with transaction.atomic():
        messages = _locked(Message.objects.filter(status=MessageStatus.QUEUED, expires_at__lte=now))
        for message in messages:
            message.status = MessageStatus.EXPIRED
            message.error = "the code expired before it could be sent" + (
                f"; last error: {message.error}" if message.error else ""
            )
            message.payload = wipe_secrets(message.payload)
        Message.objects.bulk_update(messages, ["status", "error", "payload"])
        transaction.on_commit(partial(record_finished, messages), robust=True)
        report.expired = len(messages)


def _recover_stuck_sending(now, report: SweepReport) -> None:
    stuck_before = now - timedelta(seconds=settings.EMAILS_SENDING_TIMEOUT)
    with transaction.atomic():
        messages = _locked(
            Message.objects.filter(status=MessageStatus.SENDING, claimed_at__lt=stuck_before)
        )
        requeue = []
        for message in messages:
            if message.attempts >= settings.EMAILS_MAX_ATTEMPTS:
                message.status = MessageStatus.FAILED
                message.error = f"dead-lettered after {message.attempts} attempts that never ended"
                message.payload = wipe_secrets(message.payload)
                report.dead_lettered += 1
            else:
                message.status = MessageStatus.QUEUED
                message.next_attempt_at = now
                requeue.append(message.pk)
                logger.info(
                    "message %s queued again: its try never ended (a worker stopped?)",
                    message.pk,
                    extra={"message_id": str(message.pk), "state": "queued"},
                )
        Message.objects.bulk_update(messages, ["status", "error", "payload", "next_attempt_at"])
        dead = [message for message in messages if message.status == MessageStatus.FAILED]
        transaction.on_commit(partial(record_finished, dead), robust=True)
        report.requeued = len(requeue)
        _publish_after_commit(requeue)


def _republish_unclaimed(now, report: SweepReport) -> None:
    unclaimed_before = now - timedelta(seconds=settings.EMAILS_REPUBLISH_AFTER)
    with transaction.atomic():
        ids = [
            message.pk
            for message in _locked(
                Message.objects.filter(
                    status=MessageStatus.QUEUED, next_attempt_at__lte=unclaimed_before
                ).only("pk")
            )
        ]
        # Moving next_attempt_at to now keeps the next sweeps from publishing it again
        # before it has had EMAILS_REPUBLISH_AFTER to be claimed.
        Message.objects.filter(pk__in=ids).update(next_attempt_at=now)
        report.republished = len(ids)
        _publish_after_commit(ids)


def _wipe_failed_secrets(now, report: SweepReport) -> None:
    """Failed messages keep their code or link for a resend until it is useless; then not."""
    window_start = now - timedelta(seconds=settings.EMAILS_RETRY_WINDOW)
    with transaction.atomic():
        messages = _locked(
            Message.objects.filter(
                status=MessageStatus.FAILED, payload__has_any_keys=SECRET_PAYLOAD_KEYS
            ).filter(
                Q(expires_at__lte=now) | Q(expires_at__isnull=True, created_at__lte=window_start)
            )
        )
        for message in messages:
            message.payload = wipe_secrets(message.payload)
        Message.objects.bulk_update(messages, ["payload"])
        report.secrets_wiped = len(messages)


def _publish_after_commit(ids) -> None:
    for message_id in ids:
        transaction.on_commit(partial(message_publish, message_id=message_id))


def messages_purge() -> int:
    """Delete messages (and their events) older than EMAILS_RETENTION_DAYS; returns how many.
    Then the Delivery page's counts are folded, and go after a week and a day (stats_compact):
    a failure there is logged and stops nothing."""
    cutoff = timezone.now() - timedelta(days=settings.EMAILS_RETENTION_DAYS)
    deleted = 0
    while True:
        ids = list(
            Message.objects.filter(created_at__lt=cutoff).values_list("pk", flat=True)[:1000]
        )
        if not ids:
            break
        Message.objects.filter(pk__in=ids).delete()
        deleted += len(ids)
    try:
        stats_compact()
    except Exception:
        logger.exception("the Delivery page's counts were not folded")
    return deleted
