"""The only tags and filters email templates may use, and the budget every render keeps.

Tags and filters: Django's built-ins minus anything that reaches outside the template (loading
libraries or other templates, URL reversing, request state, debug output) or pads a short
template into gigabytes by design (padding filters, ``{% lorem %}``, unbounded ``floatformat``
precision). Forbidden tags are registered as tags that refuse at compile time, so the author
reads why instead of Django's "did you forget to {% load %}" hint.

The budget: whatever a template author writes, one email's render stays within

- RENDER_SECONDS of wall time, for all the parts of the email together;
- MAX_OUTPUT characters of output per part;
- MAX_VALUE characters in any value a filter takes or makes (a list counts its items and the
  characters of its strings); filters that iterate in Python take at most MAX_ITEMS items, and
  those doing slow per-character work less than MAX_VALUE (INPUT_LIMITS);
- MAX_LOOP_ITERATIONS loop iterations and regrouped items per part;
- MAX_LOOKUPS parts per variable (at compile time).

Going over raises BudgetExceeded, which render.py reports as a TemplateRenderError
"template exceeds its budget (...)".

How it holds, with a few cheap checks per filter call, expression and node: render.py
activates a RenderBudget (render_budget) around each email and calls ``instrument`` on every
template it compiles.

- Every filter registered here is wrapped (_budgeted): it checks the clock, refuses an input
  or argument over its cap, predicts ``|join``'s size before joining (the one filter whose
  output grows with the product of its inputs), and measures what it made.
- Every expression (a variable and its filters, in a tag's arguments or an ``{% if %}``
  operand) checks the clock before it is resolved; a variable has at most MAX_LOOKUPS parts,
  since each may call a method (``{{ name.upper }}``) that no check sees.
- Nodes get counting classes: variables, tags that can add output (``{% filter %}``), and
  everything inside a loop count what they output, so a loop is stopped as its output grows,
  not after it has built gigabytes; inside a loop every node also checks the clock.

The budget is sticky: its first failure (or Celery's SoftTimeLimitExceeded, seen while an
expression resolves) is remembered and raised again by every later check, and rendering
checks it at the end of each part, because Django's ``{% if %}`` operators swallow any
exception raised in their operands.
"""

from __future__ import annotations

import functools
import time
from contextvars import ContextVar

from celery.exceptions import SoftTimeLimitExceeded
from django.template import Library, TemplateSyntaxError, defaultfilters, defaulttags
from django.template.base import (
    FilterExpression,
    Node,
    NodeList,
    TextNode,
    VariableNode,
    render_value_in_context,
)
from django.template.defaulttags import (
    AutoEscapeControlNode,
    CommentNode,
    ForNode,
    IfChangedNode,
    IfNode,
    RegroupNode,
    SpacelessNode,
    TemplateLiteral,
    WithNode,
)
from django.template.smartif import TokenBase

register = Library()

FORBIDDEN_TAGS = {
    "load": "custom tag libraries cannot be loaded",
    "include": "templates cannot include other templates",
    "extends": "templates cannot extend other templates",
    "block": "blocks only make sense with extends, which is not available",
    "debug": "it would print the template's internals",
    "url": "URLs of this server are not part of an email",
    "csrf_token": "there is no request behind an email",
    "querystring": "there is no request behind an email",
    "lorem": "it can produce unbounded output",
}
FORBIDDEN_FILTERS = {"center", "ljust", "rjust", "stringformat", "pprint", "json_script"}
MAX_FLOAT_PRECISION = 20

RENDER_SECONDS = 2.0
MAX_OUTPUT = 1_000_000
MAX_VALUE = 1_000_000
# What all filters of one email make together: many values each under MAX_VALUE held at once
# (``{% with a=x|add:"1" b=x|add:"2" ... %}``) would otherwise take gigabytes.
MAX_MADE = 10_000_000
# Date formats (``{% now %}``, ``|date``, ``|time``) are interpreted character by character.
MAX_FORMAT = 100
MAX_ITEMS = 10_000
MAX_LOOP_ITERATIONS = 10_000
# Parts of one variable (``organization.branding.logoUrl`` has 3): each may call a method on
# a value (``{{ name.upper }}``), which no check sees until the variable is resolved.
MAX_LOOKUPS = 8
# Filters that iterate their input item by item in Python (a string's items are its
# characters): about 2 s per million items, so at most MAX_ITEMS.
ITEM_FILTERS = {
    "join",
    "escapeseq",
    "safeseq",
    "unordered_list",
    "dictsort",
    "dictsortreversed",
    "make_list",
}
# Filters doing Python work per character or per tag, measured on a megabyte of their worst
# input: 0.5-2.5 s (paragraphs, slugs, wrapping, stripping tags, line numbers), 6-7 s
# (truncating HTML). Their caps keep one call under about 0.1 s.
INPUT_LIMITS = {
    **dict.fromkeys(ITEM_FILTERS, MAX_ITEMS),
    "linebreaks": 100_000,
    "slugify": 100_000,
    "wordwrap": 100_000,
    "linenumbers": 50_000,
    "striptags": 50_000,
    "truncatechars_html": 50_000,
    "truncatewords_html": 50_000,
}

FORMAT_FILTERS = {"date", "time"}

# The clock every check reads (tests replace it to simulate a signal arriving mid-render).
_clock = time.monotonic


class BudgetExceeded(Exception):
    """A render went over one of its limits; ``reason`` names it."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class RenderBudget:
    """One email's budget: a deadline for all its parts, and the output and loop iterations
    of the part being rendered (start_part resets them). ``failure`` is the first limit it
    went over, or a SoftTimeLimitExceeded a filter saw: every later check raises it."""

    __slots__ = ("deadline", "failure", "iterations", "made", "output", "seconds")

    def __init__(self):
        self.seconds = RENDER_SECONDS
        self.deadline = _clock() + self.seconds
        self.failure: BaseException | None = None
        self.output = 0
        self.iterations = 0
        self.made = 0

    def start_part(self) -> None:
        self.check()
        self.output = 0
        self.iterations = 0

    def finish_part(self, length: int) -> None:
        """The last check of a part: a failure something swallowed, the clock (a node outside
        a loop checks it only before it starts), and the output's size."""
        self.check()
        if length > MAX_OUTPUT:
            self.exceed(f"its output is longer than {MAX_OUTPUT} characters")

    def make(self, characters: int) -> None:
        """Count what a filter made, for the email."""
        self.made += characters
        if self.made > MAX_MADE:
            self.exceed(f"its filters made more than {MAX_MADE} characters")

    def check(self) -> None:
        """Raise the remembered failure, or BudgetExceeded once the deadline has passed."""
        if self.failure is not None:
            raise self.failure
        if _clock() > self.deadline:
            self.exceed(f"rendering took longer than {self.seconds:g} seconds")

    def spend(self, characters: int) -> None:
        """Count output, then check."""
        self.output += characters
        if self.output > MAX_OUTPUT:
            self.exceed(f"its output is longer than {MAX_OUTPUT} characters")
        self.check()

    def iterate(self, count: int) -> None:
        self.iterations += count
        if self.iterations > MAX_LOOP_ITERATIONS:
            self.exceed(f"loops ran more than {MAX_LOOP_ITERATIONS} times")

    def exceed(self, reason: str):
        if self.failure is None:
            self.failure = BudgetExceeded(reason)
        raise self.failure

    def interrupted(self, exc: SoftTimeLimitExceeded) -> None:
        if self.failure is None:
            self.failure = exc


_active: ContextVar[RenderBudget | None] = ContextVar("mailroom_render_budget", default=None)


active_budget = _active.get  # the budget of the render under way, or None


class render_budget:  # lower case like contextlib.nullcontext: used as ``with render_budget():``
    """Activate a new budget for what runs inside (one email), or join the active one: an
    email's parts, and a preview's samples, share one."""

    __slots__ = ("token",)

    def __enter__(self) -> RenderBudget:
        budget = _active.get()
        if budget is not None:
            self.token = None
            return budget
        budget = RenderBudget()
        self.token = _active.set(budget)
        return budget

    def __exit__(self, *exc_info) -> None:
        if self.token is not None:
            _active.reset(self.token)


def _size(value) -> int:
    """Characters in a value: a string's length; a list's items plus the characters of its
    strings (one level: templates cannot nest what they make)."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list | tuple):
        return len(value) + sum(len(item) for item in value if isinstance(item, str))
    if isinstance(value, bytes):
        return len(value)
    return 0


def _items(value) -> int:
    return len(value) if hasattr(value, "__len__") else 0


def _joined_size(value, separator="", *_) -> int:
    """What |join will make, before it makes it: the items, and the separator between each
    two (before escaping: the size check after the call sees that)."""
    count = _items(value)
    if count < 2:
        return 0
    separator = separator if isinstance(separator, str) else str(separator)
    if isinstance(value, str):
        items = count
    else:
        items = sum(len(item) for item in value if isinstance(item, str))
    return items + len(separator) * (count - 1)


_PREDICTIONS = {"join": _joined_size}


def _budgeted(name: str, function):
    """The filter ``function``, checked against the active budget (no budget, no checks)."""
    characters = MAX_VALUE if name in ITEM_FILTERS else INPUT_LIMITS.get(name, MAX_VALUE)
    items = MAX_ITEMS if name in ITEM_FILTERS else None
    arguments = MAX_FORMAT if name in FORMAT_FILTERS else MAX_VALUE
    predict = _PREDICTIONS.get(name)

    @functools.wraps(function)  # keeps is_safe, needs_autoescape and the signature
    def budgeted(value, *args, **kwargs):
        budget = _active.get()
        if budget is None:
            return function(value, *args, **kwargs)
        try:
            budget.check()
            if _size(value) > characters:
                budget.exceed(f"|{name} takes at most {characters} characters")
            if items is not None and _items(value) > items:
                budget.exceed(f"|{name} takes at most {items} items")
            if args and _size(args[0]) > arguments:
                budget.exceed(f"|{name} takes an argument of at most {arguments} characters")
            if predict is not None and predict(value, *args) > MAX_VALUE:
                budget.exceed(f"|{name} would make a value longer than {MAX_VALUE} characters")
            result = function(value, *args, **kwargs)
            made = _size(result)
            if made > MAX_VALUE:
                budget.exceed(f"|{name} made a value longer than {MAX_VALUE} characters")
            budget.make(made)
        except SoftTimeLimitExceeded as exc:
            budget.interrupted(exc)
            raise
        return result

    return budgeted


# Nodes and expressions


class _CountedText(TextNode):
    """Text in a loop counts its length (no clock: each render adds at least one character,
    so the output cap bounds how often it runs)."""

    def render_annotated(self, context):
        budget = _active.get()
        if budget is not None:
            budget.output += len(self.s)
            if budget.output > MAX_OUTPUT:
                budget.exceed(f"its output is longer than {MAX_OUTPUT} characters")
        return self.s


class _CountedVariable(VariableNode):
    """A variable checks the clock before its expression resolves (the expression keeps its
    class) and counts its output: what most templates are made of, so in one call, with
    VariableNode.render's own lines."""

    def render(self, context):
        budget = _active.get()
        if budget is not None and (budget.failure is not None or _clock() > budget.deadline):
            budget.check()
        try:
            value = self.filter_expression.resolve(context)
        except UnicodeDecodeError:
            return ""  # as VariableNode.render
        output = render_value_in_context(value, context)
        if budget is not None:
            budget.output += len(output)
            if budget.output > MAX_OUTPUT:
                budget.spend(0)  # raises
        return output


class _CheckedExpression(FilterExpression):
    """A variable and its filters, wherever a node resolves one (a variable, a tag's
    arguments, an {% if %} operand): checks the clock and the budget's failure first. What
    resolving costs between two checks is bounded: at most MAX_LOOKUPS lookups per variable,
    and each filter checks again. A SoftTimeLimitExceeded raised while it resolves is
    remembered, for when an {% if %} swallows it."""

    __slots__ = ()

    def resolve(self, context, ignore_failures=False):
        budget = _active.get()
        if budget is None:
            return _resolve(self, context, ignore_failures)
        try:
            # budget.check(), inlined: this runs for every variable
            if budget.failure is not None or _clock() > budget.deadline:
                budget.check()
            return _resolve(self, context, ignore_failures)
        except SoftTimeLimitExceeded as exc:
            budget.interrupted(exc)
            raise


_resolve = FilterExpression.resolve  # called directly: super() costs, for every variable


class _LoopSequence(_CheckedExpression):
    """A {% for %} loop's sequence: its length counts against the part's loop budget before
    the loop starts."""

    __slots__ = ()

    def resolve(self, context, ignore_failures=False):
        values = super().resolve(context, ignore_failures)
        budget = _active.get()
        if budget is not None:
            budget.iterate(_items(values))
        return values


class BoundedRegroupNode(RegroupNode):
    """{% regroup %}, counting each item it groups as a loop iteration."""

    def resolve_expression(self, obj, context):
        budget = _active.get()
        if budget is not None:
            budget.iterate(1)
        return super().resolve_expression(obj, context)


# Tags whose output is what the nodes inside them render, or less. Outside a loop they, and
# text, render once (bounded by the source) and need no counting: the nodes inside count,
# their expressions check the clock, and rendering checks each part's final size.
_PASS_THROUGH = (
    IfNode,
    ForNode,
    WithNode,
    AutoEscapeControlNode,
    SpacelessNode,
    IfChangedNode,
    CommentNode,
)


def instrument(nodelist, *, in_loop: bool = False) -> int:
    """Prepare a compiled template (``template.nodelist``) for budgeted renders: every
    expression checks the clock (_CheckedExpression), and nodes get counting classes (every
    node inside a loop; elsewhere all but text and the _PASS_THROUGH tags). Raises
    BudgetExceeded for a variable of more than MAX_LOOKUPS lookups. Returns how many nodes
    there are."""
    count = 0
    for node in nodelist:
        count += 1
        cls = type(node)
        if cls is VariableNode:
            node.__class__ = _CountedVariable
        elif in_loop:
            node.__class__ = _CountedText if cls is TextNode else _counted_class(cls, in_loop)
        elif not (cls is TextNode or cls in _PASS_THROUGH):
            node.__class__ = _counted_class(cls, in_loop)
        if cls is VariableNode:
            _check_lookups(node.filter_expression)  # its node checks the clock for it
        elif cls is not TextNode:
            for expression in _expressions(node):
                _check_lookups(expression)
                if type(expression) is FilterExpression:
                    expression.__class__ = _CheckedExpression
        for attribute in node.child_nodelists:
            inner = getattr(node, attribute, None)
            if inner:
                count += instrument(inner, in_loop=in_loop or isinstance(node, ForNode))
    return count


def _expressions(node):
    """Every FilterExpression among a node's attributes: tags keep them directly, in lists
    and dicts ({% cycle %}, {% with %}), and in {% if %} conditions (operator trees as deep
    as the condition is long, hence no recursion)."""
    pending = list(vars(node).values())
    while pending:
        value = pending.pop()
        if isinstance(value, FilterExpression):
            yield value
        elif isinstance(value, TemplateLiteral):
            pending.append(value.value)
        elif isinstance(value, TokenBase):  # an {% if %} operator
            pending += (value.first, value.second)
        elif isinstance(value, dict):
            pending += value.values()
        elif isinstance(value, list | tuple) and not isinstance(value, NodeList):
            pending += value


def _check_lookups(expression: FilterExpression) -> None:
    variables = [expression.var] + [
        argument for _, arguments in expression.filters for _, argument in arguments
    ]
    for variable in variables:
        lookups = getattr(variable, "lookups", None) or ()
        if len(lookups) > MAX_LOOKUPS:
            raise BudgetExceeded(f"a variable has at most {MAX_LOOKUPS} parts, not {len(lookups)}")


_COUNTED_CLASSES: dict[tuple[type[Node], bool], type[Node]] = {}


def _counted_class(cls: type[Node], in_loop: bool) -> type[Node]:
    """``cls`` counting what its nodes output beyond what the nodes inside them counted (for
    a node with none inside, all of it). In a loop it also checks the clock and the failure
    an {% if %} may have swallowed, once per iteration (a node without expressions checks
    nothing else)."""
    counted = _COUNTED_CLASSES.get((cls, in_loop))
    if counted is not None:
        return counted
    render_node = cls.render  # called directly: this runs for every node, super() costs

    def render(self, context):
        budget = _active.get()
        if budget is None:
            return render_node(self, context)
        before = budget.output
        output = render_node(self, context)
        added = len(output) - (budget.output - before)
        if added > 0:
            budget.output += added
        if budget.output > MAX_OUTPUT or (
            in_loop and (budget.failure is not None or _clock() > budget.deadline)
        ):
            budget.spend(0)  # raises
        return output

    # No __slots__: a node's class may only be swapped for one with the same layout.
    counted = type(cls.__name__, (cls,), {"render": render, "__module__": __name__})
    _COUNTED_CLASSES[(cls, in_loop)] = counted
    return counted


def _forbidden(name: str, reason: str):
    def refuse(parser, token):
        raise TemplateSyntaxError(f"{{% {name} %}} is not allowed in email templates: {reason}.")

    return refuse


for _name, _function in defaulttags.register.tags.items():
    if _name not in FORBIDDEN_TAGS:
        register.tag(_name, _function)
for _name, _reason in FORBIDDEN_TAGS.items():
    register.tag(_name, _forbidden(_name, _reason))


@register.tag("for")
def do_for(parser, token):
    node = defaulttags.do_for(parser, token)
    node.sequence.__class__ = _LoopSequence
    return node


@register.tag("now")
def do_now(parser, token):
    node = defaulttags.now(parser, token)
    if len(node.format_string) > MAX_FORMAT:
        raise TemplateSyntaxError(f"{{% now %}} takes a format of at most {MAX_FORMAT} characters.")
    return node


@register.tag("regroup")
def regroup(parser, token):
    node = defaulttags.regroup(parser, token)
    node.__class__ = BoundedRegroupNode
    return node


for _name, _function in defaultfilters.register.filters.items():
    if _name not in FORBIDDEN_FILTERS and _name != "floatformat":
        register.filters[_name] = _function


@register.filter(is_safe=True)
def floatformat(value, arg=-1):
    """Django's floatformat with the precision capped (an unbounded one allocates its digits)."""
    try:
        digits = int(str(arg).rstrip("gu") or -1)
    except ValueError:
        digits = -1
    if abs(digits) > MAX_FLOAT_PRECISION:
        raise TemplateSyntaxError(f"floatformat precision is capped at {MAX_FLOAT_PRECISION}.")
    return defaultfilters.floatformat(value, arg)


for _name, _function in list(register.filters.items()):
    register.filters[_name] = _budgeted(_name, _function)
