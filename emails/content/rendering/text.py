"""The plain-text part derived from HTML (inscriptis), bounded in size."""

from __future__ import annotations

import re

from inscriptis import get_text
from inscriptis.css_profiles import CSS_PROFILES
from inscriptis.model.config import ParserConfig

from emails.content.rendering.engine import TemplateBudgetError

# The plain text derived from HTML (inscriptis): up to 2 s per million characters.
MAX_DERIVED_TEXT_INPUT = 200_000


_TEXT_CONFIG = ParserConfig(css=CSS_PROFILES["strict"], display_links=True)


def html_to_text(html: str) -> str:
    """A readable plain-text version of an HTML email: block elements become lines (so a
    code in its own paragraph stands on its own line) and links show their URL."""
    if not html.strip():
        return ""
    text = _MARKDOWN_LINK.sub(_plain_link, get_text(html, _TEXT_CONFIG))
    lines = [line.rstrip() for line in text.splitlines()]
    collapsed = re.sub(r"\n{3,}", "\n\n", "\n".join(lines))
    return collapsed.strip() + "\n"


def derive_text(html: str) -> str:
    if len(html) > MAX_DERIVED_TEXT_INPUT:
        raise TemplateBudgetError(
            f"a plain-text body is derived from at most {MAX_DERIVED_TEXT_INPUT} characters "
            "of HTML; write one"
        )
    return html_to_text(html)


# inscriptis writes links as [text](url): say "text: url", or just the URL when they match.
_MARKDOWN_LINK = re.compile(r"\[([^\[\]]*)\]\(([^()\s]+)\)")


def _plain_link(match: re.Match) -> str:
    label, url = match.group(1).strip(), match.group(2)
    return url if not label or label == url else f"{label}: {url}"
