"""Import and export in the admin: an upload checked like any untrusted input
(emails.content.transfer), and the export as a zip."""

from __future__ import annotations

import base64
import hashlib
import secrets

from django import forms
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.template.response import TemplateResponse

from emails.content.transfer import (
    MAX_IMPORT_FILE_BYTES,
    ImportFormatError,
    export_zip,
    format_size,
    import_templates,
    read_upload,
)


class ImportForm(forms.Form):
    file = forms.FileField(
        help_text="A Logto SMTP connector config (JSON), a Logto email-templates list (JSON), "
        f"or a Mailroom export (zip); at most {format_size(MAX_IMPORT_FILE_BYTES)}."
    )
    locale = forms.CharField(
        required=False, help_text="For a Logto SMTP config: the language of its templates."
    )
    dry_run = forms.BooleanField(required=False, initial=True, label="Dry run (write nothing)")

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


# A dry run's file waits in the user's session (database-backed: any web worker can apply
# it) so that "Apply" imports exactly what was checked, without choosing the file again.
PENDING = "mailroom-import"


def import_view(request, model_admin):
    if not request.user.has_perms(IMPORT_PERMISSIONS):
        raise PermissionDenied
    report, pending, problem = None, None, ""
    form = ImportForm(
        None if "apply" in request.POST else request.POST or None, request.FILES or None
    )
    if request.method == "POST" and "apply" in request.POST:
        report, problem = _apply_pending(request)
    elif request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        # Every way an upload can be wrong ends as an ImportFormatError (emails/transfer.py).
        content = upload.read(MAX_IMPORT_FILE_BYTES + 1)
        locale = form.cleaned_data["locale"] or None
        report, refused = _import(content, locale, dry_run=form.cleaned_data["dry_run"])
        if refused:
            form.add_error("file", refused)
        request.session.pop(PENDING, None)
        if report is not None and report.dry_run:
            pending = {
                "id": secrets.token_urlsafe(16),
                "name": upload.name,
                "size": format_size(len(content)),
                "sha256": hashlib.sha256(content).hexdigest(),
                "locale": locale,
                "content": base64.b64encode(content).decode(),
            }
            request.session[PENDING] = pending
    context = {
        **model_admin.admin_site.each_context(request),
        "title": "Import templates",
        "opts": model_admin.model._meta,
        "form": form,
        "report": report,
        "pending": pending,
        "problem": problem,
    }
    return TemplateResponse(request, "admin/emails/import.html", context)


def _import(content: bytes, locale, *, dry_run: bool):
    """The import's report, or None and why the file was refused."""
    try:
        layouts, items = read_upload(content, locale=locale)
        return import_templates(layouts, items, dry_run=dry_run), ""
    except ImportFormatError as exc:
        return None, str(exc)


def _apply_pending(request):
    """Import the file of this session's last dry run, checked again as it is written."""
    pending = request.session.get(PENDING)
    if not pending or not secrets.compare_digest(pending["id"], request.POST.get("apply", "")):
        return None, "That dry run is no longer waiting: choose the file again."
    request.session.pop(PENDING)
    return _import(base64.b64decode(pending["content"]), pending["locale"], dry_run=False)


def export_response(templates, layouts) -> HttpResponse:
    response = HttpResponse(
        export_zip(templates=templates, layouts=layouts), content_type="application/zip"
    )
    response["Content-Disposition"] = 'attachment; filename="mailroom-templates.zip"'
    return response
