"""Reads: which template serves a message, and the per-process lists the hot paths use."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

from django.conf import settings

from emails.locales import LocaleMatch, locale_match
from emails.logto import UsageType
from emails.models import Template

T = TypeVar("T")


@dataclass(frozen=True)
class TemplateRef:
    pk: int
    usage_type: str
    locale: str
    application_id: str = ""
    organization_id: str = ""

    @property
    def scope(self) -> str:
        """Which scope it serves: "application", "organization", both ("+"), "" (any)."""
        return "+".join(
            name
            for name, value in (
                ("application", self.application_id),
                ("organization", self.organization_id),
            )
            if value
        )


# A template's place in the chain: (usage type, locale, application id, organization id).
TemplateKey = tuple[str, str, str, str]


@dataclass(frozen=True)
class TemplateChoice:
    template: TemplateRef
    match: LocaleMatch
    used_fallback: bool


class _EnabledTemplates:
    """TemplateKey -> TemplateRef of every enabled template, kept per process for
    EMAILS_TEMPLATE_CACHE_SECONDS so Logto's request costs no template query. An edit made in
    this process applies at once (signals clear it); one made elsewhere within that time."""

    def __init__(self):
        self._lock = threading.Lock()
        self._loaded_at = float("-inf")
        self._refs: dict[TemplateKey, TemplateRef] = {}

    def get(self) -> dict[TemplateKey, TemplateRef]:
        if time.monotonic() - self._loaded_at >= settings.EMAILS_TEMPLATE_CACHE_SECONDS:
            refs = {
                (usage_type, locale, app, org): TemplateRef(pk, usage_type, locale, app, org)
                for pk, usage_type, locale, app, org in Template.objects.filter(
                    enabled=True, published_at__isnull=False
                ).values_list("pk", "usage_type", "locale", "application_id", "organization_id")
            }
            with self._lock:
                self._refs, self._loaded_at = refs, time.monotonic()
        return self._refs

    def cached(self) -> dict[TemplateKey, TemplateRef]:
        """What get() last loaded, never a query (for labels, not for choosing)."""
        return self._refs

    def clear(self) -> None:
        with self._lock:
            self._loaded_at = float("-inf")


enabled_templates = _EnabledTemplates()


class _SendingTemplates:
    """Template (with its layout) by id, for the workers: kept per process for
    EMAILS_TEMPLATE_CACHE_SECONDS, like the list above, so an email costs no template query.
    An edit reaches the workers within that time; each message records the version that
    rendered it."""

    def __init__(self):
        self._entries: dict[int, tuple[float, Template | None]] = {}

    def get(self, pk: int) -> Template | None:
        entry = self._entries.get(pk)
        if (
            entry is not None
            and time.monotonic() - entry[0] < settings.EMAILS_TEMPLATE_CACHE_SECONDS
        ):
            return entry[1]
        template = Template.objects.select_related("layout").filter(pk=pk).first()
        self._entries[pk] = (time.monotonic(), template)
        return template

    def clear(self) -> None:
        self._entries = {}


sending_templates = _SendingTemplates()


USAGE_ORDER = {value: index for index, value in enumerate(UsageType.values)}


def in_logto_order(templates) -> list[Template]:
    """Templates as people look for them: Logto's order of usage types (sign-in first), and
    in each the default locale first, then the others alphabetically."""
    return sorted(
        templates,
        key=lambda t: (
            USAGE_ORDER.get(t.usage_type, len(USAGE_ORDER)),
            t.locale != settings.EMAILS_DEFAULT_LOCALE,
            t.locale,
        ),
    )


def scopes_for(application_id: str = "", organization_id: str = "") -> list[tuple[str, str]]:
    """The scopes whose templates may serve a message of this application and organization,
    most specific first: both, the organization's, the application's, any."""
    scopes = [
        (application_id, organization_id),
        ("", organization_id),
        (application_id, ""),
        ("", ""),
    ]
    return list(dict.fromkeys(scopes))  # without the repeats a blank id makes


def template_chain_pick(
    *,
    usage_type: str,
    wanted: list[str],
    available: Mapping[TemplateKey, T],
    application_id: str = "",
    organization_id: str = "",
) -> tuple[str, LocaleMatch, T] | None:
    """The template chain, the one rule of which template serves a message. Language first,
    then scope: the usage type's templates that may serve this application and organization
    (any of ``scopes_for``), in the locale that best serves ``wanted``
    (``emails.locales.locale_match``: each wanted tag's closest locale, then the default's);
    in that locale the most specific scope's; then the same for Generic. So a French user
    of an organization that only overrides English gets the French unscoped email.
    Unknown types (a newer Logto, the old ``Test``) go straight to Generic. Returns the
    first (usage type, match, value) that ``available`` holds, or None. The sender's choice
    and the coverage page use it.

    ``wanted`` are normalised tags, best first (``emails.locales.requested_locales``).
    """
    usage_types = [usage_type] if usage_type in UsageType.values else []
    if UsageType.GENERIC not in usage_types:
        usage_types.append(UsageType.GENERIC)
    scopes = scopes_for(application_id, organization_id)
    index = _index_of(available)
    for candidate_type in usage_types:
        by_scope = [(scope, index.get((candidate_type, *scope), _NONE)) for scope in scopes]
        locales = (
            by_scope[0][1]
            if len(by_scope) == 1
            else frozenset().union(*(found for _scope, found in by_scope))
        )
        match = locale_match(
            wanted,
            locales,
            default=settings.EMAILS_DEFAULT_LOCALE,
            max_distance=settings.EMAILS_LOCALE_MAX_DISTANCE,
        )
        if match is not None:
            scope = next(scope for scope, found in by_scope if match.locale in found)
            return candidate_type, match, available[(candidate_type, match.locale, *scope)]
    return None


_NONE: frozenset[str] = frozenset()


def _index_of(available: Mapping[TemplateKey, object]) -> dict[tuple[str, str, str], frozenset]:
    """(usage type, application id, organization id) -> the locales ``available`` holds.
    The index is kept while the same mapping comes back (the per-process list is one dict
    until it is reloaded)."""
    global _last_index
    source, index = _last_index
    if source is not available:
        grouped: dict[tuple[str, str, str], set[str]] = {}
        for candidate_type, locale, app, org in available:
            grouped.setdefault((candidate_type, app, org), set()).add(locale)
        index = {key: frozenset(locales) for key, locales in grouped.items()}
        _last_index = (available, index)  # one assignment: threads see old or new
    return index


_last_index: tuple[object, dict[tuple[str, str, str], frozenset]] = (None, {})


def template_select(
    *, usage_type: str, wanted: list[str], application_id: str = "", organization_id: str = ""
) -> TemplateChoice | None:
    """The enabled template that serves the message (template_chain_pick), how its locale
    matched, and whether that was a fallback (another type, or not ``payload.locale``'s own
    language); None when nothing can serve it. A scope is never a fallback: an application
    without a template of its own gets the unscoped one, as it should."""
    picked = template_chain_pick(
        usage_type=usage_type,
        wanted=wanted,
        available=enabled_templates.get(),
        application_id=application_id,
        organization_id=organization_id,
    )
    if picked is None:
        return None
    candidate_type, match, template = picked
    exact = (
        candidate_type == usage_type
        and match.distance == 0
        and match.requested == (wanted[0] if wanted else settings.EMAILS_DEFAULT_LOCALE)
    )
    return TemplateChoice(template=template, match=match, used_fallback=not exact)
