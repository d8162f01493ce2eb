"""The sandboxed template engine: compiling (cached, bounded by size) and rendering one part
under the render budget, with errors that name the part and line and never quote a value.
Pure: no database, no settings; imports nothing of emails but this package."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping

from celery.exceptions import SoftTimeLimitExceeded
from django.template import Context, Engine, TemplateSyntaxError, VariableDoesNotExist

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


HTML_ENGINE = _engine(autoescape=True)


TEXT_ENGINE = _engine(autoescape=False)


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


def compile_template(source: str):
    """The compiled sandbox template (for inspection); raises TemplateRenderError."""
    return compile_source(HTML_ENGINE, source)


def render_source(engine: Engine, source: str, context: Mapping, part: str) -> str:
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
            return render_source(engine, source, context, part)
    try:
        budget.start_part()
        template = compile_source(engine, source)
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
            raise TemplateBudgetError(failure.reason, part=part, line=error_line(failure)) from None
        # Rendering runs author-written code paths (filters on payload data); whatever
        # fails, the caller gets one error type naming the part and line, never a crash.
        raise TemplateRenderError(_message(exc), part=part, line=error_line(exc)) from None


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


TEMPLATE_CACHE = _Cache(CACHE_BYTES)


def _compile_new(key: tuple):
    _, engine, source = key
    return engine.from_string(source)


def _weigh_compiled(key: tuple, template) -> int:
    return 600 * template.node_count + len(key[2])


def compile_source(engine: Engine, source: str):
    if len(source) > MAX_SOURCE:
        raise TemplateBudgetError(f"a template is at most {MAX_SOURCE} characters")
    try:
        return TEMPLATE_CACHE.get(("compiled", engine, source), _compile_new, _weigh_compiled)
    except TemplateSyntaxError as exc:
        raise TemplateRenderError(_message(exc), line=error_line(exc)) from exc
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


def error_line(exc: Exception) -> int | None:
    debug = getattr(exc, "template_debug", None)
    return debug.get("line") if isinstance(debug, dict) else None
