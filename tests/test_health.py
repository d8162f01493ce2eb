"""/healthz and /readyz: what a load balancer or an orchestrator's probe hears, in each state
(database refused or cut, broker stopped, sweeper late), in-process and from a real gunicorn."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from emails.models import Heartbeat
from tests.database import database_refusing
from tests.helpers import require_postgres, require_program
from tests.processes import (
    RedisServer,
    TcpProxy,
    database_url,
    free_port,
    gunicorn,
    running,
    service_env,
)

ALL_GOOD = {"database": "ok", "broker": "ok", "sweeper": "ok"}


def probe(path: str, **extra):
    response = Client().get(path, **extra)
    return response.status_code, json.loads(response.content)


def test_healthz_answers_without_the_database_the_host_check_or_https(settings):
    # (no django_db mark: any query would fail this test)
    settings.ALLOWED_HOSTS = ["mailroom.example.com"]
    settings.SECURE_SSL_REDIRECT = True
    assert probe("/healthz", HTTP_HOST="10.0.3.7:8000") == (200, {"status": "ok"})


def test_only_get_and_head():
    response = Client().post("/healthz")
    assert response.status_code == 405 and response["Allow"] == "GET, HEAD"


@pytest.mark.django_db
def test_readyz_in_development_checks_the_database_only():
    # no broker (tasks run in-process), so no beat and no sweeper to wait for
    assert probe("/readyz") == (
        200,
        {
            "status": "ready",
            "checks": {"database": "ok", "broker": "not configured", "sweeper": "not configured"},
        },
    )


@pytest.mark.django_db(transaction=True)
def test_readyz_says_the_database_is_down_and_names_no_host():
    with database_refusing(password="s3cret-db-password"):
        status, body = probe("/readyz")
    assert status == 503
    assert body["checks"]["database"] == "unavailable"
    assert "127.0.0.1" not in json.dumps(body) and "s3cret" not in json.dumps(body)
    # and once it answers again, so does /readyz
    assert probe("/readyz")[0] == 200


def get(port: int, path: str):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_real_gunicorn_reports_a_cut_database_a_stopped_broker_and_a_late_sweeper():
    require_postgres()
    require_program("redis-server")
    Heartbeat.objects.update_or_create(name="sweeper", defaults={"at": timezone.now()})
    database = dict(connection.settings_dict)
    proxy = TcpProxy(database.get("HOST") or "127.0.0.1", int(database.get("PORT") or 5432))
    proxy.start()
    redis = RedisServer().start()
    via_proxy = database_url({**database, "HOST": "127.0.0.1", "PORT": proxy.port})
    port = free_port()
    env = service_env(
        DATABASE_URL=via_proxy,
        CELERY_BROKER_URL=f"{redis.url}/0",
        LOGTO_AUTHORIZATION="Bearer t",
        DJANGO_ALLOWED_HOSTS="mailroom.example.com",
    )
    try:
        with running(gunicorn(env, port)):
            assert get(port, "/healthz") == (200, {"status": "ok"})
            assert get(port, "/readyz") == (200, {"status": "ready", "checks": ALL_GOOD})
            proxy.cut()
            started = time.monotonic()
            status, body = get(port, "/readyz")
            assert (status, body["checks"]["database"]) == (503, "unavailable")
            assert time.monotonic() - started < 7  # (refused at once; a silent host: 5 s)
            assert get(port, "/healthz")[0] == 200  # alive all along
            proxy.restore()
            assert get(port, "/readyz")[0] == 200
            redis.stop()
            status, body = get(port, "/readyz")
            assert (status, body["checks"]) == (503, {**ALL_GOOD, "broker": "unavailable"})
            redis.start()
            assert get(port, "/readyz")[0] == 200
            # beat stopped long enough ago
            Heartbeat.objects.filter(name="sweeper").update(
                at=timezone.now() - timedelta(seconds=4 * 30)
            )
            status, body = get(port, "/readyz")
            assert (status, body["checks"]) == (503, {**ALL_GOOD, "sweeper": "late"})
    finally:
        proxy.stop()
        redis.stop()
