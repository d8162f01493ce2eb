"""CSS inlining (css-inline): per email, or once per layout and body when that provably
gives the same email (the fast path of docs/ARCHITECTURE.md), with the bounds the inliner
needs on untrusted HTML."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import css_inline
from django.template.base import Lexer, TokenType, VariableNode, tag_re

from emails.content.rendering.engine import (
    HTML_ENGINE,
    TEMPLATE_CACHE,
    TemplateBudgetError,
    TemplateRenderError,
    compile_source,
)

# CSS inlining (css_inline) of a rendered email. Its HTML parser recurses per level of
# nesting (about 10,000 levels crash the process), re-opens unclosed formatting elements in
# every new block (elements squared), and every element it matches gets the declarations:
# bounded by tags (each "<"), tags x characters of <style>, tags x formatting tags.
MAX_INLINE_TAGS = 3_000


MAX_INLINE_STYLE_WORK = 5_000_000


MAX_INLINE_FORMATTING_WORK = 500_000


_CSS_INLINER = css_inline.CSSInliner(keep_style_tags=True, load_remote_stylesheets=False)


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


def inlined_source(layout_html: str, body_html: str) -> str | None:
    return TEMPLATE_CACHE.get(("inlined", layout_html, body_html), _inline_source, _weigh_inlined)


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
        layout = compile_source(HTML_ENGINE, layout_html)
        compile_source(HTML_ENGINE, body_html)
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
