"""The relay: from a stored message to a worker, without the web request touching the broker.

With PostgreSQL and a real broker, accepting an email is one INSERT and nothing else. A
trigger on ``emails_message`` (migration 0003) sends ``NOTIFY mailroom_queued`` when the
INSERT commits. Every ``celery worker`` runs this relay in a thread of its main process: it
LISTENs, and on a notification queues one ``deliver_due`` task, which drains every due
message (emails.tasks). Notifications arriving within EMAILS_RELAY_COALESCE seconds of a
publish share the next one, so a burst of a thousand emails costs a handful of tasks.

Nothing depends on a notification arriving. Every EMAILS_RELAY_POLL seconds, and after every
(re)connection, the relay looks for due messages itself; the sweeper republishes anything left
queued for EMAILS_REPUBLISH_AFTER. A lost LISTEN connection is retried every second.

Elsewhere (SQLite, or no broker: tasks run in-process) the web process publishes each message
after commit, as ``relay_enabled()`` says.

The cost: PostgreSQL serialises the commits of transactions that notify (a cluster-wide lock
held through the commit's flush), so accepting commits no longer share a disk flush. At one
flush per email that allows about a thousand accepts per second on a disk that flushes in a
millisecond, well above what a Logto deployment sends; past it, ``EMAILS_RELAY=false``.
"""

from __future__ import annotations

import logging
import threading
import time

from celery import bootsteps

from emails.delivery.dispatch import workers_wake

logger = logging.getLogger(__name__)

CHANNEL = "mailroom_queued"


def relay_enabled() -> bool:
    """Whether new messages reach workers through the relay (else: published after commit)."""
    from django.conf import settings
    from django.db import connection

    return (
        settings.EMAILS_RELAY
        and connection.vendor == "postgresql"
        and not settings.CELERY_TASK_ALWAYS_EAGER
    )


class Relay:
    def __init__(self, *, poll: float, coalesce: float, enough_waiting: int = 2):
        self.poll = poll
        self.coalesce = coalesce
        # Each deliver_due task drains everything due, so once this many wait in the queue,
        # another adds nothing: under sustained load the queue does not fill with them.
        self.enough_waiting = enough_waiting
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mailroom-relay", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        from django.db import connections

        while not self._stopping.is_set():
            connection = connections["default"]  # this thread's own connection
            try:
                self._listen(connection)
            except Exception as exc:
                logger.warning(
                    "relay lost its database connection (%s: %s); retrying",
                    type(exc).__name__,
                    exc,
                )
                self._stopping.wait(1.0)
            finally:
                try:
                    connection.close()
                except Exception:  # noqa: S110  (closing a broken connection may fail too)
                    pass

    def _listen(self, connection) -> None:
        connection.ensure_connection()
        pg = connection.connection  # psycopg, in autocommit
        pg.execute(f"LISTEN {CHANNEL}")
        last_publish = 0.0
        # Whatever was stored while nobody listened.
        if self._due_exists(pg):
            last_publish = self._publish()
        last_poll = time.monotonic()
        while not self._stopping.is_set():
            # Short waits, so that stopping the worker never waits for a poll.
            notified = any(True for _ in pg.notifies(timeout=min(self.poll, 1.0), stop_after=1))
            if not notified:
                if time.monotonic() - last_poll >= self.poll:
                    last_poll = time.monotonic()
                    if self._due_exists(pg):
                        last_publish = self._publish()
                continue
            wait = last_publish + self.coalesce - time.monotonic()
            if wait > 0:
                # A publish went out a moment ago: gather the burst into the next one.
                for _ in pg.notifies(timeout=wait):
                    pass
            last_publish = self._publish()

    def _due_exists(self, pg) -> bool:
        from django.utils import timezone

        # The workers' clock, as their claim uses (deliver._due), not the database's.
        row = pg.execute(
            "SELECT EXISTS (SELECT 1 FROM emails_message "
            "WHERE status = 'queued' AND next_attempt_at <= %s)",
            [timezone.now()],
        ).fetchone()
        return bool(row[0])

    def _publish(self) -> float:
        if self._waiting_tasks() < self.enough_waiting:
            workers_wake()  # logs when the broker is down; the next poll tries again
        return time.monotonic()

    def _waiting_tasks(self) -> int:
        """Tasks waiting in the workers' queue (0 when the broker cannot say)."""
        from celery import current_app
        from django.conf import settings

        try:
            with current_app.pool.acquire(block=True, timeout=1) as broker:
                declared = broker.default_channel.queue_declare(
                    queue=settings.CELERY_TASK_DEFAULT_QUEUE, passive=True
                )
            return declared.message_count
        except Exception:
            return 0


class RelayStep(bootsteps.StartStopStep):
    """Runs the relay in each ``celery worker`` (registered in project/celery.py)."""

    requires = {"celery.worker.components:Pool"}

    def __init__(self, worker, **kwargs):
        super().__init__(worker, **kwargs)
        self.relay: Relay | None = None

    def start(self, worker) -> None:
        from django.conf import settings

        if relay_enabled():
            self.relay = Relay(
                poll=settings.EMAILS_RELAY_POLL,
                coalesce=settings.EMAILS_RELAY_COALESCE,
                enough_waiting=max(2, worker.concurrency or 1),
            )
            self.relay.start()

    def stop(self, worker) -> None:
        if self.relay is not None:
            self.relay.stop()
            self.relay = None
