"""GET /metrics in-process: who may read it, and what a known sequence of emails adds to each
series (tests/test_operations_stack.py does the same through real gunicorn and Celery
processes, added up over their files, and scraped by a real Prometheus)."""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.core import mail
from django.test import Client, TestCase
from django.utils import timezone
from prometheus_client import REGISTRY

from emails import metrics
from emails.delivery.stats import latency_key, quantile, reason_of
from emails.delivery.sweeper import messages_purge, messages_sweep
from emails.metrics import MAX_FALLBACK_SERIES, count_fallback, locale_label
from emails.models import DeliveryStat, Message, MessageStatus, Template
from emails.operations import metrics as operations_metrics
from project.metrics_files import MULTIPROCESS_VARIABLE, UnsafeFolder, start_role
from tests.database import database_refusing
from tests.factories import MessageFactory, TemplateFactory
from tests.helpers import Samples

TOKEN = "metrics-test-token"
pytestmark = pytest.mark.django_db


def sample(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def scrape(token: str = TOKEN) -> Samples:
    response = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    return Samples.parse(response.content.decode())


@pytest.fixture
def metrics_token(settings):
    settings.EMAILS_METRICS_TOKEN = TOKEN
    settings.DEBUG = False


@pytest.fixture(autouse=True)
def fresh_database_state():
    """Each test reads the database's gauges afresh, not another test's cached ones."""
    operations_metrics._cache.clear()
    yield
    operations_metrics._cache.clear()


def test_without_a_token_metrics_are_off_in_production(settings):
    settings.EMAILS_METRICS_TOKEN = ""
    settings.DEBUG = False
    assert Client().get("/metrics").status_code == 404


def test_in_development_without_a_token_they_are_open(settings):
    settings.EMAILS_METRICS_TOKEN = ""
    settings.DEBUG = True
    assert Client().get("/metrics").status_code == 200


@pytest.mark.parametrize(
    "header",
    ["", "Bearer wrong", f"bearer {TOKEN}", f"Bearer {TOKEN} ", TOKEN, f"Basic {TOKEN}"],
)
def test_a_wrong_or_missing_bearer_token_is_401(metrics_token, header):
    response = Client().get("/metrics", HTTP_AUTHORIZATION=header)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert b"mailroom_" not in response.content


def test_metrics_skip_the_host_check_like_the_probes(metrics_token, settings):
    settings.ALLOWED_HOSTS = ["mailroom.example.com"]
    response = Client().get(
        "/metrics", HTTP_HOST="10.0.3.7:8000", HTTP_AUTHORIZATION=f"Bearer {TOKEN}"
    )
    assert response.status_code == 200


def test_a_known_sequence_of_emails_adds_up(metrics_token, send, settings):
    settings.EMAILS_RATE_LIMIT_RECIPIENT = "2/600"
    settings.EMAILS_METRICS_QUEUE_CACHE = 0  # the scrape after reads the queue after
    Template.objects.all().delete()  # the starter templates: no Generic to fall back to
    TemplateFactory(usage_type="SignIn", locale="en")
    TemplateFactory(usage_type="SignIn", locale="de")
    before = scrape()

    def body(to, code, locale="en", usage_type="SignIn"):
        payload = {"code": code, "locale": locale}
        return {"to": to, "type": usage_type, "payload": payload}

    assert send(body("a@example.com", "111111")).status_code == 200
    assert send(body("a@example.com", "111111")).status_code == 200  # the same: deduplicated
    assert send(body("a@example.com", "222222", locale="pt-BR")).status_code == 200  # → en
    assert send(body("a@example.com", "333333")).status_code == 429  # 2 per 10 minutes
    assert send(body("b@example.com", "444444", locale="de")).status_code == 200
    assert send(body("c@example.com", "555555", usage_type="Register")).status_code == 422
    assert send({"type": "SignIn", "payload": {}}).status_code == 400  # no "to"
    assert len(mail.outbox) == 3

    after = scrape()

    def added(name, **labels):
        return after.value(name, **labels) - before.value(name, **labels)

    messages = "mailroom_messages_total"
    assert added(messages, usage_type="SignIn", status="accepted") == 3
    assert added(messages, usage_type="SignIn", status="deduplicated") == 1
    assert added(messages, usage_type="SignIn", status="rate_limited") == 1
    assert added(messages, usage_type="Register", status="refused") == 1
    assert added(messages, usage_type="other", status="refused") == 1
    assert added(messages, usage_type="SignIn", status="sent") == 3
    assert added("mailroom_accept_seconds_count") == 7
    assert added("mailroom_delivery_seconds_count", usage_type="SignIn") == 3
    assert added("mailroom_provider_attempts_total", provider="locmem", outcome="sent") == 3
    fallback = dict(usage_type="SignIn", requested_locale="pt", served_locale="en")
    assert added("mailroom_template_fallback_total", **fallback) == 1
    assert after[("mailroom_queue_depth", (("status", "queued"),))] == 0
    assert after[("mailroom_database_up", ())] == 1
    assert after[("mailroom_build_info", (("providers", "locmem"), ("version", "0.1.0")))] == 1

    # Labels carry no address, code or id.
    text = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content.decode()
    for secret in ("a@example.com", "example.com", "111111", "222222", "444444"):
        assert secret not in text
    for message in Message.objects.all():
        assert str(message.pk) not in text


def test_a_failed_send_and_an_expired_code_are_counted(metrics_token, send, settings):
    TemplateFactory(usage_type="SignIn", locale="en", subject="{{ code|nosuchfilter }}")
    failed_before = sample("mailroom_messages_total", usage_type="SignIn", status="failed")
    payload = {"code": "909090", "locale": "en"}
    assert send({"to": "t@example.com", "type": "SignIn", "payload": payload}).status_code == 200
    assert Message.objects.get().status == MessageStatus.FAILED
    assert sample("mailroom_messages_total", usage_type="SignIn", status="failed") == (
        failed_before + 1
    )

    expired_before = sample("mailroom_messages_total", usage_type="SignIn", status="expired")
    MessageFactory(expires_at=timezone.now() - timedelta(seconds=1), usage_type="SignIn")
    with TestCase.captureOnCommitCallbacks(execute=True):
        report = messages_sweep()
    assert report.expired == 1
    assert sample("mailroom_messages_total", usage_type="SignIn", status="expired") == (
        expired_before + 1
    )
    reasons = dict(DeliveryStat.objects.filter(kind="reason").values_list("key", "count"))
    assert reasons == {"template error": 1, "code expired": 1}


def test_the_queue_gauges_read_the_database_and_are_cached(metrics_token, settings):
    settings.EMAILS_METRICS_QUEUE_CACHE = 0
    MessageFactory(status=MessageStatus.QUEUED, created_at=timezone.now() - timedelta(minutes=3))
    MessageFactory(status=MessageStatus.SENDING)
    first = scrape()
    assert first[("mailroom_queue_depth", (("status", "queued"),))] == 1
    assert first[("mailroom_queue_depth", (("status", "sending"),))] == 1
    assert 175 < first[("mailroom_oldest_queued_seconds", ())] < 200

    settings.EMAILS_METRICS_QUEUE_CACHE = 60
    scrape()
    MessageFactory(status=MessageStatus.QUEUED)
    assert scrape()[("mailroom_queue_depth", (("status", "queued"),))] == 1  # from the cache


def test_fallback_labels_stay_bounded(monkeypatch):
    monkeypatch.setattr(metrics, "_fallback_series", set())
    served = frozenset({"en", "de", "zh-TW"})
    assert locale_label("zh-TW", served=served) == "zh-TW"
    assert locale_label("pt-BR", served=served) == "pt"
    assert locale_label("x-klingon", served=served) == "other"
    assert locale_label("user@example.com", served=served) == "other"
    # However many languages users ask for, a process keeps a bounded number of series.
    asked = [chr(97 + i // 26 % 26) + chr(97 + i % 26) for i in range(MAX_FALLBACK_SERIES + 50)]
    for language in asked:
        count_fallback("SignIn", f"{language}-XX", "en", locales=served)
    series = {
        s.labels["requested_locale"]
        for family in REGISTRY.collect()
        if family.name == "mailroom_template_fallback"
        for s in family.samples
        if s.name.endswith("_total") and s.labels["requested_locale"] in asked and s.value
    }
    assert series == set(asked[:MAX_FALLBACK_SERIES])  # the rest went to "other"
    assert metrics._fallback_series >= {("SignIn", "other", "other")}


def test_the_hourly_purge_keeps_the_dashboard_counts_a_week_and_a_day():
    DeliveryStat.objects.create(
        minute=timezone.now() - timedelta(days=9), kind="status", key="sent", count=3
    )
    DeliveryStat.objects.create(
        minute=timezone.now() - timedelta(days=6), kind="status", key="sent", count=4
    )
    messages_purge()
    assert list(DeliveryStat.objects.values_list("count", flat=True)) == [4]


def test_quantiles_interpolate_like_prometheus():
    assert quantile(0.5, {}) is None
    assert quantile(0.5, {"0.5": 10}) == pytest.approx(0.375)
    assert quantile(0.95, {"0.25": 90, "1": 10}) == pytest.approx(0.75)
    assert quantile(0.99, {"+Inf": 5}) == 900  # the open bucket: its lower bound
    assert latency_key(0.1) == "0.25" and latency_key(0.26) == "0.5" and latency_key(1e6) == "+Inf"
    assert reason_of("expired", "") == "code expired"
    assert reason_of("failed", "template error: x") == "template error"
    assert reason_of("failed", "gave up retrying: 503") == "retries exhausted"
    assert reason_of("failed", "422 Invalid 'To' address") == "refused by provider"


def scraped(name: str, **labels) -> float:
    return scrape().value(name, **labels)


def test_every_series_starts_at_zero(metrics_token):
    """A series that appears with its first increment is not counted by rate()."""
    metrics = scrape()
    for status in ("failed", "expired", "unavailable"):
        assert (
            "mailroom_messages_total",
            (("status", status), ("usage_type", "BindMfa")),
        ) in metrics
    key = ("mailroom_provider_attempts_total", (("outcome", "timed_out"), ("provider", "locmem")))
    assert key in metrics


def test_a_wrong_secret_is_counted(metrics_token, api):
    before = scraped("mailroom_messages_total", usage_type="other", status="unauthorized")
    api.credentials(HTTP_AUTHORIZATION="Bearer not-the-secret")
    assert api.post("/api/logto/email", {}, format="json").status_code == 401
    after = scraped("mailroom_messages_total", usage_type="other", status="unauthorized")
    assert after == before + 1


@pytest.mark.django_db(transaction=True)
def test_a_database_outage_is_counted(metrics_token, post_email):
    before = sample("mailroom_messages_total", usage_type="SignIn", status="unavailable")
    body = {"to": "o@example.com", "type": "SignIn", "payload": {"code": "1", "locale": "en"}}
    with database_refusing():
        assert post_email(body).status_code == 503
    assert sample("mailroom_messages_total", usage_type="SignIn", status="unavailable") == (
        before + 1
    )


@pytest.mark.django_db(transaction=True)
def test_with_the_database_down_metrics_still_answer_and_say_so(
    metrics_token, settings, monkeypatch
):
    settings.EMAILS_METRICS_QUEUE_CACHE = 0
    with database_refusing(password="s3cret-db-password"):
        started = time.monotonic()
        response = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
        took = time.monotonic() - started
    assert response.status_code == 200 and took < 5
    text = response.content.decode()
    assert "mailroom_database_up 0.0" in text
    assert "mailroom_messages_total{" in text  # the counters need no database
    assert "mailroom_sweeper_interval_seconds" in text
    assert "mailroom_queue_depth" not in text  # unknown, not a made-up 0
    assert "s3cret" not in text and "127.0.0.1" not in text
    # It answers again: the next read waits out the pause (one slow scrape per outage, not
    # one per scrape), then the queue's gauges are back.
    again = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content.decode()
    assert "mailroom_database_up 0.0" in again
    monkeypatch.setattr(operations_metrics, "FAILED_READ_PAUSE", 0)
    again = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content.decode()
    assert "mailroom_database_up 1.0" in again and "mailroom_queue_depth{" in again


def test_a_gone_process_folder_is_archived_and_a_live_one_kept(tmp_path, monkeypatch):
    from prometheus_client.mmap_dict import MmapedDict, mmap_key

    monkeypatch.setenv(MULTIPROCESS_VARIABLE, "")  # restored afterwards
    live = start_role("web", str(tmp_path))  # its lock held by this process
    key = mmap_key("mailroom_messages", "mailroom_messages_total", ["status"], ["sent"], "")
    gone = tmp_path / "worker-0123456789ab"
    gone.mkdir()
    (gone / ".owner").touch()  # nobody holds its lock
    for pid, value in ((11, 5.0), (12, 2.0)):
        store = MmapedDict(str(gone / f"counter_{pid}.db"))
        store.write_value(key, value, 0.0)
        store.close()

    mine = start_role("worker", str(tmp_path))

    assert os.environ[MULTIPROCESS_VARIABLE] == mine
    names = sorted(p.name for p in tmp_path.iterdir() if p.is_dir())
    assert names == sorted(["archive", Path(live).name, Path(mine).name])
    archived = MmapedDict.read_all_values_from_file(str(tmp_path / "archive/counter_archive.db"))
    assert [(k, v) for k, v, _t, _p in archived] == [(key, 7.0)]  # the sum never goes down


@pytest.mark.parametrize("unsafe", ["anyone may write", "a symlink", "a parent anyone may write"])
def test_an_unsafe_folder_is_refused(tmp_path, monkeypatch, unsafe):
    monkeypatch.setenv(MULTIPROCESS_VARIABLE, "unchanged")
    folder = tmp_path / "metrics"
    if unsafe == "a symlink":
        (tmp_path / "elsewhere").mkdir()
        folder.symlink_to(tmp_path / "elsewhere")
    elif unsafe == "anyone may write":
        folder.mkdir()
        folder.chmod(0o777)
    else:
        tmp_path.chmod(0o777)
    with pytest.raises(UnsafeFolder):
        start_role("web", str(folder))
    assert os.environ[MULTIPROCESS_VARIABLE] == "unchanged"
    if unsafe == "a symlink":
        assert list((tmp_path / "elsewhere").iterdir()) == []
    tmp_path.chmod(0o700)


def test_under_gunicorn_without_added_up_files_metrics_refuse(metrics_token):
    response = Client().get(
        "/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}", SERVER_SOFTWARE="gunicorn/23.0.0"
    )
    assert response.status_code == 503
    assert "gunicorn.conf.py" in response.json()["message"]
