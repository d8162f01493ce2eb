"""gunicorn as the README runs it: `gunicorn -c project/gunicorn.conf.py project.wsgi`.

Before: one sync worker, and a client sending its headers slowly held a real Logto POST for
33 s. The shipped config runs project/gunicorn_worker.py's worker, which reads each request's
head in its event loop: slow clients wait there, holding no thread, and are answered 408.
"""

import os
import socket
import subprocess
import sys
import threading
import time

import pytest
from django.db import connection

from project.gunicorn_worker import (
    BUFFERED_BODY_BYTES,
    HEAD_TIMEOUT,
    MAX_HEAD_BYTES,
    head_complete,
)
from tests.factories import TemplateFactory
from tests.helpers import AUTHORIZATION, load_payload, require_postgres, require_service
from tests.processes import (
    ROOT,
    database_url,
    free_port,
    gunicorn,
    post_to_logto_endpoint,
    running,
    service_env,
)

CONFIG = "project/gunicorn.conf.py"
SLOW_CLIENTS = 20
# More slow clients than the shipped config has threads in one worker (4), which is all the
# test runs: with gthread's own worker these 20 held every thread.
BYTE_EVERY = 0.5
SLOW_HEAD = (
    b"POST /api/logto/email HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
)


def print_config(*args: str, **env: str) -> dict[str, str]:
    """gunicorn's settings as it resolves them from the config file, environment and
    command line."""
    result = subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", CONFIG, "--print-config", *args, "project.wsgi"],
        cwd=ROOT,
        env={**service_env(), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    lines = (line.partition("=") for line in result.stdout.splitlines() if " = " in line)
    return {name.strip(): value.strip() for name, _, value in lines}


def test_the_config_serves_loopback_with_threads_from_the_environment():
    config = print_config()
    cores = len(os.sched_getaffinity(0))
    assert config["bind"] == "['127.0.0.1:8000']"
    assert config["worker_class"] == "project.gunicorn_worker.HeadBufferingWorker"
    assert (config["workers"], config["threads"]) == (str(min(2 * cores + 1, 8)), "4")
    assert config["logger_class"] == "project.logfilters.GunicornLogger"
    assert config["accesslog"] == "-"
    assert "%(r)s" not in config["access_log_format"]  # the request line holds the query

    config = print_config(MAILROOM_BIND="0.0.0.0:9000", WEB_CONCURRENCY="3", MAILROOM_THREADS="6")
    assert (config["bind"], config["workers"], config["threads"]) == ("['0.0.0.0:9000']", "3", "6")

    # The command line still wins.
    config = print_config("--bind", "unix:/run/mailroom.sock", "--workers", "2", MAILROOM_BIND="x")
    assert (config["bind"], config["workers"]) == ("['unix:/run/mailroom.sock']", "2")


@pytest.mark.parametrize(
    ("data", "complete"),
    [
        (b"POST /api/logto/email HTTP/1.1\r\nHost: a\r\n", False),
        (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", True),
        (b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nabc", False),
        (b"POST / HTTP/1.1\r\ncontent-length:  5\r\n\r\nabcde", True),
        # What a thread reads anyway, or gunicorn's parser refuses: handed over at once.
        (b"POST / HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % (BUFFERED_BODY_BYTES + 1), True),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", True),
        (b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n", True),
        (b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", True),
        (b"GET / HTTP/1.1\nHost: a", True),
    ],
)
def test_a_thread_gets_a_request_once_it_can_answer_without_waiting(data, complete):
    assert head_complete(data) is complete


def read_answer(sock: socket.socket) -> bytes:
    """One whole answer (each of Mailroom's error answers ends its JSON with "}")."""
    answer = b""
    while not answer.endswith(b"}"):
        data = sock.recv(65536)
        assert data, f"connection closed after {answer!r}"
        answer += data
    return answer


class SlowClient(threading.Thread):
    """Sends a request head one byte every BYTE_EVERY seconds, optionally after a first,
    complete request on the same kept-alive connection; records what it heard back."""

    def __init__(self, port: int, *, after_a_request: bool):
        super().__init__(daemon=True)
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.after_a_request = after_a_request
        self.answer = b""
        self.answered_after: float | None = None

    def run(self):
        try:
            if self.after_a_request:
                self.sock.sendall(b"GET /api/nothing HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                assert read_answer(self.sock).startswith(b"HTTP/1.1 404")
            started = time.monotonic()
            self.sock.settimeout(BYTE_EVERY)
            for byte in SLOW_HEAD:
                self.sock.sendall(bytes([byte]))
                try:
                    if data := self.sock.recv(65536):
                        self.answer += data
                        self.answered_after = time.monotonic() - started
                        return
                except TimeoutError:
                    continue
        except OSError:
            return
        finally:
            self.sock.close()


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_slow_clients_do_not_stall_logto():
    require_postgres()
    require_service("Redis", "127.0.0.1", 6379)
    TemplateFactory(usage_type="SignIn", locale="fr")
    env = service_env(
        DATABASE_URL=database_url(connection.settings_dict),
        CELERY_BROKER_URL="redis://127.0.0.1:6379/0",
        LOGTO_AUTHORIZATION=AUTHORIZATION,
    )
    port = free_port()

    def logto_posts(count: int, first: int) -> list[tuple[int, float]]:
        answers = []
        for number in range(first, first + count):
            body = load_payload("sign-in-fr.json")
            body["to"], body["ip"] = f"user{number}@example.com", f"203.0.113.{number}"
            started = time.monotonic()
            status, _ = post_to_logto_endpoint(port, body, AUTHORIZATION, timeout=20)
            answers.append((status, round(time.monotonic() - started, 2)))
        return answers

    with running(gunicorn(env, port, config=CONFIG)) as (server,):
        # Given a server that has answered once (its first request loads what it needs)
        assert logto_posts(1, first=1)[0][0] == 200
        # When 20 clients trickle their headers, half of them on a kept-alive connection
        slow = [SlowClient(port, after_a_request=n % 2 == 1) for n in range(SLOW_CLIENTS)]
        for client in slow:
            client.start()
        time.sleep(3)  # each has sent a few bytes of its head
        # Then Logto's POSTs are answered at once, all the while
        answers = logto_posts(5, first=2)
        assert all(status == 200 for status, _ in answers), answers
        assert max(seconds for _, seconds in answers) < 1, answers
        # And each slow client is answered 408 once its head is HEAD_TIMEOUT seconds late
        for client in slow:
            client.join(HEAD_TIMEOUT + 10)
        for client in slow:
            assert client.answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), client.answer
            assert client.answer.endswith(b'{"message": "The request took too long to arrive."}')
            assert client.answered_after is not None
            assert HEAD_TIMEOUT - 1 <= client.answered_after <= HEAD_TIMEOUT + 3
        assert server.alive()


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_the_access_log_has_no_query_string_and_a_huge_head_is_refused():
    require_postgres()
    env = service_env(DATABASE_URL=database_url(connection.settings_dict))
    port = free_port()
    with running(gunicorn(env, port, config=CONFIG)) as (server,):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(
                b"GET /api/nothing?q=jane.doe@example.com HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Referer: http://127.0.0.1/admin/?q=jane.doe@example.com\r\n\r\n"
            )
            assert read_answer(sock).startswith(b"HTTP/1.1 404")
            # A head over MAX_HEAD_BYTES, sent at once: refused without reaching a thread.
            # (Each field is within gunicorn's own limit of 8190 bytes.)
            fields = b"".join(b"X-Big-%d: %s\r\n" % (n, b"a" * 8000) for n in range(9))
            assert len(fields) > MAX_HEAD_BYTES
            sock.sendall(b"GET / HTTP/1.1\r\n" + fields + b"\r\n")
            answer = read_answer(sock)
        assert answer.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n"), answer
        assert answer.endswith(b'{"message": "Request headers are too large."}')
        deadline = time.monotonic() + 10
        while '"GET /api/nothing HTTP/1.1" 404' not in server.output():
            assert time.monotonic() < deadline, server.output()
            time.sleep(0.1)
        log = server.output()
    assert "jane.doe@example.com" not in log
