"""The only tags and filters email templates may use: Django's built-ins minus anything that
reaches outside the template (loading libraries or other templates, URL reversing, request
state, debug output) or can blow a short template up into gigabytes (padding filters,
``{% lorem %}``, unbounded ``floatformat`` precision).

Forbidden tags are registered as tags that refuse at compile time, so the author reads why
instead of Django's "did you forget to {% load %}" hint.
"""

from django.template import Library, TemplateSyntaxError, defaultfilters, defaulttags

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


def _forbidden(name: str, reason: str):
    def refuse(parser, token):
        raise TemplateSyntaxError(f"{{% {name} %}} is not allowed in email templates: {reason}.")

    return refuse


for _name, _function in defaulttags.register.tags.items():
    if _name not in FORBIDDEN_TAGS:
        register.tag(_name, _function)
for _name, _reason in FORBIDDEN_TAGS.items():
    register.tag(_name, _forbidden(_name, _reason))

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
