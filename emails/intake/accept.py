"""Accepting Logto's request: the outbox write.

Accept = one INSERT, committed. With PostgreSQL and a broker that is all: the database
notifies the workers' relay at commit (emails/delivery/relay.py). Otherwise the broker is told after
commit, in a way that cannot fail the request. The record is the source of truth: whatever
the broker loses, the relay's poll and the sweeper find. The INSERT itself is
emails/intake/outbox_insert.py; publishing is emails/delivery/dispatch.py.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from contextlib import nullcontext
from datetime import timedelta
from functools import partial

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from emails.content.selectors import enabled_templates, template_select
from emails.delivery.dispatch import message_publish
from emails.delivery.relay import relay_enabled
from emails.intake.outbox_insert import OverLimit, outbox_insert
from emails.locales import requested_locales
from emails.logto import payload_scope
from emails.metrics import count_fallback, count_message
from emails.models import Message, MessageStatus, Template

logger = logging.getLogger(__name__)


class NoTemplateError(Exception):
    """No enabled template, in any candidate locale, for the type or for Generic."""


class RateLimitedError(Exception):
    """Too many emails for this recipient or IP in the current window; ``scope`` says which."""

    def __init__(self, scope: str):
        super().__init__(scope)
        self.scope = scope


def message_accept(*, to: str, usage_type: str, payload: dict, ip: str = "") -> Message:
    """Store Logto's request as a queued message and hand it to the worker after commit.

    Returns the committed Message; for a request identical to one accepted within the code
    TTL (same recipient, type, code and link) returns that earlier message and stores nothing.
    Raises NoTemplateError or RateLimitedError (nothing stored). Database errors propagate:
    nothing is claimed as stored that is not. Publishing to the broker never fails this call.
    """
    wanted = requested_locales(payload)
    application_id, organization_id = payload_scope(payload)
    now = timezone.now()
    key = dedup_key(to=to, usage_type=usage_type, payload=payload)
    for _attempt in range(2):
        choice = template_select(
            usage_type=usage_type,
            wanted=wanted,
            application_id=application_id,
            organization_id=organization_id,
        )
        if choice is None:
            raise NoTemplateError(usage_type)
        message = Message(
            to=to,
            usage_type=usage_type,
            payload=payload,
            ip=ip or "",
            template_id=choice.template.pk,
            template_usage_type=choice.template.usage_type,
            template_locale=choice.template.locale,
            template_scope=choice.template.scope,
            requested_locale=wanted[0] if wanted else settings.EMAILS_DEFAULT_LOCALE,
            locale_matched=choice.match.requested,
            locale_distance=choice.match.distance,
            used_fallback=choice.used_fallback,
            created_at=now,
            next_attempt_at=now,
            expires_at=now + timedelta(seconds=settings.EMAILS_CODE_TTL)
            if payload.get("code") not in (None, "")
            else None,
            dedup_key=key,
        )
        try:
            earlier = _insert_unless_duplicate(message, now=now)
        except _TemplateGone:
            # Deleted since this process last looked (see selectors.enabled_templates).
            enabled_templates.clear()
            continue
        except OverLimit as refused:
            # A repeat of an email already accepted gets its id, even over the limit.
            earlier = _recent_duplicate(key, now=now)
            if earlier is None:
                raise RateLimitedError(refused.scope) from None
        if earlier is not None:
            count_message(usage_type, "deduplicated")
            return earlier
        _count_accepted(message)
        return message
    raise NoTemplateError(usage_type)


def _count_accepted(message: Message) -> None:
    logger.info(
        "message %s accepted (%s, %s)",
        message.pk,
        message.usage_type,
        message.template_locale,
        extra={"message_id": str(message.pk), "state": "queued"},
    )
    count_message(message.usage_type, "accepted")
    if message.used_fallback:
        count_fallback(
            message.usage_type,
            message.requested_locale,
            message.template_locale,
            locales={key[1] for key in enabled_templates.cached()},
        )


class _TemplateGone(Exception):
    pass


def _insert_unless_duplicate(message: Message, *, now) -> Message | None:
    """INSERT (autocommit: one statement, one round trip, committed when it returns) and,
    without the relay, publish; on a dedup-key clash return the earlier message instead.

    The unique key makes two identical concurrent requests one email. A clash with a message
    older than the TTL (its key not yet cleared by the sweeper) clears that key and inserts.
    """
    for _ in range(2):
        try:
            # A single statement needs no transaction of its own; inside a caller's
            # transaction, a savepoint keeps a clash from aborting it.
            with transaction.atomic() if connection.in_atomic_block else nullcontext():
                outbox_insert(message, now=now)
        except IntegrityError:
            template_id = message.template_id
            if template_id is None or not Template.objects.filter(pk=template_id).exists():
                raise _TemplateGone() from None
            if message.dedup_key is None:
                raise
            earlier = _recent_duplicate(message.dedup_key, now=now)
            if earlier is not None:
                return earlier
            # The earlier one is no repeat of this request (it failed, expired, or was sent
            # a while ago: a deliberate resend): take its key and insert.
            Message.objects.filter(dedup_key=message.dedup_key).update(dedup_key=None)
            continue
        # Stored and committed. With the relay, PostgreSQL tells the workers at commit;
        # otherwise tell the broker now (in a caller's transaction: after its commit).
        if not relay_enabled():
            transaction.on_commit(partial(message_publish, message_id=message.pk))
        return None
    raise IntegrityError("message could not be stored: its dedup key kept clashing")


def _recent_duplicate(key: str | None, *, now) -> Message | None:
    """The earlier message this request repeats, if any: one with the same key that is still
    on its way (queued, sending: a retry must not make a second email), or that was sent
    within EMAILS_DEDUP_SECONDS (a double click, a proxy retrying). A failed or expired one,
    or one sent longer ago, is not repeated but resent: Logto's console test always sends
    the code 000000, and resending an invitation sends the same link."""
    if key is None:
        return None
    earlier = Message.objects.filter(dedup_key=key).first()
    if earlier is None or earlier.created_at <= now - timedelta(seconds=settings.EMAILS_CODE_TTL):
        return None
    if earlier.status in (MessageStatus.QUEUED, MessageStatus.SENDING):
        return earlier
    recent = now - timedelta(seconds=settings.EMAILS_DEDUP_SECONDS)
    return earlier if earlier.status == MessageStatus.SENT and earlier.created_at > recent else None


def dedup_key(*, to: str, usage_type: str, payload: dict) -> str | None:
    """A keyed hash identifying "the same email": recipient, type, code and link.

    Keyed with SECRET_KEY so the stored hash cannot be brute-forced back into a 6-digit code.
    None when the payload has neither code nor link (nothing to recognise a repeat by).
    ``to`` is the canonical spelling intake made (emails/addresses.py): with ``lower()``,
    every spelling of one mailbox is one key, as it is one rate limit.
    """
    code, link = payload.get("code"), payload.get("link")
    if code in (None, "") and link in (None, ""):
        return None
    material = "\x00".join([to.lower(), usage_type, str(code or ""), str(link or "")])
    return hmac.new(settings.SECRET_KEY.encode(), material.encode(), hashlib.sha256).hexdigest()
