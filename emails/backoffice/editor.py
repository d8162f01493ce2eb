"""Admin endpoints behind the template editor: live preview of unsaved content, test sends,
preview links. All are POST with CSRF, for staff with the template change permission; the
rendered HTML is only ever shown inside a sandboxed iframe, served with a CSP that forbids
scripts, so nothing in a template runs on the admin's origin."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from csp.constants import NONE, UNSAFE_INLINE
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.html import format_html
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.http import require_POST

from emails.backoffice.preview_links import preview_link_create, preview_link_token
from emails.backoffice.test_sends import (
    RefusedTestSend,
    message_test_send,
    message_test_send_permit,
)
from emails.content.composer import compose_content
from emails.content.rendering.render import RenderedEmail
from emails.intake.addresses import AddressRefused, mailbox
from emails.locales import normalize_locale
from emails.logto import UsageType
from emails.models import Template


def email_csp(request) -> dict:
    """The policy of rendered email HTML (django-csp directives): images and inline styles,
    nothing else. No script, form, plugin or navigation of the page around it (``sandbox``:
    the document also gets an origin of its own). Images come from this server (the bundled
    sample logo), data: URLs and the configured brand logo's host; any other host only with
    EMAILS_PREVIEW_REMOTE_IMAGES, so that a template cannot learn a viewer's IP address."""
    # Named explicitly: inside a sandboxed document 'self' no longer means this server.
    own = [f"{request.scheme}://{request.get_host()}"]
    brand = urlsplit(settings.EMAILS_BRAND_LOGO_URL)
    if brand.scheme in ("http", "https") and brand.netloc:
        own.append(f"{brand.scheme}://{brand.netloc}")
    remote = ["https:", "http:"] if settings.EMAILS_PREVIEW_REMOTE_IMAGES else []
    return {
        "default-src": [NONE],
        "img-src": ["data:", *own, *remote],
        "style-src": [UNSAFE_INLINE, *remote],
        "font-src": ["data:", *remote],
        "base-uri": [NONE],
        "form-action": [NONE],
        "sandbox": True,
    }


def email_html_response(request, html: str) -> HttpResponse:
    response = HttpResponse(html, content_type="text/html; charset=utf-8")
    # django-csp's per-response policy (what its @csp decorator sets), in place of the site's.
    response._csp_config = email_csp(request)  # type: ignore[attr-defined]
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "no-store"
    return response


def _require_change_permission(request) -> None:
    if not request.user.has_perm("emails.change_template"):
        raise PermissionDenied


def _content(request) -> dict:
    layout_id = request.POST.get("layout", "")
    return {
        "subject": request.POST.get("subject", ""),
        "html": request.POST.get("html_body", ""),
        "text": request.POST.get("text_body", ""),
        "preheader": request.POST.get("preheader", ""),
        "layout_id": int(layout_id) if layout_id.isdigit() else None,
    }


def _locale(request, payload: dict) -> str:
    try:
        return normalize_locale(request.POST.get("locale") or payload.get("locale") or "en")
    except ValueError:
        return "en"


def _render(request, payload: dict) -> RenderedEmail:
    return compose_content(_content(request), payload=payload, locale=_locale(request, payload))


def _payload(request) -> tuple[dict | None, str | None]:
    try:
        payload = json.loads(request.POST.get("payload") or "{}")
    except ValueError as exc:
        return None, f"Sample data is not valid JSON: {exc}"
    if not isinstance(payload, dict):
        return None, "Sample data must be a JSON object."
    return payload, None


@require_POST
def preview(request):
    """JSON: the rendered subject and plain text, and every error with its part and line."""
    _require_change_permission(request)
    payload, problem = _payload(request)
    if problem:
        return JsonResponse(
            {"subject": "", "text": "", "errors": [{"part": "sample data", "message": problem}]}
        )
    parts = _render(request, payload)
    return JsonResponse(
        {"subject": parts.subject, "text": parts.text, "errors": parts.error_list()}
    )


@require_POST
@xframe_options_sameorigin
def preview_html(request):
    """The rendered HTML body, for the preview iframe; an error page when it does not render."""
    _require_change_permission(request)
    payload, problem = _payload(request)
    errors = [{"part": "sample data", "message": problem}] if problem else []
    html = ""
    if payload is not None:
        parts = _render(request, payload)
        html = parts.html
        errors = [error for error in parts.error_list() if error["part"] in ("HTML body", "layout")]
    if errors:
        html = render_to_string("emails/preview/error.html", {"errors": errors})
    return email_html_response(request, html)


@require_POST
def test_send(request, object_id=None):
    """Queue the form's current content to one address, marked as a test in the message log."""
    _require_change_permission(request)
    template = get_object_or_404(Template, pk=object_id) if object_id else None
    try:
        # The same canonical spelling Logto's messages get (emails/addresses.py).
        to = mailbox(request.POST.get("to", "").strip())
    except AddressRefused:
        return JsonResponse({"error": "Enter one email address to send the test to."}, status=400)
    payload, problem = _payload(request)
    if problem:
        return JsonResponse({"error": problem}, status=400)
    usage_type = request.POST.get("usage_type") or (template.usage_type if template else "")
    if usage_type not in UsageType.values:
        return JsonResponse({"error": "Choose a usage type first."}, status=400)
    try:
        # One transaction: the permit locks the user's row, so concurrent sends are counted
        # one after another, each seeing the others' messages.
        with transaction.atomic():
            message_test_send_permit(user=request.user, to=to)
            message = message_test_send(
                to=to,
                content=_content(request),
                payload=payload,
                usage_type=usage_type,
                locale=_locale(request, payload),
                requested_by=request.user,
                template=template,
            )
    except RefusedTestSend as refused:
        return JsonResponse({"error": refused.message}, status=refused.status)
    log_url = reverse("admin:emails_message_change", args=[message.pk])
    return JsonResponse({"id": str(message.pk), "status": message.status, "log_url": log_url})


@require_POST
def share(request, object_id=None):
    """A new preview link for this template's usage type (or, without one, the gallery).
    JSON for the editor's button; a redirect with the link in a message for a plain form."""
    _require_change_permission(request)
    usage_type = get_object_or_404(Template, pk=object_id).usage_type if object_id else ""
    link = preview_link_create(usage_type=usage_type, created_by=request.user)
    url = preview_link_url(request, link)
    if "application/json" not in request.headers.get("Accept", "") and not object_id:
        messages.success(request, format_html("Gallery preview: <a href='{}'>{}</a>", url, url))
        return redirect("admin:emails_template_changelist")
    return JsonResponse({"url": url, "expires_at": link.expires_at.isoformat()})


def preview_link_url(request, link) -> str:
    return request.build_absolute_uri(reverse("emails:preview", args=[preview_link_token(link)]))
