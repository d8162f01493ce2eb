"""The message log at millions of rows (emails/backoffice/message_list.py, issue 18): a count
that gives up, exact searches through their index, filters that read no whole table, and
migrations that never hold emails_message's lock for long (docs/benchmarks.md measures each
at 10 million rows; these tests check the mechanisms on PostgreSQL)."""

from __future__ import annotations

import logging
import re
from datetime import timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test.utils import CaptureQueriesContext

from emails.backoffice import message_list
from emails.models import Message, ProviderCircuit
from tests.factories import MessageFactory
from tests.settings import POSTGRES_AVAILABLE

pytestmark = pytest.mark.django_db

LIST = "/admin/emails/message/"
on_postgres = pytest.mark.skipif(
    not POSTGRES_AVAILABLE, reason="PostgreSQL's planner, time limits and locks"
)


def copies(message: Message, count: int) -> None:
    """``count`` more rows like ``message`` (one INSERT ... SELECT), each a second older."""
    columns = [
        f.column for f in Message._meta.concrete_fields if f.column not in ("id", "created_at")
    ]
    quoted = ", ".join(connection.ops.quote_name(c) for c in columns)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO emails_message (id, created_at, {quoted}) "  # noqa: S608
            f"SELECT gen_random_uuid(), created_at - g * interval '1 second', {quoted} "
            "FROM emails_message, generate_series(1, %s) g WHERE id = %s",
            [count, message.pk],
        )


@on_postgres
@pytest.mark.parametrize("counted_up_to", [10_000, 10**9], ids=["estimate", "time-limit"])
def test_a_long_count_gives_way_to_the_estimate(admin_client, monkeypatch, counted_up_to):
    """Django's admin counts the whole list. Here a list the planner expects to be long is not
    counted, and a count that takes too long is given up: the page says "about N"."""
    # Given 200,001 messages, and a count allowed one millisecond
    first = MessageFactory(to="many@example.com", dedup_key=None)
    copies(first, 200_000)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE emails_message")
    monkeypatch.setattr(message_list, "COUNT_TIME_LIMIT_MS", 1)
    monkeypatch.setattr(message_list, "COUNT_EXACTLY_UP_TO", counted_up_to)

    # When an operator opens the message log, its last page, and one past it
    page = admin_client.get(LIST)
    far = admin_client.get(LIST + "?p=100")
    beyond = admin_client.get(LIST + "?p=101")

    # Then it lists the newest 100 and says about how many there are
    assert page.status_code == 200
    assert len(page.context["cl"].result_list) == 100
    counted = re.search(r"about (\d+) messages", page.content.decode())
    assert counted, "the paginator should say 'about N messages'"
    assert 150_000 < int(counted.group(1)) < 250_000  # the planner's estimate
    # and pages through the newest 100 pages (deeper is an OFFSET over every row before it)
    assert far.status_code == 200 and len(far.context["cl"].result_list) == 100
    assert beyond.status_code == 302  # Django admin's "?e=1": no such page
    # and the time limit was the count's alone: the connection is back to none
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone()[0] == "0"


def test_a_quick_count_is_exact(admin_client):
    MessageFactory.create_batch(3)
    if connection.vendor == "postgresql":  # the planner's statistics, whatever ran before
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE emails_message")
            cursor.execute("SET LOCAL statement_timeout = '7s'")
    page = admin_client.get(LIST).content.decode()
    assert "3 messages" in page
    if connection.vendor == "postgresql":  # the count's time limit was its own
        with connection.cursor() as cursor:
            cursor.execute("SHOW statement_timeout")
            assert cursor.fetchone()[0] == "7s"
    assert "about" not in re.search(r'<p class="paginator">(.*?)</p>', page, re.S).group(1)


def test_search_finds_an_address_or_an_id_exactly(admin_client):
    # Given messages to two people, one with the provider's id
    ann = MessageFactory(to="Ann.Lee@Example.com", provider_message_id="pm-7f3a")
    MessageFactory(to="ann@example.com")
    bob = MessageFactory(to="bob@example.com")

    def found(term):
        page = admin_client.get(LIST, {"q": term})
        assert page.status_code == 200
        return {m.pk for m in page.context["cl"].result_list}

    # Then an address is found whatever its case, and only whole
    assert found("ann.lee@example.COM") == {ann.pk}
    assert found("lee@example.com") == set()
    assert found("  bob@example.com ") == {bob.pk}
    # and the provider's message id or the message's own id finds that message
    assert found("pm-7f3a") == {ann.pk}
    assert found(str(bob.pk)) == {bob.pk}
    assert found("pm-7f") == set()
    smtp = MessageFactory(to="carol@example.com", provider_message_id="<17.42@mail.example>")
    assert found("<17.42@mail.example>") == {smtp.pk}
    assert "Exact: a full recipient address" in admin_client.get(LIST).content.decode()


def test_provider_filter_lists_configured_providers_without_reading_messages(
    admin_client, settings
):
    # Given two configured providers, a third that has a circuit, and messages of each
    settings.EMAIL_PROVIDERS = {
        "postmark": "anymail.backends.postmark.EmailBackend",
        "sendgrid": "anymail.backends.sendgrid.EmailBackend",
    }
    ProviderCircuit.objects.create(provider="mailgun")
    postmark = MessageFactory(provider="postmark")
    MessageFactory(provider="sendgrid")

    # When the log is opened, and filtered by one provider
    with CaptureQueriesContext(connection) as captured:
        page = admin_client.get(LIST).content.decode()
    queries = list(captured)  # the next request clears the connection's log
    filtered = admin_client.get(LIST, {"provider": "postmark"})

    # Then the filter offers the three, and the page read no DISTINCT of emails_message
    for name in ("postmark", "sendgrid", "mailgun"):
        assert f"?provider={name}" in page
    distinct = [
        q["sql"] for q in queries if "DISTINCT" in q["sql"] and "emails_message" in q["sql"]
    ]
    assert distinct == [], distinct
    assert any("emails_providercircuit" in q["sql"] for q in queries)
    assert [m.pk for m in filtered.context["cl"].result_list] == [postmark.pk]


def test_usage_type_filter_lists_logto_types(admin_client):
    register = MessageFactory(usage_type="Register")
    MessageFactory(usage_type="SignIn")
    page = admin_client.get(LIST).content.decode()
    for usage_type in ("SignIn", "Register", "OrganizationInvitation", "BindMfa"):
        assert f"?usage_type={usage_type}" in page
    filtered = admin_client.get(LIST, {"usage_type": "Register"})
    assert [m.pk for m in filtered.context["cl"].result_list] == [register.pk]


def test_the_log_sorts_only_by_time(admin_client):
    older = MessageFactory(to="a@example.com")
    newer = MessageFactory(to="b@example.com")
    Message.objects.filter(pk=older.pk).update(created_at=newer.created_at - timedelta(hours=1))
    page = admin_client.get(LIST)
    sortable = [h for h in page.context["result_headers"] if h["sortable"]]
    assert [h["text"] for h in sortable] == ["created at"]
    # and a hand-made ?o= for another column (here: recipient, descending) sorts nothing
    by_recipient = admin_client.get(LIST, {"o": "-1"})
    query = str(by_recipient.context["cl"].queryset.query)
    assert '"to"' not in query.split("ORDER BY")[1], query


@on_postgres
def test_a_page_no_index_finds_quickly_says_so(admin_client, monkeypatch):
    """A usage type few messages have, among many: no index serves it, so finding a page
    reads the table. Past the time limit the page lists none and tells how to narrow it."""
    # Given 200,001 sign-in messages, one MFA message long ago, and a 1 ms limit
    old = MessageFactory(usage_type="MfaVerification")
    Message.objects.filter(pk=old.pk).update(created_at=old.created_at - timedelta(days=20))
    copies(MessageFactory(dedup_key=None), 200_000)
    monkeypatch.setattr(message_list, "LIST_TIME_LIMIT_MS", 1)

    # When the log is filtered by that type
    page = admin_client.get(LIST, {"usage_type": "MfaVerification"}, follow=True)

    # Then it answers, lists nothing, and says why and what to do
    assert page.status_code == 200
    assert page.context["cl"].timed_out and list(page.context["cl"].result_list) == []
    assert "Narrow the list by date" in page.content.decode()
    # and the connection is back to no limit
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone()[0] == "0"


def test_no_bulk_delete_of_a_selection(admin_client):
    MessageFactory()
    page = admin_client.get(LIST)
    assert "delete_selected" not in page.content.decode()


@on_postgres
def test_a_wrong_low_estimate_still_pages(admin_client, monkeypatch):
    """Statistics from when the table was small, a count that times out: the page still
    shows one page of rows, never the whole list ("Show all" included)."""
    # Given statistics from 3 rows, then 20,000 more to one address, and a 1 ms count
    MessageFactory.create_batch(3)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE emails_message")
    copies(MessageFactory(to="burst@example.com", dedup_key=None), 20_000)
    monkeypatch.setattr(message_list, "COUNT_TIME_LIMIT_MS", 1)

    # When the log is searched for that address, and then asked for all of it
    page = admin_client.get(LIST, {"q": "burst@example.com"})
    everything = admin_client.get(LIST, {"q": "burst@example.com", "all": ""})

    # Then each shows one page
    assert len(page.context["cl"].result_list) == 100
    assert page.context["cl"].paginator.approximate
    assert len(everything.context["cl"].result_list) == 100


@on_postgres
def test_every_list_query_has_an_index(admin_client):
    """Each filter and the search are served by an index (with sequential scans priced out,
    the plan names one), so their first page never reads the whole table."""
    # Given more than a page of each (a page is LIMIT 100; one page is read whole)
    copies(
        MessageFactory(
            to="ann@example.com", delivery_status="bounced", is_test=True, provider="postmark"
        ),
        100,
    )
    copies(MessageFactory(status="queued"), 100)
    with connection.cursor() as cursor:  # the planner's statistics, whatever ran before
        cursor.execute("ANALYZE emails_message")
    expected = {
        "delivery_status__exact=bounced": "emails_message_problem_idx",
        "is_test__exact=1": "emails_message_test_idx",
        "status__exact=queued": "emails_message_status_idx",
        "provider=postmark": "emails_message_sent_by_idx",
        "": "emails_message_created_at",
    }
    for query, index in expected.items():
        with CaptureQueriesContext(connection) as queries:
            assert admin_client.get(f"{LIST}?{query}").status_code == 200
        [listing] = [
            q["sql"] for q in queries if "LIMIT 100" in q["sql"] and "emails_message" in q["sql"]
        ]
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute(f"EXPLAIN {listing}")
            plan = "\n".join(row[0] for row in cursor.fetchall())
            cursor.execute("SET LOCAL enable_seqscan = on")
        assert index in plan, (query, plan)
    # and the search's condition is served by the address and provider id indexes
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
    searched = message_list.message_search(Message.objects.order_by(), "Ann@example.com")
    plan = searched.explain()
    assert "emails_message_to_recent_idx" in plan and "emails_message_provider_idx" in plan, plan


@on_postgres
def test_the_sweeper_and_coverage_read_their_partial_indexes():
    from datetime import timedelta

    from django.db.models import Count
    from django.utils import timezone

    from emails.logto import SECRET_PAYLOAD_KEYS

    since = timezone.now() - timedelta(days=7)
    plans = {
        "emails_message_fallback_idx": Message.objects.filter(
            used_fallback=True, created_at__gte=since, is_test=False
        )
        .values("requested_locale", "template_locale", "locale_distance")
        .annotate(count=Count("pk")),
        "emails_message_secrets_idx": Message.objects.filter(
            status="failed", payload__has_any_keys=SECRET_PAYLOAD_KEYS, created_at__lte=since
        ),
    }
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
    for index, queryset in plans.items():
        assert index in queryset.explain(), index


@on_postgres
@pytest.mark.django_db(transaction=True)
def test_wave_2_migrations_never_hold_the_message_table(caplog):
    """From the end of wave 1 to now on PostgreSQL: every change to emails_message waits at
    most a second for its lock, adds no CHECK that reads the table under it (NOT VALID, then
    VALIDATE, which lets writes go on), and builds indexes CONCURRENTLY."""
    executor = MigrationExecutor(connection)
    executor.migrate([("emails", "0005_heartbeat")])
    executor = MigrationExecutor(connection)
    applied: list[tuple[str, list[str]]] = []

    def progress(action, migration=None, fake=False):
        if action == "apply_start":
            applied.append((migration.name, []))

    class Statements(logging.Handler):
        def emit(self, record):
            if applied:
                applied[-1][1].append(str(record.args[0]))

    handler = Statements(level=logging.DEBUG)
    schema_log = logging.getLogger("django.db.backends.schema")
    schema_log.addHandler(handler)
    old_level = schema_log.level
    schema_log.setLevel(logging.DEBUG)
    try:
        executor.progress_callback = progress
        executor.migrate(executor.loader.graph.leaf_nodes("emails"))
    finally:
        schema_log.removeHandler(handler)
        schema_log.setLevel(old_level)

    touched = []
    for name, statements in applied:
        on_table = [s for s in statements if re.search(r'\bON "?emails_message"? ', s)]
        altered = [s for s in statements if re.match(r'ALTER TABLE "?emails_message"? ', s)]
        for statement in on_table:
            if statement.startswith("CREATE"):
                assert "CONCURRENTLY" in statement, (name, statement)
        for statement in altered:
            if "CHECK" in statement:
                assert "NOT VALID" in statement, (name, statement)
        if any("ADD COLUMN" in s for s in altered):
            touched.append(name)
            first = statements.index(next(s for s in altered))
            assert any("lock_timeout = '1s'" in s for s in statements[:first]), name
        if any(" VALIDATE CONSTRAINT" in s for s in altered):
            touched.append(name)
    assert touched == [
        "0006_failover",
        "0011_message_locale_match",
        "0015_scopes",
        "0016_message_list_indexes",
    ]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_constraint "
            "WHERE conrelid = 'emails_message'::regclass AND NOT convalidated"
        )
        assert cursor.fetchone()[0] == 0
