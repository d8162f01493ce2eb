"""Fixed-window rate limits per recipient and per end-user IP, kept in Django's cache
(Redis in production).

Failure contract: a cache that cannot be reached never refuses an email. Limits fail open
(logged): losing a sign-in code is worse than letting a burst through, and Logto applies its
own per-recipient limit before calling us.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured

logger = logging.getLogger(__name__)


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


def _keys(*, to: str, ip: str) -> list[tuple[str, Limit]]:
    keys = []
    checks = [
        (
            "recipient",
            to.lower(),
            settings.EMAILS_RATE_LIMIT_RECIPIENT,
            "EMAILS_RATE_LIMIT_RECIPIENT",
        ),
        ("ip", ip, settings.EMAILS_RATE_LIMIT_IP, "EMAILS_RATE_LIMIT_IP"),
    ]
    now = time.time()
    for scope, value, setting, name in checks:
        limit = Limit.parse(setting, name=name)
        if limit is None or not value:
            continue
        # Hashed so no address or IP sits in the cache in clear.
        digest = hashlib.sha256(value.encode()).hexdigest()[:32]
        window = int(now // limit.seconds)
        keys.append((f"emails:rate:{scope}:{digest}:{window}", limit))
    return keys


def rate_limit_hit(*, to: str, ip: str) -> str | None:
    """Count this request against its limits; the scope ("recipient" or "ip") whose limit it
    goes over, else None. One cache round trip per scope for a new window (ADD), two after.
    Every request counts, refused ones too, as fixed-window limiters do."""
    for key, limit in _keys(to=to, ip=ip):
        try:
            count = _increment(key, limit)
        except Exception as exc:
            logger.warning("rate limit not checked, cache unavailable (%s)", type(exc).__name__)
            return None
        if count > limit.count:
            return key.split(":")[2]
    return None


def _increment(key: str, limit: Limit) -> int:
    # ADD first: most recipients have no window open yet, so one round trip is the usual cost.
    if cache.add(key, 1, timeout=limit.seconds + 1):
        return 1
    try:
        return cache.incr(key)
    except ValueError:  # the window expired between the two calls: this request opens one
        cache.add(key, 1, timeout=limit.seconds + 1)
        return 1
