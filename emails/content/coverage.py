"""The coverage matrix: usage types × locales, what serves each cell, and how many messages
each requested locale was served by fallback lately; for one application and/or organization
(a scope), whether it overrides each cell or inherits it, and from which template. A selector:
reads only."""

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
    # Unscoped: present, disabled, unpublished (a draft never published), fallback, missing.
    # Scoped: overrides (the scope's own template) or inherits (this type and locale of a
    # broader scope) instead of present; disabled and unpublished are the scope's own.
    state: str
    template_id: int | None = None  # the cell's own template (the scope's, when scoped)
    served_by: str = ""  # for fallback: "en" or "Generic · en", with the distance when > 0
    fallback_messages: int = 0
    served_id: int | None = None  # scoped: the template that serves instead of its own
    # Scoped: that template's scope, "any", "organization", "application" or both (the ids
    # are the page's scope: a template that may serve it has no other).
    served_scope: str = ""


@dataclass(frozen=True)
class Asked:
    """A locale messages asked for lately (their first tag: ``payload.locale``, else the first
    ``uiLocales`` tag) that has no template in any usage type, and what served them."""

    locale: str
    messages: int
    served: list[tuple[str, int | None, int]]  # (served locale, distance, messages), most first


def coverage_matrix(*, days: int = 7, application_id: str = "", organization_id: str = "") -> dict:
    """{"locales": [...], "rows": [(usage type, label, [Cell per locale])], "days": days,
    "asked": [Asked], "scoped": bool}. With an application and/or organization, each cell
    says whether that scope overrides it or inherits it (what a message of that scope asking
    for the locale gets: template_chain_pick over every enabled, published template)."""
    scoped = bool(application_id or organization_id)
    unscoped = list(
        Template.objects.filter(application_id="", organization_id="").only(
            "pk", "usage_type", "locale", "enabled", "published_at"
        )
    )
    since = timezone.now() - timedelta(days=days)
    recent = Message.objects.filter(used_fallback=True, created_at__gte=since)
    messages = recent
    if application_id:
        messages = messages.filter(payload__application__id=application_id)
    if organization_id:
        messages = messages.filter(payload__organization__id=organization_id)
    # One read of the fallback index for both the cells and the languages asked for (two
    # when scoped: the languages asked for are everyone's).
    rows_in_scope = _fallback_rows(messages)
    fallbacks: dict[tuple[str, str], int] = {}
    for row in rows_in_scope:
        key = (row["usage_type"], row["requested_locale"])
        fallbacks[key] = fallbacks.get(key, 0) + row["count"]
    asked = _asked(
        _fallback_rows(recent) if scoped else rows_in_scope, {t.locale for t in unscoped}
    )
    if scoped:
        scope = (application_id, organization_id)
        # The templates that may serve a message of this scope (scopes_for): every pairing
        # of its application (or any) with its organization (or any).
        in_reach = list(
            Template.objects.filter(
                application_id__in={application_id, ""}, organization_id__in={organization_id, ""}
            ).only(
                "pk",
                "usage_type",
                "locale",
                "enabled",
                "published_at",
                "application_id",
                "organization_id",
            )
        )
        own = {
            (t.usage_type, t.locale): t
            for t in in_reach
            if (t.application_id, t.organization_id) == scope
        }
        serving = {
            (t.usage_type, t.locale, t.application_id, t.organization_id): t
            for t in in_reach
            if t.enabled and t.published_at
        }
        templates = in_reach
    else:
        own = {(t.usage_type, t.locale): t for t in unscoped}
        serving = {(*pair, "", ""): t for pair, t in own.items() if t.enabled and t.published_at}
        templates = unscoped
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
            template = own.get((usage_type, locale))
            if template is not None and template.enabled and template.published_at:
                state = "overrides" if scoped else "present"
                cells.append(Cell(state, template.pk, fallback_messages=count))
                continue
            picked = template_chain_pick(
                usage_type=usage_type,
                wanted=[locale],
                available=serving,
                application_id=application_id,
                organization_id=organization_id,
            )
            served = _served_by(usage_type, picked)
            if template is not None:
                state = "disabled" if template.published_at else "unpublished"
            elif picked is None:
                state = "missing"
            elif scoped and picked[0] == usage_type and picked[1].locale == locale:
                state = "inherits"
            else:
                state = "fallback"
            by = picked[2] if scoped and picked is not None else None
            cells.append(
                Cell(
                    state,
                    template.pk if template else None,
                    served,
                    count,
                    served_id=by.pk if by else None,
                    served_scope=_scope_kind(by) if by else "",
                )
            )
        rows.append((usage_type, UsageType(usage_type).label, cells))
    return {
        "locales": locales,
        "rows": rows,
        "days": days,
        "asked": asked[:ASKED_LISTED],
        "scoped": scoped,
    }


# Requested tags come from end users: the page shows the most asked, not all of them.
ASKED_COLUMNS = 20
ASKED_LISTED = 50


def _fallback_rows(messages) -> list[dict]:
    """Fallback messages counted by what the coverage needs, from the covering index."""
    return list(
        messages.order_by()
        .values("usage_type", "requested_locale", "template_locale", "locale_distance", "is_test")
        .annotate(count=Count("pk"))
    )


def _asked(rows: list[dict], with_template: set[str]) -> list[Asked]:
    """Requested locales with no template of their own served by fallback (test sends left
    out), most asked first, each with the locales (and CLDR distances) that served them."""
    served: dict[str, dict[tuple[str, int | None], int]] = {}
    for row in rows:
        if row["is_test"] or not row["requested_locale"]:
            continue
        if row["requested_locale"] in with_template:
            continue
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


def _scope_kind(template: Template) -> str:
    kinds = [
        kind
        for kind, value in (
            ("application", template.application_id),
            ("organization", template.organization_id),
        )
        if value
    ]
    return " + ".join(kinds) or "any"


def _served_by(usage_type: str, picked) -> str:
    """What template_chain_pick chose, as the page says it: "en", or "Generic · en", with
    the CLDR distance when it is not the locale's own language; "" for nothing."""
    if picked is None:
        return ""
    kind, match, _ = picked
    served = match.locale if kind == usage_type else f"{kind} · {match.locale}"
    return f"{served} (distance {match.distance})" if match.distance else served
