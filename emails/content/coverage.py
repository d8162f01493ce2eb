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
from emails.locales import requested_locales
from emails.logto import UsageType
from emails.models import Message, Template


@dataclass(frozen=True)
class Cell:
    state: str  # present, disabled, fallback, missing
    template_id: int | None = None
    served_by: str = ""  # for fallback: "en" or "Generic · en"
    fallback_messages: int = 0


def coverage_matrix(*, days: int = 7) -> dict:
    """{"locales": [...], "rows": [(usage type, label, [Cell per locale])], "days": days}"""
    templates = list(Template.objects.only("pk", "usage_type", "locale", "enabled"))
    by_pair = {(t.usage_type, t.locale): t for t in templates}
    enabled = {pair for pair, t in by_pair.items() if t.enabled}
    locales = sorted({*LOCALES, *(t.locale for t in templates), settings.EMAILS_DEFAULT_LOCALE})
    since = timezone.now() - timedelta(days=days)
    fallbacks = {
        (row["usage_type"], row["requested_locale"]): row["count"]
        for row in Message.objects.filter(used_fallback=True, created_at__gte=since)
        .values("usage_type", "requested_locale")
        .annotate(count=Count("pk"))
    }
    rows = []
    for usage_type in UsageType.values:
        cells = []
        for locale in locales:
            count = fallbacks.get((usage_type, locale), 0)
            template = by_pair.get((usage_type, locale))
            if template is not None and template.enabled:
                cells.append(Cell("present", template.pk, fallback_messages=count))
                continue
            served = _served_by(usage_type, locale, enabled)
            state = "disabled" if template is not None else ("fallback" if served else "missing")
            cells.append(Cell(state, template.pk if template else None, served, count))
        rows.append((usage_type, UsageType(usage_type).label, cells))
    return {"locales": locales, "rows": rows, "days": days}


def _served_by(usage_type: str, locale: str, enabled: set) -> str:
    """What would serve a message asking for ``locale`` (payload.locale): the sender's own
    chain (selectors.template_chain_pick) over the enabled templates."""
    chain = requested_locales({"locale": locale}, default=settings.EMAILS_DEFAULT_LOCALE)
    picked = template_chain_pick(
        usage_type=usage_type, locales=chain, available=dict.fromkeys(enabled, True)
    )
    if picked is None:
        return ""
    kind, candidate, _ = picked
    return candidate if kind == usage_type else f"{kind} · {candidate}"
