"""Celery tasks: each takes a primary key (or nothing), calls one service, and owns only the
decision to schedule a retry."""

import time

from celery import shared_task
from django.conf import settings

from emails.delivery.deliver import message_deliver, message_deliver_next
from emails.delivery.dispatch import message_publish, workers_wake
from emails.delivery.sweeper import messages_purge, messages_sweep


@shared_task(ignore_result=True)
def deliver_message(message_id: str) -> None:
    outcome = message_deliver(message_id=message_id)
    if outcome is not None and outcome.retry_in is not None:
        _schedule_retry(message_id, outcome.retry_in)


# deliver_due starts new sends for DRAIN_SECONDS, and its time limits leave the last one as
# long as one deliver_message has (checks.py: the sweeper's sending timeout covers both).
DRAIN_SECONDS = settings.EMAILS_SEND_TIME_LIMIT / 4


@shared_task(
    ignore_result=True,
    soft_time_limit=DRAIN_SECONDS + settings.CELERY_TASK_SOFT_TIME_LIMIT,
    time_limit=DRAIN_SECONDS + settings.CELERY_TASK_TIME_LIMIT,
)
def deliver_due() -> int:
    """Deliver due messages one after another until none is left: what the relay
    (emails/delivery/relay.py) publishes when new messages are stored. Starts no new send after
    DRAIN_SECONDS, and publishes itself again if messages were still waiting then."""
    deadline = time.monotonic() + DRAIN_SECONDS
    delivered = 0
    while time.monotonic() < deadline:
        result = message_deliver_next()
        if result is None:
            return delivered
        message_id, outcome = result
        delivered += 1
        if outcome.retry_in is not None:
            _schedule_retry(message_id, outcome.retry_in)
    workers_wake()
    return delivered


def _schedule_retry(message_id: str, countdown: float) -> None:
    # Published, not Task.retry(): if the broker is down now, the message is queued in
    # the database with its next_attempt_at and the relay or the sweeper publishes it later.
    message_publish(message_id=message_id, countdown=countdown)


@shared_task(ignore_result=True)
def sweep_messages() -> dict:
    return vars(messages_sweep())


@shared_task(ignore_result=True)
def purge_old_messages() -> int:
    return messages_purge()
