"""Helpers the tests import (conftest.py holds only fixtures and hooks)."""

import json
import os
import shutil
import socket
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.conf import settings

PAYLOADS_DIR = Path(__file__).resolve().parent.parent / "fixtures" / "payloads"
AUTHORIZATION = "Bearer test-token"


# Rows the fault suite (tests/test_faults.py) adds, printed at the end of the run.
FAULT_SUMMARY: list[dict] = []


def load_payload(name: str) -> dict:
    return json.loads((PAYLOADS_DIR / name).read_text())


def all_payloads() -> list[str]:
    return sorted(path.name for path in PAYLOADS_DIR.glob("*.json"))


def require_service(name: str, host: str, port: int) -> None:
    """Skip with the reason when a real service is absent; under CI=true, fail instead."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return
    except OSError as exc:
        reason = f"{name} is not reachable at {host}:{port} ({exc})"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true: {reason}")
    pytest.skip(reason)


def require_program(name: str) -> None:
    """Skip when a program the test starts is not installed; under CI=true, fail instead."""
    if shutil.which(name):
        return
    reason = f"{name} is not installed"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true: {reason}")
    pytest.skip(reason)


def require_postgres() -> None:
    """Skip (fail under CI=true) when the tests run without the PostgreSQL that
    TEST_DATABASE_URL names: tests/settings.py probed that address once, at start-up."""
    if settings.POSTGRES_AVAILABLE:
        return
    reason = f"PostgreSQL at {settings.TEST_DATABASE_URL} does not answer"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true: {reason}")
    pytest.skip(reason)


@contextmanager
def celery_broker(url: str):
    """Publish from this test process to a real broker at ``url`` instead of running tasks
    eagerly; the connection pools are dropped on the way in and out."""
    from project.celery import app

    previous = {"task_always_eager": app.conf.task_always_eager, "broker_url": app.conf.broker_url}

    def reset_pools():
        if app._pool is not None:
            app._pool.force_close_all()
        app._pool = None
        app.amqp._producer_pool = None

    reset_pools()
    app.conf.update(task_always_eager=False, broker_url=url)
    try:
        yield app
    finally:
        reset_pools()
        app.conf.update(previous)


def use_providers(settings, *names: str) -> None:
    """Configure EMAIL_PROVIDER as settings.py would: one provider, or a failover list."""
    from project.providers import email_providers_from

    settings.EMAIL_PROVIDERS = email_providers_from(",".join(names))
    settings.EMAIL_PROVIDER = names[0]
    settings.EMAIL_BACKEND = settings.EMAIL_PROVIDERS[names[0]]


def staff(*codenames: str):
    """A logged-in client of a staff user holding only the named permissions."""
    from django.contrib.auth.models import Permission, User
    from django.test import Client

    name = f"ops{User.objects.count()}"
    user = User.objects.create_user(name, email=f"{name}@example.com", password="pw", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    client = Client()
    client.force_login(user)
    return client


class Samples(dict):
    """A /metrics answer's samples, (name, sorted labels) -> value, as Prometheus reads them."""

    @classmethod
    def parse(cls, text: str) -> "Samples":
        from prometheus_client.parser import text_string_to_metric_families

        return cls(
            ((s.name, tuple(sorted(s.labels.items()))), s.value)
            for family in text_string_to_metric_families(text)
            for s in family.samples
        )

    def value(self, name: str, **labels) -> float:
        """The sample's value, 0 when the series is absent."""
        return self.get((name, tuple(sorted(labels.items()))), 0)


# Tests never rewrite tracked files: screenshots go to a temporary folder unless
# MAILROOM_SCREENSHOTS names one (MAILROOM_SCREENSHOTS=docs/screenshots refreshes the README's).
SCREENSHOTS = Path(
    os.environ.get("MAILROOM_SCREENSHOTS") or tempfile.mkdtemp(prefix="mailroom-screenshots-")
)


def png(width: int = 2, height: int = 1) -> bytes:
    """A real, tiny PNG (red pixels), built by hand: no imaging library needed."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    raw = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )
