"""The coverage page: usage types x languages, and what serves each (emails.content.coverage)."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse

from emails.content.coverage import coverage_matrix


def coverage(request, model_admin):
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    try:
        days = max(1, min(int(request.GET.get("days", 7)), 365))
    except ValueError:
        days = 7
    context = {
        **model_admin.admin_site.each_context(request),
        **coverage_matrix(days=days),
        "title": "Template coverage by language",
        "default_locale": settings.EMAILS_DEFAULT_LOCALE,
        "can_translate": request.user.has_perms(("emails.add_template", "emails.change_template")),
        "opts": model_admin.model._meta,
    }
    return TemplateResponse(request, "admin/emails/coverage.html", context)
