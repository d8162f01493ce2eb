"""Rendering: template text + payload in, strings out. Pure: no database, no settings.

Templates use the Django template language in a locked-down engine: no loaders, no template
directories, no libraries, only the tags and filters of the sandbox (``sandbox.py``). The
context is built from the Logto payload alone and frozen (read-only mappings and tuples), so
nothing in a template can reach a model, a setting, or mutate the data. Variables and
attributes starting with ``_`` are refused by Django itself, which closes the ``__class__``
route.

Logto-style placeholders (``{{code}}``, ``{{ application.name }}``) are valid Django syntax and
keep working; a missing value renders as an empty string.

Every render is bounded in time and memory: the engine's budget (sandbox.py: 2 s per email,
1 MB per part and per value a filter makes), and the budgets of what runs around the engine
(engine.py: compiling and its cache; inlining.py: CSS inlining; text.py: the derived plain
text). Over budget is a TemplateBudgetError, "template exceeds its budget (...)".

The package: render.py (this: the one render path), engine.py, context.py, inlining.py,
text.py, sandbox.py (the only tags and filters, and the budget).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from django.utils.safestring import mark_safe

from emails.content.rendering.context import freeze
from emails.content.rendering.engine import (
    HTML_ENGINE,
    TEXT_ENGINE,
    TemplateBudgetError,
    TemplateRenderError,
    render_source,
)
from emails.content.rendering.inlining import inline_css, inlined_source
from emails.content.rendering.sandbox import (
    render_budget,
)
from emails.content.rendering.text import derive_text


@dataclass(frozen=True)
class RenderedEmail:
    """The three parts of an email, and the errors of the parts that did not render (a
    preview shows them; sending refuses an email that has any)."""

    subject: str
    html: str
    text: str
    errors: tuple[TemplateRenderError, ...] = ()
    # The rendered preheader, as an inbox shows it (it is also inside ``html``).
    preheader: str = ""

    def error_list(self) -> list[dict]:
        """The errors as JSON-ready dicts: part, line, message."""
        return [
            {"part": error.part, "line": error.line, "message": error.message}
            for error in self.errors
        ]


@dataclass(frozen=True)
class LayoutSource:
    html: str
    text: str = "{{ content }}"


def render_email(
    *,
    subject: str,
    html: str,
    text: str,
    payload: Mapping,
    preheader: str = "",
    layout: LayoutSource | None = None,
    context: Mapping | None = None,
) -> RenderedEmail:
    """render_parts, raising the first error: what is sent has no broken part."""
    rendered = render_parts(
        subject=subject,
        html=html,
        text=text,
        payload=payload,
        preheader=preheader,
        layout=layout,
        context=context,
    )
    if rendered.errors:
        raise rendered.errors[0]
    return rendered


def render_parts(
    *,
    subject: str,
    html: str,
    text: str,
    payload: Mapping,
    preheader: str = "",
    layout: LayoutSource | None = None,
    context: Mapping | None = None,
) -> RenderedEmail:
    """Render the three parts of an email from template sources and a Logto payload: the one
    function every path goes through (delivery, test sends, the live preview, designer links,
    the management API), so a preview is byte for byte the email.

    Payload values are HTML-escaped in the HTML body only. The subject is folded onto one
    line (no CR/LF can reach a header). The body goes into ``layout`` when there is one, and
    CSS from ``<style>`` is inlined. A blank ``text`` is derived from the rendered HTML.
    ``context`` (from email_context) replaces the bare payload when given.
    Every part is a plain ``str``. All parts share one render budget (sandbox.py).

    A part that fails is listed in ``errors`` (TemplateRenderError with its part and line;
    TemplateBudgetError when the email went over its budget, after which no further part
    renders) and the others still render, for an author mid-edit. Celery's
    SoftTimeLimitExceeded, SystemExit and KeyboardInterrupt raised during the render
    propagate.
    """
    context = context or freeze(payload)
    with render_budget():
        if layout is not None:
            try:
                prepared = _render_prepared(subject, html, text, preheader, layout, context)
            except TemplateBudgetError as exc:
                return RenderedEmail(subject="", html="", text="", errors=(exc,))
            if prepared is not None:
                return prepared
        parts = _render_all(subject, html, text, preheader, layout, context)
    return RenderedEmail(
        subject=parts["subject"],
        html=parts["html"],
        text=parts["text"],
        errors=tuple(parts["errors"]),
        preheader=parts["preheader"],
    )


def _render_prepared(subject, html, text, preheader, layout, context) -> RenderedEmail | None:
    """render_email's fast path, for an email with a layout and its own text: the layout and
    body as one template whose CSS was inlined when it was compiled (inlined_source), so no
    email pays for parsing and inlining its HTML. None when that template cannot be used or
    a part fails (the usual path then renders, or names the failing part and line); over
    budget, raises TemplateBudgetError (the usual path would only spend the budget again)."""
    source = inlined_source(layout.html, html) if text.strip() else None
    if source is None:
        return None
    context = dict(context)
    try:
        subject = " ".join(render_source(TEXT_ENGINE, subject, context, "subject").split())
        preheader = " ".join(render_source(TEXT_ENGINE, preheader, context, "preheader").split())
        wrapped = {**context, "subject": subject, "preheader": preheader}
        body = render_source(HTML_ENGINE, source, wrapped, "HTML body")
        own_text = render_source(TEXT_ENGINE, text, context, "plain-text body")
        if own_text and layout.text.strip():
            own_text = render_source(
                TEXT_ENGINE, layout.text, {**wrapped, "content": own_text}, "layout text"
            )
    except TemplateBudgetError as exc:
        if exc.part == "HTML body":
            exc.line = None  # a line of the merged layout and body: neither's own
        raise
    except TemplateRenderError:
        return None
    return RenderedEmail(subject=subject, html=body, text=own_text, preheader=preheader)


def _render_all(subject, html, text, preheader, layout, context) -> dict:
    context = dict(context)
    parts: dict = {"subject": "", "html": "", "text": "", "preheader": "", "errors": []}
    # An email over its budget renders no further part: its time is spent, and the first
    # error names the part that spent it.
    over_budget = False

    def attempt(part, engine, source, extra=None):
        nonlocal over_budget
        if over_budget:
            return ""
        try:
            return render_source(engine, source, {**context, **(extra or {})}, part)
        except TemplateRenderError as exc:
            parts["errors"].append(exc)
            over_budget = isinstance(exc, TemplateBudgetError)
            return ""

    def convert(part, function, value):
        nonlocal over_budget
        if over_budget:
            return ""
        try:
            return function(value)
        except TemplateBudgetError as exc:
            exc.part = part
            parts["errors"].append(exc)
            over_budget = True
            return ""

    parts["subject"] = " ".join(attempt("subject", TEXT_ENGINE, subject).split())
    rendered_preheader = " ".join(attempt("preheader", TEXT_ENGINE, preheader).split())
    parts["preheader"] = rendered_preheader
    body = attempt("HTML body", HTML_ENGINE, html)
    own_text = attempt("plain-text body", TEXT_ENGINE, text) if text.strip() else ""
    if layout is not None:
        wrapped = {"subject": parts["subject"], "preheader": rendered_preheader}
        body = attempt("layout", HTML_ENGINE, layout.html, {**wrapped, "content": mark_safe(body)})  # noqa: S308  (rendered by the sandbox, escaped there)
        if own_text and layout.text.strip():
            own_text = attempt(
                "layout text", TEXT_ENGINE, layout.text, {**wrapped, "content": own_text}
            )
    html_part = "layout" if layout is not None else "HTML body"
    parts["html"] = convert(html_part, inline_css, body) if "<style" in body else body
    parts["text"] = own_text if text.strip() else convert("plain-text body", derive_text, body)
    return parts
