"""Import and export in the admin: an upload checked like any untrusted input
(emails.content.transfer), and the export as a zip."""

from __future__ import annotations

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


def import_view(request, model_admin):
    if not request.user.has_perms(IMPORT_PERMISSIONS):
        raise PermissionDenied
    report, form = None, ImportForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        # Every way an upload can be wrong ends as an ImportFormatError (emails/transfer.py).
        content = form.cleaned_data["file"].read(MAX_IMPORT_FILE_BYTES + 1)
        try:
            layouts, items = read_upload(content, locale=form.cleaned_data["locale"] or None)
            report = import_templates(layouts, items, dry_run=form.cleaned_data["dry_run"])
        except ImportFormatError as exc:
            form.add_error("file", str(exc))
    context = {
        **model_admin.admin_site.each_context(request),
        "title": "Import templates",
        "opts": model_admin.model._meta,
        "form": form,
        "report": report,
    }
    return TemplateResponse(request, "admin/emails/import.html", context)


def export_response(templates, layouts) -> HttpResponse:
    response = HttpResponse(
        export_zip(templates=templates, layouts=layouts), content_type="application/zip"
    )
    response["Content-Disposition"] = 'attachment; filename="mailroom-templates.zip"'
    return response
