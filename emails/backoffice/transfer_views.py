"""Import and export in the admin: an upload checked like any untrusted input
(emails.content.transfer), and the export as a zip."""

from __future__ import annotations

import hashlib
import uuid

from django import forms
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from emails.content.transfer import (
    MAX_IMPORT_FILE_BYTES,
    ImportFormatError,
    export_zip,
    format_size,
    import_templates,
    read_upload,
)
from emails.models import PendingImport


class ImportForm(forms.Form):
    file = forms.FileField(
        help_text="A Logto SMTP connector config (JSON), a Logto email-templates list (JSON), "
        f"or a Mailroom export (zip); at most {format_size(MAX_IMPORT_FILE_BYTES)}."
    )
    locale = forms.CharField(
        required=False, help_text="For a Logto SMTP config: the language of its templates."
    )
    dry_run = forms.BooleanField(required=False, initial=True, label="Dry run (write nothing)")
    as_draft = forms.BooleanField(
        required=False,
        initial=True,
        label="As drafts (to review and publish; emails keep what is published)",
        help_text="Importing without it publishes at once, and needs the publish permission. "
        "A changed layout becomes its draft too; a new one is created as it is.",
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > MAX_IMPORT_FILE_BYTES:
            raise forms.ValidationError(
                f"The file is {format_size(upload.size)}; the limit is "
                f"{format_size(MAX_IMPORT_FILE_BYTES)}."
            )
        return upload


IMPORT_PERMISSIONS = (
    "emails.add_template",
    "emails.change_template",
    # An import creates and changes the layouts its templates name.
    "emails.add_layout",
    "emails.change_layout",
)


def import_view(request, model_admin):
    if not request.user.has_perms(IMPORT_PERMISSIONS):
        raise PermissionDenied
    report, pending, problem = None, None, ""
    applying = request.method == "POST" and "apply" in request.POST
    form = ImportForm(None if applying else request.POST or None, request.FILES or None)
    # An import that is not as drafts publishes: it takes the publish permission, and is
    # refused while publishing needs an approval.
    may_publish = (
        request.user.has_perms(("emails.publish_template", "emails.publish_layout"))
        and not settings.EMAILS_PUBLISH_REQUIRES_APPROVAL
    )
    as_draft = True
    if applying:
        as_draft = request.POST.get("as_draft") == "1"
        report, problem = _apply_pending(request, as_draft=as_draft, may_publish=may_publish)
    elif request.method == "POST" and form.is_valid():
        as_draft = form.cleaned_data["as_draft"]
        if not as_draft and not may_publish and not form.cleaned_data["dry_run"]:
            form.add_error("as_draft", "You may import templates only as drafts here.")
    if request.method == "POST" and not applying and form.is_valid():
        upload = form.cleaned_data["file"]
        # Every way an upload can be wrong ends as an ImportFormatError (emails/transfer.py).
        content = upload.read(MAX_IMPORT_FILE_BYTES + 1)
        locale = form.cleaned_data["locale"] or ""
        report, refused = _import(
            content, locale or None, dry_run=form.cleaned_data["dry_run"], as_draft=as_draft
        )
        if refused:
            form.add_error("file", refused)
        elif report.dry_run and (as_draft or may_publish):
            pending = _keep_for_apply(request.user, upload.name, content, locale)
    context = {
        **model_admin.admin_site.each_context(request),
        "title": "Import templates",
        "opts": model_admin.model._meta,
        "form": form,
        "report": report,
        "pending": pending,
        "pending_size": format_size(len(pending.content)) if pending else "",
        "problem": problem,
        "as_draft": as_draft,
    }
    return TemplateResponse(request, "admin/emails/import.html", context)


def _keep_for_apply(user, name: str, content: bytes, locale: str) -> PendingImport:
    """Keep a dry run's file for "Apply" (an hour; the user's earlier ones are dropped)."""
    PendingImport.objects.filter(
        Q(user=user) | Q(created_at__lt=timezone.now() - PendingImport.LIFETIME)
    ).delete()
    return PendingImport.objects.create(
        user=user,
        name=name[:255],
        locale=locale,
        content=content,
        sha256=hashlib.sha256(content).hexdigest(),
    )


def _import(content: bytes, locale, *, dry_run: bool, as_draft: bool):
    """The import's report, or None and why the file was refused."""
    try:
        layouts, items = read_upload(content, locale=locale)
        return import_templates(layouts, items, dry_run=dry_run, as_draft=as_draft), ""
    except ImportFormatError as exc:
        return None, str(exc)


def _apply_pending(request, *, as_draft: bool, may_publish: bool):
    """Import the file this user's dry run checked, checked again as it is written."""
    try:
        key = uuid.UUID(request.POST.get("apply", ""))
    except ValueError:
        return None, "That dry run is no longer waiting: choose the file again."
    pending = PendingImport.objects.filter(
        pk=key, user=request.user, created_at__gte=timezone.now() - PendingImport.LIFETIME
    ).first()
    if pending is not None and not as_draft and not may_publish:
        return None, "You may import templates only as drafts here."
    # Deleted first, and applied only by the request that deleted it: two clicks import once.
    if pending is None or not PendingImport.objects.filter(pk=pending.pk).delete()[0]:
        return None, "That dry run is no longer waiting: choose the file again."
    return _import(bytes(pending.content), pending.locale or None, dry_run=False, as_draft=as_draft)


def export_response(templates, layouts) -> HttpResponse:
    response = HttpResponse(
        export_zip(templates=templates, layouts=layouts), content_type="application/zip"
    )
    response["Content-Disposition"] = 'attachment; filename="mailroom-templates.zip"'
    return response
