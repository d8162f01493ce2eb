"""``GET /healthz`` and ``GET /readyz``, for load balancers, orchestrators and uptime checks.

- ``/healthz``: the process answers. No I/O: 200 ``{"status": "ok"}``.
- ``/readyz``: 200 only when the database answers, the broker answers (when there is one), and
  the sweeper ran within three of its intervals; otherwise 503, naming each check that failed.
  Each check is bounded (the database: a 2 s statement timeout and PostgreSQL's connect
  timeout; the broker: one connection attempt with the broker's socket timeouts) and reads no
  table but one row of ``emails_heartbeat``, so it can be probed every few seconds.

Both (and ``/metrics``, emails/operations/metrics.py) are answered by ``HealthMiddleware``,
first in the chain: a probe comes from the
orchestrator by IP over plain HTTP, so it skips the host check (``DJANGO_ALLOWED_HOSTS``), the
HTTPS redirect, sessions and CSRF. They say which dependency is down and nothing more: no
host names, no error texts (the log has those, once per outage: emails/intake/outage.py).
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.http import JsonResponse

from emails.delivery.dispatch import broker_answers
from emails.delivery.sweeper import sweeper_late
from emails.intake.outage import database_answered, database_failed
from emails.operations import metrics

logger = logging.getLogger(__name__)

PATHS = ("/healthz", "/readyz", metrics.PATH)
STATEMENT_TIMEOUT_MS = 2000


class HealthMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path_info not in PATHS:
            return self.get_response(request)
        if request.method not in ("GET", "HEAD"):
            response = JsonResponse({"message": "Only GET and HEAD."}, status=405)
            response["Allow"] = "GET, HEAD"
            return response
        if request.path_info == "/healthz":
            return JsonResponse({"status": "ok"})
        if request.path_info == metrics.PATH:
            return metrics.metrics_answer(request)
        return readiness()


def readiness() -> JsonResponse:
    checks = {"database": _database(), "broker": _broker(), "sweeper": _sweeper()}
    ready = all(result in ("ok", "not configured") for result in checks.values())
    return JsonResponse(
        {"status": "ready" if ready else "not ready", "checks": checks},
        status=200 if ready else 503,
    )


def _database() -> str:
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute(f"SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}")
            cursor.execute("SELECT 1")
    except DatabaseError as exc:
        database_failed(exc)
        connection.close()  # the next probe connects afresh
        return "unavailable"
    database_answered()
    return "ok"


def _broker() -> str:
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return "not configured"  # development: tasks run in-process (README, "Two commands")
    return "ok" if broker_answers() else "unavailable"


def _sweeper() -> str:
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return "not configured"  # no broker, no beat
    try:
        late = sweeper_late()
    except DatabaseError:
        connection.close()
        return "unknown"  # the database check says why
    return "late" if late else "ok"
