"""Preview pages for designers: no login, read-only, behind a signed, expiring, revocable
token. Anything wrong with the token shows a friendly page and nothing else."""

from __future__ import annotations

import json

from django.conf import settings
from django.http import Http404
from django.shortcuts import render
from django.utils.html import escape
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.http import require_GET

from emails.backoffice.editor import email_html_response
from emails.backoffice.preview_links import (
    PreviewLinkGone,
    PreviewLinkInvalid,
    preview_link_resolve,
)
from emails.content.composer import compose_content, template_content
from emails.content.samples import sample_logo_url, samples_for
from emails.logto import UsageType
from emails.models import Template

NO_INDEX = {
    "X-Robots-Tag": "noindex, nofollow",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "private, no-store",
}


def _resolve(request, token):
    try:
        return preview_link_resolve(token), None
    except PreviewLinkInvalid:
        return None, _unavailable(request, status=404)
    except PreviewLinkGone:
        return None, _unavailable(request, status=410)


def _unavailable(request, *, status: int):
    response = render(request, "emails/preview/unavailable.html", {"status": status}, status=status)
    for header, value in NO_INDEX.items():
        response[header] = value
    return response


def _templates(link):
    templates = Template.objects.all()
    if link.usage_type:
        templates = templates.filter(usage_type=link.usage_type)
    return list(templates)


def _render(request, template: Template, sample: str | None):
    samples = samples_for(
        template.usage_type, locale=template.locale, logo_url=sample_logo_url(request)
    )
    name = sample if sample in samples else next(iter(samples))
    rendered = compose_content(
        template_content(template), payload=samples[name], locale=template.locale
    )
    if rendered.errors:
        return samples, name, None, str(rendered.errors[0])
    return samples, name, rendered, None


@require_GET
def preview_page(request, token):
    link, refusal = _resolve(request, token)
    if refusal:
        return refusal
    templates = _templates(link)
    if not templates:
        raise Http404
    by_type = {}
    for template in templates:
        by_type.setdefault(template.usage_type, []).append(template)
    default = next(
        (t for t in templates if t.locale == settings.EMAILS_DEFAULT_LOCALE), templates[0]
    )
    selected = next((t for t in templates if str(t.pk) == request.GET.get("template")), default)
    samples, sample, rendered, error = _render(request, selected, request.GET.get("sample"))
    context = {
        "token": token,
        "link": link,
        "gallery": not link.usage_type,
        "by_type": [(UsageType(key).label, key, items) for key, items in by_type.items()],
        "selected": selected,
        "samples": list(samples),
        "sample": sample,
        "rendered": rendered,
        "error": error,
        "width": "mobile" if request.GET.get("width") == "mobile" else "desktop",
        "payload_json": json.dumps(samples[sample], indent=2, ensure_ascii=False),
    }
    response = render(request, "emails/preview/page.html", context)
    for header, value in NO_INDEX.items():
        response[header] = value
    return response


@require_GET
@xframe_options_sameorigin
def preview_email(request, token, template_id):
    link, refusal = _resolve(request, token)
    if refusal:
        return refusal
    template = next((t for t in _templates(link) if t.pk == template_id), None)
    if template is None:
        raise Http404
    _, _, rendered, error = _render(request, template, request.GET.get("sample"))
    response = email_html_response(
        request, rendered.html if rendered else f"<pre>{escape(error)}</pre>"
    )
    for header, value in NO_INDEX.items():
        response[header] = value
    return response
