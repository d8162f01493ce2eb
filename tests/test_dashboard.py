"""The admin's Delivery page in-process: who may see it, and that what it shows is what
happened (tests/test_browser.py draws it in Chromium)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from emails.delivery.stats import stats_compact, stats_for
from emails.models import DeliveryStat, Message, MessageStatus, Template
from tests.factories import MessageFactory, TemplateFactory
from tests.helpers import staff

pytestmark = pytest.mark.django_db
URL = "/admin/emails/message/delivery/"


def test_a_staff_user_needs_the_message_view_permission(client):
    assert staff("view_template").get(URL).status_code == 403
    assert staff("view_message").get(URL).status_code == 200
    assert client.get(URL).status_code == 302  # to the login page


def test_the_message_log_links_to_it():
    page = staff("view_message").get("/admin/emails/message/").content.decode()
    assert f'href="{URL}"' in page


def test_it_shows_what_happened(send, settings, django_assert_max_num_queries):
    Template.objects.all().delete()
    TemplateFactory(usage_type="SignIn", locale="en")
    TemplateFactory(usage_type="Register", locale="en", subject="{{ code|nosuchfilter }}")
    for number, locale in enumerate(["en", "en", "pt-BR", "pt-PT", "en"]):
        payload = {"code": f"10000{number}", "locale": locale}
        send({"to": f"u{number}@example.com", "type": "SignIn", "payload": payload})
    send({"to": "r@example.com", "type": "Register", "payload": {"code": "1", "locale": "en"}})
    MessageFactory(status=MessageStatus.QUEUED, created_at=timezone.now() - timedelta(minutes=4))
    assert Message.objects.filter(status="sent").count() == 5

    viewer = staff("view_message")
    with django_assert_max_num_queries(12):  # however many emails: from the counts table
        page = viewer.get(URL).content.decode()
    assert '<span class="value" id="tile-sent">5</span>' in page
    assert '<span class="value" id="tile-failed">1 · 0</span>' in page
    assert '<span class="value" id="tile-queued">1</span>' in page
    assert 'id="tile-oldest">24' in page  # 240 s
    assert '<th scope="row">template error</th><td>1</td>' in page
    # pt-BR and pt-PT asked (no Portuguese template: counted as pt), both served by en
    assert "<bdi>pt</bdi></th><td>2</td><td>100 %</td><td><bdi>en</bdi> (2)" in page
    assert '<script id="delivery-data" type="application/json">' in page
    assert "100000" not in page and "u0@example.com" not in page


def test_ranges_group_the_counts(settings):
    now = datetime(2026, 12, 2, 12, 30, tzinfo=UTC)
    for minutes_ago, count in [(1, 2), (30, 3), (300, 4), (3000, 5), (20000, 6)]:
        DeliveryStat.objects.create(
            minute=now - timedelta(minutes=minutes_ago), kind="status", key="sent", count=count
        )
        DeliveryStat.objects.create(
            minute=now - timedelta(minutes=minutes_ago), kind="latency", key="1", count=count
        )
    assert stats_for("hour", now=now).totals["sent"] == 5
    assert stats_for("day", now=now).totals["sent"] == 9
    week = stats_for("week", now=now)
    assert week.totals["sent"] == 14 and len(week.times) == 168
    assert sum(week.statuses["sent"]) == 14
    assert week.overall_p50 == pytest.approx(0.5 + 0.5 * 0.5)  # in the (0.5, 1] bucket
    hour = stats_for("hour", now=now)
    assert len(hour.times) == 60 and hour.bucket_seconds == 60


def test_an_unknown_range_is_the_last_hour():
    page = staff("view_message").get(URL, {"range": "decade"}).content.decode()
    assert 'href="?range=hour" aria-current="page"' in page


def test_folding_old_counts_changes_no_figure_of_any_range():
    now = datetime(2026, 12, 2, 12, 30, 17, tzinfo=UTC)
    for minutes_ago in range(0, 8 * 24 * 60 + 120, 7):
        minute = (now - timedelta(minutes=minutes_ago)).replace(second=0, microsecond=0)
        for kind, key in [("status", "sent"), ("latency", "2"), ("reason", "code expired")]:
            DeliveryStat.objects.create(minute=minute, kind=kind, key=key, count=minutes_ago % 5)
    before = {name: stats_for(name, now=now) for name in ("hour", "day", "week")}
    rows = DeliveryStat.objects.count()

    folded = stats_compact(now)

    assert folded > 0 and DeliveryStat.objects.count() < rows / 3
    assert {name: stats_for(name, now=now) for name in before} == before
    assert not DeliveryStat.objects.filter(minute__lt=now - timedelta(days=8)).exists()
    assert stats_compact(now) == 0  # nothing left to fold
