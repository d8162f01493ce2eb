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


@dataclass(frozen=True)
class TemplateChoice:
    template: TemplateRef
    match: LocaleMatch
    used_fallback: bool


class _EnabledTemplates:
    """(usage type, locale) -> TemplateRef of every enabled template, kept per process for
    EMAILS_TEMPLATE_CACHE_SECONDS so Logto's request costs no template query. An edit made in
    this process applies at once (signals clear it); one made elsewhere within that time."""

    def __init__(self):
        self._lock = threading.Lock()
        self._loaded_at = float("-inf")
        self._refs: dict[tuple[str, str], TemplateRef] = {}

    def get(self) -> dict[tuple[str, str], TemplateRef]:
        if time.monotonic() - self._loaded_at >= settings.EMAILS_TEMPLATE_CACHE_SECONDS:
            refs = {
                (usage_type, locale): TemplateRef(pk, usage_type, locale)
                for pk, usage_type, locale in Template.objects.filter(
                    enabled=True, published_at__isnull=False
                ).values_list("pk", "usage_type", "locale")
            }
            with self._lock:
                self._refs, self._loaded_at = refs, time.monotonic()
        return self._refs

    def cached(self) -> dict[tuple[str, str], TemplateRef]:
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


def template_chain_pick(
    *, usage_type: str, wanted: list[str], available: Mapping[tuple[str, str], T]
) -> tuple[str, LocaleMatch, T] | None:
    """The template chain, the one rule of which template serves a message: the usage type's
    templates, in the locale that best serves ``wanted`` (``emails.locales.locale_match``:
    each wanted tag's closest locale, then the default's), then the same for Generic.
    Unknown types (a newer Logto, the old ``Test``) go straight to Generic. Returns the
    first (usage type, match, value) that ``available`` holds, or None. The sender's choice
    and the coverage page use it.

    ``wanted`` are normalised tags, best first (``emails.locales.requested_locales``).
    """
    usage_types = [usage_type] if usage_type in UsageType.values else []
    if UsageType.GENERIC not in usage_types:
        usage_types.append(UsageType.GENERIC)
    for candidate_type in usage_types:
        match = locale_match(
            wanted,
            _locales_of(available, candidate_type),
            default=settings.EMAILS_DEFAULT_LOCALE,
            max_distance=settings.EMAILS_LOCALE_MAX_DISTANCE,
        )
        if match is not None:
            return candidate_type, match, available[(candidate_type, match.locale)]
    return None


def _locales_of(available: Mapping[tuple[str, str], object], usage_type: str) -> frozenset[str]:
    """The locales ``available`` holds for one usage type. The index is kept while the same
    mapping comes back (the per-process list is one dict until it is reloaded)."""
    global _last_index
    source, by_type = _last_index
    if source is not available:
        grouped: dict[str, set[str]] = {}
        for candidate_type, locale in available:
            grouped.setdefault(candidate_type, set()).add(locale)
        by_type = {key: frozenset(locales) for key, locales in grouped.items()}
        _last_index = (available, by_type)  # one assignment: threads see old or new
    return by_type.get(usage_type, frozenset())


_last_index: tuple[object, dict[str, frozenset[str]]] = (None, {})


def template_select(*, usage_type: str, wanted: list[str]) -> TemplateChoice | None:
    """The enabled template that serves the message (template_chain_pick), how its locale
    matched, and whether that was a fallback (another type, or not ``payload.locale``'s own
    language); None when nothing can serve it."""
    picked = template_chain_pick(
        usage_type=usage_type, wanted=wanted, available=enabled_templates.get()
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
