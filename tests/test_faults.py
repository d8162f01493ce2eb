"""The fault suite: real PostgreSQL, a private redis-server, real gunicorn, `celery worker`
and `celery beat` processes, and a local server speaking Postmark's API that fails on request.
Every scenario counts what Logto was told (accepted) against what reached the provider.

"lost" = accepted, yet neither delivered nor deliberately failed/expired. It must be 0.
"duplicates" = deliveries beyond the first to one recipient: Mailroom is at-least-once, and a
worker killed after the provider took an email but before recording it sends it again.
"""

from __future__ import annotations

import signal
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from emails.models import FINAL_STATUSES, Message, MessageStatus
from tests.factories import MessageFactory, TemplateFactory
from tests.helpers import (
    AUTHORIZATION,
    FAULT_SUMMARY,
    celery_broker,
    require_postgres,
    require_program,
)
from tests.processes import (
    RedisServer,
    TcpProxy,
    celery_beat,
    celery_worker,
    database_url,
    free_port,
    gunicorn,
    post_to_logto_endpoint,
    service_env,
    wait_for,
)
from tests.stubs import ProviderStub

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

SETTLE_TIMEOUT = 120


class Stack:
    """Everything running, each part replaceable by a scenario."""

    def __init__(
        self,
        database: dict,
        *,
        stubs: list[ProviderStub] | None = None,
        env: dict | None = None,
        concurrency: int = 2,
        web_config: str | None = None,
        web_workers: int = 1,
    ):
        """``env`` adds to (or replaces) the provider settings, for ``stubs`` (started; the
        first, ``self.stub``, is the Postmark the default settings point at). ``web_config``
        and ``web_workers``: gunicorn's config file and worker count."""
        self.stubs = stubs or [ProviderStub().start()]
        self.stub = self.stubs[0]
        self.concurrency = concurrency
        self.redis = RedisServer().start()
        self.proxy = TcpProxy(
            database.get("HOST") or "127.0.0.1", int(database.get("PORT") or 5432)
        ).start()
        self.schedule_dir = tempfile.mkdtemp(prefix="mailroom-beat-")
        common = dict(
            CELERY_BROKER_URL=f"{self.redis.url}/0",
            LOGTO_AUTHORIZATION=AUTHORIZATION,
            EMAIL_PROVIDER="postmark",
            ANYMAIL_POSTMARK_SERVER_TOKEN="fault-suite-token",
            ANYMAIL_POSTMARK_API_URL=self.stub.url,
            EMAILS_SWEEP_INTERVAL="1",
            EMAILS_REPUBLISH_AFTER="3",
            EMAILS_SEND_TIME_LIMIT="4",
            EMAILS_SENDING_TIMEOUT="6",
            EMAILS_RETRY_BASE_DELAY="0.5",
            EMAILS_CODE_TTL="120",
        )
        common.update(env or {})
        direct = database_url(database)
        self.worker_env = service_env(DATABASE_URL=direct, **common)
        queue = self.worker_env["CELERY_TASK_DEFAULT_QUEUE"]
        via_proxy = database_url({**database, "HOST": "127.0.0.1", "PORT": self.proxy.port})
        self.web_env = service_env(
            DATABASE_URL=via_proxy + "?connect_timeout=2", CELERY_TASK_DEFAULT_QUEUE=queue, **common
        )
        self.port = free_port()
        self.processes = []
        self.web = self._keep(
            gunicorn(self.web_env, self.port, config=web_config, workers=web_workers)
        )
        self.worker = self._keep(celery_worker(self.worker_env, concurrency=concurrency))
        self.beat = self._keep(celery_beat(self.worker_env, self.schedule_dir))

    def _keep(self, process):
        self.processes.append(process)
        return process

    def restart_worker(self):
        self.worker = self._keep(celery_worker(self.worker_env, concurrency=self.concurrency))

    def delivered(self) -> list[str]:
        """The recipient of every email a provider stub took, repeats included."""
        return [to for stub in self.stubs for to in stub.accepted_recipients()]

    def post(self, body: dict) -> tuple[int, dict]:
        return post_to_logto_endpoint(self.port, body, AUTHORIZATION)

    def post_many(self, bodies: list[dict], threads: int = 4) -> list[tuple[int, dict]]:
        with ThreadPoolExecutor(threads) as pool:
            return list(pool.map(self.post, bodies))

    def logs(self) -> str:
        return "\n".join(f"----- {p.name} -----\n{p.output()[-4000:]}" for p in self.processes)

    def stop(self):
        for process in self.processes:
            process.stop()
        self.proxy.stop()
        self.redis.stop()
        for stub in self.stubs:
            stub.stop()


def fault_database(django_db_blocker) -> dict:
    """The test database's settings for the processes, once PostgreSQL and redis-server are
    known to be here (skipped, or failed under CI=true, when not)."""
    require_postgres()
    require_program("redis-server")
    with django_db_blocker.unblock():
        return dict(connection.settings_dict)


@pytest.fixture(scope="module")
def stack(django_db_setup, django_db_blocker):
    stack = Stack(fault_database(django_db_blocker))
    yield stack
    stack.stop()


@pytest.fixture
def scenario(stack, request):
    """A clean stub and templates for each scenario; process logs shown if it fails."""
    stack.stub.reset()
    TemplateFactory(usage_type="SignIn", locale="en")
    yield stack
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(stack.logs())


def bodies(prefix: str, count: int) -> list[dict]:
    return [
        {
            "to": f"{prefix}-{i}@example.com",
            "type": "SignIn",
            "payload": {"code": f"{i:06d}", "locale": "en"},
        }
        for i in range(count)
    ]


def settle(stack: Stack, ids: list[str]) -> dict[str, Message]:
    """Wait until every message is final and every sent one has reached the stub."""

    def settled():
        messages = {str(m.pk): m for m in Message.objects.filter(pk__in=ids)}
        if len(messages) < len(ids) or any(
            m.status not in FINAL_STATUSES for m in messages.values()
        ):
            return None
        delivered = set(stack.delivered())
        if any(m.to not in delivered for m in messages.values() if m.status == MessageStatus.SENT):
            return None
        return messages

    try:
        return wait_for(settled, timeout=SETTLE_TIMEOUT, interval=0.5, what="messages to settle")
    except AssertionError:
        counts = {}
        for message in Message.objects.filter(pk__in=ids):
            counts[message.status] = counts.get(message.status, 0) + 1
        print(f"not settled: {counts}\n{stack.logs()}")
        raise


def account(name: str, stack: Stack, answers, prefix: str) -> dict:
    """Count what Logto was told against what reached the provider; record the row."""
    accepted = {answer["id"] for status, answer in answers if status == 200}
    messages = settle(stack, list(accepted))
    delivered = [to for to in stack.delivered() if to.startswith(prefix + "-")]
    by_status = {
        status: [m for m in messages.values() if m.status == status] for status in FINAL_STATUSES
    }
    intended_not_sent = {
        m.to for m in by_status[MessageStatus.FAILED] + by_status[MessageStatus.EXPIRED]
    }
    accepted_to = {m.to for m in messages.values()}
    row = {
        "scenario": name,
        "accepted": len(accepted),
        "sent": len(set(delivered)),
        "duplicates": len(delivered) - len(set(delivered)),
        "failed": len(by_status[MessageStatus.FAILED]),
        "expired": len(by_status[MessageStatus.EXPIRED]),
        "lost": len(accepted_to - set(delivered) - intended_not_sent),
        "retries": sum(max(0, m.attempts - 1) for m in messages.values()),
    }
    FAULT_SUMMARY.append(row)
    return row


def test_1_worker_killed_mid_batch_loses_nothing(scenario):
    stack = scenario
    stack.stub.delay = 0.03  # keep sends in flight when the kill lands
    batch = bodies("s1", 200)
    with ThreadPoolExecutor(1) as pool:
        posting = pool.submit(stack.post_many, batch)
        wait_for(
            lambda: len(stack.stub.accepted_recipients()) >= 40,
            timeout=60,
            what="the first 40 emails to arrive",
        )
        # SIGKILL the whole worker (parent and pool children) in the middle of the batch.
        stack.worker.stop(sig=signal.SIGKILL)
        time.sleep(1)
        stack.restart_worker()
        answers = posting.result()

    assert [status for status, _ in answers] == [200] * 200
    row = account("1 worker SIGKILL mid 200", stack, answers, "s1")
    if row["duplicates"]:
        row["why duplicates"] = (
            "the kill landed after Postmark took an email but before the worker recorded it "
            "sent; the sweeper handed it out again (at-least-once, by design)"
        )
    assert (row["sent"], row["lost"], row["failed"]) == (200, 0, 0)


def test_2_redis_down_while_posts_arrive(scenario):
    stack = scenario
    stack.redis.stop()
    answers = stack.post_many(bodies("s2", 100))
    assert [status for status, _ in answers] == [200] * 100
    assert Message.objects.filter(status=MessageStatus.QUEUED).count() == 100
    stack.redis.start()  # same port, empty: the sweeper republishes from the database
    row = account("2 Redis stopped during 100 POSTs", stack, answers, "s2")
    assert (row["sent"], row["lost"]) == (100, 0)


def test_3_provider_500s_are_retried(scenario):
    stack = scenario
    stack.stub.fail_next(10, 500, {"ErrorCode": 500, "Message": "Internal Server Error"})
    answers = stack.post_many(bodies("s3", 20))
    row = account("3 provider 500 x10", stack, answers, "s3")
    assert (row["sent"], row["lost"], row["failed"]) == (20, 0, 0)
    assert row["retries"] >= 10
    retried = Message.objects.filter(attempts__gt=1, status=MessageStatus.SENT)
    assert retried.exists()
    for message in retried:
        retries = message.events.filter(event_type="retry")
        assert retries.count() == message.attempts - 1
        assert all("500" in event.description for event in retries)


def test_4_provider_429_retry_after_is_honoured(scenario):
    stack = scenario
    stack.stub.fail_next(5, 429, {"ErrorCode": 429, "Message": "Rate limit"}, {"Retry-After": "2"})
    answers = stack.post_many(bodies("s4", 5), threads=5)
    row = account("4 provider 429 Retry-After 2s", stack, answers, "s4")
    assert (row["sent"], row["lost"]) == (5, 0)
    for to in {r.json()["To"] for r in stack.stub.requests if r.status == 429}:
        tries = [r for r in stack.stub.requests if r.json()["To"] == to]
        first_refusal = next(r.at for r in tries if r.status == 429)
        success = next(r.at for r in tries if r.status == 200)
        assert success - first_refusal >= 2.0, to


def test_5_refused_recipient_fails_alone_without_retry(scenario):
    stack = scenario
    stack.stub.refused.add("s5-3@example.com")
    answers = stack.post_many(bodies("s5", 10))
    row = account("5 recipient refused (422/300)", stack, answers, "s5")
    assert (row["sent"], row["failed"], row["lost"]) == (9, 1, 0)
    refused = Message.objects.get(to="s5-3@example.com")
    assert refused.status == MessageStatus.FAILED and refused.attempts == 1
    assert len([r for r in stack.stub.requests if r.json()["To"] == "s5-3@example.com"]) == 1


def test_6_database_unreachable_at_accept_answers_503(scenario):
    stack = scenario
    batch = bodies("s6", 60)
    answers = []

    def post_all():
        for body in batch:
            answers.append((body["to"], *stack.post(body)))
            time.sleep(0.02)

    with ThreadPoolExecutor(1) as pool:
        posting = pool.submit(post_all)
        for _ in range(3):  # cut PostgreSQL away from the web server three times
            time.sleep(0.3)
            stack.proxy.cut()
            time.sleep(0.3)
            stack.proxy.restore()
        posting.result()

    statuses = [status for _, status, _ in answers]
    assert set(statuses) <= {200, 503} and statuses.count(503) > 0
    for _, status, body in answers:
        if status == 503:
            assert body == {
                "message": "Email service is temporarily unavailable. Please try again."
            }
    accepted_ids = {body["id"] for _, status, body in answers if status == 200}
    stored = set(map(str, Message.objects.values_list("pk", flat=True)))
    # Never a 200 for a message that is not stored.
    assert accepted_ids <= stored
    row = account("6 PostgreSQL cut at accept", stack, [(s, b) for _, s, b in answers], "s6")
    row["answered 503"] = statuses.count(503)
    assert row["lost"] == 0


def test_7_codes_past_their_ttl_are_expired_not_sent(scenario):
    stack = scenario
    # Given code emails accepted 11 minutes ago that never went out (everything was down)
    long_ago = timezone.now() - timedelta(seconds=660)
    stale = [
        MessageFactory(
            to=f"s7-{i}@example.com",
            created_at=long_ago,
            next_attempt_at=long_ago,
            expires_at=long_ago + timedelta(seconds=600),
        )
        for i in range(10)
    ]
    # ...half of them still have a task in the broker, the others only the sweeper will find
    with celery_broker(f"{stack.redis.url}/0") as app:
        for message in stale[:5]:
            app.send_task(
                "emails.tasks.deliver_message",
                args=[str(message.pk)],
                queue=stack.worker_env["CELERY_TASK_DEFAULT_QUEUE"],
            )
    fresh = stack.post_many(bodies("s7-fresh", 1))
    answers = [(200, {"id": str(m.pk)}) for m in stale] + fresh
    row = account("7 codes older than the TTL", stack, answers, "s7")
    assert (row["expired"], row["sent"], row["lost"]) == (10, 1, 0)
    assert [r.json()["To"] for r in stack.stub.requests] == ["s7-fresh-0@example.com"]
    assert all("code" not in m.payload for m in Message.objects.filter(status="expired"))
