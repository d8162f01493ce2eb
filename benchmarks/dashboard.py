"""The admin's Delivery page against a week of busy counts: what one page view costs.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/mailroom_bench_dashboard \\
        .venv/bin/python -m benchmarks.dashboard

Fills ``emails_deliverystat`` as a week at a steady 100 emails a minute would (all nine usage
types' fallbacks in 12 requested locales, the latency buckets a real spread touches, failures
on two providers: 27 keys a minute, 272,160 rows), folds them as the hourly purge does
(stats_compact), adds 500 queued messages, then times
the page (Django's test client, a logged-in superuser: the view, its queries and the
template) and ``stats_for`` alone, for each range. Median of 7 after a warm-up. The database
must be a throwaway one: it is migrated and its counts replaced.
"""

import json
import os
import statistics
import time
from datetime import UTC, datetime, timedelta

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings")

import django

django.setup()

from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client, override_settings  # noqa: E402
from django.utils import timezone  # noqa: E402

from emails.delivery.stats import stats_compact, stats_for  # noqa: E402
from emails.models import DeliveryStat, Message, MessageStatus  # noqa: E402

LOCALES = ["en", "de", "fr", "es", "pt-BR", "pt", "ja", "zh-CN", "zh-TW", "ko", "ar", "nl"]
LATENCY = {"0.25": 20, "0.5": 45, "1": 25, "2": 6, "3": 2, "5": 1, "10": 1}


def fill(now: datetime) -> int:
    DeliveryStat.objects.all().delete()
    rows = []
    start = now.replace(second=0, microsecond=0) - timedelta(days=7)
    for minute_index in range(7 * 24 * 60):
        minute = start + timedelta(minutes=minute_index)
        rows += [
            DeliveryStat(minute=minute, kind="status", key="sent", count=97),
            DeliveryStat(minute=minute, kind="status", key="failed", count=2),
            DeliveryStat(minute=minute, kind="status", key="expired", count=1),
            DeliveryStat(minute=minute, kind="reason", key="refused by provider", count=2),
            DeliveryStat(minute=minute, kind="reason", key="code expired", count=1),
            DeliveryStat(minute=minute, kind="provider", key="postmark", count=1),
        ]
        rows += [
            DeliveryStat(minute=minute, kind="latency", key=key, count=count)
            for key, count in LATENCY.items()
        ]
        rows += [
            DeliveryStat(minute=minute, kind="requested", key=locale, count=8) for locale in LOCALES
        ]
        rows += [
            DeliveryStat(minute=minute, kind="locale", key="pt:pt-BR", count=8),
            DeliveryStat(minute=minute, kind="locale", key="nl:en", count=8),
        ]
        if len(rows) > 20000:
            DeliveryStat.objects.bulk_create(rows)
            rows = []
    DeliveryStat.objects.bulk_create(rows)
    Message.objects.filter(status=MessageStatus.QUEUED).delete()
    Message.objects.bulk_create(
        Message(
            to=f"waiting{i}@example.com",
            usage_type="SignIn",
            payload={"locale": "en"},
            status=MessageStatus.QUEUED,
            created_at=now - timedelta(seconds=i),
        )
        for i in range(500)
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE emails_deliverystat")
        cursor.execute("ANALYZE emails_message")
    return DeliveryStat.objects.count()


def timed(function, runs: int = 7) -> float:
    function()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        function()
        samples.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(samples), 1)


@override_settings(  # no collectstatic here: plain static URLs, as with DEBUG on
    STORAGES={
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
)
def main():
    call_command("migrate", verbosity=0)
    now = timezone.now().astimezone(UTC)
    rows = fill(now)
    folded = stats_compact(now)  # what the hourly purge keeps: the steady state
    admin, _ = User.objects.get_or_create(username="bench", is_staff=True, is_superuser=True)
    client = Client(HTTP_HOST="localhost")
    client.force_login(admin)
    result = {
        "rows_filled": rows,
        "rows_after_folding": DeliveryStat.objects.count(),
        "folded": folded,
    }
    for name in ("hour", "day", "week"):

        def page(name=name):
            response = client.get("/admin/emails/message/delivery/", {"range": name}, secure=True)
            assert response.status_code == 200, response.status_code

        result[name] = {
            "page_ms": timed(page),
            "stats_ms": timed(lambda name=name: stats_for(name)),
        }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
