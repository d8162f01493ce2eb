"""``GET /metrics``: Prometheus's text format, through prometheus-client.

- The counters and histograms of emails/metrics.py, added up over every process of the host
  that writes under ``EMAILS_METRICS_DIR`` (gunicorn's workers and the Celery worker's
  children), so one scrape of any web worker sees them all.
- What the database knows, read at scrape time and kept ``EMAILS_METRICS_QUEUE_CACHE`` seconds
  (three cheap queries, each under a 1 s statement timeout; after a failed read, none for 30 s):
  the queue's depth and the age of its oldest message, each provider circuit's state, the
  sweeper's last run. Build info and the sweep interval need no database.

Access: ``Authorization: Bearer <EMAILS_METRICS_TOKEN>``. Without a token it is 404 in
production and open with DJANGO_DEBUG on. Answered by HealthMiddleware (emails/operations/
health.py), before the host check, like the health probes: Prometheus scrapes by IP.
"""

from __future__ import annotations

import glob
import hmac
import os
import struct
import time
from importlib import metadata

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.http import HttpResponse, JsonResponse
from django.utils import timezone
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest, values
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.multiprocess import MultiProcessCollector

from emails.delivery.circuits import providers
from emails.delivery.stats import waiting_now
from emails.delivery.sweeper import SWEEPER
from emails.intake.outage import database_failed
from emails.models import CircuitState, Heartbeat, MessageStatus, ProviderCircuit

PATH = "/metrics"
STATEMENT_TIMEOUT_MS = 1000  # each of its three reads
FAILED_READ_PAUSE = 30.0
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
NOT_ADDED_UP = (
    "Metrics need gunicorn started with -c project/gunicorn.conf.py and without --preload, "
    "so that its workers add up their counts."
)


def metrics_answer(request) -> HttpResponse:
    token = settings.EMAILS_METRICS_TOKEN
    if not token and not settings.DEBUG:
        return JsonResponse({"message": "Not found."}, status=404)
    if token and not _bearer_matches(request.META.get("HTTP_AUTHORIZATION", ""), token):
        response = JsonResponse({"message": "A valid bearer token is required."}, status=401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    multiprocess = values.ValueClass is not values.MutexValue
    if not multiprocess and request.META.get("SERVER_SOFTWARE", "").startswith("gunicorn"):
        # Each worker would answer with its own counts: a different number on every scrape.
        return JsonResponse({"message": NOT_ADDED_UP}, status=503)
    return HttpResponse(generate_latest(_registry(multiprocess)), content_type=CONTENT_TYPE)


def _bearer_matches(header: str, token: str) -> bool:
    expected = f"Bearer {token}".encode()
    try:
        given = header.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return hmac.compare_digest(given, expected)


def _registry(multiprocess: bool) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    # File-backed values (gunicorn, the Celery worker) or this process's own (runserver, tests).
    registry.register(_EveryProcess() if multiprocess else _InProcess())
    registry.register(_DatabaseState())
    return registry


class _InProcess:
    """This process's own values (tests, runserver): the default registry, gc and process
    metrics included."""

    def collect(self):
        return REGISTRY.collect()


class _EveryProcess:
    """Every role's files, added up (prometheus-client's own merge)."""

    def collect(self):
        files = []
        for path in glob.glob(os.path.join(settings.EMAILS_METRICS_DIR, "*", "*.db")):
            # A file may vanish (its folder archived) or be empty (just made) as we read.
            try:
                MmapedDict.read_all_values_from_file(path)
            except Exception:  # noqa: S112
                continue
            files.append(path)
        try:
            return MultiProcessCollector.merge(files, accumulate=True)
        except (OSError, ValueError, struct.error):
            return MultiProcessCollector.merge(
                [path for path in files if os.path.exists(path)], accumulate=True
            )


_cache: dict[str, tuple[float, list]] = {}


class _DatabaseState:
    def collect(self):
        yield _build_info()
        cached = _cache.get("state")
        # After a failed read, the next waits FAILED_READ_PAUSE: a database host that does not
        # answer costs one slow scrape (connect_timeout), not every one (each would time out,
        # and Prometheus would see no counters at all for the outage).
        keep = settings.EMAILS_METRICS_QUEUE_CACHE if cached is None or cached[1] else 0
        keep = max(keep, FAILED_READ_PAUSE if cached is not None and not cached[1] else 0)
        if cached is None or time.monotonic() - cached[0] > keep:
            try:
                families = _read_state()
            except DatabaseError as exc:
                database_failed(exc)
                connection.close()
                families = []  # a scrape without them; mailroom_database_up 0 says why
            cached = (time.monotonic(), families)
            _cache["state"] = cached
        up = GaugeMetricFamily(
            "mailroom_database_up", "1 when the last read of the queue's state worked."
        )
        up.add_metric([], 1 if cached[1] else 0)
        yield up
        yield from cached[1]
        interval = GaugeMetricFamily(  # a setting: there when the database is not
            "mailroom_sweeper_interval_seconds", "EMAILS_SWEEP_INTERVAL: how often it should run."
        )
        interval.add_metric([], settings.EMAILS_SWEEP_INTERVAL)
        yield interval


def _read_state() -> list:
    now = timezone.now()
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(f"SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}")
        waiting = waiting_now()
        circuits = {row.provider: row for row in ProviderCircuit.objects.all()}
        swept = Heartbeat.objects.filter(name=SWEEPER).values_list("at", flat=True).first()
    depth = GaugeMetricFamily(
        "mailroom_queue_depth", "Emails waiting for the worker, by status.", labels=["status"]
    )
    depth.add_metric([MessageStatus.QUEUED.value], waiting.queued)
    depth.add_metric([MessageStatus.SENDING.value], waiting.sending)
    oldest = waiting.oldest_queued_at
    age = GaugeMetricFamily(
        "mailroom_oldest_queued_seconds",
        "Age of the oldest queued email (0 when none waits).",
    )
    age.add_metric([], max(0.0, (now - oldest).total_seconds()) if oldest else 0.0)
    circuit_open = GaugeMetricFamily(
        "mailroom_provider_circuit_open",
        "1 while a provider's circuit is open or half-open (failover: it takes no email).",
        labels=["provider"],
    )
    for name in providers() if len(providers()) > 1 else []:
        row = circuits.get(name)
        circuit_open.add_metric([name], 0 if row is None or row.state == CircuitState.CLOSED else 1)
    sweeper = GaugeMetricFamily(
        "mailroom_sweeper_last_run_timestamp_seconds",
        "When the sweeper (celery beat) last ran, as a Unix time.",
    )
    if swept is not None:
        sweeper.add_metric([], swept.timestamp())
    return [depth, age, circuit_open, sweeper]


def _build_info() -> InfoMetricFamily:
    try:
        version = metadata.version("mailroom")
    except metadata.PackageNotFoundError:
        version = "unknown"
    info = InfoMetricFamily("mailroom_build", "Mailroom's version and its providers, in order.")
    info.add_metric([], {"version": version, "providers": ",".join(providers())})
    return info
