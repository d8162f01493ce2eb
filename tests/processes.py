"""Real processes for integration tests: gunicorn serving Mailroom and a `celery worker`,
started with the environment an operator would give them, and stopped (with their output
shown on failure) when the test ends."""

from __future__ import annotations

import atexit
import functools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
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


def post_to_logto_endpoint(port: int, body: dict, authorization: str, timeout: float = 30):
    """POST a body to the running service the way Logto does; (status, JSON answer)."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/logto/email",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": authorization},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def database_url(settings_dict: dict) -> str:
    """The DATABASE_URL of the database the test runs on (pytest-django's test database)."""
    user = quote(settings_dict.get("USER") or "", safe="")
    password = settings_dict.get("PASSWORD") or ""
    credentials = f"{user}:{quote(password, safe='')}@" if password else f"{user}@"
    host = settings_dict.get("HOST") or "127.0.0.1"
    port = settings_dict.get("PORT") or 5432
    return f"postgres://{credentials}{host}:{port}/{settings_dict['NAME']}"


# The admin's, DRF's and Swagger UI's files: the processes the tests start serve none of them
# (the production smoke test collects everything itself, as the README says).
STATIC_NOT_SERVED_IN_TESTS = ("admin", "rest_framework", "drf_spectacular_sidecar")


@functools.cache
def collected_static() -> str:
    """A STATIC_ROOT filled by collectstatic once per test run. With debug off {% static %}
    reads its manifest, as in production (the sample payloads' logo, the designer pages)."""
    root = tempfile.mkdtemp(prefix="mailroom-static-")
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    ignored = [argument for name in STATIC_NOT_SERVED_IN_TESTS for argument in ("-i", name)]
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--no-input", "-v0", *ignored],
        cwd=ROOT,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "project.settings",
            "DJANGO_DEBUG": "false",
            "DJANGO_SECRET_KEY": "collectstatic-only",
            "DJANGO_STATIC_ROOT": root,
        },
        check=True,
        capture_output=True,
        timeout=300,
    )
    return root


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
            # These processes are reached over plain HTTP on loopback; the production smoke test
            # (tests/test_production_smoke.py) goes through a TLS proxy with the defaults on.
            "DJANGO_SECURE_SSL_REDIRECT": "false",
            "DJANGO_STATIC_ROOT": collected_static(),
            "CELERY_TASK_DEFAULT_QUEUE": f"mailroom-test-{uuid.uuid4().hex[:12]}",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(overrides)
    return env


class Process:
    def __init__(self, name: str, args: list[str], env: dict, *, cwd: Path = ROOT):
        self.name = name
        self.log = tempfile.NamedTemporaryFile(prefix=f"mailroom-{name}-", suffix=".log")
        self.popen = subprocess.Popen(
            args,
            cwd=cwd,
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


def gunicorn(env: dict, port: int, *, config: str | None = None, workers: int = 1) -> Process:
    process = Process(
        "gunicorn",
        [
            sys.executable,
            "-m",
            "gunicorn",
            *(["--config", config] if config else []),
            "project.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
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


def celery_beat(env: dict, schedule_dir: str) -> Process:
    return Process(
        "celery-beat",
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "project",
            "beat",
            "--loglevel",
            "INFO",
            "--schedule",
            str(Path(schedule_dir) / "celerybeat-schedule"),
        ],
        env,
    )


class RedisServer:
    """A private redis-server on a free port, which a test may stop and start again."""

    def __init__(self):
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> RedisServer:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--loglevel",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: _accepts(self.port), timeout=10, what="redis-server to listen")
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


class TcpProxy:
    """Forwards a local port to a server; ``cut()`` refuses new connections and drops open
    ones (the server seems gone), ``restore()`` brings it back on the same port."""

    def __init__(self, target_host: str, target_port: int):
        self.target = (target_host, target_port)
        self.port = free_port()
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None

    def start(self) -> TcpProxy:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def cut(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            # Closing alone does not stop a thread blocked in accept() (Linux keeps the socket
            # listening until the call returns): shutting it down does.
            _close(listener)
        with self._lock:
            for sock in self._connections:
                _close(sock)
            self._connections.clear()

    restore = start

    def stop(self) -> None:
        self.cut()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _close(client)
                continue
            for sock in (client, upstream):  # forward each write at once (no Nagle delay)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._connections.update((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            _close(source)
            _close(sink)
            with self._lock:
                self._connections.discard(source)
                self._connections.discard(sink)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
