"""Rendering: template text + payload in, strings out. Pure: no database, no settings.

Templates use the Django template language in a locked-down engine: no loaders, no template
directories, no libraries, only the tags and filters of the sandbox (``sandbox.py``). The
context is built from the Logto payload alone and frozen (read-only mappings and tuples), so
nothing in a template can reach a model, a setting, or mutate the data. Variables and
attributes starting with ``_`` are refused by Django itself, which closes the ``__class__``
route.

Logto-style placeholders (``{{code}}``, ``{{ application.name }}``) are valid Django syntax and
keep working; a missing value renders as an empty string.

Every render is bounded in time and memory: the engine's budget (emails.content.rendering.sandbox:
2 s per email, 1 MB per part and per value a filter makes), and the budgets below for what
runs around the engine (compiling, CSS inlining, deriving the plain text, the compile cache).
Over budget is a TemplateBudgetError, "template exceeds its budget (...)".
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from html.parser import HTMLParser
from types import MappingProxyType

import css_inline
from celery.exceptions import SoftTimeLimitExceeded
from django.template import Context, Engine, TemplateSyntaxError, VariableDoesNotExist
from django.template.base import Lexer, TokenType, VariableNode, tag_re
from django.utils.safestring import mark_safe
from inscriptis import get_text
from inscriptis.css_profiles import CSS_PROFILES
from inscriptis.model.config import ParserConfig

from emails.content.rendering.sandbox import (
    BudgetExceeded,
    active_budget,
    instrument,
    render_budget,
)

OVER_BUDGET = "template exceeds its budget"
# Budgets of what rendering does around the template engine (sandbox.py has the engine's).
# Compiling takes about 2 s per million characters of source.
MAX_SOURCE = 200_000
# The plain text derived from HTML (inscriptis): up to 2 s per million characters.
MAX_DERIVED_TEXT_INPUT = 200_000
# CSS inlining (css_inline) of a rendered email. Its HTML parser recurses per level of
# nesting (about 10,000 levels crash the process), re-opens unclosed formatting elements in
# every new block (elements squared), and every element it matches gets the declarations:
# bounded by tags (each "<"), tags x characters of <style>, tags x formatting tags.
MAX_INLINE_TAGS = 3_000
MAX_INLINE_STYLE_WORK = 5_000_000
MAX_INLINE_FORMATTING_WORK = 500_000
# The compiled templates (and inlined sources) kept: about 600 bytes per node.
CACHE_BYTES = 64 * 1024 * 1024


class _SandboxEngine(Engine):
    # Engine() would add loader_tags ({% include %}, {% extends %}) and all default tags and
    # filters; the sandbox library re-exports only the safe ones.
    default_builtins = ["emails.content.rendering.sandbox"]

    def from_string(self, template_code):
        """The compiled template, every node counting against the render budget."""
        template = super().from_string(template_code)
        template.node_count = instrument(template.nodelist)
        return template


def _engine(*, autoescape: bool) -> Engine:
    # debug=True makes Django record the line of a template error, which authors need.
    return _SandboxEngine(
        dirs=[], app_dirs=False, loaders=[], libraries={}, debug=True, autoescape=autoescape
    )


_HTML_ENGINE = _engine(autoescape=True)
_TEXT_ENGINE = _engine(autoescape=False)
_TEXT_CONFIG = ParserConfig(css=CSS_PROFILES["strict"], display_links=True)
_CSS_INLINER = css_inline.CSSInliner(keep_style_tags=True, load_remote_stylesheets=False)


class TemplateRenderError(Exception):
    """A template that does not compile or fails while rendering.

    ``part`` says which of subject / HTML body / plain-text body; ``line`` is 1-based when known.
    Its message never quotes payload values.
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


class TemplateBudgetError(TemplateRenderError):
    """A template over its render budget: the message is "template exceeds its budget (...)",
    naming the limit (emails.content.rendering.sandbox)."""

    def __init__(self, reason: str, *, part: str = "", line: int | None = None):
        super().__init__(f"{OVER_BUDGET} ({reason})", part=part, line=line)


@dataclass(frozen=True)
class RenderedEmail:
    """The three parts of an email, and the errors of the parts that did not render (a
    preview shows them; sending refuses an email that has any)."""

    subject: str
    html: str
    text: str
    errors: tuple[TemplateRenderError, ...] = ()

    def error_list(self) -> list[dict]:
        """The errors as JSON-ready dicts: part, line, message."""
        return [
            {"part": error.part, "line": error.line, "message": error.message}
            for error in self.errors
        ]


def freeze(value):
    """JSON data -> read-only data: dicts become mappingproxies and lists tuples, so no
    ``{{ list.clear }}`` or ``{{ obj.pop }}`` can change what the next variable sees."""
    if isinstance(value, Mapping):
        return MappingProxyType({str(key): freeze(item) for key, item in value.items()})
    if isinstance(value, list | tuple):
        return tuple(freeze(item) for item in value)
    return value


RTL_LANGUAGES = {"ar", "fa", "he", "ur", "ps", "sd", "ug", "yi", "dv", "ckb"}


@dataclass(frozen=True)
class LayoutSource:
    html: str
    text: str = "{{ content }}"


def email_context(
    payload: Mapping, *, locale: str, brand: Mapping, expires_in_minutes: int
) -> dict:
    """The template context: the Logto payload (frozen) plus a few derived, plain values:

    - ``brand``: name, logo_url, company_info. From the payload when it has them
      (``organization.branding.logoUrl``, ``application.branding.logoUrl``,
      ``application.displayName`` or ``name``), else from ``brand`` (the configured defaults).
    - ``lang`` and ``direction`` (``rtl`` for Arabic, Persian, ...) for the template's locale.
    - ``expires_in_minutes``: the code's lifetime, for expiry wording.
    """
    context = dict(freeze(payload))
    application = _mapping(payload.get("application"))
    organization = _mapping(payload.get("organization"))
    context["brand"] = freeze(
        {
            "name": _first_text(application.get("displayName"), application.get("name"))
            or brand.get("name", ""),
            "logo_url": _first_text(
                _branding(organization).get("logoUrl"), _branding(application).get("logoUrl")
            )
            or brand.get("logo_url", ""),
            "company_info": brand.get("company_info", ""),
        }
    )
    language = locale.split("-")[0].lower()
    context["lang"] = locale
    context["direction"] = "rtl" if language in RTL_LANGUAGES else "ltr"
    context["expires_in_minutes"] = expires_in_minutes
    return context


def _branding(owner: Mapping) -> Mapping:
    return _mapping(owner.get("branding"))


def _mapping(value) -> Mapping:
    return value if isinstance(value, dict) else {}


def _first_text(*values) -> str:
    return next((value for value in values if isinstance(value, str) and value.strip()), "")


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
    )


def _render_prepared(subject, html, text, preheader, layout, context) -> RenderedEmail | None:
    """render_email's fast path, for an email with a layout and its own text: the layout and
    body as one template whose CSS was inlined when it was compiled (_inlined_source), so no
    email pays for parsing and inlining its HTML. None when that template cannot be used or
    a part fails (the usual path then renders, or names the failing part and line); over
    budget, raises TemplateBudgetError (the usual path would only spend the budget again)."""
    source = _inlined_source(layout.html, html) if text.strip() else None
    if source is None:
        return None
    context = dict(context)
    try:
        subject = " ".join(_render(_TEXT_ENGINE, subject, context, "subject").split())
        preheader = " ".join(_render(_TEXT_ENGINE, preheader, context, "preheader").split())
        wrapped = {**context, "subject": subject, "preheader": preheader}
        body = _render(_HTML_ENGINE, source, wrapped, "HTML body")
        own_text = _render(_TEXT_ENGINE, text, context, "plain-text body")
        if own_text and layout.text.strip():
            own_text = _render(
                _TEXT_ENGINE, layout.text, {**wrapped, "content": own_text}, "layout text"
            )
    except TemplateBudgetError as exc:
        if exc.part == "HTML body":
            exc.line = None  # a line of the merged layout and body: neither's own
        raise
    except TemplateRenderError:
        return None
    return RenderedEmail(subject=subject, html=body, text=own_text)


# Where the CSS may be inlined before rendering: rules whose selectors are only classes, ids,
# html or body (an element's own markup decides whether they match, never its neighbours or a
# conditional ancestor), and no template tag where they are matched or the HTML is made.
_SIMPLE_SELECTOR = re.compile(r"^(?:html|body|\.[A-Za-z_][\w-]*|#[A-Za-z_][\w-]*)$")
# Tags whose output is markup, so the inliner would not see it.
_UNSAFE_TAGS = re.compile(r"\b(?:safe|safeseq|autoescape)\b")
# firstof/cycle/now/regroup ... as name: a variable the rest of the page sees.
_ASSIGNED = re.compile(r"\bas\s+(\w+)")
_WORD = re.compile(r"\w+")
_LAYOUT_ONLY_NAMES = re.compile(r"\b(?:content|subject|preheader)\b")
_CONTENT = re.compile(r"\bcontent\b")
_MARKER = re.compile("\ue000(\\d+)\ue001")


def _inlined_source(layout_html: str, body_html: str) -> str | None:
    return _CACHE.get(("inlined", layout_html, body_html), _inline_source, _weigh_inlined)


def _inline_source(key: tuple) -> str | None:
    """The layout with the body in place of its ``{{ content }}`` and the CSS inlined: the
    same email as inlining each rendered one, when the checks below can promise that.

    The layout must have exactly one plain ``{{ content }}`` at its top level (not inside a
    tag that changes how the body renders), and neither may see a name only the other has
    (the layout's subject, preheader and content; a variable set with ``as``). Then, after
    inlining, every template tag must still be there, in order and in its place among the
    elements, and none may sit where it changes what the CSS matches (see _Skeleton).
    Never for HTML the inliner or the skeleton's parser cannot be trusted with (None: the
    usual path inlines each email, under its budget)."""
    _, layout_html, body_html = key
    try:
        layout = _compile(_HTML_ENGINE, layout_html)
        _compile(_HTML_ENGINE, body_html)
    except TemplateRenderError:
        return None
    slots = [
        node
        for node in layout.nodelist
        if isinstance(node, VariableNode) and node.filter_expression.token.strip() == "content"
    ]
    content_mentions = sum(len(_CONTENT.findall(tag)) for tag in _tags(layout_html))
    body_uses_layout_names = any(_LAYOUT_ONLY_NAMES.search(tag) for tag in _tags(body_html))
    if (
        len(slots) != 1
        or content_mentions != 1
        or body_uses_layout_names
        or _shared_assignments(_tags(layout_html), _tags(body_html))
    ):
        return None
    position = slots[0].token.position if slots[0].token else None
    if position is None:
        return None
    start, end = position
    merged = layout_html[:start] + body_html + layout_html[end:]
    styles = _style_blocks(merged)
    if (
        not styles
        or not all(_simple_css(style) for style in styles)
        or any(_UNSAFE_TAGS.search(tag) for tag in _tags(merged))
    ):
        return None
    # The inliner sees each template tag as an opaque marker (so it neither escapes `<` in
    # `{% if a < b %}` nor parses anything in it), and each marker must come back in place.
    originals = []

    def protect(match: re.Match) -> str:
        originals.append(match.group(0))
        return f"\ue000{len(originals) - 1}\ue001"

    protected = tag_re.sub(protect, merged)
    if _inlining_refusal(protected) or not _tags_close(protected):
        return None
    try:
        inlined = _CSS_INLINER.inline(protected)
    except ValueError:
        return None
    # The parser builds a tree: text it finds where HTML allows none (a tag between table
    # rows) is moved, which would move the tag out of what it wraps. Every marker must keep
    # its place among the elements.
    every_marker = [str(index) for index in range(len(originals))]
    skeleton = _skeleton(protected)
    if (
        skeleton is None
        or _MARKER.findall(inlined) != every_marker
        or _skeleton(inlined) != skeleton
    ):
        return None
    return _MARKER.sub(lambda match: originals[int(match.group(1))], inlined)


def _weigh_inlined(key: tuple, inlined: str | None) -> int:
    return len(key[1]) + len(key[2]) + len(inlined or "")


def _style_blocks(html: str) -> list[str]:
    """The contents of ``<style ...>...</style>`` blocks, found in linear time (a regex's lazy
    ``.*?`` rescans the rest for each unclosed ``<style``: quadratic)."""
    lower = html.lower()
    blocks, position = [], 0
    while (start := lower.find("<style", position)) != -1:
        opened = lower.find(">", start)
        closed = lower.find("</style>", opened) if opened != -1 else -1
        if closed == -1:
            break
        blocks.append(html[opened + 1 : closed])
        position = closed + len("</style>")
    return blocks


def _tags_close(html: str) -> bool:
    """Whether each ``<`` that opens a tag has its ``>`` before the next ``<``. For each one
    that does not, Python's HTMLParser (_Skeleton) rescans the rest of the document: a
    minute for 200 kB of ``<a x x x``."""
    return all(
        ">" in piece for piece in html.split("<")[1:] if piece[:1].isalpha() or piece[:1] in "/!?"
    )


_FORMATTING_TAG = re.compile(
    r"<(?:a|b|big|code|em|font|i|nobr|s|small|strike|strong|tt|u)[\s/>]", re.I
)


def _inlining_refusal(html: str) -> str | None:
    """Why the CSS inliner may not have ``html`` (see MAX_INLINE_TAGS), or None."""
    tags = html.count("<")
    if tags * len(html) <= MAX_INLINE_FORMATTING_WORK:
        return None  # an email of ordinary size: every bound below holds
    if tags > MAX_INLINE_TAGS:
        return f"CSS is inlined into at most {MAX_INLINE_TAGS} tags, not {tags}"
    style = sum(map(len, _style_blocks(html)))
    if tags * style > MAX_INLINE_STYLE_WORK:
        return (
            f"CSS inlining of {tags} tags x {style} characters of <style> is over "
            f"{MAX_INLINE_STYLE_WORK}"
        )
    formatting = len(_FORMATTING_TAG.findall(html))
    if tags * formatting > MAX_INLINE_FORMATTING_WORK:
        return (
            f"CSS inlining of {tags} tags x {formatting} formatting tags (a, b, em...) is over "
            f"{MAX_INLINE_FORMATTING_WORK}"
        )
    return None


class _Skeleton(HTMLParser):
    """Start tags and template-tag markers in document order, leaving out what an HTML
    parser adds or drops by itself (html, head, body, tbody, end tags). ``refused`` when a
    template tag sits where it changes what CSS matches or how the inliner reads the tag: in
    an attribute's name (``{% if %}class="x"{% endif %}``), or in a class, id or style."""

    IMPLIED = frozenset({"html", "head", "body", "tbody"})
    MATCHED = frozenset({"class", "id", "style"})

    def __init__(self):
        super().__init__(convert_charrefs=False)
        self.items: list = []
        self.refused = False

    def handle_starttag(self, tag, attrs):
        markers = []
        for name, value in attrs:
            in_value = _MARKER.findall(value or "")
            if _MARKER.search(name) or (in_value and name in self.MATCHED):
                self.refused = True
            markers += in_value
        if tag not in self.IMPLIED:
            self.items.append((tag, markers))

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)

    def handle_data(self, data):
        self.items.extend(_MARKER.findall(data))


def _skeleton(html: str) -> list | None:
    parser = _Skeleton()
    parser.feed(html)
    parser.close()
    return None if parser.refused else parser.items


def _shared_assignments(layout_tags: list[str], body_tags: list[str]) -> bool:
    """Whether a name one template assigns (``... as name``) appears in the other: rendered
    apart they never see each other's, merged they would."""

    def assigned(tags):
        return {name for tag in tags for name in _ASSIGNED.findall(tag)}

    def words(tags):
        return {word for tag in tags for word in _WORD.findall(tag)}

    return bool(
        assigned(body_tags) & words(layout_tags) or assigned(layout_tags) & words(body_tags)
    )


def _tags(source: str) -> list[str]:
    """The template's variables and tags, in order, as written."""
    return [
        token.contents for token in Lexer(source).tokenize() if token.token_type != TokenType.TEXT
    ]


def _simple_css(css: str) -> bool:
    if "{{" in css or "{%" in css:
        return False
    css = _without_comments(css)
    rules: list[str] = []
    depth = 0
    selector: list[str] = []
    for char in css:  # top-level rules only: @media blocks are kept, never inlined
        if char == "{":
            if depth == 0:
                rules.append("".join(selector))
            depth += 1
        elif char == "}":
            depth -= 1
            selector = []
        elif depth == 0:
            selector.append(char)
    return all(
        rule.strip().startswith("@")
        or all(_SIMPLE_SELECTOR.match(part.strip()) for part in rule.split(","))
        for rule in rules
    )


def _without_comments(css: str) -> str:
    """``css`` without its ``/* ... */`` comments, in linear time (a regex's lazy ``.*?``
    rescans the rest for each unclosed ``/*``: a minute for 200 kB of ``/* ``)."""
    kept, position = [], 0
    while (start := css.find("/*", position)) != -1:
        end = css.find("*/", start + 2)
        if end == -1:
            break  # unclosed: kept as it is, as the regex did
        kept.append(css[position:start])
        position = end + 2
    kept.append(css[position:])
    return "".join(kept)


def _render_all(subject, html, text, preheader, layout, context) -> dict:
    context = dict(context)
    parts: dict = {"subject": "", "html": "", "text": "", "errors": []}
    # An email over its budget renders no further part: its time is spent, and the first
    # error names the part that spent it.
    over_budget = False

    def attempt(part, engine, source, extra=None):
        nonlocal over_budget
        if over_budget:
            return ""
        try:
            return _render(engine, source, {**context, **(extra or {})}, part)
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

    parts["subject"] = " ".join(attempt("subject", _TEXT_ENGINE, subject).split())
    rendered_preheader = " ".join(attempt("preheader", _TEXT_ENGINE, preheader).split())
    body = attempt("HTML body", _HTML_ENGINE, html)
    own_text = attempt("plain-text body", _TEXT_ENGINE, text) if text.strip() else ""
    if layout is not None:
        wrapped = {"subject": parts["subject"], "preheader": rendered_preheader}
        body = attempt("layout", _HTML_ENGINE, layout.html, {**wrapped, "content": mark_safe(body)})  # noqa: S308  (rendered by the sandbox, escaped there)
        if own_text and layout.text.strip():
            own_text = attempt(
                "layout text", _TEXT_ENGINE, layout.text, {**wrapped, "content": own_text}
            )
    html_part = "layout" if layout is not None else "HTML body"
    parts["html"] = convert(html_part, inline_css, body) if "<style" in body else body
    parts["text"] = own_text if text.strip() else convert("plain-text body", _derive_text, body)
    return parts


def inline_css(html: str) -> str:
    """Copy the rules of ``<style>`` blocks into style attributes (what most mail clients
    honour), keeping the blocks for clients that read them (dark mode media queries).
    Raises TemplateBudgetError for HTML the inliner cannot be trusted with (too many tags,
    or too much CSS for them: see MAX_INLINE_TAGS)."""
    refusal = _inlining_refusal(html)
    if refusal:
        raise TemplateBudgetError(refusal)
    try:
        return _CSS_INLINER.inline(html)
    except ValueError:
        return html  # CSS the inliner cannot parse: send the HTML as written


def html_to_text(html: str) -> str:
    """A readable plain-text version of an HTML email: block elements become lines (so a
    code in its own paragraph stands on its own line) and links show their URL."""
    if not html.strip():
        return ""
    text = _MARKDOWN_LINK.sub(_plain_link, get_text(html, _TEXT_CONFIG))
    lines = [line.rstrip() for line in text.splitlines()]
    collapsed = re.sub(r"\n{3,}", "\n\n", "\n".join(lines))
    return collapsed.strip() + "\n"


def _derive_text(html: str) -> str:
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


def compile_template(source: str):
    """The compiled sandbox template (for inspection); raises TemplateRenderError."""
    return _compile(_HTML_ENGINE, source)


def _render(engine: Engine, source: str, context: Mapping, part: str) -> str:
    """One part, under the active render budget (a new one if none is active).

    Returns a plain ``str``: Template.render returns a SafeString even from the engine that
    escapes nothing, and a text part marked safe would reach an HTML page unescaped.
    Raises TemplateRenderError naming the part and line (TemplateBudgetError over budget);
    lets Celery's SoftTimeLimitExceeded through, and SystemExit and KeyboardInterrupt (not
    Exceptions).
    """
    budget = active_budget()
    if budget is None:
        with render_budget():
            return _render(engine, source, context, part)
    try:
        budget.start_part()
        template = _compile(engine, source)
        # No localisation: numbers render the same whatever language the process has
        # active (an email has its own locale; the server's is not it).
        output = template.render(
            Context(dict(context), autoescape=engine.autoescape, use_l10n=False)
        )
        # What an {% if %} swallowed, and the output's final size
        budget.finish_part(len(output))
        # str(SafeString) is the SafeString itself; a whole-string slice of a str subclass
        # is a plain copy.
        return output if type(output) is str else output[:]
    except TemplateRenderError as exc:
        exc.part = part
        raise
    except Exception as exc:
        # A failure the budget remembers comes first: what surfaced may be its consequence.
        failure = budget.failure or exc
        if isinstance(failure, SoftTimeLimitExceeded):
            raise failure from None  # the task must stop, whatever the template does
        if isinstance(failure, BudgetExceeded):
            raise TemplateBudgetError(failure.reason, part=part, line=_line(failure)) from None
        # Rendering runs author-written code paths (filters on payload data); whatever
        # fails, the caller gets one error type naming the part and line, never a crash.
        raise TemplateRenderError(_message(exc), part=part, line=_line(exc)) from None


class _Cache:
    """Least recently used values up to a total weight (about bytes). A count of entries
    bounds nothing: previews compile whatever an author sends, up to MAX_SOURCE."""

    def __init__(self, capacity: int):
        self._capacity = capacity
        self._used = 0
        self._entries: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple, make, weigh):
        """The value for ``key``: cached, or ``make(key)`` (its exceptions are not cached)."""
        entry = self._entries.get(key)
        if entry is not None:
            try:
                self._entries.move_to_end(key)
            except KeyError:
                pass  # another thread evicted it meanwhile
            return entry[0]
        value = make(key)
        weight = weigh(key, value)
        with self._lock:
            if key not in self._entries and weight <= self._capacity:
                self._entries[key] = (value, weight)
                self._used += weight
                while self._used > self._capacity:
                    _, (_, dropped) = self._entries.popitem(last=False)
                    self._used -= dropped
        return value


_CACHE = _Cache(CACHE_BYTES)


def _compile_new(key: tuple):
    _, engine, source = key
    return engine.from_string(source)


def _weigh_compiled(key: tuple, template) -> int:
    return 600 * template.node_count + len(key[2])


def _compile(engine: Engine, source: str):
    if len(source) > MAX_SOURCE:
        raise TemplateBudgetError(f"a template is at most {MAX_SOURCE} characters")
    try:
        return _CACHE.get(("compiled", engine, source), _compile_new, _weigh_compiled)
    except TemplateSyntaxError as exc:
        raise TemplateRenderError(_message(exc), line=_line(exc)) from exc
    except BudgetExceeded as exc:
        raise TemplateBudgetError(exc.reason) from None
    except RecursionError as exc:
        raise TemplateRenderError("the template is nested too deeply") from exc


def _message(exc: Exception) -> str:
    if isinstance(exc, VariableDoesNotExist):
        # Django's own text dumps the whole context, codes and links included: never that.
        name = exc.params[0] if exc.params else "?"
        return (
            f"'{name}' does not exist here; a filter argument must exist "
            "(test it with {% if %}, or use {% firstof %})"
        )
    if not isinstance(exc, TemplateSyntaxError):
        # A filter or tag failing on a value: its text may quote the value (a code, a link),
        # and this message is stored and shown. Name the kind of failure only.
        return f"{type(exc).__name__} while rendering a tag or filter"
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _line(exc: Exception) -> int | None:
    debug = getattr(exc, "template_debug", None)
    return debug.get("line") if isinstance(debug, dict) else None
