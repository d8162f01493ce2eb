"""The message log's list page, at millions of rows (docs/benchmarks.md, "Cost as the work
grows"): every query it makes is bounded by an index or by a time limit.

- **Counting.** Django's admin counts the whole filtered list (``COUNT(*)``) for its pager, a
  full scan of ``emails_message`` on PostgreSQL. The pager here asks the planner's estimate
  first (``EXPLAIN``, no rows read); over ``COUNT_EXACTLY_UP_TO`` it shows that, as "about
  N". Under it, it counts, for at most ``COUNT_TIME_LIMIT_MS`` (an estimate can be wrong),
  and falls back to the estimate past that.
- **Provider filter.** Django's filter for a plain field lists ``SELECT DISTINCT`` over the
  table; this one lists the configured providers (EMAIL_PROVIDER) and the ones the circuits
  and the Delivery page's counts name.
- **Search** finds a recipient's address, a provider's message id or a message id exactly,
  each through its index; a substring search would read every row.
"""

from __future__ import annotations

import json
import uuid

from django.conf import settings
from django.contrib import admin
from django.core.paginator import EmptyPage, PageNotAnInteger, Paginator
from django.db import DatabaseError, connections, transaction
from django.db.models import Q, QuerySet
from django.db.models.functions import Lower
from django.utils.functional import cached_property

from emails.models import DeliveryStat, ProviderCircuit

COUNT_EXACTLY_UP_TO = 10_000
COUNT_TIME_LIMIT_MS = 100

SEARCH_HELP = "Exact: a full recipient address, a provider message id or a message id."


class BoundedCountPaginator(Paginator):
    """A paginator that counts on PostgreSQL only what the planner expects to be few rows,
    for at most COUNT_TIME_LIMIT_MS; otherwise its count is the planner's estimate and
    ``approximate`` is true."""

    approximate = False

    @cached_property
    def count(self) -> int:
        queryset: QuerySet = self.object_list  # type: ignore[assignment]
        connection = connections[queryset.db]
        if connection.vendor != "postgresql":
            return queryset.count()
        estimate = _estimate(queryset)
        if estimate > COUNT_EXACTLY_UP_TO:
            self.approximate = True
            return estimate
        try:
            with transaction.atomic(using=queryset.db):
                with connection.cursor() as cursor:
                    cursor.execute(
                        "SELECT current_setting('statement_timeout'), "
                        "set_config('statement_timeout', %s, true)",
                        [f"{COUNT_TIME_LIMIT_MS}ms"],
                    )
                    before = cursor.fetchone()[0]
                count = queryset.count()
                with connection.cursor() as cursor:  # the caller's transaction keeps its own
                    cursor.execute("SELECT set_config('statement_timeout', %s, true)", [before])
                return count
        except DatabaseError:  # canceled at the time limit; the savepoint is rolled back
            self.approximate = True
            return estimate

    def validate_number(self, number):
        if not self.count or not self.approximate:
            return super().validate_number(number)
        # The estimate may fall short of the last page: any page is asked for.
        try:
            number = int(number)
        except (TypeError, ValueError):
            raise PageNotAnInteger("That page number is not an integer") from None
        if number < 1:
            raise EmptyPage("That page number is less than 1")
        return number

    def page(self, number):
        number = self.validate_number(number)
        if not self.approximate:
            return super().page(number)
        bottom = (number - 1) * self.per_page
        return self._get_page(self.object_list[bottom : bottom + self.per_page], number, self)


def _estimate(queryset) -> int:
    plan = json.loads(queryset.order_by().explain(format="json"))
    return int(plan[0]["Plan"]["Plan Rows"])


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


def message_search(queryset, term: str):
    """Messages to this address, or with this provider message id (some, like SMTP's
    Message-ID, hold an @ too) or message id."""
    term = term.strip()
    if not term:
        return queryset
    condition = Q(provider_message_id=term) & ~Q(provider_message_id="")
    if "@" in term:
        queryset = queryset.alias(to_lower=Lower("to"))
        condition |= Q(to_lower=term.lower())
    try:
        condition |= Q(pk=uuid.UUID(term))
    except ValueError:
        pass
    return queryset.filter(condition)
