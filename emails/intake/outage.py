"""A database outage in the log: once, with its cause and its target, never a credential.

Logto hears the same short 503 for every request the database cannot store (emails/intake/
api.py), and Logto's end user must learn nothing more. The operator needs the cause, once:
one line per refused request would bury it, and none leaves only "Service Unavailable".

So, per process (each gunicorn worker keeps its own count):

- the first failure logs ERROR: the driver's exception class, the first line of its message
  and the database as ``host:port/name``, read from the connection's settings (never from
  ``DATABASE_URL``, which holds the password); anything in the message that looks like a
  password (``password=...``, ``user:secret@``, or the configured one itself) is masked;
- later failures are counted, not logged, until the database answers again;
- the first success after that logs INFO: how long it was down and how many requests were
  refused.

Callers: anything that answers 503 because of the database calls ``database_failed`` with
the error and ``database_answered`` when a request went through.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from urllib.parse import quote

from django.db import DEFAULT_DB_ALIAS, connections

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_down_since: float | None = None  # time.monotonic() of the outage's first failure
_refused = 0

_PASSWORD_PARAMETER = re.compile(r"""(password\s*=\s*)('[^']*'|"[^"]*"|\S+)""", re.IGNORECASE)
_URL_USERINFO = re.compile(r"(\w+://[^:/@\s]*:)[^@\s]*@")
MASK = "***"


def database_failed(error: BaseException, *, alias: str = DEFAULT_DB_ALIAS) -> None:
    """Count a request refused because the database failed; log ERROR if it is the first
    since the database last answered."""
    global _down_since, _refused
    with _lock:
        _refused += 1
        if _down_since is not None:
            return
        _down_since = time.monotonic()
    settings_dict = connections[alias].settings_dict
    cause = error.__cause__ or error  # Django wraps the driver's exception
    logger.error(
        "database unavailable at %s: %s.%s: %s (requests are answered 503; further failures "
        "are not logged until it answers again)",
        database_target(settings_dict),
        type(cause).__module__,
        type(cause).__qualname__,
        redacted(first_line(str(cause)), password=settings_dict.get("PASSWORD") or ""),
    )


def database_answered() -> None:
    """The database served a request: if it was down, log INFO that it is back. Costs one
    comparison while it is up."""
    global _down_since, _refused
    if _down_since is None:
        return
    with _lock:
        if _down_since is None:
            return
        seconds, refused = time.monotonic() - _down_since, _refused
        _down_since, _refused = None, 0
    logger.info(
        "database reachable again after %.1f s (%d requests answered 503)", seconds, refused
    )


def database_target(settings_dict: dict) -> str:
    """``host:port/name`` of a connection's settings (a path for SQLite); no user, no password."""
    name = str(settings_dict.get("NAME") or "")
    host = settings_dict.get("HOST") or ""
    if not host:
        return name if "sqlite" in settings_dict.get("ENGINE", "") else f"local socket/{name}"
    port = settings_dict.get("PORT") or ""
    return f"{host}:{port}/{name}" if port else f"{host}/{name}"


def first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def redacted(text: str, *, password: str = "") -> str:
    """``text`` without anything that looks like a password. The configured one goes first
    (as written and URL-quoted): a pattern could otherwise cut it at an ``@`` inside it."""
    if password:
        for spelling in {password, quote(password, safe=""), quote(password)}:
            text = text.replace(spelling, MASK)
    text = _PASSWORD_PARAMETER.sub(rf"\g<1>{MASK}", text)
    return _URL_USERINFO.sub(rf"\g<1>{MASK}@", text)
