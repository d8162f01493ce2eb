"""Operations through the real processes: gunicorn with the shipped config (two workers),
a Celery worker (prefork, two children) and beat, a Postmark stub, and a real Prometheus
scraping ``/metrics`` with the shipped alert rules.

After a known sequence of emails: each series holds exactly what happened, added up over
the processes' files (the web's accepts and the worker's sends in one scrape); Prometheus
reads them, evaluates every Grafana panel's and alert's expression without an error, and
the sweeper alert goes pending when beat stops; every log line is JSON, each state change of
an email is one line with its message_id, and no code or link is in any log."""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.multiprocess import MultiProcessCollector

from emails.models import DeliveryStat, Message, Template
from tests.factories import TemplateFactory
from tests.helpers import Samples, require_program
from tests.processes import Process, free_port, running, wait_for
from tests.test_faults import Stack, fault_database
from tests.test_monitoring_files import concrete_queries

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "stack-metrics-token"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
CODE = re.compile(r"\b(7\d{5})\b")  # every code this test sends is 7xxxxx
LINK = "https://auth.example.com/magic?token=LINKSECRET"


@pytest.fixture(scope="module")
def stack(django_db_setup, django_db_blocker):
    require_program("prometheus")
    folder = tempfile.mkdtemp(prefix="mailroom-metrics-test-")
    stack = Stack(
        fault_database(django_db_blocker),
        env=dict(
            EMAILS_METRICS_TOKEN=TOKEN,
            EMAILS_METRICS_DIR=folder,
            EMAILS_METRICS_QUEUE_CACHE="0",
            EMAILS_LOG_FORMAT="json",
            EMAILS_RATE_LIMIT_RECIPIENT="3/600",
            # Beat's first sweep comes one interval after it starts: soon, not in 30 s.
            EMAILS_SWEEP_INTERVAL="2",
        ),
        concurrency=2,
        web_config=str(ROOT / "project" / "gunicorn.conf.py"),
        web_workers=2,
    )
    stack.metrics_dir = folder
    wait_for(lambda: " ready." in stack.worker.output(), timeout=60, what="the worker")
    yield stack
    stack.stop()
    shutil.rmtree(folder, ignore_errors=True)


def scrape(stack) -> Samples:
    request = urllib.request.Request(
        f"http://127.0.0.1:{stack.port}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return Samples.parse(response.read().decode())


def body(to: str, code: str, **payload) -> dict:
    return {"to": to, "type": "SignIn", "payload": {"code": code, "locale": "en", **payload}}


@pytest.fixture(scope="module")
def sequence(stack, django_db_blocker):
    """The known sequence, once for the module's tests."""
    with django_db_blocker.unblock():
        Template.objects.all().delete()  # the starter templates: nothing serves Register
        TemplateFactory(usage_type="SignIn", locale="en")
        stack.stub.refused.add("refused@example.com")
        answers = stack.post_many(
            [body(f"user{i}@example.com", f"70000{i}") for i in range(6)]
            + [body("pt@example.com", "711111", locale="pt-BR")]  # served by en
            + [body("link@example.com", "722222", link=LINK)]
            + [body("refused@example.com", "733333")]  # the provider refuses it: failed
        )
        assert [status for status, _ in answers] == [200] * 9
        assert stack.post(body("user0@example.com", "700000"))[0] == 200  # the same: dedup
        for code in ("744441", "744442"):
            assert stack.post(body("user1@example.com", code))[0] == 200  # 3 for user1
        assert stack.post(body("user1@example.com", "744443"))[0] == 429
        assert stack.post({"to": "x@example.com", "type": "Register", "payload": {}})[0] == 422
        assert stack.post({"type": "SignIn", "payload": {}})[0] == 400

        def finished():
            return Message.objects.filter(status__in=["sent", "failed"]).count() == 11

        wait_for(finished, timeout=60, what="11 emails to finish")
        return {
            "ids": {m.to + m.payload.get("code", ""): str(m.pk) for m in Message.objects.all()},
            "sent": list(Message.objects.filter(status="sent").values_list("pk", flat=True)),
            "failed": list(Message.objects.filter(status="failed").values_list("pk", flat=True)),
        }


def test_every_series_holds_what_happened_added_up_over_the_processes(stack, sequence):
    value = scrape(stack).value

    messages = "mailroom_messages_total"
    assert value(messages, usage_type="SignIn", status="accepted") == 11
    assert value(messages, usage_type="SignIn", status="deduplicated") == 1
    assert value(messages, usage_type="SignIn", status="rate_limited") == 1
    assert value(messages, usage_type="Register", status="refused") == 1
    assert value(messages, usage_type="other", status="refused") == 1
    assert value(messages, usage_type="SignIn", status="sent") == 10  # by the worker
    assert value(messages, usage_type="SignIn", status="failed") == 1
    assert value("mailroom_provider_attempts_total", provider="postmark", outcome="sent") == 10
    assert value("mailroom_provider_attempts_total", provider="postmark", outcome="refused") == 1
    assert value("mailroom_delivery_seconds_count", usage_type="SignIn") == 10
    assert value("mailroom_accept_seconds_count") == 15
    fallback = dict(usage_type="SignIn", requested_locale="pt", served_locale="en")
    assert value("mailroom_template_fallback_total", **fallback) == 1
    assert value("mailroom_queue_depth", status="queued") == 0
    assert value("mailroom_database_up") == 1
    assert value("mailroom_build_info", providers="postmark", version="0.1.0") == 1
    wait_for(
        lambda: (
            scrape(stack).value("mailroom_sweeper_last_run_timestamp_seconds") > time.time() - 30
        ),
        timeout=30,
        what="beat's sweeper to have run",
    )

    # Each scrape, whichever gunicorn worker answers it, adds up the same files.
    for _ in range(6):
        assert scrape(stack).value(messages, usage_type="SignIn", status="sent") == 10

    # The accepts were counted by both gunicorn workers, the sends by the worker's children:
    # one folder per parent, one file per process.
    folders = [f.name.split("-")[0] for f in Path(stack.metrics_dir).iterdir() if f.is_dir()]
    assert sorted(folders) == ["web", "worker"]  # (no archive/: no process has gone)
    accepts_per_file = []
    for path in Path(stack.metrics_dir).glob("web-*/histogram_*.db"):
        for family in MultiProcessCollector.merge([str(path)]):
            for s in family.samples:
                if s.name == "mailroom_accept_seconds_count" and s.value:
                    accepts_per_file.append(s.value)
    assert sum(accepts_per_file) == 15

    # The Delivery page's counts, written by the worker.
    sent = DeliveryStat.objects.filter(kind="status", key="sent")
    assert sum(sent.values_list("count", flat=True)) == 10


def test_logs_are_json_with_one_line_per_state_change_and_no_secret(stack, sequence):
    records = []
    for process in (stack.web, stack.worker, stack.beat):
        for line in process.output().splitlines():
            assert not CODE.search(line), f"a code in the {process.name} log: {line}"
            assert "LINKSECRET" not in line and LINK not in line
            if line.startswith("{"):
                records.append(json.loads(line))
            elif process is not stack.web:
                # gunicorn's own access and error lines are text; the worker's lines are not
                # (Celery's start-up banner aside: no log record of its own).
                assert not re.match(r"\[?\d{4}-\d\d-\d\d", line), line
    assert records and all({"time", "level", "logger", "message"} <= set(r) for r in records)
    about = {}
    for record in records:
        if "message_id" in record:
            assert record["message_id"] in record["message"]
            about.setdefault(record["message_id"], []).append(record.get("state"))
    for message_id in map(str, sequence["sent"]):
        assert about[message_id].count("queued") == 1  # accepted
        assert about[message_id].count("sent") == 1
    [failed] = map(str, sequence["failed"])
    assert about[failed].count("failed") == 1


def prometheus_config(stack, folder: Path, port_of_prometheus: int) -> Path:
    token_file = folder / "token"
    token_file.write_text(TOKEN)
    config = folder / "prometheus.yml"
    config.write_text(
        json.dumps(  # YAML is a superset of JSON
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(ALERTS)],
                "scrape_configs": [
                    {
                        "job_name": "mailroom",
                        "authorization": {"type": "Bearer", "credentials_file": str(token_file)},
                        "static_configs": [{"targets": [f"127.0.0.1:{stack.port}"]}],
                    }
                ],
            }
        )
    )
    return config


def api(port: int, path: str, **query):
    url = f"http://127.0.0.1:{port}/api/v1/{path}?{urllib.parse.urlencode(query)}"
    with urllib.request.urlopen(url, timeout=10) as response:
        answer = json.loads(response.read())
    assert answer["status"] == "success", answer
    return answer["data"]


def test_a_real_prometheus_scrapes_it_and_evaluates_the_dashboard_and_alerts(stack, sequence):
    folder = Path(tempfile.mkdtemp(prefix="mailroom-prometheus-"))
    port = free_port()
    config = prometheus_config(stack, folder, port)
    prometheus = Process(
        "prometheus",
        [
            shutil.which("prometheus"),
            f"--config.file={config}",
            f"--storage.tsdb.path={folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        {"PATH": "/usr/bin:/bin"},
    )
    try:
        with running(prometheus):

            def sent_seen():
                try:
                    result = api(port, "query", query='sum(mailroom_messages_total{status="sent"})')
                except OSError:
                    return False
                return result["result"] and float(result["result"][0]["value"][1]) == 10

            wait_for(sent_seen, timeout=60, what="Prometheus to scrape the sent count")
            [target] = api(port, "targets")["activeTargets"]
            assert target["health"] == "up", target

            queries = concrete_queries()
            assert len(queries) >= 10
            for title, query in queries:
                answer = api(port, "query", query=query)  # a PromQL or name error fails here
                assert "result" in answer, title

            def rules_evaluated():
                groups = api(port, "rules")["groups"]
                rules = [rule for group in groups for rule in group["rules"]]
                evaluated = all(not rule["lastEvaluation"].startswith("0001") for rule in rules)
                return rules if rules and evaluated else None

            rules = wait_for(rules_evaluated, timeout=30, what="the alert rules to be evaluated")
            assert all(rule["health"] == "ok" for rule in rules), rules
            states = {rule["name"]: rule["state"] for rule in rules}
            assert states["MailroomSweeperLate"] == "inactive"
            assert states["MailroomQueueOld"] == "inactive"
            assert states["MailroomDatabaseDown"] == "inactive"

            # Beat stops: the sweeper's heartbeat ages past three intervals (1 s each here).
            stack.beat.stop()

            def sweeper_alert():
                groups = api(port, "rules")["groups"]
                for rule in (rule for group in groups for rule in group["rules"]):
                    if rule["name"] == "MailroomSweeperLate" and rule["state"] != "inactive":
                        return rule["state"]
                return None

            assert wait_for(sweeper_alert, timeout=30, what="the sweeper alert") in (
                "pending",
                "firing",
            )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
