"""Mailroom's Prometheus metrics: the counters and histograms each process adds to.

Served by ``GET /metrics`` (emails/operations/metrics.py). Under gunicorn and the Celery
worker every process writes its values to files (prometheus-client's multiprocess mode), in a
folder of its gunicorn or ``celery worker`` under ``EMAILS_METRICS_DIR`` (``web-<random>/``,
``worker-<random>/``, and ``archive/`` for those gone: set up by project/metrics_files.py
before this module is imported), and ``/metrics`` on any web worker adds up every process of
the host. Elsewhere (tests, ``runserver``, management commands) the
values live in the process.

Labels are bounded and carry no person: a usage type outside Logto's nine is ``other``; a
provider is an ``EMAIL_PROVIDER`` name; a requested locale that no template serves is its
language's two letters (``pt`` for ``pt-BR``) or ``other``. Never an address, code, link or id.

Nothing here may fail the caller: a metric that cannot be written is skipped.
"""

from __future__ import annotations

import logging
import re
from contextlib import suppress

from prometheus_client import Counter, Histogram, disable_created_metrics

from emails.logto import UsageType

logger = logging.getLogger(__name__)

# No *_created series: nothing here needs them, and multiprocess mode has none either.
disable_created_metrics()

MESSAGE_STATUSES = (
    "accepted",
    "deduplicated",
    "rate_limited",
    "refused",
    "unauthorized",
    "unavailable",
    "sent",
    "failed",
    "expired",
)
ATTEMPT_OUTCOMES = ("sent", "failed", "throttled", "timed_out", "refused")
# Upper bounds (seconds) of Logto's call -> provider accepted; the Delivery page uses the same.
DELIVERY_BUCKETS = (0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60, 120, 300, 900)

messages = Counter(
    "mailroom_messages",
    "Emails by what happened to them: accepted, deduplicated, rate_limited, refused, "
    "unauthorized (401), unavailable (503) at intake; sent, failed, expired by the worker and "
    "the sweeper (test sends not counted).",
    ["usage_type", "status"],
)
delivery_seconds = Histogram(
    "mailroom_delivery_seconds",
    "From Logto's call to the provider accepting the email.",
    ["usage_type"],
    buckets=DELIVERY_BUCKETS,
)
accept_seconds = Histogram(
    "mailroom_accept_seconds",
    "Request time of Logto's endpoint, every answer included.",
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
provider_attempts = Counter(
    "mailroom_provider_attempts",
    "Tries to hand an email to a provider, by outcome: sent; failed (the provider's fault); "
    "throttled (429); timed_out (may have been delivered); refused (the email's fault).",
    ["provider", "outcome"],
)
template_fallbacks = Counter(
    "mailroom_template_fallback",
    "Emails accepted with another locale's (or Generic's) template than the one asked for.",
    ["usage_type", "requested_locale", "served_locale"],
)

_LOGTO_TYPES = frozenset(UsageType.values)
_LANGUAGE = re.compile(r"[a-z]{2}")
# A process keeps at most this many fallback label sets; beyond them the locales are "other".
MAX_FALLBACK_SERIES = 200
_fallback_series: set[tuple[str, str, str]] = set()


def start_at_zero(*, providers: list[str]) -> None:
    """Create every usage type × status and provider × outcome series at 0 (a series that
    appears with its first increment is not counted by rate() or increase())."""
    with _never_failing():
        for usage_type in (*sorted(_LOGTO_TYPES), "other"):
            for status in MESSAGE_STATUSES:
                messages.labels(usage_type, status)
        for provider in providers:
            for outcome in ATTEMPT_OUTCOMES:
                provider_attempts.labels(provider, outcome)


def usage_type_label(usage_type: str) -> str:
    return usage_type if usage_type in _LOGTO_TYPES else "other"


def locale_label(tag: str, *, served: frozenset[str]) -> str:
    """A locale as a label: a served locale as it is, else its language's two letters."""
    if tag in served:
        return tag
    language = tag.split("-", 1)[0].lower()
    return language if _LANGUAGE.fullmatch(language) else "other"


def count_message(usage_type: str, status: str) -> None:
    with _never_failing():
        messages.labels(usage_type_label(usage_type), status).inc()


def count_fallback(usage_type: str, requested: str, served: str, *, locales) -> None:
    with _never_failing():
        known = frozenset(locales)  # evaluated here: a failure costs the metric, not the email
        labels = (usage_type_label(usage_type), locale_label(requested, served=known), served)
        if labels not in _fallback_series:
            if len(_fallback_series) >= MAX_FALLBACK_SERIES:
                labels = (labels[0], "other", "other")
            _fallback_series.add(labels)
        template_fallbacks.labels(*labels).inc()


def observe_delivery(usage_type: str, seconds: float) -> None:
    with _never_failing():
        delivery_seconds.labels(usage_type_label(usage_type)).observe(max(0.0, seconds))


def observe_accept(seconds: float) -> None:
    with _never_failing():
        accept_seconds.observe(seconds)


def count_attempt(provider: str, outcome: str) -> None:
    with _never_failing():
        provider_attempts.labels(provider, outcome).inc()


class _never_failing(suppress):
    """Like suppress(Exception), and says so in the log (a full disk, a removed directory)."""

    def __init__(self):
        super().__init__(Exception)

    def __exit__(self, exctype, excinst, exctb):
        if exctype is not None and issubclass(exctype, Exception):
            logger.warning("a metric was not recorded: %s", excinst)
        return super().__exit__(exctype, excinst, exctb)
