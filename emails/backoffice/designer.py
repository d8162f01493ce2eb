"""Preview pages for designers: no login, read-only, behind a signed, expiring, revocable
token. Anything wrong with the token shows a friendly page and nothing else.

A link shows the saved templates of one usage type (or all of them: the gallery, as a grid
of thumbnails too) or, when an editor shared the edits on their screen, those unsaved edits.
A designer can switch sample, width and light/dark, copy or download the rendered HTML, and
leave a comment that the template's editors see in the admin."""

from __future__ import annotations

import json
import re
from datetime import timedelta

from django import forms
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods

from emails.backoffice.editor import email_html_response
from emails.backoffice.preview_links import (
    PreviewLinkGone,
    PreviewLinkInvalid,
    preview_link_resolve,
)
from emails.content.brand import CONTENT_TYPES, LOGO_NAME
from emails.content.composer import compose_content, template_content
from emails.content.drafts import with_draft
from emails.content.samples import sample_logo_url, samples_for
from emails.content.scopes import payload_in_scope
from emails.content.selectors import in_logto_order, scopes_for
from emails.logto import UsageType
from emails.models import PreviewComment, Template

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
    return _no_index(response)


def _no_index(response):
    for header, value in NO_INDEX.items():
        response[header] = value
    return response


def _shared_edits(link) -> Template:
    """The unsaved edits a link carries, as the (unsaved) template they were made on."""
    content = link.content
    return Template(
        pk=link.template_id or 0,
        usage_type=link.usage_type,
        locale=link.locale,
        subject=content.get("subject") or "",
        preheader=content.get("preheader") or "",
        html_body=content.get("html") or "",
        text_body=content.get("text") or "",
        layout_id=content.get("layout_id"),
    )


def _templates(link) -> list[Template]:
    """The link's emails in Logto's order of usage types (sign-in first), each type's
    default locale first; each showing its draft when it has one (what is about to go live:
    ``template.draft_revision``), else its published content."""
    if link.content is not None:
        return [_shared_edits(link)]
    templates = Template.objects.select_related("draft")
    if link.usage_type:
        templates = templates.filter(usage_type=link.usage_type)
    shown = []
    for template in in_logto_order(_for_scope(templates, link)):
        draft = getattr(template, "draft", None)
        template.draft_revision = draft.revision if draft else None  # type: ignore[attr-defined]
        shown.append(with_draft(template, draft) if draft else template)
    return shown


def _for_scope(templates, link) -> list[Template]:
    """Per usage type and locale, the template a message of the link's application and
    organization gets: its scope's own (the most specific that is enabled), else the
    unscoped one."""
    scopes = scopes_for(link.application_id, link.organization_id)
    rank = {scope: index for index, scope in enumerate(scopes)}
    best: dict[tuple[str, str], Template] = {}
    for template in templates:
        scope = (template.application_id, template.organization_id)
        if scope not in rank or (scope != ("", "") and not template.enabled):
            continue  # another scope's, or switched off: the scope's users get another
        key = (template.usage_type, template.locale)
        kept = best.get(key)
        if kept is None or rank[scope] < rank[(kept.application_id, kept.organization_id)]:
            best[key] = template
    return list(best.values())


def _render(request, template: Template, sample: str | None, link):
    samples = {
        name: payload_in_scope(payload, link.application_id, link.organization_id)
        for name, payload in samples_for(
            template.usage_type, locale=template.locale, logo_url=sample_logo_url(request)
        ).items()
    }
    name = sample if sample in samples else next(iter(samples))
    rendered = compose_content(
        template_content(template), payload=samples[name], locale=template.locale
    )
    if rendered.errors:
        return samples, name, None, str(rendered.errors[0])
    return samples, name, rendered, None


class CommentForm(forms.Form):
    name = forms.CharField(max_length=PreviewComment.MAX_NAME, label="Your name")
    body = forms.CharField(
        max_length=PreviewComment.MAX_BODY,
        label="Comment",
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
    )
    approve = forms.BooleanField(required=False, label="I approve this draft for publishing")
    # The revision the page showed: an approval is of what the reviewer saw.
    draft_revision = forms.IntegerField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, revision: int | None = None, **kwargs):
        kwargs["initial"] = {**kwargs.get("initial", {}), "draft_revision": revision}
        super().__init__(*args, **kwargs)
        self.revision = revision
        if revision is None:
            del self.fields["approve"]

    def clean(self):
        cleaned = super().clean()
        if not cleaned.get("body", "").strip() and not cleaned.get("approve"):
            self.add_error("body", "Write a comment (or approve the draft).")
        if cleaned.get("approve") and cleaned.get("draft_revision") != self.revision:
            self.add_error(
                "approve",
                f"The draft changed since this page was opened (it is now revision "
                f"{self.revision}): look at it again, then approve.",
            )
        return cleaned


# No CSRF check: nothing here uses a login or a cookie. The link's token is the credential,
# and whoever could forge the POST holds the token and could post the comment themselves.
# (Django's check would also refuse every comment: under Referrer-Policy: no-referrer, which
# keeps the token out of other sites' logs, a browser sends "Origin: null".)
@csrf_exempt
@require_http_methods(["GET", "POST"])
def preview_page(request, token):
    link, refusal = _resolve(request, token)
    if refusal:
        return refusal
    templates = _templates(link)
    if not templates:
        raise Http404
    wanted = request.GET.get("template") or request.POST.get("template")
    selected = next((t for t in templates if str(t.pk) == wanted), templates[0])
    revision = getattr(selected, "draft_revision", None)
    form = CommentForm(request.POST or None, revision=revision)
    if request.method == "POST":
        hour_ago = timezone.now() - timedelta(hours=1)
        if link.comments.count() >= PreviewComment.MAX_PER_LINK:
            form.add_error(None, "This link has had too many comments; ask for a new one.")
        elif link.comments.filter(created_at__gte=hour_ago).count() >= PreviewComment.MAX_PER_HOUR:
            form.add_error(
                None, "Many comments came through this link in the last hour; please wait."
            )
        elif form.is_valid():
            PreviewComment.objects.create(
                link=link,
                template=selected if selected.pk and link.content is None else link.template,
                usage_type=selected.usage_type,
                locale=selected.locale,
                on_edits=link.content is not None,
                draft_revision=revision,
                approves=bool(form.cleaned_data.get("approve")),
                name=form.cleaned_data["name"],
                body=form.cleaned_data["body"],
            )
            url = reverse("emails:preview", args=[token])
            return redirect(f"{url}?template={selected.pk}&commented=1#comments")
    if request.GET.get("view") == "grid" and link.content is None:
        return _no_index(render(request, "emails/preview/grid.html", _grid(link, token, templates)))
    samples, sample, rendered, error = _render(request, selected, request.GET.get("sample"), link)
    by_type: dict[str, list[Template]] = {}
    for template in templates:
        by_type.setdefault(template.usage_type, []).append(template)
    email_url = reverse("emails:preview-email", args=[token, selected.pk])
    context = {
        "token": token,
        "link": link,
        "edits": link.content is not None,
        "draft_revision": revision,
        "gallery": not link.usage_type,
        "by_type": [(UsageType(key).label, key, items) for key, items in by_type.items()],
        "selected": selected,
        "samples": list(samples),
        "sample": sample,
        "rendered": rendered,
        "error": error,
        "email_url": email_url,
        "payload_json": json.dumps(samples[sample], indent=2, ensure_ascii=False),
        "form": form,
        "commented": request.GET.get("commented") == "1",
        "comments": link.comments.filter(usage_type=selected.usage_type, locale=selected.locale),
    }
    return _no_index(render(request, "emails/preview/page.html", context))


def _grid(link, token, templates) -> dict:
    return {
        "token": token,
        "link": link,
        "gallery": not link.usage_type,
        "cards": [
            {
                "template": template,
                "label": UsageType(template.usage_type).label,
                "email_url": reverse("emails:preview-email", args=[token, template.pk]),
            }
            for template in templates
        ],
    }


@require_GET
@xframe_options_sameorigin
def preview_email(request, token, template_id):
    """The rendered HTML of one email (``?scheme=dark``: as a dark-mode client shows it;
    ``?download=1``: as a file)."""
    link, refusal = _resolve(request, token)
    if refusal:
        return refusal
    template = next((t for t in _templates(link) if t.pk == template_id), None)
    if template is None:
        raise Http404
    _, _, rendered, error = _render(request, template, request.GET.get("sample"), link)
    response = email_html_response(
        request, rendered.html if rendered else f"<pre>{escape(error)}</pre>"
    )
    if request.GET.get("download") == "1" and rendered:
        name = f"{template.usage_type}-{template.locale}.html"
        response["Content-Disposition"] = f'attachment; filename="{name}"'
    return _no_index(response)


@require_GET
def brand_logo(request, name):
    """An uploaded brand logo, for inboxes and previews: no login (emails show it to
    anyone), only names of the logo pattern, the type fixed by the name (checked when it was
    uploaded), no sniffing, no script, cached for good (the name is the content's hash)."""
    if not re.fullmatch(LOGO_NAME, name) or not default_storage.exists(f"brand/{name}"):
        raise Http404
    response = FileResponse(
        default_storage.open(f"brand/{name}"), content_type=CONTENT_TYPES[name.rsplit(".", 1)[1]]
    )
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["Cache-Control"] = "public, max-age=31536000, immutable"
    response["Cross-Origin-Resource-Policy"] = "cross-origin"
    return response
