"""The failover fault suite: real gunicorn, `celery worker` and `celery beat` processes, a private
redis-server, real PostgreSQL, and two provider stubs behind anymail's real backends:
EMAIL_PROVIDER=postmark,amazon_ses (Postmark's HTTP API; SES v2 through boto3). The Postmark
stub sits behind a TCP proxy, so a scenario can also cut it off the network.

Each scenario counts what Logto was told against what reached the providers (tests/test_faults
.py's rules: "lost" must be 0) and adds how many each provider took and the latency from
Logto's call to the provider taking the email. The rows are printed at the end of the run.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from django.db import connection

from emails.models import CircuitState, Message, ProviderCircuit
from tests.factories import TemplateFactory
from tests.processes import TcpProxy, wait_for
from tests.stubs import ProviderStub, recipient
from tests.test_faults import Stack, account, fault_database

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

SEND_TIMEOUT = 2  # EMAIL_TIMEOUT: how long a hung provider holds one try
AFTER = 3
COOLDOWN = 10
SERVER_ERROR = (500, {"ErrorCode": 500, "Message": "Internal Server Error"}, None)
SES_DOWN = (
    503,
    {"message": "Service Unavailable (stub)"},
    {"x-amzn-ErrorType": "ServiceUnavailable"},
)


class Failover:
    def __init__(self, database: dict):
        self.primary = ProviderStub().start()
        self.secondary = ProviderStub().start()
        self.primary_link = TcpProxy("127.0.0.1", self.primary.server.server_address[1]).start()
        ses = {
            "endpoint_url": self.secondary.url,
            "region_name": "eu-west-1",
            "aws_access_key_id": "AKIDFAILOVERSUITE",
            "aws_secret_access_key": "failover-suite-secret",
        }
        self.stack = Stack(
            database,
            stubs=[self.primary, self.secondary],
            env=dict(
                EMAIL_PROVIDER="postmark,amazon_ses",
                ANYMAIL_POSTMARK_API_URL=f"http://127.0.0.1:{self.primary_link.port}/",
                ANYMAIL_AMAZON_SES_CLIENT_PARAMS=json.dumps(ses),
                EMAIL_TIMEOUT=str(SEND_TIMEOUT),
                EMAILS_FAILOVER_AFTER=str(AFTER),
                EMAILS_FAILOVER_COOLDOWN=str(COOLDOWN),
                EMAILS_SEND_TIME_LIMIT="8",
                EMAILS_SENDING_TIMEOUT="12",
            ),
            concurrency=4,
        )
        # Measure failover, not the worker's start: wait until it takes tasks.
        wait_for(
            lambda: " ready." in self.stack.worker.output(), timeout=60, what="the worker to start"
        )

    def stop(self):
        self.stack.stop()
        self.primary_link.stop()


@pytest.fixture(scope="module")
def failover(django_db_setup, django_db_blocker):
    suite = Failover(fault_database(django_db_blocker))
    yield suite
    suite.stop()


@pytest.fixture
def scenario(failover, request):
    for stub in (failover.primary, failover.secondary):
        stub.reset()
    if failover.primary_link._listener is None:  # a failed scenario left it cut
        failover.primary_link.restore()
    TemplateFactory(usage_type="SignIn", locale="en")
    yield failover
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(failover.stack.logs())


def bodies(prefix: str, count: int) -> list[dict]:
    return [
        {"to": f"{prefix}-{i}@example.com", "type": "SignIn", "payload": {"code": f"{i:06d}"}}
        for i in range(count)
    ]


def post_at_rate(suite: Failover, batch: list[dict], rate: float, threads: int = 8):
    """Open-loop: body i is posted at start + i / rate, whatever the answers take. Returns
    the answers and when each recipient's POST began (time.monotonic(), as the stubs)."""
    start = time.monotonic()
    posted_at: dict[str, float] = {}

    def post(item):
        index, body = item
        delay = start + index / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        posted_at[body["to"]] = time.monotonic()
        return suite.stack.post(body)

    with ThreadPoolExecutor(threads) as pool:
        answers = list(pool.map(post, enumerate(batch)))
    return answers, posted_at


def taken_at(stub: ProviderStub, prefix: str) -> dict[str, float]:
    """When the stub first took (2xx) each recipient's email."""
    first: dict[str, float] = {}
    for request in list(stub.requests):
        to = recipient(request.path, request.body)
        if 200 <= request.status < 300 and to.startswith(prefix + "-"):
            first.setdefault(to, request.at)
    return first


def failover_row(name: str, suite: Failover, answers, prefix: str, posted_at) -> dict:
    row = account(name, suite.stack, answers, prefix)
    by_primary = taken_at(suite.primary, prefix)
    by_secondary = taken_at(suite.secondary, prefix)
    row["by postmark"] = len(by_primary)
    row["by amazon_ses"] = len(by_secondary)
    first = {**by_secondary, **by_primary}
    for to, at in by_secondary.items():
        first[to] = min(at, first[to])
    latencies = sorted(first[to] - posted_at[to] for to in first if to in posted_at)
    if latencies:
        row["p50 s"] = round(statistics.median(latencies), 3)
        row["p99 s"] = round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 3)
        row["max s"] = round(latencies[-1], 3)
    return row


def explain_duplicates(row: dict, prefix: str, suite: Failover) -> None:
    """Every email that reached the providers more than once was a try that timed out (or
    was cut) after the request left, and is counted on its message."""
    copies = Counter(to for to in suite.stack.delivered() if to.startswith(prefix + "-"))
    counted = dict(
        Message.objects.filter(to__in=list(copies)).values_list("to", "possible_duplicates")
    )
    unexplained = {to: n for to, n in copies.items() if n - 1 > counted.get(to, 0)}
    assert not unexplained, f"duplicates not counted on their message: {unexplained}"
    if row["duplicates"]:
        row["why duplicates"] = (
            "a try on postmark was cut after the request left (the proxy dropped the "
            "connection, or the answer timed out); the email went to amazon_ses at once, as "
            "EMAILS_FAILOVER_ON_TIMEOUT=codes allows, and the message counts it"
        )
    row["possible duplicates counted"] = sum(counted.values())


def circuit_state(name: str) -> str:
    row = ProviderCircuit.objects.filter(provider=name).first()
    return row.state if row else CircuitState.CLOSED


def test_1_primary_answers_500_to_everything(scenario):
    suite = scenario
    suite.primary.outage = SERVER_ERROR
    answers, posted_at = post_at_rate(suite, bodies("f1", 40), rate=10)
    row = failover_row("F1 postmark 500s, 40 at 10/s", suite, answers, "f1", posted_at)
    assert (row["sent"], row["lost"], row["failed"], row["expired"]) == (40, 0, 0, 0)
    assert row["by amazon_ses"] == 40 and row["by postmark"] == 0
    # the circuit opened after AFTER failures: postmark saw those, and at most a probe
    # per cooldown since
    probes = 1 + int(row["max s"] + 5) // COOLDOWN
    assert AFTER <= len(suite.primary.requests) <= AFTER + probes
    assert circuit_state("postmark") in (CircuitState.OPEN, CircuitState.HALF_OPEN)
    # the extra delay of failing over is one refused try: bounded well under 2 s
    assert row["max s"] < 2.0, row


def test_2_primary_hangs(scenario):
    suite = scenario
    suite.primary.hang = True
    answers, posted_at = post_at_rate(suite, bodies("f2", 12), rate=4)
    row = failover_row("F2 postmark hangs, 12 at 4/s", suite, answers, "f2", posted_at)
    suite.primary.hang = False
    assert (row["sent"], row["lost"], row["failed"]) == (12, 0, 0)
    assert row["by amazon_ses"] == 12
    assert row["max s"] < SEND_TIMEOUT + 2, row
    # the hung tries may have been delivered: each is counted on its message's timeline
    hung = [r for r in suite.primary.requests if r.status == 0]
    assert len(hung) >= AFTER
    assert Message.objects.filter(to__startswith="f2-", possible_duplicates=1).count() == len(hung)


def test_3_primary_flaps_for_two_minutes_under_20_per_second(scenario):
    suite = scenario
    duration, rate, period, first_cut = 120, 20, 20, 5
    timeline: list[dict] = []
    stop = threading.Event()

    def flap():
        start = time.monotonic()
        down = False
        while not stop.is_set():
            elapsed = time.monotonic() - start
            should_be_down = elapsed >= first_cut and int((elapsed - first_cut) // period) % 2 == 0
            if should_be_down and not down:
                suite.primary_link.cut()
                down = True
            elif not should_be_down and down:
                suite.primary_link.restore()
                down = False
            timeline.append(
                {
                    "t": round(elapsed, 2),
                    "postmark_down": down,
                    "circuit": circuit_state("postmark"),
                }
            )
            stop.wait(0.5)
        if down:
            suite.primary_link.restore()
        connection.close()

    flapper = threading.Thread(target=flap, daemon=True)
    flapper.start()
    started = time.monotonic()
    try:
        answers, posted_at = post_at_rate(suite, bodies("f3", duration * rate), rate=rate)
    finally:
        stop.set()
        flapper.join(10)
    row = failover_row(
        "F3 postmark flaps 20 s/20 s, 2 min at 20/s", suite, answers, "f3", posted_at
    )
    explain_duplicates(row, "f3", suite)
    _write_timeline(timeline, suite, posted_at, started)
    assert [status for status, _ in answers].count(200) == duration * rate
    assert (row["lost"], row["expired"], row["failed"]) == (0, 0, 0), row
    assert row["by postmark"] > 0 and row["by amazon_ses"] > 0


def _write_timeline(timeline, suite: Failover, posted_at, started) -> None:
    """The flap test's timeline (for docs/failover.png: benchmarks/failover_plot.py) into
    MAILROOM_FAILOVER_TIMELINE, or a temporary file."""
    path = Path(
        os.environ.get("MAILROOM_FAILOVER_TIMELINE")
        or tempfile.mkstemp(prefix="mailroom-failover-", suffix=".json")[1]
    )
    sends = []
    for name, stub in (("postmark", suite.primary), ("amazon_ses", suite.secondary)):
        for request in list(stub.requests):
            to = recipient(request.path, request.body)
            if to.startswith("f3-") and to in posted_at:
                sends.append(
                    {
                        "provider": name,
                        "t": round(request.at - started, 3),
                        "status": request.status,
                        "latency": round(request.at - posted_at[to], 3),
                    }
                )
    path.write_text(json.dumps({"states": timeline, "sends": sends}))


def test_4_a_recipient_refused_by_the_primary_fails_alone_without_failover(scenario):
    suite = scenario
    suite.primary.refused.add("f4-3@example.com")
    answers, posted_at = post_at_rate(suite, bodies("f4", 10), rate=10)
    row = failover_row("F4 postmark refuses one recipient", suite, answers, "f4", posted_at)
    assert (row["sent"], row["failed"], row["lost"]) == (9, 1, 0)
    assert row["by postmark"] == 9 and row["by amazon_ses"] == 0
    refused = Message.objects.get(to="f4-3@example.com")
    assert refused.status == "failed" and "Invalid 'To' address" in refused.error
    assert suite.secondary.requests == []
    assert circuit_state("postmark") == CircuitState.CLOSED


def test_5_both_down_for_60_seconds_then_the_secondary_returns(scenario):
    suite = scenario
    suite.primary.outage = SERVER_ERROR
    suite.secondary.outage = SES_DOWN
    answers, posted_at = post_at_rate(suite, bodies("f5", 20), rate=2)  # over 10 s
    time.sleep(50)
    assert Message.objects.filter(to__startswith="f5-", status="sent").count() == 0
    suite.secondary.outage = None
    row = failover_row("F5 both down 60 s, then amazon_ses back", suite, answers, "f5", posted_at)
    assert (row["sent"], row["lost"], row["expired"], row["failed"]) == (20, 0, 0, 0), row
    assert row["by amazon_ses"] == 20
    # within their code's life (EMAILS_CODE_TTL=120 here), each one sent once
    assert row["max s"] < 120 and row["duplicates"] == 0
    # tries are counted only before the circuits open (failed probes give theirs back): no
    # email comes near EMAILS_MAX_ATTEMPTS (6), however long the outage
    assert max(m.attempts for m in Message.objects.filter(to__startswith="f5-")) < 6


def test_6_a_worker_killed_while_the_circuit_is_open_comes_back_to_it_open(scenario):
    suite = scenario
    suite.primary.outage = SERVER_ERROR
    answers, posted_at = post_at_rate(suite, bodies("f6open", 6), rate=6)
    failover_row("F6 opening the circuit", suite, answers, "f6open", posted_at)
    assert circuit_state("postmark") == CircuitState.OPEN
    # (the circuit opened at the third failed try on postmark, by the stub's clock)
    opened = [r.at for r in suite.primary.requests][AFTER - 1]
    suite.stack.worker.stop(sig=signal.SIGKILL)
    suite.primary.outage = None  # postmark is fine again, but its circuit does not know it
    suite.primary.reset()
    suite.stack.restart_worker()
    wait_for(lambda: " ready." in suite.stack.worker.output(), timeout=60, what="the new worker")
    answers, posted_at = post_at_rate(suite, bodies("f6", 10), rate=10)
    row = failover_row("F6 worker SIGKILL, circuit open", suite, answers, "f6", posted_at)
    assert (row["sent"], row["lost"]) == (10, 0)
    probe_due = opened + COOLDOWN
    before_the_probe = [at for at in taken_at(suite.secondary, "f6").values() if at < probe_due]
    assert before_the_probe, "the new worker took longer than the cooldown to start"
    # the new worker sent nothing to postmark while its circuit was open...
    assert [r.at for r in suite.primary.requests if r.at < probe_due] == []
    # ...and at most one email probed it once the cooldown was over
    assert len(suite.primary.requests) <= 1
