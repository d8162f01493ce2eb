"""The coverage matrix: usage types × locales, what serves each cell, and how many messages
each requested locale was served by fallback lately. A selector: reads only."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db.models import Count
from django.utils import timezone

from emails.content.defaults import LOCALES
from emails.content.selectors import template_chain_pick
from emails.logto import UsageType
from emails.models import Message, Template


@dataclass(frozen=True)
class Cell:
    state: str  # present, disabled, unpublished (a draft never published), fallback, missing
    template_id: int | None = None
    served_by: str = ""  # for fallback: "en" or "Generic · en", with the distance when > 0
    fallback_messages: int = 0


@dataclass(frozen=True)
class Asked:
    """A locale messages asked for lately (their first tag: ``payload.locale``, else the first
    ``uiLocales`` tag) that has no template in any usage type, and what served them."""

    locale: str
    messages: int
    served: list[tuple[str, int | None, int]]  # (served locale, distance, messages), most first


def coverage_matrix(*, days: int = 7) -> dict:
    """{"locales": [...], "rows": [(usage type, label, [Cell per locale])], "days": days,
    "asked": [Asked]}"""
    templates = list(
        Template.objects.filter(application_id="", organization_id="").only(
            "pk", "usage_type", "locale", "enabled", "published_at"
        )
    )
    by_pair = {(t.usage_type, t.locale): t for t in templates}
    enabled = {
        (*pair, "", ""): True for pair, t in by_pair.items() if t.enabled and t.published_at
    }
    since = timezone.now() - timedelta(days=days)
    fallbacks = {
        (row["usage_type"], row["requested_locale"]): row["count"]
        for row in Message.objects.filter(used_fallback=True, created_at__gte=since)
        .values("usage_type", "requested_locale")
        .annotate(count=Count("pk"))
    }
    asked = _asked(since, {t.locale for t in templates})
    locales = sorted(
        {
            *LOCALES,
            *(t.locale for t in templates),
            settings.EMAILS_DEFAULT_LOCALE,
            # The languages users asked for most that have no template: a column each.
            *(a.locale for a in asked[:ASKED_COLUMNS]),
        }
    )
    rows = []
    for usage_type in UsageType.values:
        cells = []
        for locale in locales:
            count = fallbacks.get((usage_type, locale), 0)
            template = by_pair.get((usage_type, locale))
            if template is not None and template.enabled and template.published_at:
                cells.append(Cell("present", template.pk, fallback_messages=count))
                continue
            served = _served_by(usage_type, locale, enabled)
            if template is None:
                state = "fallback" if served else "missing"
            else:
                state = "disabled" if template.published_at else "unpublished"
            cells.append(Cell(state, template.pk if template else None, served, count))
        rows.append((usage_type, UsageType(usage_type).label, cells))
    return {"locales": locales, "rows": rows, "days": days, "asked": asked[:ASKED_LISTED]}


# Requested tags come from end users: the page shows the most asked, not all of them.
ASKED_COLUMNS = 20
ASKED_LISTED = 50


def _asked(since, with_template: set[str]) -> list[Asked]:
    """Requested locales with no template of their own served by fallback since ``since``,
    most asked first, each with the locales (and CLDR distances) that served them."""
    served: dict[str, dict[tuple[str, int | None], int]] = {}
    for row in (
        Message.objects.filter(used_fallback=True, created_at__gte=since, is_test=False)
        .exclude(requested_locale="")
        .exclude(requested_locale__in=with_template)
        .values("requested_locale", "template_locale", "locale_distance")
        .annotate(count=Count("pk"))
    ):
        by = served.setdefault(row["requested_locale"], {})
        key = (row["template_locale"], row["locale_distance"])
        by[key] = by.get(key, 0) + row["count"]
    asked = [
        Asked(
            locale,
            sum(by.values()),
            sorted(((loc, dist, n) for (loc, dist), n in by.items()), key=lambda x: -x[2]),
        )
        for locale, by in served.items()
    ]
    return sorted(asked, key=lambda a: (-a.messages, a.locale))


def _served_by(usage_type: str, locale: str, enabled: dict) -> str:
    """What would serve a message asking for ``locale`` (payload.locale): the sender's own
    chain (selectors.template_chain_pick) over the enabled templates."""
    picked = template_chain_pick(usage_type=usage_type, wanted=[locale], available=enabled)
    if picked is None:
        return ""
    kind, match, _ = picked
    served = match.locale if kind == usage_type else f"{kind} · {match.locale}"
    return f"{served} (distance {match.distance})" if match.distance else served
