"""The only code that talks to the broker: publishing a stored message's delivery, and
waking the workers to drain every due message.

Tasks are looked up by name in the Celery app's registry (``emails.tasks`` registers them),
so nothing below the tasks imports them: the pipeline's arrows point one way. Neither
function ever raises: the database is the source of truth, and whatever the broker loses,
the relay's poll and the sweeper find (docs/ARCHITECTURE.md).
"""

from __future__ import annotations

import logging

from celery import current_app

logger = logging.getLogger(__name__)

DELIVER_MESSAGE = "emails.tasks.deliver_message"
DELIVER_DUE = "emails.tasks.deliver_due"


def _task(name: str):
    # The registry finalises the app on first use, which imports every app's tasks module.
    return current_app.tasks[name]


def message_publish(*, message_id, countdown: float | None = None) -> bool:
    """Queue delivery of a stored message. Never raises: True if the broker took it."""
    try:
        # retry=False: on the request path a broker outage must cost milliseconds, not the
        # publish-retry policy's seconds; the message is already stored.
        _task(DELIVER_MESSAGE).apply_async(args=[str(message_id)], countdown=countdown, retry=False)
    except Exception as exc:
        # The message is stored and stays queued; the sweeper publishes it again. kombu's
        # errors name host and port, never credentials, but log only class and text.
        logger.warning(
            "message %s stored but not queued (%s: %s)",
            message_id,
            type(exc).__name__,
            exc,
            extra={"message_id": str(message_id)},
        )
        return False
    return True


def workers_wake() -> bool:
    """Queue one ``deliver_due`` task (a worker drains every due message). Never raises: True
    if the broker took it; if not, the relay's next poll or the sweeper tries again."""
    try:
        _task(DELIVER_DUE).apply_async(retry=False)
    except Exception as exc:
        logger.warning("could not queue delivery of due messages (%s: %s)", type(exc).__name__, exc)
        return False
    return True


def broker_answers() -> bool:
    """Whether the broker takes a connection now (readiness, emails/operations/health.py):
    one attempt, bounded by the broker's own connect and socket timeouts (settings.py).
    Never raises."""
    try:
        with current_app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, interval_start=0, timeout=2)
    except Exception as exc:
        logger.warning("broker unreachable (%s: %s)", type(exc).__name__, exc)
        return False
    return True
