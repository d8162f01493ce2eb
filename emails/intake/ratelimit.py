"""Rate limits per recipient and per end-user IP, counted in the database.

A sliding window: a new email is refused when the recipient (or the IP) already has ``count``
emails stored in the last ``seconds``. Test sends from the admin do not count; refused
requests store nothing and so do not count either.

What is counted is what intake stored (emails/addresses.py): the recipient's canonical
spelling, compared case-blind (``lower()``: it is ASCII, so every collation agrees), and the
IP's key, the IPv4 address or the IPv6 /64 network, compared as is. So every spelling of one
mailbox, and every address of one /64, is one limit.

On PostgreSQL the count is part of the accepting INSERT itself (``INSERT ... SELECT ...
WHERE <under the limits>``, see outbox_insert.py), so a limit costs no round trip and no other
service: no cache to be down, nothing to fail open. Two requests for the same recipient at
the same moment can both pass the count, so a limit may be exceeded by the number of
concurrent requests; Logto applies its own per-recipient limit before calling us.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db.models import Value
from django.db.models.functions import Lower

from emails.models import Message


@dataclass(frozen=True)
class Limit:
    count: int
    seconds: int

    @classmethod
    def parse(cls, text: str, *, name: str) -> Limit | None:
        """``"15/600"`` -> 15 per 600 s; ``""`` or ``"0"`` -> no limit."""
        if not text or text.strip() in ("0", "off"):
            return None
        try:
            count, seconds = (int(part) for part in text.split("/"))
        except ValueError:
            raise ImproperlyConfigured(f"{name} must look like 15/600 (count/seconds)") from None
        if count <= 0 or seconds <= 0:
            raise ImproperlyConfigured(f"{name} must have a positive count and seconds")
        return cls(count, seconds)


# scope -> (setting, the SQL that selects the scope's recent messages by one parameter)
_SCOPES = {
    "recipient": ("EMAILS_RATE_LIMIT_RECIPIENT", 'lower("to") = lower(%s)'),
    # ip <> '' lets a prepared (generic) plan use the partial index on non-empty IPs.
    "ip": ("EMAILS_RATE_LIMIT_IP", "ip <> '' AND ip = %s"),
}


def _active(*, to: str, ip: str) -> list[tuple[str, str, Limit]]:
    """(scope, value, limit) for each limit that applies to this request."""
    values = {"recipient": to, "ip": ip}
    active = []
    for scope, (name, _) in _SCOPES.items():
        limit = Limit.parse(getattr(settings, name), name=name)
        if limit is not None and values[scope]:
            active.append((scope, values[scope], limit))
    return active


def rate_limit_condition(*, to: str, ip: str, now: datetime) -> tuple[str, list]:
    """A SQL condition, true while this request is under every limit, and its parameters;
    ``("", [])`` when no limit applies. Each count stops at the limit (LIMIT), so it reads at
    most ``count`` index entries (emails_message_to_recent_idx, emails_message_ip_recent_idx).
    """
    parts, params = [], []
    for scope, value, limit in _active(to=to, ip=ip):
        # Only constants from _SCOPES are formatted in; values are parameters.
        parts.append(
            "(SELECT count(*) FROM (SELECT 1 FROM emails_message WHERE "  # noqa: S608
            f"{_SCOPES[scope][1]} AND created_at > %s AND NOT is_test LIMIT %s) recent) < %s"
        )
        params += [value, now - timedelta(seconds=limit.seconds), limit.count, limit.count]
    return " AND ".join(parts), params


def rate_limit_hit(*, to: str, ip: str, now: datetime) -> str | None:
    """The scope ("recipient" or "ip") whose limit this request would go over, else None.
    Costs a query per limit: used where the INSERT cannot count (SQLite), and to name the
    scope after the INSERT refused."""
    for scope, value, limit in _active(to=to, ip=ip):
        recent = Message.objects.filter(
            created_at__gt=now - timedelta(seconds=limit.seconds), is_test=False
        )
        if scope == "recipient":
            recent = recent.alias(to_lower=Lower("to")).filter(to_lower=Lower(Value(value)))
        else:
            recent = recent.filter(ip=value)
        if recent[: limit.count].count() >= limit.count:
            return scope
    return None
