"""BCP 47 language tags: case normalisation, parent chains and the order Mailroom tries them.

Pure functions, no database. Only the letter case is normalised (RFC 5646 §2.1.1: language
lower-case, script title-case, region upper-case); tags are never rewritten into other tags
(``iw`` stays ``iw``), because an operator's stored tag must match what Logto sends.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

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


def locale_chain(tag: str) -> list[str]:
    """The tag, then each parent: ``zh-Hant-TW`` -> ``[zh-Hant-TW, zh-Hant, zh]``."""
    subtags = normalize_locale(tag).split("-")
    return ["-".join(subtags[:end]) for end in range(len(subtags), 0, -1)]


def requested_locales(payload: Mapping, *, default: str) -> list[str]:
    """The locales to try, best first: ``payload.locale``, each tag of ``payload.uiLocales``,
    then ``default``; each followed by its parents, without repeats.

    Malformed or non-string tags in the payload are skipped, never an error: the message is
    still served, in the default language if need be.
    """
    wanted: list[object] = [payload.get("locale")]
    ui_locales = payload.get("uiLocales")
    if isinstance(ui_locales, str):
        wanted.extend(ui_locales.split())
    wanted.append(default)
    return _unique(_chains(wanted))


def _chains(tags: Iterable[object]) -> Iterable[str]:
    for tag in tags:
        if not isinstance(tag, str) or not tag.strip():
            continue
        try:
            yield from locale_chain(tag)
        except ValueError:
            continue


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))
