"""Rendering: template text + payload in, strings out. Pure: no database, no settings.

Templates use the Django template language in a locked-down engine: no loaders, no template
directories, no libraries, only the tags and filters of ``emails.sandbox_library``. The context
is built from the Logto payload alone and frozen (read-only mappings and tuples), so nothing in
a template can reach a model, a setting, or mutate the data. Variables and attributes starting
with ``_`` are refused by Django itself, which closes the ``__class__`` route.

Logto-style placeholders (``{{code}}``, ``{{ application.name }}``) are valid Django syntax and
keep working; a missing value renders as an empty string.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from django.template import Context, Engine, TemplateSyntaxError
from inscriptis import get_text
from inscriptis.css_profiles import CSS_PROFILES
from inscriptis.model.config import ParserConfig


class _SandboxEngine(Engine):
    # Engine() would add loader_tags ({% include %}, {% extends %}) and all default tags and
    # filters; the sandbox library re-exports only the safe ones.
    default_builtins = ["emails.sandbox_library"]


def _engine(*, autoescape: bool) -> Engine:
    # debug=True makes Django record the line of a template error, which authors need.
    return _SandboxEngine(
        dirs=[], app_dirs=False, loaders=[], libraries={}, debug=True, autoescape=autoescape
    )


_HTML_ENGINE = _engine(autoescape=True)
_TEXT_ENGINE = _engine(autoescape=False)
_TEXT_CONFIG = ParserConfig(css=CSS_PROFILES["strict"], display_links=True)


class TemplateRenderError(Exception):
    """A template that does not compile or fails while rendering.

    ``part`` says which of subject / HTML body / plain-text body; ``line`` is 1-based when known.
    """

    def __init__(self, message: str, *, part: str = "", line: int | None = None):
        super().__init__(message)
        self.message = message
        self.part = part
        self.line = line

    def describe(self) -> str:
        where = f" (line {self.line})" if self.line else ""
        return f"{self.message}{where}"

    def __str__(self) -> str:
        prefix = f"{self.part}: " if self.part else ""
        return prefix + self.describe()


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    html: str
    text: str


def freeze(value):
    """JSON data -> read-only data: dicts become mappingproxies and lists tuples, so no
    ``{{ list.clear }}`` or ``{{ obj.pop }}`` can change what the next variable sees."""
    if isinstance(value, Mapping):
        return MappingProxyType({str(key): freeze(item) for key, item in value.items()})
    if isinstance(value, list | tuple):
        return tuple(freeze(item) for item in value)
    return value


def render_email(*, subject: str, html: str, text: str, payload: Mapping) -> RenderedEmail:
    """Render the three parts of an email from template sources and a Logto payload.

    Payload values are HTML-escaped in the HTML body only. The subject is folded onto one
    line (no CR/LF can reach a header). A blank ``text`` is derived from the rendered HTML.
    Raises TemplateRenderError.
    """
    context = freeze(payload)
    rendered_subject = " ".join(_render(_TEXT_ENGINE, subject, context, "subject").split())
    rendered_html = _render(_HTML_ENGINE, html, context, "HTML body")
    if text.strip():
        rendered_text = _render(_TEXT_ENGINE, text, context, "plain-text body")
    else:
        rendered_text = html_to_text(rendered_html)
    return RenderedEmail(subject=rendered_subject, html=rendered_html, text=rendered_text)


def render_preview(*, subject: str, html: str, text: str, payload: Mapping) -> dict:
    """Like render_email, but each part on its own: a broken part is reported (with its line)
    and the others still render. For previews, where an author is mid-edit."""
    context = freeze(payload)
    parts: dict = {"subject": "", "html": "", "text": "", "errors": []}
    jobs = [
        ("subject", "subject", _TEXT_ENGINE, subject),
        ("html", "HTML body", _HTML_ENGINE, html),
        ("text", "plain-text body", _TEXT_ENGINE, text),
    ]
    for key, part, engine, source in jobs:
        if key == "text" and not source.strip():
            continue
        try:
            parts[key] = _render(engine, source, context, part)
        except TemplateRenderError as exc:
            parts["errors"].append({"part": part, "line": exc.line, "message": exc.message})
    parts["subject"] = " ".join(parts["subject"].split())
    if not text.strip():
        parts["text"] = html_to_text(parts["html"])
    return parts


def html_to_text(html: str) -> str:
    """A readable plain-text version of an HTML email (links kept as their URLs)."""
    if not html.strip():
        return ""
    lines = [line.rstrip() for line in get_text(html, _TEXT_CONFIG).splitlines()]
    return "\n".join(lines).strip() + "\n"


def check_template_syntax(source: str) -> None:
    """Raise TemplateRenderError if ``source`` does not compile in the sandbox."""
    _compile(_HTML_ENGINE, source)


def _render(engine: Engine, source: str, context: Mapping, part: str) -> str:
    try:
        template = _compile(engine, source)
        return template.render(Context(dict(context), autoescape=engine.autoescape))
    except TemplateRenderError as exc:
        exc.part = part
        raise
    except Exception as exc:
        # Rendering runs author-written code paths (filters on payload data); whatever fails,
        # the caller gets one error type naming the part and line, never a crash.
        raise TemplateRenderError(_message(exc), part=part, line=_line(exc)) from exc


@functools.lru_cache(maxsize=512)
def _compile_cached(engine: Engine, source: str):
    return engine.from_string(source)


def _compile(engine: Engine, source: str):
    try:
        return _compile_cached(engine, source)
    except TemplateSyntaxError as exc:
        raise TemplateRenderError(_message(exc), line=_line(exc)) from exc
    except RecursionError as exc:
        raise TemplateRenderError("the template is nested too deeply") from exc


def _message(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _line(exc: Exception) -> int | None:
    debug = getattr(exc, "template_debug", None)
    return debug.get("line") if isinstance(debug, dict) else None
