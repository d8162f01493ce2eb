"""BCP 47 language tags: case normalisation, and which stored locale best serves a request.

Pure functions, no database. Only the letter case is normalised (RFC 5646 §2.1.1: language
lower-case, script title-case, region upper-case); stored tags are never rewritten into other
tags (``iw`` stays ``iw``). Matching a requested tag to the stored ones is CLDR's language
matching (its likely subtags, script and region equivalences and distances) through
langcodes: ``pt`` finds ``pt-BR``, ``zh-Hant-TW`` finds ``zh-TW``, ``iw`` finds ``he``.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache

import langcodes
from langcodes import language_distance

MAX_TAG_LENGTH = 35
_TAG_RE = re.compile(r"^[A-Za-z]{2,8}(?:-[A-Za-z0-9]{1,8})*$")


def normalize_locale(tag: str) -> str:
    """Return ``tag`` in canonical case (``zh-hant-tw`` -> ``zh-Hant-TW``, ``pt_br`` -> ``pt-BR``).

    Raises ValueError when ``tag`` is not a well-formed language tag.
    """
    if not isinstance(tag, str):
        raise ValueError("a language tag must be a string")
    candidate = tag.strip().replace("_", "-")
    if len(candidate) > MAX_TAG_LENGTH or not _TAG_RE.match(candidate):
        raise ValueError(f"{tag[:40]!r} is not a language tag such as 'en' or 'pt-BR'")
    subtags = candidate.split("-")
    normalized = [subtags[0].lower()]
    after_singleton = False
    for subtag in subtags[1:]:
        if after_singleton or len(subtag) == 1:
            # Extensions and private use (-u-..., -x-...) are lower-case throughout.
            after_singleton = True
            normalized.append(subtag.lower())
        elif len(subtag) == 4 and subtag.isalpha():
            normalized.append(subtag.title())
        elif len(subtag) == 2 and subtag.isalpha():
            normalized.append(subtag.upper())
        else:
            normalized.append(subtag.lower())
    return "-".join(normalized)


def requested_locales(payload: Mapping) -> list[str]:
    """The tags the message asks for, best first: ``payload.locale``, then each tag of
    ``payload.uiLocales``; normalised, without repeats.

    Malformed or non-string tags in the payload are skipped, never an error: the message is
    still served, in the default language if need be.
    """
    wanted: list[object] = [payload.get("locale")]
    ui_locales = payload.get("uiLocales")
    if isinstance(ui_locales, str):
        # The end user writes this list (OIDC ui_locales): its first tags only, so that one
        # request cannot ask for thousands of language matches.
        wanted.extend(ui_locales.split()[:MAX_UI_LOCALES])
    return _unique(_normalized(wanted))


MAX_UI_LOCALES = 10


@dataclass(frozen=True)
class LocaleMatch:
    """``locale`` (a stored one) serves ``requested`` (a tag the message asked for, or the
    default locale) at CLDR distance ``distance`` (0: the same language and script)."""

    requested: str
    locale: str
    distance: int


def locale_match(
    wanted: list[str], available: Collection[str], *, default: str, max_distance: int
) -> LocaleMatch | None:
    """The stored locale that serves a message asking for ``wanted`` (best first, as
    ``requested_locales`` gives them), among ``available``.

    Each wanted tag in turn takes its closest available locale within ``max_distance``, so a
    match of ``payload.locale`` at any distance up to the cut-off beats every ``uiLocales``
    tag; when none matches, the default locale (its closest available, within the same
    cut-off). None when not even the default has a match.
    """
    if not available:
        return None
    choices = available if isinstance(available, frozenset) else frozenset(available)
    for tag in [*wanted, default]:
        found = _closest(tag, choices, max_distance)
        if found is not None:
            return LocaleMatch(tag, *found)
    return None


# langcodes keeps every tag it parses and every distance it computes in dicts that never
# shrink; tags come from end users (Logto's ui_locales), so they are emptied past this size.
_LANGCODES_CACHE_LIMIT = 10_000


@lru_cache(maxsize=4096)
def _closest(tag: str, available: frozenset[str], max_distance: int) -> tuple[str, int] | None:
    if tag in available:
        return tag, 0
    try:
        scored = sorted(
            (langcodes.tag_distance(tag, candidate), -_shared_prefix(tag, candidate), candidate)
            for candidate in available
        )
    except (ValueError, LookupError):  # langcodes cannot read it: only the tag itself serves
        return None
    finally:
        _bound_langcodes_caches()
    distance, _, candidate = scored[0]
    return (candidate, distance) if distance <= max_distance else None


def _shared_prefix(tag: str, candidate: str) -> int:
    """Subtags two tags share from the start: among equally close locales, ``zh-Hant-TW``
    prefers ``zh-Hant`` to ``zh-TW``."""
    shared = 0
    for mine, theirs in zip(tag.split("-"), candidate.split("-"), strict=False):
        if mine != theirs:
            break
        shared += 1
    return shared


def langcodes_caches() -> list[dict]:
    """langcodes' own memo dicts (private names, checked by tests/test_locales.py)."""
    found = (
        getattr(langcodes.Language, "_PARSE_CACHE", None),
        getattr(langcodes.Language, "_INSTANCES", None),
        getattr(language_distance, "_DISTANCE_CACHE", None),
    )
    return [cache for cache in found if isinstance(cache, dict)]


def _bound_langcodes_caches() -> None:
    caches = langcodes_caches()
    if any(len(cache) > _LANGCODES_CACHE_LIMIT for cache in caches):
        for cache in caches:
            cache.clear()


def _normalized(tags: Iterable[object]) -> Iterable[str]:
    for tag in tags:
        if not isinstance(tag, str) or not tag.strip():
            continue
        try:
            yield normalize_locale(tag)
        except ValueError:
            continue


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))
