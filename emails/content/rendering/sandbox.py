"""The only tags and filters email templates may use: Django's built-ins minus anything that
reaches outside the template (loading libraries or other templates, URL reversing, request
state, debug output) or can blow a short template up into gigabytes (padding filters,
``{% lorem %}``, unbounded ``floatformat`` precision).

Forbidden tags are registered as tags that refuse at compile time, so the author reads why
instead of Django's "did you forget to {% load %}" hint.
"""

from django.template import Library, TemplateSyntaxError, defaultfilters, defaulttags
from django.template.defaulttags import ForNode

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
# Bounds on what one render may do: |add doubling a string through nested {% with %}, or
# nested {% for %} loops, would otherwise turn a short template into gigabytes or hours.
MAX_ADDED_LENGTH = 10_000
MAX_LIST_INPUT = 1_000
MAX_LOOP_ITERATIONS = 10_000


def _forbidden(name: str, reason: str):
    def refuse(parser, token):
        raise TemplateSyntaxError(f"{{% {name} %}} is not allowed in email templates: {reason}.")

    return refuse


for _name, _function in defaulttags.register.tags.items():
    if _name not in FORBIDDEN_TAGS and _name != "for":
        register.tag(_name, _function)
for _name, _reason in FORBIDDEN_TAGS.items():
    register.tag(_name, _forbidden(_name, _reason))

for _name, _function in defaultfilters.register.filters.items():
    if _name not in FORBIDDEN_FILTERS and _name not in ("floatformat", "add", "make_list"):
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


@register.filter(is_safe=False)
def add(value, arg):
    """Django's add, refusing results longer than MAX_ADDED_LENGTH."""
    result = defaultfilters.add(value, arg)
    if hasattr(result, "__len__") and len(result) > MAX_ADDED_LENGTH:
        raise TemplateSyntaxError(f"|add made a value longer than {MAX_ADDED_LENGTH} characters.")
    return result


@register.filter(is_safe=False)
def make_list(value):
    """Django's make_list, for values of at most MAX_LIST_INPUT characters."""
    if len(str(value)) > MAX_LIST_INPUT:
        raise TemplateSyntaxError(f"|make_list takes at most {MAX_LIST_INPUT} characters.")
    return defaultfilters.make_list(value)


class BoundedForNode(ForNode):
    """{% for %} counting its iterations (nested loops included) against one render's budget."""

    def render(self, context):
        values = self.sequence.resolve(context, ignore_failures=True)
        count = len(values) if hasattr(values, "__len__") else 0
        # The render context's base dict lives for one render and is shared by all its nodes.
        budget = context.render_context.dicts[0]
        used = budget.get("mailroom_iterations", 0) + count
        if used > MAX_LOOP_ITERATIONS:
            raise TemplateSyntaxError(f"loops ran more than {MAX_LOOP_ITERATIONS} times.")
        budget["mailroom_iterations"] = used
        return super().render(context)


@register.tag("for")
def do_for(parser, token):
    node = defaulttags.do_for(parser, token)
    node.__class__ = BoundedForNode
    return node
