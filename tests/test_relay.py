"""The relay (emails/delivery/relay.py): with PostgreSQL and a broker, a stored message
reaches a real `celery worker` without the web request publishing anything: PostgreSQL
notifies the worker's relay at commit, and the relay's poll finds what a notification did not
announce.

Skips with the reason when PostgreSQL or Redis is absent on a developer's machine; under
CI=true it fails instead.
"""

import pytest
from django.db import connection

from emails.models import Message, MessageStatus
from tests.factories import MessageFactory, TemplateFactory
from tests.helpers import require_postgres, require_service
from tests.processes import celery_worker, database_url, running, service_env, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

RELAY_CHECK = "SELECT EXISTS (SELECT 1 FROM emails_message WHERE status = 'queued'"


def worker_env(provider_stub, **overrides) -> dict:
    require_postgres()
    require_service("Redis", "127.0.0.1", 6379)
    return service_env(
        DATABASE_URL=database_url(connection.settings_dict),
        CELERY_BROKER_URL="redis://127.0.0.1:6379/0",
        LOGTO_AUTHORIZATION="Bearer relay-test",
        EMAIL_PROVIDER="postmark",
        ANYMAIL_POSTMARK_SERVER_TOKEN="relay-token",
        ANYMAIL_POSTMARK_API_URL=provider_stub.url,
        **overrides,
    )


def relay_listening() -> bool:
    """The relay has connected, listened and run its first check for due messages."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE %s AND pid <> pg_backend_pid()",
            [f"%{RELAY_CHECK}%"],
        )
        return cursor.fetchone()[0] > 0


def delivered(message) -> Message | None:
    return Message.objects.filter(pk=message.pk, status=MessageStatus.SENT).first()


def test_a_stored_message_is_delivered_on_the_database_notification(provider_stub):
    # Given a worker whose relay would not poll for a minute
    env = worker_env(provider_stub, EMAILS_RELAY_POLL="60")
    with running(celery_worker(env)):
        wait_for(relay_listening, timeout=60, what="the relay to listen")

        # When a message is stored (committed) and nothing is published to the broker
        message = MessageFactory(to="notified@example.com")

        # Then the worker delivers it within seconds: the INSERT's notification woke it
        wait_for(lambda: delivered(message), timeout=15, what="the notified message to be sent")
    assert [request.json()["To"] for request in provider_stub.requests] == ["notified@example.com"]


def test_without_a_notification_the_relay_poll_delivers_the_message(provider_stub):
    env = worker_env(provider_stub, EMAILS_RELAY_POLL="1")
    with running(celery_worker(env)):
        wait_for(relay_listening, timeout=60, what="the relay to listen")
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE emails_message DISABLE TRIGGER emails_message_notify")
        try:
            # Given a message stored without any notification
            message = MessageFactory(to="polled@example.com")
        finally:
            with connection.cursor() as cursor:
                cursor.execute("ALTER TABLE emails_message ENABLE TRIGGER emails_message_notify")

        # Then the relay's poll finds it and the worker delivers it
        wait_for(lambda: delivered(message), timeout=30, what="the polled message to be sent")
    assert [request.json()["To"] for request in provider_stub.requests] == ["polled@example.com"]


def test_only_a_stored_message_notifies_the_workers(settings):
    require_postgres()
    import psycopg

    from emails.intake.accept import RateLimitedError, message_accept

    settings.EMAILS_RATE_LIMIT_RECIPIENT = "1/600"
    settings.CELERY_TASK_ALWAYS_EAGER = False  # the relay's setting: nothing is published
    listener = psycopg.connect(database_url(connection.settings_dict), autocommit=True)
    try:
        listener.execute("LISTEN mailroom_queued")
        # A stored message notifies at commit
        TemplateFactory(usage_type="SignIn", locale="en")
        message_accept(to="once@example.com", usage_type="SignIn", payload={"code": "1"})
        assert len(list(listener.notifies(timeout=2, stop_after=1))) == 1
        # A request the rate limit refuses stores nothing and wakes no one
        with pytest.raises(RateLimitedError):
            message_accept(to="once@example.com", usage_type="SignIn", payload={"code": "2"})
        assert list(listener.notifies(timeout=1)) == []
    finally:
        listener.close()
