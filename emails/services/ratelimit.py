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


def rate_limit_exceeded(*, to: str, ip: str) -> str | None:
    """The scope ("recipient" or "ip") whose limit is already used up, else None."""
    keys = _keys(to=to, ip=ip)
    if not keys:
        return None
    try:
        counts = cache.get_many([key for key, _ in keys])
    except Exception as exc:
        logger.warning("rate limit not checked, cache unavailable (%s)", type(exc).__name__)
        return None
    for key, limit in keys:
        if counts.get(key, 0) >= limit.count:
            return key.split(":")[2]
    return None


def rate_limit_count(*, to: str, ip: str) -> None:
    """Count one accepted email against its limits."""
    for key, limit in _keys(to=to, ip=ip):
        try:
            if not cache.add(key, 1, timeout=limit.seconds + 1):
                cache.incr(key)
        except ValueError:
            # The key expired between add and incr: this email starts the new window.
            cache.add(key, 1, timeout=limit.seconds + 1)
        except Exception as exc:
            logger.warning("rate limit not counted, cache unavailable (%s)", type(exc).__name__)
            return
