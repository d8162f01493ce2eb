"""Accepting Logto's request: the outbox write.

Accept = one INSERT, committed. With PostgreSQL and a broker that is all: the database
notifies the workers' relay at commit (emails/relay.py). Otherwise the broker is told after
commit, in a way that cannot fail the request. The record is the source of truth: whatever
the broker loses, the relay's poll and the sweeper find.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from contextlib import nullcontext
from datetime import timedelta
from functools import cache, partial

import psycopg
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.backends.utils import CursorDebugWrapper, CursorWrapper
from django.utils import timezone

from emails.content.composer import CONTENT_KEYS
from emails.content.selectors import enabled_templates, template_select
from emails.delivery.relay import relay_enabled
from emails.intake.ratelimit import rate_limit_condition, rate_limit_hit
from emails.locales import requested_locales
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
    locales = requested_locales(payload, default=settings.EMAILS_DEFAULT_LOCALE)
    now = timezone.now()
    key = dedup_key(to=to, usage_type=usage_type, payload=payload)
    for _attempt in range(2):
        choice = template_select(usage_type=usage_type, locales=locales)
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
            requested_locale=locales[0] if locales else "",
            used_fallback=choice.used_fallback,
            created_at=now,
            next_attempt_at=now,
            expires_at=now + timedelta(seconds=settings.EMAILS_CODE_TTL)
            if payload.get("code") not in (None, "")
            else None,
            dedup_key=key,
        )
        try:
            return _insert_unless_duplicate(message, now=now) or message
        except _TemplateGone:
            # Deleted since this process last looked (see selectors.enabled_templates).
            enabled_templates.clear()
        except _OverLimit as refused:
            # A repeat of an email already accepted gets its id, even over the limit.
            earlier = _recent_duplicate(key, now=now)
            if earlier is not None:
                return earlier
            raise RateLimitedError(refused.scope) from None
    raise NoTemplateError(usage_type)


class _TemplateGone(Exception):
    pass


class _OverLimit(Exception):
    def __init__(self, scope: str):
        super().__init__(scope)
        self.scope = scope


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
                _insert(message, now=now)
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


def _insert(message: Message, *, now) -> None:
    """``message.save(force_insert=True)`` unless a rate limit refuses it (_OverLimit), in one
    statement.

    On PostgreSQL the ORM would compile the 27-column INSERT on every call and send it with
    client-side binding, so PostgreSQL would parse and plan it every time too (planning
    alone took 0.2 to 0.4 ms in EXPLAIN ANALYZE). Here the statement is built once from the
    model's fields, the values come from each field's own conversion (as the ORM's), and the
    statement is prepared once per connection. The rate limits are counted in the same
    statement (``INSERT ... SELECT ... WHERE <under the limits>``: services/ratelimit.py)."""
    if connection.vendor != "postgresql":
        scope = rate_limit_hit(to=message.to, ip=message.ip, now=now)
        if scope is not None:
            raise _OverLimit(scope)
        message.save(force_insert=True)
        return
    condition, limit_params = rate_limit_condition(to=message.to, ip=message.ip, now=now)
    fields = Message._meta.concrete_fields
    values = [field.get_db_prep_save(field.pre_save(message, True), connection) for field in fields]
    with connection.cursor() as django_cursor:  # the health check, the connection
        # Django's cursors bind client-side; a server-binding cursor on the same connection
        # (same transaction) can use a prepared statement. Wrapped as Django wraps its own,
        # so errors are Django's and the query is logged and counted like any other.
        pg = django_cursor.cursor.connection
        if pg.prepare_threshold is None:
            # Django turns psycopg's prepared statements off (its own cursors bind client-side
            # and cannot use them); allow them for server-binding cursors, i.e. this one.
            pg.prepare_threshold = _PREPARE_THRESHOLD
        raw = _PreparingCursor(pg)
        wrapper = _LoggedCursor if connection.queries_logged else CursorWrapper
        with wrapper(raw, connection) as cursor:
            cursor.execute(_insert_sql(condition), values + limit_params)
            inserted = cursor.rowcount
    if not inserted:
        raise _OverLimit(rate_limit_hit(to=message.to, ip=message.ip, now=now) or "recipient")
    message._state.adding, message._state.db = False, connection.alias  # as save() leaves it


_PREPARE_THRESHOLD = 5


class _LoggedCursor(CursorDebugWrapper):
    def execute(self, sql, params=None):
        # A prepared statement leaves psycopg no query text to report (Django would log
        # None): log the statement as written.
        with self.debug_sql(sql, params):
            return CursorWrapper.execute(self, sql, params)


class _PreparingCursor(psycopg.Cursor):
    def execute(self, query, params=None, **kwargs):
        return super().execute(query, params, prepare=True)


@cache
def _insert_sql(condition: str) -> str:
    quote = connection.ops.quote_name
    fields = Message._meta.concrete_fields
    columns = ", ".join(quote(field.column) for field in fields)
    # Identifiers from the model, quoted; values and limits are parameters.
    if not condition:
        values = ", ".join(["%s"] * len(fields))
        return f"INSERT INTO {quote(Message._meta.db_table)} ({columns}) VALUES ({values})"  # noqa: S608
    # In a SELECT list PostgreSQL cannot infer a parameter's type from the column: cast it
    # (text for strings, so an over-long value is refused by the column, never truncated).
    values = ", ".join(f"%s::{_cast_type(field)}" for field in fields)
    return (
        f"INSERT INTO {quote(Message._meta.db_table)} ({columns}) "  # noqa: S608
        f"SELECT {values} WHERE {condition}"
    )


def _cast_type(field) -> str:
    if field.get_internal_type() in ("CharField", "TextField"):
        return "text"
    return field.cast_db_type(connection)


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


def message_publish(*, message_id, countdown: float | None = None) -> bool:
    """Queue delivery of a stored message. Never raises: True if the broker took it."""
    from emails.tasks import deliver_message

    try:
        # retry=False: on the request path a broker outage must cost milliseconds, not the
        # publish-retry policy's seconds; the message is already stored.
        deliver_message.apply_async(args=[str(message_id)], countdown=countdown, retry=False)
    except Exception as exc:
        # The message is stored and stays queued; the sweeper publishes it again. kombu's
        # errors name host and port, never credentials, but log only class and text.
        logger.warning(
            "message %s stored but not queued (%s: %s)", message_id, type(exc).__name__, exc
        )
        return False
    return True


def workers_wake() -> bool:
    """Queue one ``deliver_due`` task (a worker drains every due message). Never raises: True
    if the broker took it; if not, the relay's next poll or the sweeper tries again."""
    from emails.tasks import deliver_due

    try:
        deliver_due.apply_async(retry=False)
    except Exception as exc:
        logger.warning("could not queue delivery of due messages (%s: %s)", type(exc).__name__, exc)
        return False
    return True


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
