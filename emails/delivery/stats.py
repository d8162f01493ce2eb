"""What happened to each email, counted twice: in Prometheus (emails/metrics.py) and in
``emails_deliverystat``, one row per minute and key, for the admin's Delivery page.

Called when an email reaches a final status (the worker's ``_finish``, the sweeper's expiry
and dead letters, after their commit) and for each try on a provider. One statement per
call: an upsert of a few rows, in key order (so two workers never lock them crosswise), that
adds to each count. Test sends are not counted. A write that fails is logged and skipped:
the email's own record is already saved and is what counts.
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db import connection, transaction
from django.db.models import Count, Min
from django.utils import timezone

from emails.metrics import (
    DELIVERY_BUCKETS,
    count_attempt,
    count_message,
    locale_label,
    observe_delivery,
)
from emails.models import FINAL_STATUSES, DeliveryStat, Message, MessageStatus

logger = logging.getLogger(__name__)

# The latency buckets: the Prometheus histogram's, keyed as its "le" label is.
LATENCY_BOUNDS: tuple[float, ...] = (*map(float, DELIVERY_BUCKETS), float("inf"))
LATENCY_KEYS: tuple[str, ...] = (*(f"{bound:g}" for bound in DELIVERY_BUCKETS), "+Inf")


def reason_of(status: str, error: str) -> str:
    """A failed or expired email's reason, as one of a few words (the message has the text)."""
    if status == MessageStatus.EXPIRED:
        return "code expired"
    if error.startswith("template error"):
        return "template error"
    if error.startswith("its template was deleted"):
        return "template deleted"
    if error.startswith("dead-lettered"):
        return "dead-lettered"
    if error.startswith("gave up retrying"):
        return "retries exhausted"
    return "refused by provider"


def latency_key(seconds: float) -> str:
    for bound, key in zip(LATENCY_BOUNDS, LATENCY_KEYS, strict=True):
        if seconds <= bound:
            return key
    return "+Inf"


def record_finished(messages: list[Message], *, now: datetime | None = None) -> None:
    """Log and count these emails, each now sent, failed or expired: one log line each."""
    now = now or timezone.now()
    rows: dict[tuple[str, str], int] = {}

    def add(kind: str, key: str) -> None:
        rows[(kind, key[:80])] = rows.get((kind, key[:80]), 0) + 1

    for message in messages:
        _log(message)
        if message.is_test:
            continue
        count_message(message.usage_type, message.status)
        add("status", message.status)
        # As in Prometheus's labels: a locale other than the one that served it is its
        # language (pt-BR -> pt), so end users' language tags cannot fill the table.
        requested = "none"
        if message.requested_locale:
            served = frozenset({message.template_locale})
            requested = locale_label(message.requested_locale, served=served)
        add("requested", requested)
        if message.used_fallback:
            add("locale", f"{requested}:{message.template_locale}")
        if message.status == MessageStatus.SENT:
            seconds = ((message.sent_at or now) - message.created_at).total_seconds()
            observe_delivery(message.usage_type, seconds)
            add("latency", latency_key(seconds))
        else:
            add("reason", reason_of(message.status, message.error))
    _upsert(rows, now)


def _log(message: Message) -> None:
    extra = {"message_id": str(message.pk), "state": message.status}
    if message.provider:
        extra["provider"] = message.provider
    if message.status == MessageStatus.SENT:
        logger.info("message %s sent by %s", message.pk, message.provider or "-", extra=extra)
    else:
        # The error is Mailroom's or the provider's text: never the code or link it guards.
        first_line = message.error.splitlines()[0] if message.error else message.status
        log = logger.warning if message.status == MessageStatus.FAILED else logger.info
        log("message %s %s: %s", message.pk, message.status, first_line, extra=extra)


def record_try(message: Message, provider: str, outcome: str) -> None:
    """One try on a provider (metrics.ATTEMPT_OUTCOMES); the provider's failures also go to
    the Delivery page. Test sends are not counted."""
    if message.is_test:
        return
    count_attempt(provider, outcome)
    if outcome in ("failed", "throttled", "timed_out"):
        _upsert({("provider", provider): 1}, timezone.now())


def _upsert(rows: dict[tuple[str, str], int], now: datetime) -> None:
    minute = now.replace(second=0, microsecond=0)
    _add({(minute, kind, key): count for (kind, key), count in rows.items()})


def _add(rows: dict[tuple[datetime, str, str], int], *, swallow: bool = True) -> None:
    """Add each count to its (minute, kind, key) row, creating it if needed: one statement.
    A failure is logged and skipped (``swallow``: an email's own record is what counts), or
    raised (folding, which must not delete rows it could not add)."""
    if not rows:
        return
    table = DeliveryStat._meta.db_table
    values = []
    params: list = []
    for (minute, kind, key), count in sorted(rows.items()):
        values.append("(%s, %s, %s, %s)")
        params += [connection.ops.adapt_datetimefield_value(minute), kind, key, count]
    sql = (
        f"INSERT INTO {table} (minute, kind, key, count) VALUES {', '.join(values)} "  # noqa: S608
        f"ON CONFLICT (minute, kind, key) DO UPDATE SET count = {table}.count + excluded.count"
    )
    try:
        # A savepoint only inside a caller's transaction: a failure must not abort it.
        with transaction.atomic() if connection.in_atomic_block else nullcontext():
            with connection.cursor() as cursor:
                cursor.execute(sql, params)
    except Exception as exc:
        if not swallow:
            raise
        logger.warning("delivery counts for the dashboard not recorded: %s", exc)


# Older counts are folded into coarser rows (the hourly purge): minutes into quarter hours
# after 2 hours, quarter hours into hours after 25. The Delivery page's ranges draw points of
# 1 minute (last hour), 15 minutes (last day) and 1 hour (last week), so each still adds up
# exactly, and a week is about 5,000 rows × keys / 27 instead of 10,080 × keys.
COMPACTIONS = ((timedelta(hours=2), 15), (timedelta(hours=25), 60))
STATS_KEPT = timedelta(days=8)  # the longest range is a week


def stats_compact(now: datetime | None = None) -> int:
    """Fold old per-minute counts into their quarter hour's or hour's row (aligned in UTC,
    as the page's points are), then drop what is older than STATS_KEPT. Returns how many
    rows were folded."""
    now = now or timezone.now()
    folded = 0
    for age, minutes in COMPACTIONS:
        with transaction.atomic():
            rows = DeliveryStat.objects.select_for_update().filter(
                minute__gte=now - STATS_KEPT, minute__lt=now - age
            )
            sums: dict[tuple[datetime, str, str], int] = {}
            done = []
            for pk, minute, kind, key, count in rows.values_list(
                "pk", "minute", "kind", "key", "count"
            ):
                at = minute.astimezone(UTC)
                bucket = at.replace(minute=at.minute // minutes * minutes)
                if bucket == at:
                    continue  # the row others fold into
                sums[(bucket, kind, key)] = sums.get((bucket, kind, key), 0) + count
                done.append(pk)
            _add(sums, swallow=False)
            DeliveryStat.objects.filter(pk__in=done).delete()
            folded += len(done)
    DeliveryStat.objects.filter(minute__lt=now - STATS_KEPT).delete()
    return folded


@dataclass
class Waiting:
    queued: int
    sending: int
    oldest_queued_at: datetime | None


def waiting_now() -> Waiting:
    """What waits for the worker now (/metrics and the Delivery page): one grouped read of
    the unfinished messages, which the status index finds; no other row is read."""
    rows = (
        Message.objects.filter(status__in=(MessageStatus.QUEUED, MessageStatus.SENDING))
        .order_by()
        .values("status")
        .annotate(count=Count("pk"), oldest=Min("created_at"))
    )
    by_status = {row["status"]: row for row in rows}
    queued = by_status.get(MessageStatus.QUEUED, {})
    return Waiting(
        queued=queued.get("count", 0),
        sending=by_status.get(MessageStatus.SENDING, {}).get("count", 0),
        oldest_queued_at=queued.get("oldest"),
    )


# The Delivery page's ranges: how far back, and how wide each point of its charts is.
RANGES = {
    "hour": (timedelta(hours=1), 60),
    "day": (timedelta(days=1), 15 * 60),
    "week": (timedelta(days=7), 3600),
}


@dataclass
class DeliveryStats:
    """What the Delivery page draws, for one range."""

    bucket_seconds: int
    times: list[float]  # each point's start, as a Unix time
    statuses: dict[str, list[int]]  # sent/failed/expired per point
    p50: list[float | None]
    p95: list[float | None]
    totals: dict[str, int]
    overall_p50: float | None
    overall_p95: float | None
    reasons: list[tuple[str, int]]
    providers: list[tuple[str, int]]
    locales: list[dict]


def stats_for(range_name: str, *, now: datetime | None = None) -> DeliveryStats:
    """The range's counts, from ``emails_deliverystat`` only (a week is a few thousand rows
    once stats_compact has folded them): never a scan of ``emails_message``."""
    span, width = RANGES[range_name]
    now = now or timezone.now()
    end = datetime.fromtimestamp((now.timestamp() // width + 1) * width, tz=UTC)
    points = int(span.total_seconds() // width)
    start = end - timedelta(seconds=points * width)
    rows = DeliveryStat.objects.filter(minute__gte=start, minute__lt=end).values_list(
        "minute", "kind", "key", "count"
    )

    statuses = {str(status): [0] * points for status in FINAL_STATUSES}
    latency = [dict.fromkeys(LATENCY_KEYS, 0) for _ in range(points)]
    reasons: dict[str, int] = {}
    providers: dict[str, int] = {}
    requested: dict[str, int] = {}
    served: dict[str, dict[str, int]] = {}
    for at, kind, key, count in rows:
        index = int((at - start).total_seconds() // width)
        if not 0 <= index < points:
            continue
        if kind == "status" and key in statuses:
            statuses[key][index] += count
        elif kind == "latency" and key in latency[index]:
            latency[index][key] += count
        elif kind == "reason":
            reasons[key] = reasons.get(key, 0) + count
        elif kind == "provider":
            providers[key] = providers.get(key, 0) + count
        elif kind == "requested":
            requested[key] = requested.get(key, 0) + count
        elif kind == "locale":
            asked, _, by = key.partition(":")
            served.setdefault(asked, {})
            served[asked][by] = served[asked].get(by, 0) + count
    everything = dict.fromkeys(LATENCY_KEYS, 0)
    for point in latency:
        for key, count in point.items():
            everything[key] += count
    return DeliveryStats(
        bucket_seconds=width,
        times=[(start + timedelta(seconds=i * width)).timestamp() for i in range(points)],
        statuses=statuses,
        p50=[quantile(0.5, point) for point in latency],
        p95=[quantile(0.95, point) for point in latency],
        totals={status: sum(counts) for status, counts in statuses.items()},
        overall_p50=quantile(0.5, everything),
        overall_p95=quantile(0.95, everything),
        reasons=sorted(reasons.items(), key=lambda item: -item[1]),
        providers=sorted(providers.items(), key=lambda item: -item[1]),
        locales=_locales(requested, served),
    )


def _locales(requested: dict[str, int], served: dict[str, dict[str, int]]) -> list[dict]:
    """Each requested locale: how many emails, how many another locale served, and which."""
    rows = []
    for locale, total in requested.items():
        by = served.get(locale, {})
        fallbacks = sum(by.values())
        rows.append(
            {
                "locale": locale,
                "total": total,
                "fallbacks": fallbacks,
                "rate": fallbacks / total if total else 0.0,
                "served_by": sorted(by.items(), key=lambda item: -item[1]),
            }
        )
    return sorted(rows, key=lambda row: (-row["fallbacks"], -row["total"], row["locale"]))


def quantile(q: float, buckets: dict[str, int]) -> float | None:
    """The q-quantile of a latency histogram, interpolated inside its bucket the way
    Prometheus's histogram_quantile does; None without any sample. In the open last bucket,
    its lower bound."""
    total = sum(buckets.values())
    if not total:
        return None
    rank = q * total
    seen = 0
    lower = 0.0
    for key in LATENCY_KEYS:
        count = buckets.get(key, 0)
        upper = float("inf") if key == "+Inf" else float(key)
        if count and seen + count >= rank:
            if upper == float("inf"):
                return lower
            return lower + (upper - lower) * (rank - seen) / count
        seen += count
        lower = upper
    return lower
