import threading
from datetime import timedelta

import pytest
from django.core import mail
from django.db import connection, transaction
from django.utils import timezone

from emails.delivery.sweeper import messages_purge, messages_sweep
from emails.models import Message, MessageStatus
from tests.factories import MessageFactory
from tests.helpers import require_postgres

pytestmark = pytest.mark.django_db


def ago(seconds: float):
    return timezone.now() - timedelta(seconds=seconds)


@pytest.fixture
def sweep(django_capture_on_commit_callbacks):
    """One sweep, with what it publishes delivered in-process (eager tasks)."""

    def sweep():
        with django_capture_on_commit_callbacks(execute=True):
            return messages_sweep()

    return sweep


def test_queued_code_past_its_ttl_is_expired_not_sent(sweep):
    message = MessageFactory(created_at=ago(601), next_attempt_at=ago(601), expires_at=ago(1))
    report = sweep()
    message.refresh_from_db()
    assert report.expired == 1
    assert message.status == MessageStatus.EXPIRED
    assert "code" not in message.payload
    assert mail.outbox == []


def test_message_never_picked_up_is_published_again_and_sent(sweep, settings):
    message = MessageFactory(next_attempt_at=ago(settings.EMAILS_REPUBLISH_AFTER + 1))
    fresh = MessageFactory(next_attempt_at=ago(1))
    report = sweep()
    assert report.republished == 1
    message.refresh_from_db()
    fresh.refresh_from_db()
    assert message.status == MessageStatus.SENT
    assert fresh.status == MessageStatus.QUEUED
    assert [email.to for email in mail.outbox] == [[message.to]]


def test_message_stuck_in_sending_is_handed_out_again(sweep, settings):
    message = MessageFactory(
        status=MessageStatus.SENDING,
        attempts=1,
        claimed_at=ago(settings.EMAILS_SENDING_TIMEOUT + 1),
    )
    in_flight = MessageFactory(status=MessageStatus.SENDING, attempts=1, claimed_at=ago(1))
    report = sweep()
    assert report.requeued == 1
    message.refresh_from_db()
    in_flight.refresh_from_db()
    assert (message.status, message.attempts) == (MessageStatus.SENT, 2)
    assert in_flight.status == MessageStatus.SENDING


def test_message_stuck_after_its_last_attempt_is_dead_lettered(sweep, settings):
    message = MessageFactory(
        status=MessageStatus.SENDING,
        attempts=settings.EMAILS_MAX_ATTEMPTS,
        claimed_at=ago(settings.EMAILS_SENDING_TIMEOUT + 1),
    )
    report = sweep()
    message.refresh_from_db()
    assert report.dead_lettered == 1
    assert message.status == MessageStatus.FAILED
    assert message.error.startswith("dead-lettered")
    assert "code" not in message.payload
    assert mail.outbox == []


def test_dedup_keys_are_cleared_after_the_code_ttl(sweep, settings):
    old = MessageFactory(
        dedup_key="a" * 64, created_at=ago(settings.EMAILS_CODE_TTL + 1), status=MessageStatus.SENT
    )
    recent = MessageFactory(dedup_key="b" * 64, status=MessageStatus.SENT)
    assert sweep().dedup_keys_cleared == 1
    old.refresh_from_db()
    recent.refresh_from_db()
    assert (old.dedup_key, recent.dedup_key) == (None, "b" * 64)


def test_failed_messages_lose_their_secrets_once_useless(sweep, settings):
    dead_code = MessageFactory(status=MessageStatus.FAILED, expires_at=ago(1))
    live_code = MessageFactory(status=MessageStatus.FAILED, expires_at=ago(-300))
    old_link = MessageFactory(
        status=MessageStatus.FAILED,
        payload={"link": "https://x.example/inv", "locale": "en"},
        created_at=ago(settings.EMAILS_RETRY_WINDOW + 1),
    )
    assert sweep().secrets_wiped == 2
    for message in (dead_code, live_code, old_link):
        message.refresh_from_db()
    assert dead_code.payload == {"locale": "en"} and old_link.payload == {"locale": "en"}
    assert live_code.payload["code"] == "123456"  # still resendable


def test_retention_purge_deletes_only_old_records(settings):
    old = MessageFactory(created_at=ago(settings.EMAILS_RETENTION_DAYS * 86400 + 60))
    recent = MessageFactory(created_at=ago(86400))
    assert messages_purge() == 1
    assert list(Message.objects.values_list("pk", flat=True)) == [recent.pk]
    assert not Message.objects.filter(pk=old.pk).exists()


@pytest.mark.django_db(transaction=True)
def test_two_sweepers_never_take_the_same_rows(settings):
    require_postgres()
    # Given one sweeper holding a stale message locked in its transaction
    locked = MessageFactory(next_attempt_at=ago(settings.EMAILS_REPUBLISH_AFTER + 5))
    free = MessageFactory(next_attempt_at=ago(settings.EMAILS_REPUBLISH_AFTER + 5))
    holding, release = threading.Event(), threading.Event()

    def other_sweeper():
        with transaction.atomic():
            list(Message.objects.select_for_update().filter(pk=locked.pk))
            holding.set()
            release.wait(10)
        connection.close()

    thread = threading.Thread(target=other_sweeper)
    thread.start()
    holding.wait(10)
    try:
        # When this sweeper runs meanwhile
        report = messages_sweep()
    finally:
        release.set()
        thread.join()
    # Then it took only the free row, without waiting for the lock
    assert report.republished == 1
    locked.refresh_from_db()
    free.refresh_from_db()
    assert free.next_attempt_at > locked.next_attempt_at


def test_each_state_change_the_sweeper_makes_is_one_line_with_the_message_id(
    sweep, settings, caplog
):
    """Issue 17's logs: queued again, expired, dead-lettered, then sent: a line each."""
    stuck = MessageFactory(
        status=MessageStatus.SENDING,
        attempts=1,
        claimed_at=ago(settings.EMAILS_SENDING_TIMEOUT + 1),
    )
    dead = MessageFactory(expires_at=ago(1))
    with caplog.at_level("INFO", logger="emails"):
        sweep()
    states = {}
    for record in caplog.records:
        if getattr(record, "message_id", None):
            assert record.message_id in record.getMessage()
            states.setdefault(record.message_id, []).append(record.state)
    assert states[str(stuck.pk)] == ["queued", "sent"]
    assert states[str(dead.pk)] == ["expired"]
