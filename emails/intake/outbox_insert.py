"""The accepting INSERT: one statement that stores Logto's message unless a rate limit
refuses it, prepared once per connection on PostgreSQL.

A fork of ``message.save(force_insert=True)`` for speed (docs/ARCHITECTURE.md, "Fast paths"):
the ORM would compile the 27-column INSERT on every call and bind it client-side, so
PostgreSQL would parse and plan it every time. Elsewhere (SQLite) it is the ORM's save after
a counting query. tests/test_accept.py holds both to the same answers.
"""

from __future__ import annotations

from functools import cache

import psycopg
from django.db import connection
from django.db.backends.utils import CursorDebugWrapper, CursorWrapper

from emails.intake.ratelimit import rate_limit_condition, rate_limit_hit
from emails.models import Message


class OverLimit(Exception):
    """A rate limit refused the message; ``scope`` says which ("recipient" or "ip")."""

    def __init__(self, scope: str):
        super().__init__(scope)
        self.scope = scope


def outbox_insert(message: Message, *, now) -> None:
    """``message.save(force_insert=True)`` unless a rate limit refuses it (OverLimit), in one
    statement.

    On PostgreSQL the ORM would compile the 27-column INSERT on every call and send it with
    client-side binding, so PostgreSQL would parse and plan it every time too (planning
    alone took 0.2 to 0.4 ms in EXPLAIN ANALYZE). Here the statement is built once from the
    model's fields, the values come from each field's own conversion (as the ORM's), and the
    statement is prepared once per connection. The rate limits are counted in the same
    statement (``INSERT ... SELECT ... WHERE <under the limits>``: intake/ratelimit.py)."""
    if connection.vendor != "postgresql":
        scope = rate_limit_hit(to=message.to, ip=message.ip, now=now)
        if scope is not None:
            raise OverLimit(scope)
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
        raise OverLimit(rate_limit_hit(to=message.to, ip=message.ip, now=now) or "recipient")
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
        f"INSERT INTO {quote(Message._meta.db_table)} ({columns}) SELECT {values} WHERE {condition}"
    )


def _cast_type(field) -> str:
    if field.get_internal_type() in ("CharField", "TextField"):
        return "text"
    return field.cast_db_type(connection)
