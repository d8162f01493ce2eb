"""Save-time validation of templates and layouts: syntax (with line numbers), the sandbox, and
every variable checked against what Logto sends for the usage type (the contract in
shared/logto/CONTRACT.md). A misspelt variable would otherwise render as nothing, silently:
``{{ aplication.name }}`` is an error that suggests ``application``.

A template that passes those checks is rendered once with each sample payload of its type
(emails.content.samples): one that goes over its render budget (rendering/sandbox.py) is
refused too, naming the field, so a bomb is stopped at save time and not only when an email is sent.

The same function serves the admin form, imports and the management API.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from django.template.base import FilterExpression, Variable
from django.template.defaulttags import TemplateLiteral

from emails.content.rendering.context import email_context
from emails.content.rendering.engine import OVER_BUDGET, TemplateRenderError, compile_template
from emails.content.rendering.render import LayoutSource, render_parts
from emails.content.samples import samples_for
from emails.logto import UsageType

OPEN = None  # any key below this point is accepted
BRANDING = {"logoUrl": OPEN, "darkLogoUrl": OPEN, "favicon": OPEN, "darkFavicon": OPEN}
APPLICATION = {"id": OPEN, "name": OPEN, "displayName": OPEN, "branding": BRANDING}
ORGANIZATION = {"id": OPEN, "name": OPEN, "branding": BRANDING}
PERSON = {
    "id": OPEN,
    "name": OPEN,
    "username": OPEN,
    "primaryEmail": OPEN,
    "primaryPhone": OPEN,
    "avatar": OPEN,
    "profile": OPEN,
}
# Always in the context (emails.content.rendering.render.email_context), whatever the type.
ALWAYS = {
    "locale": OPEN,
    "uiLocales": OPEN,
    "lang": OPEN,
    "direction": OPEN,
    "expires_in_minutes": OPEN,
    "brand": {
        "name": OPEN,
        "logo_url": OPEN,
        "company_info": OPEN,
        "accent_color": OPEN,
        "footer_text": OPEN,
        "support_url": OPEN,
    },
    "forloop": OPEN,
    "block": OPEN,
    "True": OPEN,
    "False": OPEN,
    "None": OPEN,
}
CODE_PAYLOAD = {"code": OPEN, "application": APPLICATION, "organization": ORGANIZATION}
ACCOUNT_PAYLOAD = {"code": OPEN, "application": APPLICATION, "user": PERSON}
INVITATION_PAYLOAD = {
    "link": OPEN,
    "organization": ORGANIZATION,
    "inviter": PERSON,
    "application": APPLICATION,
}
SCHEMAS: dict[str, dict] = {
    UsageType.SIGN_IN: CODE_PAYLOAD,
    UsageType.REGISTER: CODE_PAYLOAD,
    UsageType.FORGOT_PASSWORD: CODE_PAYLOAD,
    UsageType.MFA_VERIFICATION: CODE_PAYLOAD,
    UsageType.USER_PERMISSION_VALIDATION: ACCOUNT_PAYLOAD,
    UsageType.BIND_NEW_IDENTIFIER: ACCOUNT_PAYLOAD,
    UsageType.BIND_MFA: ACCOUNT_PAYLOAD,
    # Generic also serves every type Logto adds later, so it may see anything Logto sends.
    UsageType.GENERIC: {**CODE_PAYLOAD, **ACCOUNT_PAYLOAD, **INVITATION_PAYLOAD},
    UsageType.ORGANIZATION_INVITATION: INVITATION_PAYLOAD,
}
# Invitation callers may add keys of their own: unknown names are allowed there, unless they
# look like a typo of a known one.
OPEN_ROOTS = {UsageType.ORGANIZATION_INVITATION}
REQUIRED = {
    **{kind: "code" for kind in UsageType.values if kind != UsageType.ORGANIZATION_INVITATION},
    UsageType.ORGANIZATION_INVITATION: "link",
}
MAPPING_METHODS = {"items", "keys", "values"}  # {% for key, value in user.profile.items %}
# The parts rendering names, and the fields they come from.
TEMPLATE_PARTS = {
    "subject": "subject",
    "preheader": "preheader",
    "HTML body": "html_body",
    "plain-text body": "text_body",
}
LAYOUT_PARTS = {"layout": "html", "layout text": "text"}


@dataclass(frozen=True)
class Problem:
    field: str
    message: str
    line: int | None = None

    def __str__(self):
        return f"line {self.line}: {self.message}" if self.line else self.message


def validate_template(
    *,
    usage_type: str,
    subject: str,
    html_body: str,
    text_body: str = "",
    preheader: str = "",
    render_samples: bool = True,
) -> list[Problem]:
    """Every problem of a template's four parts; empty when it can be saved. Without
    ``render_samples`` (the live preview's warnings), the budget check that renders each
    sample is left out: the preview renders one sample under the same budget."""
    sources = {
        "subject": subject,
        "preheader": preheader,
        "html_body": html_body,
        "text_body": text_body,
    }
    schema = {**ALWAYS, **SCHEMAS.get(usage_type, SCHEMAS[UsageType.GENERIC])}
    problems: list[Problem] = []
    used: dict[str, set[str]] = {}
    for field, source in sources.items():
        found = _check(field, source, schema, open_roots=usage_type in OPEN_ROOTS)
        problems += found.problems
        used[field] = found.roots
    if not problems and render_samples:
        problems += _over_budget(
            TEMPLATE_PARTS,
            samples_for(usage_type).values(),
            subject=subject,
            preheader=preheader,
            html=html_body,
            text=text_body,
        )
    required = REQUIRED.get(usage_type)
    if required and not problems:
        for field in ("html_body", "text_body"):
            if sources[field].strip() and required not in used[field]:
                problems.append(
                    Problem(
                        field,
                        f"{{{{ {required} }}}} is missing: Logto sends a {required} for "
                        f"{usage_type} emails and the reader needs it",
                    )
                )
    return problems


def validate_layout(*, html: str, text: str = "") -> list[Problem]:
    schema = {
        **ALWAYS,
        **SCHEMAS[UsageType.GENERIC],
        "content": OPEN,
        "subject": OPEN,
        "preheader": OPEN,
    }
    problems = []
    for field, source in (("html", html), ("text", text)):
        found = _check(field, source, schema, open_roots=False)
        problems += found.problems
        if source.strip() and not found.problems and "content" not in found.roots:
            problems.append(Problem(field, "{{ content }} is missing: where does the email go?"))
    if not problems:
        # An empty body and a one-letter text, so that both parts of the layout render
        problems += _over_budget(
            LAYOUT_PARTS,
            samples_for(UsageType.GENERIC).values(),
            subject="",
            preheader="",
            html="",
            text="x",
            layout=LayoutSource(html=html, text=text),
        )
    return problems


def _over_budget(fields: dict[str, str], payloads, **sources) -> list[Problem]:
    """Problems of rendering ``sources`` with each payload that goes over the render budget
    (each render its own, as when sending). Other failures are left to the previews: a
    sample is not what Logto will send."""
    for payload in payloads:
        context = email_context(
            payload, locale=payload.get("locale") or "en", brand={}, expires_in_minutes=10
        )
        errors = render_parts(payload=payload, context=context, **sources).errors
        found = [
            Problem(fields.get(error.part, error.part), error.message, error.line)
            for error in errors
            if error.message.startswith(OVER_BUDGET)
        ]
        if found:
            return found
    return []


@dataclass
class _Found:
    problems: list[Problem]
    roots: set[str]


def _check(field: str, source: str, schema: dict, *, open_roots: bool) -> _Found:
    try:
        template = compile_template(source)
    except TemplateRenderError as exc:
        return _Found([Problem(field, exc.message, exc.line)], set())
    references, local_names = [], set()
    for node in _walk(template.nodelist):
        line = getattr(getattr(node, "token", None), "lineno", None)
        local_names |= _local_names(node)
        references += [(variable, line) for variable in _variables(vars(node))]
    problems, roots = [], set()
    for variable, line in references:
        path = variable.var.split(".")
        roots.add(path[0])
        if path[0] in local_names:
            continue
        message = _unknown(path, schema, open_roots=open_roots)
        if message:
            problems.append(Problem(field, message, line))
    return _Found(_unique(problems), roots)


def _unknown(path: list[str], schema: dict, *, open_roots: bool) -> str | None:
    level: dict | None = schema
    walked: list[str] = []
    for depth, name in enumerate(path):
        if level is OPEN or name.isdigit() or (depth and name in MAPPING_METHODS):
            return None
        if name not in level:
            where = ".".join(walked) or "the payload"
            close = difflib.get_close_matches(name, list(level), n=1, cutoff=0.75)
            if depth == 0 and open_roots and not close:
                return None
            hint = f" Did you mean '{'.'.join([*walked, close[0]])}'?" if close else ""
            return f"unknown variable '{'.'.join(path)}': {where} has no '{name}'.{hint}"
        walked.append(name)
        level = level[name]
    return None


def _walk(nodelist):
    for node in nodelist:
        yield node
        for _, child in getattr(node, "conditions_nodelists", ()):  # {% if %} branches
            yield from _walk(child)
        for attribute in getattr(node, "child_nodelists", ()):
            child = getattr(node, attribute, None)
            if child and not hasattr(node, "conditions_nodelists"):
                yield from _walk(child)


def _local_names(node) -> set[str]:
    names = set(getattr(node, "loopvars", None) or ())
    names |= set(getattr(node, "extra_context", None) or {})
    for attribute in ("asvar", "variable_name", "var_name"):
        value = getattr(node, attribute, None)
        if isinstance(value, str):
            names.add(value)
    return names


def _variables(value, depth=0):
    """Every Variable (not literal) inside a node's attributes, filter arguments included."""
    if depth > 6:
        return
    if isinstance(value, Variable):
        if value.lookups is not None:
            yield value
    elif isinstance(value, FilterExpression):
        yield from _variables(value.var, depth + 1)
        for _, arguments in value.filters:
            for is_variable, argument in arguments:
                if is_variable:
                    yield from _variables(argument, depth + 1)
    elif isinstance(value, TemplateLiteral):
        yield from _variables(value.value, depth + 1)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _variables(item, depth + 1)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _variables(item, depth + 1)
    elif hasattr(value, "first") and hasattr(value, "second"):  # {% if %} operators
        yield from _variables(value.first, depth + 1)
        yield from _variables(value.second, depth + 1)


def _unique(problems: list[Problem]) -> list[Problem]:
    return list(dict.fromkeys(problems))
