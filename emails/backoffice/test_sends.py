"""Who may receive an admin test send, and how many.

A test send mails any content the editor typed, so without a rule it is an open relay for
anyone holding the template change permission. The rule: a test goes to the requesting staff
user's own address, or to an address or ``@domain`` listed in EMAILS_TEST_RECIPIENTS, and a
user sends at most EMAILS_TEST_SEND_LIMIT of them (count/seconds). Each test message records
who sent it (``Message.requested_by``).
"""

from __future__ import annotations

from datetime import timedelta
from functools import partial

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from emails.content.composer import CONTENT_KEYS
from emails.delivery.dispatch import message_publish
from emails.intake.addresses import AddressRefused, mailbox
from emails.intake.ratelimit import Limit
from emails.models import Message


class RefusedTestSend(Exception):
    """The test send is not allowed; ``message`` says why (shown to the editor), ``status``
    is the HTTP status that fits (403 recipient, 429 limit)."""

    def __init__(self, message: str, *, status: int):
        super().__init__(message)
        self.message = message
        self.status = status


def recipient_may_receive_tests(*, user, to: str) -> bool:
    """Whether ``to`` (a canonical address: emails.intake.addresses.mailbox) is the user's own
    address or is listed in EMAILS_TEST_RECIPIENTS. Compared case-blind."""
    address = to.lower()
    try:
        own = mailbox(user.email).lower() if user.email else ""
    except AddressRefused:
        own = ""
    if own and address == own:
        return True
    allowed = _allowed_recipients()
    return address in allowed or "@" + address.rpartition("@")[2] in allowed


def _allowed_recipients() -> set[str]:
    """EMAILS_TEST_RECIPIENTS in the canonical spelling recipients have (``@bücher.de`` is
    ``@xn--bcher-kva.de``), case-blind; entries that are no address are left out."""
    allowed = set()
    for entry in settings.EMAILS_TEST_RECIPIENTS:
        entry = entry.strip()
        try:
            if entry.startswith("@"):
                allowed.add("@" + mailbox("x" + entry).rpartition("@")[2].lower())
            elif entry:
                allowed.add(mailbox(entry).lower())
        except AddressRefused:
            continue
    return allowed


def message_test_send_permit(*, user, to: str) -> None:
    """Raises RefusedTestSend unless ``user`` may send a test to ``to`` now. Inside a
    transaction it locks the user's row until the caller commits the test message, so that
    concurrent sends cannot all pass the count."""
    if not recipient_may_receive_tests(user=user, to=to):
        raise RefusedTestSend(
            "Test emails go to your own address"
            + (" or to EMAILS_TEST_RECIPIENTS" if settings.EMAILS_TEST_RECIPIENTS else "")
            + f" ({user.email or 'your account has no email address'}).",
            status=403,
        )
    limit = Limit.parse(settings.EMAILS_TEST_SEND_LIMIT, name="EMAILS_TEST_SEND_LIMIT")
    if limit is None:
        return
    if transaction.get_connection().in_atomic_block:
        get_user_model().objects.select_for_update().filter(pk=user.pk).exists()
    since = timezone.now() - timedelta(seconds=limit.seconds)
    recent = Message.objects.filter(is_test=True, requested_by=user, created_at__gt=since)
    if recent[: limit.count].count() >= limit.count:
        minutes = max(1, round(limit.seconds / 60))
        raise RefusedTestSend(
            f"You have sent {limit.count} test emails in the last {minutes} minutes; "
            "please wait before sending more.",
            status=429,
        )


def message_test_send(
    *,
    to: str,
    content: dict,
    payload: dict,
    usage_type: str,
    locale: str,
    requested_by,
    template=None,
) -> Message:
    """Send ``content`` (subject/html/text/preheader/layout_id, saved or not) to ``to`` through
    the real pipeline: a message record marked as a test, the queue, the provider. No dedup,
    no rate limit."""
    now = timezone.now()
    message = Message(
        to=to,
        usage_type=usage_type,
        payload=payload,
        template=template,
        template_usage_type=usage_type,
        template_locale=locale,
        requested_locale=locale,
        created_at=now,
        next_attempt_at=now,
        is_test=True,
        test_content={key: content.get(key) for key in CONTENT_KEYS},
        requested_by=requested_by,
    )
    with transaction.atomic():
        message.save(force_insert=True)
        transaction.on_commit(partial(message_publish, message_id=message.pk))
    return message
