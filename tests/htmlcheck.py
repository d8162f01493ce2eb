"""A strict-enough HTML structure check for emails: every non-void element closed in order,
one html/head/body/title, no script, no external stylesheet."""

from html.parser import HTMLParser

VOID = {
    "area",
    "base",
    "br",
    "col",
    "embed",
    "hr",
    "img",
    "input",
    "link",
    "meta",
    "source",
    "track",
    "wbr",
}


class _Checker(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.problems: list[str] = []
        self.seen: dict[str, int] = {}

    def handle_starttag(self, tag, attrs):
        self.seen[tag] = self.seen.get(tag, 0) + 1
        if tag == "script":
            self.problems.append("has a <script>")
        if tag == "link" and dict(attrs).get("rel") == "stylesheet":
            self.problems.append("loads an external stylesheet")
        if tag == "img" and "alt" not in dict(attrs):
            self.problems.append("has an image without alt text")
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes <{self.stack[-1] if self.stack else '-'}>")
            return
        self.stack.pop()


def html_problems(html: str) -> list[str]:
    checker = _Checker()
    checker.feed(html)
    checker.close()
    problems = list(checker.problems)
    if checker.stack:
        problems.append(f"unclosed: {checker.stack}")
    for tag in ("html", "head", "body", "title"):
        if checker.seen.get(tag) != 1:
            problems.append(f"{checker.seen.get(tag, 0)} <{tag}> elements")
    return problems
