"""The message log's list page, at millions of rows (docs/benchmarks.md, "Cost as the work
grows"): every query it makes is bounded by an index or by a time limit.

- **Counting.** Django's admin counts the whole filtered list (``COUNT(*)``) for its pager, a
  full scan of ``emails_message`` on PostgreSQL. The pager here asks the planner's estimate
  first (``EXPLAIN``, no rows read); over ``COUNT_EXACTLY_UP_TO`` it shows that, as "about
  N". Under it, it counts, for at most ``COUNT_TIME_LIMIT_MS`` (an estimate can be wrong),
  and falls back to the estimate past that.
- **Provider and usage type filters.** Django's filter for a field without choices lists
  ``SELECT DISTINCT`` over the table; these list the configured providers (EMAIL_PROVIDER)
  with the ones the circuits and the Delivery page's counts name, and Logto's usage types.
- **Search** finds a recipient's address, a provider's message id or a message id exactly,
  each through its index; a substring search would read every row.
- **Rare values.** A page of a filter no index serves (a usage type few messages have) may
  read the whole table; it is read for at most LIST_TIME_LIMIT_MS, then the page says to
  narrow it by date.
"""

from __future__ import annotations

import json
import uuid
from contextlib import contextmanager

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import EmptyResultSet
from django.core.paginator import Paginator
from django.db import OperationalError, connections, transaction
from django.db.models import Q, QuerySet, Value
from django.db.models.functions import Lower
from django.utils.functional import cached_property

from emails.logto import UsageType
from emails.models import DeliveryStat, ProviderCircuit

COUNT_EXACTLY_UP_TO = 10_000
COUNT_TIME_LIMIT_MS = 100
MAX_APPROXIMATE_PAGES = 100
LIST_TIME_LIMIT_MS = 1000
TOO_SLOW = (
    "Finding these messages took too long, so none are listed: few of them match among "
    "many. Narrow the list by date (“created at”) or search for an address."
)
QUERY_CANCELED = "57014"  # PostgreSQL's SQLSTATE for a statement_timeout

SEARCH_HELP = "Exact: a full recipient address, a provider message id or a message id."


class BoundedCountPaginator(Paginator):
    """A paginator that counts on PostgreSQL only what the planner expects to be few rows,
    for at most COUNT_TIME_LIMIT_MS; otherwise its count is the planner's estimate,
    ``approximate`` is true, and it pages through the newest MAX_APPROXIMATE_PAGES only
    (a deeper page is an OFFSET that reads every row before it: the date filter gets there)."""

    approximate = False

    @cached_property
    def count(self) -> int:
        queryset: QuerySet = self.object_list  # type: ignore[assignment]
        connection = connections[queryset.db]
        if connection.vendor != "postgresql":
            return queryset.count()
        estimate = _estimate(queryset)
        if estimate > COUNT_EXACTLY_UP_TO:
            return self._approximately(estimate)
        try:
            with time_limited(connection, COUNT_TIME_LIMIT_MS):
                return queryset.count()
        except TimedOut:
            # The estimate was wrong: at least a page more than one page, whatever it said.
            return self._approximately(max(estimate, self.per_page + 1))

    def _approximately(self, estimate: int) -> int:
        self.approximate = True
        return estimate

    @cached_property
    def num_pages(self) -> int:
        pages = super().num_pages
        return min(pages, MAX_APPROXIMATE_PAGES) if self.approximate else pages

    def page(self, number):
        number = self.validate_number(number)
        if not self.approximate:
            return super().page(number)
        # Not cut at the estimated last row, which may be short of the real one.
        bottom = (number - 1) * self.per_page
        return self._get_page(self.object_list[bottom : bottom + self.per_page], number, self)


def _estimate(queryset) -> int:
    try:
        plan = queryset.order_by().explain(format="json")
    except EmptyResultSet:
        return 0
    return int(json.loads(plan)[0]["Plan"]["Plan Rows"]) if plan else 0


class TimedOut(Exception):
    """A statement ran past its time_limited() limit, and was canceled."""


@contextmanager
def time_limited(connection, milliseconds: int):
    """Run the block's statements with a statement_timeout on PostgreSQL, in a savepoint:
    past the limit, PostgreSQL cancels the statement and TimedOut is raised. The caller's
    own limit (or none) applies again afterwards, in its transaction too."""
    try:
        with transaction.atomic(using=connection.alias):
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT current_setting('statement_timeout'), "
                    "set_config('statement_timeout', %s, true)",
                    [f"{milliseconds}ms"],
                )
                before = cursor.fetchone()[0]
            yield
            with connection.cursor() as cursor:
                cursor.execute("SELECT set_config('statement_timeout', %s, true)", [before])
    except OperationalError as error:
        if getattr(error.__cause__, "sqlstate", None) != QUERY_CANCELED:
            raise
        raise TimedOut from error  # the savepoint, and the limit with it, is rolled back


class MessageChangeList(ChangeList):
    """The admin's list: sorted only by the columns in ``sortable_by`` (Django hides the
    other headers' links but still sorts by any ``?o=``: a sort of the whole table), and its
    page read for at most LIST_TIME_LIMIT_MS on PostgreSQL. A filter no index serves, on a
    value few messages have (a usage type Logto seldom sends), reads the whole table to find
    a page; past the limit the page is empty and says so."""

    timed_out = False

    def get_results(self, request):
        super().get_results(request)
        connection = connections[self.queryset.db]
        if connection.vendor != "postgresql":
            return
        try:
            with time_limited(connection, LIST_TIME_LIMIT_MS):
                self.result_list = list(self.result_list)
        except TimedOut:
            self.result_list = []
            self.timed_out = True
            messages.warning(request, TOO_SLOW)

    def get_ordering_field(self, field_name):
        if self.sortable_by is not None and field_name not in self.sortable_by:
            return None
        return super().get_ordering_field(field_name)


class ProviderFilter(admin.SimpleListFilter):
    """By provider: the configured providers, and the ones that had a circuit or a failure
    counted for the Delivery page since (never a DISTINCT over the message table)."""

    title = "provider"
    parameter_name = "provider"

    def lookups(self, request, model_admin):
        names = set(settings.EMAIL_PROVIDERS)
        names.update(ProviderCircuit.objects.values_list("provider", flat=True))
        names.update(
            DeliveryStat.objects.filter(kind="provider").values_list("key", flat=True).distinct()
        )
        return [(name, name) for name in sorted(names)]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(provider=self.value())
        return queryset


class UsageTypeFilter(admin.SimpleListFilter):
    """By the usage type Logto sent: Logto's types (the field has no choices of its own, so
    Django's filter would list a DISTINCT over the message table)."""

    title = "usage type"
    parameter_name = "usage_type"

    def lookups(self, request, model_admin):
        return UsageType.choices

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(usage_type=self.value())
        return queryset


def message_search(queryset, term: str):
    """Messages to this address, or with this provider message id (some, like SMTP's
    Message-ID, hold an @ too) or message id."""
    term = term.strip()
    if not term:
        return queryset
    condition = Q(provider_message_id=term) & ~Q(provider_message_id="")
    if "@" in term:
        queryset = queryset.alias(to_lower=Lower("to"))
        condition |= Q(to_lower=Lower(Value(term)))
    try:
        condition |= Q(pk=uuid.UUID(term))
    except ValueError:
        pass
    return queryset.filter(condition)
