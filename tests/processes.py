"""Real processes for integration tests: gunicorn serving Mailroom and a `celery worker`,
started with the environment an operator would give them, and stopped (with their output
shown on failure) when the test ends."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, *, timeout: float, interval: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def database_url(settings_dict: dict) -> str:
    """The DATABASE_URL of the database the test runs on (pytest-django's test database)."""
    user = quote(settings_dict.get("USER") or "", safe="")
    password = settings_dict.get("PASSWORD") or ""
    credentials = f"{user}:{quote(password, safe='')}@" if password else f"{user}@"
    host = settings_dict.get("HOST") or "127.0.0.1"
    port = settings_dict.get("PORT") or 5432
    return f"postgres://{credentials}{host}:{port}/{settings_dict['NAME']}"


def service_env(**overrides) -> dict:
    """Environment for Mailroom processes: production settings, nothing from the developer's
    own Mailroom variables."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("ANYMAIL_", "EMAIL_", "LOGTO_", "DJANGO_", "CELERY_", "DATABASE_"))
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "project.settings",
            "DJANGO_DEBUG": "false",
            "DJANGO_SECRET_KEY": "integration-tests-secret-" + uuid.uuid4().hex,
            "DATABASE_CONN_MAX_AGE": "0",
            "CELERY_TASK_DEFAULT_QUEUE": f"mailroom-test-{uuid.uuid4().hex[:12]}",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(overrides)
    return env


class Process:
    def __init__(self, name: str, args: list[str], env: dict):
        self.name = name
        self.log = tempfile.NamedTemporaryFile(prefix=f"mailroom-{name}-", suffix=".log")
        self.popen = subprocess.Popen(
            args,
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def output(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text(errors="replace")

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout: float = 15) -> None:
        if self.alive():
            os.killpg(self.popen.pid, sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout)


@contextmanager
def running(*processes: Process):
    try:
        yield processes
    except BaseException:
        for process in processes:
            sys.stderr.write(f"\n----- {process.name} output -----\n{process.output()[-6000:]}\n")
        raise
    finally:
        for process in processes:
            process.stop()


def gunicorn(env: dict, port: int) -> Process:
    process = Process(
        "gunicorn",
        [
            sys.executable,
            "-m",
            "gunicorn",
            "project.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "--access-logfile",
            "-",
        ],
        env,
    )
    wait_for(lambda: _accepts(port) or not process.alive(), timeout=30, what="gunicorn to listen")
    if not process.alive():
        raise AssertionError(f"gunicorn exited:\n{process.output()}")
    return process


def celery_worker(env: dict, *, concurrency: int = 1) -> Process:
    return Process(
        "celery-worker",
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "project",
            "worker",
            "--loglevel",
            "INFO",
            "--queues",
            env["CELERY_TASK_DEFAULT_QUEUE"],
            "--concurrency",
            str(concurrency),
            "--without-gossip",
            "--without-mingle",
            "--hostname",
            f"test-{uuid.uuid4().hex[:8]}@%h",
        ],
        env,
    )


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False
