"""The coverage page: usage types x languages, and what serves each (emails.content.coverage);
for an application and/or organization picked on the page, whether it overrides or inherits."""

from __future__ import annotations

from urllib.parse import urlencode

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse

from emails.content.coverage import coverage_matrix
from emails.content.scopes import scope_choices
from emails.logto import is_logto_id

SCOPE_FIELDS = (("application", "Application"), ("organization", "Organization"))


def coverage(request, model_admin):
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    try:
        days = max(1, min(int(request.GET.get("days", 7)), 365))
    except ValueError:
        days = 7
    scope, ignored = _scope(request.GET)
    choices = scope_choices()
    names = {kind: dict(choices[kind]) for kind, _label in SCOPE_FIELDS}
    context = {
        **model_admin.admin_site.each_context(request),
        **coverage_matrix(
            days=days,
            application_id=scope["application"],
            organization_id=scope["organization"],
        ),
        "title": "Template coverage by language",
        "default_locale": settings.EMAILS_DEFAULT_LOCALE,
        "can_translate": request.user.has_perms(("emails.add_template", "emails.change_template")),
        "opts": model_admin.model._meta,
        "scope_fields": [
            (kind, label, scope[kind], choices[kind], names[kind].get(scope[kind], ""))
            for kind, label in SCOPE_FIELDS
        ],
        "scope_ignored": (
            f"Ignored the {' and the '.join(ignored)} id given: a Logto id has only letters, "
            "digits, “.”, “_” or “-” (at most 128)."
            if ignored
            else ""
        ),
        # The scope again in the days links, so that changing the period keeps it.
        "scope_query": urlencode({kind: value for kind, value in scope.items() if value}),
    }
    return TemplateResponse(request, "admin/emails/coverage.html", context)


def _scope(query) -> tuple[dict[str, str], list[str]]:
    """The application and organization ids asked for ("" for any), and which of them were
    ignored because they are not Logto ids."""
    scope, ignored = {}, []
    for kind, _label in SCOPE_FIELDS:
        value = query.get(kind, "").strip()
        if value and not is_logto_id(value):
            ignored.append(kind)
            value = ""
        scope[kind] = value
    return scope, ignored
