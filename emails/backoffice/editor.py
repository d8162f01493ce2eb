"""Admin endpoints behind the editors: live previews of unsaved templates, layouts and brand
settings, test sends (and following them), preview links of saved or unsaved content. All
but the test-send status are POST with CSRF; each needs its model's change permission (and,
for the layout and brand previews, a template read permission: they show one). The rendered
HTML is only ever shown inside a sandboxed iframe, served with a CSP that forbids scripts,
so nothing in a template runs on the admin's origin."""

from __future__ import annotations

import json
import re
from email.utils import parseaddr
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
from django.utils.text import Truncator
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.http import require_GET, require_POST

from emails.backoffice.forms import int_or_none
from emails.backoffice.preview_links import preview_link_create, preview_link_token
from emails.backoffice.test_sends import (
    RefusedTestSend,
    message_test_send,
    message_test_send_permit,
)
from emails.content.brand import BRAND_FIELDS, brand_current, brand_from
from emails.content.composer import CONTENT_KEYS, compose_content, template_content
from emails.content.drafts import draft_of, with_draft
from emails.content.rendering.render import RenderedEmail
from emails.content.samples import sample_logo_url, samples_for
from emails.content.scopes import payload_in_scope, sender_for
from emails.content.validation import TEMPLATE_PARTS, validate_template
from emails.intake.addresses import AddressRefused, mailbox
from emails.locales import normalize_locale
from emails.logto import UsageType, is_logto_id
from emails.models import FINAL_STATUSES, Layout, Message, Template


def email_csp(request) -> dict:
    """The policy of rendered email HTML (django-csp directives): images and inline styles,
    nothing else. No script, form, plugin or navigation of the page around it (``sandbox``
    without ``allow-scripts``: nothing in it runs at all). The sandbox keeps the page's origin
    (``allow-same-origin``) so that the editor's own script can read the frame's scroll
    position; with no script in the frame, that gives the email nothing. Images come from
    this server's static files (the bundled sample logo), data: URLs, the uploaded logo's
    folder and the brand logos' exact URLs; any other host only with
    EMAILS_PREVIEW_REMOTE_IMAGES, so that a template cannot learn a viewer's IP address."""
    # This server's static files only (the sample logo), named in full: not 'self', and not
    # the whole origin, so an email's image cannot ask an admin URL for anything.
    static = settings.STATIC_URL or "/static/"
    own = [static if "://" in static else f"{request.scheme}://{request.get_host()}{static}"]
    if settings.EMAILS_PUBLIC_URL:  # an uploaded brand logo (emails.content.brand)
        own.append(settings.EMAILS_PUBLIC_URL.rstrip("/") + "/brand/")
    for logo in {settings.EMAILS_BRAND_LOGO_URL, brand_current()["logo_url"]}:
        # The logo's own URL only: on this server's host, its origin would be every admin URL.
        brand = urlsplit(logo)
        if brand.scheme in ("http", "https") and brand.netloc and _csp_safe(logo):
            own.append(f"{brand.scheme}://{brand.netloc}{brand.path or '/'}")
    remote = ["https:", "http:"] if settings.EMAILS_PREVIEW_REMOTE_IMAGES else []
    return {
        "default-src": [NONE],
        "img-src": ["data:", *own, *remote],
        "style-src": [UNSAFE_INLINE, *remote],
        "font-src": ["data:", *remote],
        "base-uri": [NONE],
        "form-action": [NONE],
        "sandbox": ["allow-same-origin"],
    }


# The email's own dark-mode styles, shown on demand: a preview cannot ask the browser to
# emulate a colour scheme, so the media query is decided here, for the preview only.
COLOR_SCHEME_QUERY = re.compile(r"\(\s*prefers-color-scheme\s*:\s*(dark|light)\s*\)", re.I)
ALWAYS_QUERY, NEVER_QUERY = "(min-width: 0px)", "(max-width: 0px)"


def with_color_scheme(html: str, scheme: str) -> str:
    """``html`` as a mail client in ``scheme`` ("light" or "dark") shows it: its
    ``prefers-color-scheme`` queries decided, whatever the viewer's own setting is."""
    if scheme not in ("light", "dark"):
        return html
    return COLOR_SCHEME_QUERY.sub(
        lambda match: ALWAYS_QUERY if match.group(1).lower() == scheme else NEVER_QUERY, html
    )


def _csp_safe(url: str) -> bool:
    """Whether ``url`` can be written into a CSP source list as it is."""
    return not any(char in url for char in " ;,'\"") and url.isascii()


def email_html_response(request, html: str) -> HttpResponse:
    html = with_color_scheme(html, request.GET.get("scheme") or request.POST.get("scheme", ""))
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
        "layout_id": int_or_none(layout_id),
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
    except RecursionError:
        return None, "Sample data is nested too deeply."
    except ValueError as exc:
        return None, f"Sample data is not valid JSON: {exc}"
    if not isinstance(payload, dict):
        return None, "Sample data must be a JSON object."
    # The form's scope: the sample is of that application and organization.
    scope = (request.POST.get("application_id", ""), request.POST.get("organization_id", ""))
    return payload_in_scope(payload, *(value.strip() for value in scope)), None


def _sender(template, payload: dict | None) -> dict:
    """The From an inbox will show, chosen as delivery chooses it (content.scopes.sender_for:
    the template's, its scope's sender profile, DEFAULT_FROM_EMAIL)."""
    name, address = parseaddr(sender_for(template, payload or {})[0])
    return {"name": name, "address": address}


def _form_sender(request) -> Template:
    """The editor form's sender and scope, as the template it will be."""
    return Template(
        from_email=request.POST.get("from_email", ""),
        application_id=request.POST.get("application_id", "").strip(),
        organization_id=request.POST.get("organization_id", "").strip(),
    )


FIELDS_OF_PARTS = {**TEMPLATE_PARTS, "layout": "layout", "layout text": "layout"}
FIELDS_OF_LAYOUT = {"layout": "html", "layout text": "text"}


def _warnings(request, errors: list[dict]) -> list[dict]:
    """What saving would refuse (emails.content.validation: unknown or misspelt variables, a
    missing code or link, ...), each with the field and line for the editor's gutter; a
    problem the render errors already name is not repeated."""
    shown = {error["message"] for error in errors}
    problems = validate_template(
        render_samples=False,  # saving renders each sample; the preview renders one already
        usage_type=request.POST.get("usage_type", ""),
        subject=request.POST.get("subject", ""),
        html_body=request.POST.get("html_body", ""),
        text_body=request.POST.get("text_body", ""),
        preheader=request.POST.get("preheader", ""),
    )
    return [
        {"field": problem.field, "line": problem.line, "message": problem.message}
        for problem in problems
        if problem.message not in shown
    ]


def _answer(rendered: RenderedEmail | None, problem: str | None, *, sender: dict, fields: dict):
    """The JSON the editors' script reads: subject, preheader, plain text, the sender, and
    every render error with its part, field (``fields`` maps parts to form fields) and line."""
    if rendered is None:
        errors = [{"part": "sample data", "field": "", "line": None, "message": problem}]
        return {"subject": "", "preheader": "", "text": "", "sender": sender, "errors": errors}
    return {
        "subject": rendered.subject,
        "preheader": rendered.preheader,
        "text": rendered.text,
        "sender": sender,
        "errors": [
            {**error, "field": fields.get(error["part"], "")} for error in rendered.error_list()
        ],
    }


@require_POST
def preview(request):
    """JSON: the rendered subject, preheader and plain text, the sender, every render error
    with its part, field and line, and the warnings saving would refuse."""
    _require_change_permission(request)
    payload, problem = _payload(request)
    rendered = _render(request, payload) if payload is not None else None
    answer = _answer(
        rendered,
        problem,
        sender=_sender(_form_sender(request), payload),
        fields=FIELDS_OF_PARTS,
    )
    answer["warnings"] = _warnings(request, answer["errors"]) if rendered is not None else []
    return JsonResponse(answer)


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


@require_GET
@xframe_options_sameorigin
def saved_html(request, object_id):
    """A template's email as its editor shows it (the draft, if it has one) with its first
    sample: the source beside a translation, which was copied from that."""
    if not request.user.has_perm("emails.view_template") and not request.user.has_perm(
        "emails.change_template"
    ):
        raise PermissionDenied
    template = with_draft(get_object_or_404(Template, pk=object_id))
    samples = samples_for(
        template.usage_type, locale=template.locale, logo_url=sample_logo_url(request)
    )
    rendered = compose_content(
        template_content(template), payload=next(iter(samples.values())), locale=template.locale
    )
    if rendered.errors:
        errors = [{"part": "email", "message": str(error)} for error in rendered.errors]
        return email_html_response(
            request, render_to_string("emails/preview/error.html", {"errors": errors})
        )
    return email_html_response(request, rendered.html)


def _surround_render(request, *, permission: str, layout=None, brand=None):
    """A template (``template``: its id; else sign-in in the default locale, else any) with
    the sample data, inside an unsaved ``layout`` or with an unsaved ``brand`` (the layout
    and brand pages' live previews); or why not."""
    user = request.user
    if not user.has_perm(permission) or not (
        user.has_perm("emails.view_template") or user.has_perm("emails.change_template")
    ):
        raise PermissionDenied  # it shows a template: who may not read templates sees none
    payload, problem = _payload(request)
    if payload is None:
        return None, None, problem
    chosen = int_or_none(request.POST.get("template", ""))
    templates = Template.objects.order_by("pk")
    template = (templates.filter(pk=chosen).first() if chosen is not None else None) or (
        templates.filter(
            usage_type=UsageType.SIGN_IN, locale=settings.EMAILS_DEFAULT_LOCALE
        ).first()
        or templates.first()
    )
    if template is None:
        return None, None, "There is no template to show yet."
    rendered = compose_content(
        template_content(template),
        payload=payload,
        locale=template.locale,
        layout=layout,
        brand=brand,
    )
    return rendered, template, None


def _layout_render(request):
    layout = Layout(
        html=request.POST.get("html", ""), text=request.POST.get("text", "") or "{{ content }}"
    )
    return _surround_render(request, permission="emails.change_layout", layout=layout)


def _brand_render(request):
    """The unsaved brand settings (an uploaded logo shows once it is saved)."""
    values = {field: request.POST.get(field, "").strip() for field in BRAND_FIELDS}
    brand = brand_from(values, logo=brand_current()["logo_url"])
    return _surround_render(request, permission="emails.change_brand", brand=brand)


def _surround_answer(rendered, template, problem, *, fields):
    sender = _sender(template, None)
    return JsonResponse(
        {**_answer(rendered, problem, sender=sender, fields=fields), "warnings": []}
    )


def _surround_html(request, rendered, problem):
    if problem or rendered.errors:
        errors = [{"part": "sample data", "message": problem}] if problem else rendered.error_list()
        return email_html_response(
            request, render_to_string("emails/preview/error.html", {"errors": errors})
        )
    return email_html_response(request, rendered.html)


@require_POST
def layout_preview(request):
    """The layout editor's JSON: what preview() answers, for the unsaved layout."""
    return _surround_answer(*_layout_render(request), fields=FIELDS_OF_LAYOUT)


@require_POST
@xframe_options_sameorigin
def layout_preview_html(request):
    rendered, _, problem = _layout_render(request)
    return _surround_html(request, rendered, problem)


@require_POST
def brand_preview(request):
    """The brand page's JSON: a template with the unsaved brand settings."""
    return _surround_answer(*_brand_render(request), fields={})


@require_POST
@xframe_options_sameorigin
def brand_preview_html(request):
    rendered, _, problem = _brand_render(request)
    return _surround_html(request, rendered, problem)


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
    return JsonResponse(_test_send_state(request, message))


def _test_send_state(request, message: Message) -> dict:
    final = message.status in FINAL_STATUSES
    state = {
        "id": str(message.pk),
        "status": message.status,
        "label": message.get_status_display(),
        "final": final,
        # The provider's or the renderer's reason, short: the message log has it in full.
        "error": Truncator(message.error).chars(300) if final else "",
        "status_url": reverse("admin:emails_template_test_send_status", args=[message.pk]),
        "log_url": "",
    }
    if request.user.has_perm("emails.view_message") or request.user.has_perm(
        "emails.change_message"
    ):
        state["log_url"] = reverse("admin:emails_message_change", args=[message.pk])
    return state


@require_GET
def test_send_status(request, message_id):
    """Where the user's own test send is now (the editor polls it until it is final)."""
    _require_change_permission(request)
    message = get_object_or_404(Message, pk=message_id, is_test=True, requested_by=request.user)
    return JsonResponse(_test_send_state(request, message))


@require_POST
def share(request, object_id=None):
    """A new preview link for this template's usage type (or, without one, the gallery);
    with ``edits=1``, a link to the editor's current, unsaved content of this template.
    JSON for the editor's buttons; a redirect with the link in a message for a plain form."""
    _require_change_permission(request)
    template = get_object_or_404(Template, pk=object_id) if object_id else None
    if request.POST.get("edits") and template is not None:
        payload, _ = _payload(request)
        link = preview_link_create(
            usage_type=template.usage_type,
            created_by=request.user,
            template=template,
            locale=_locale(request, payload or {}),
            content={key: _content(request)[key] for key in CONTENT_KEYS},
            application_id=template.application_id,
            organization_id=template.organization_id,
        )
    else:
        # A template's link shows its scope; the gallery, the scope the form names.
        scope = (
            (template.application_id, template.organization_id)
            if template is not None
            else tuple(
                value if is_logto_id(value) else ""
                for value in (
                    request.POST.get("application_id", "").strip(),
                    request.POST.get("organization_id", "").strip(),
                )
            )
        )
        link = preview_link_create(
            usage_type=template.usage_type if template else "",
            created_by=request.user,
            application_id=scope[0],
            organization_id=scope[1],
        )
    url = preview_link_url(request, link)
    draft = draft_of(template) if template is not None and link.content is None else None
    if "application/json" not in request.headers.get("Accept", "") and not object_id:
        messages.success(request, format_html("Gallery preview: <a href='{}'>{}</a>", url, url))
        return redirect("admin:emails_template_changelist")
    return JsonResponse(
        {
            "url": url,
            "expires_at": link.expires_at.isoformat(),
            "shows": "the edits on screen, as they are now"
            if link.content is not None
            else f"the saved draft (revision {draft.revision}), for review"
            if draft is not None
            else "the published version",
        }
    )


def preview_link_url(request, link) -> str:
    return request.build_absolute_uri(reverse("emails:preview", args=[preview_link_token(link)]))
