"""Issue 13, bug 1: every way in stores one line ending (\\n). Browsers submit textareas with
\\r\\n; before, an untouched template saved once from the admin read as edited (the change
list, history, sync_default_templates) and exports carried \\r\\n."""

from __future__ import annotations

import importlib
import json

import pytest
from django.apps import apps
from django.contrib.admin.models import LogEntry
from django.core.management import call_command

from emails.backoffice.forms import LayoutForm, TemplateForm
from emails.content.defaults import sync_defaults
from emails.models import Layout, Template
from tests.test_management_api import client_for
from tests.test_transfer import run

pytestmark = pytest.mark.django_db


def crlf(text: str) -> str:
    return text.replace("\n", "\r\n")


def shipped_sign_in() -> Template:
    sync_defaults(Template, Layout)
    return Template.objects.get(usage_type="SignIn", locale="en")


def test_an_untouched_template_submitted_by_a_browser_is_unchanged(admin_client):
    template = shipped_sign_in()
    assert "\n" in template.html_body
    url = f"/admin/emails/template/{template.pk}/change/"
    data = {
        "usage_type": template.usage_type,
        "locale": template.locale,
        "enabled": "on",
        "layout": template.layout_id or "",
        "subject": template.subject,
        "preheader": crlf(template.preheader),
        "html_body": crlf(template.html_body),
        "text_body": crlf(template.text_body),
        "from_email": "",
        "reply_to": "",
    }
    before = Template.objects.get(pk=template.pk)
    response = admin_client.post(url, data)
    assert response.status_code == 302, response.content.decode()[:2000]
    saved = Template.objects.get(pk=template.pk)
    assert (saved.html_body, saved.text_body) == (before.html_body, before.text_body)
    assert "\r" not in saved.html_body + saved.text_body
    # The admin's record says nothing changed (it said "HTML body, Plain-text body")
    assert LogEntry.objects.get().get_change_message() == "No fields changed."
    # and the sync still knows it as the shipped default: it is not kept as an edit
    assert sync_defaults(Template, Layout).kept_edited == 0


def test_the_forms_read_crlf_as_no_change():
    template = shipped_sign_in()
    form = TemplateForm(
        data={
            "usage_type": template.usage_type,
            "locale": template.locale,
            "enabled": True,
            "layout": template.layout_id,
            "subject": template.subject,
            "preheader": template.preheader,
            "html_body": crlf(template.html_body),
            "text_body": crlf(template.text_body),
        },
        instance=template,
    )
    assert form.is_valid(), form.errors
    assert "html_body" not in form.changed_data and "text_body" not in form.changed_data
    layout = template.layout
    form = LayoutForm(
        data={"name": layout.name, "html": crlf(layout.html), "text": crlf(layout.text)},
        instance=layout,
    )
    assert form.is_valid(), form.errors
    assert form.changed_data == []


def test_the_management_api_stores_lf():
    template = shipped_sign_in()
    api = client_for("view_template", "change_template", "publish_template")
    body = crlf("<p>Your code: {{ code }}</p>\n<p>Bye</p>")
    response = api.patch(
        f"/api/v1/templates/{template.pk}/", {"details": {"content": body}}, format="json"
    )
    assert response.status_code == 200, response.content
    assert (
        Template.objects.get(pk=template.pk).html_body == "<p>Your code: {{ code }}</p>\n<p>Bye</p>"
    )


def test_an_import_stores_lf(tmp_path):
    path = tmp_path / "smtp.json"
    path.write_text(
        json.dumps(
            {
                "templates": [
                    {
                        "usageType": "SignIn",
                        "contentType": "text/plain",
                        "subject": "Code {{code}}",
                        "content": "Your code is {{code}}.\r\n\r\nBye.",
                    }
                ]
            }
        )
    )
    run(str(path), "--locale", "fy")
    template = Template.objects.get(usage_type="SignIn", locale="fy")
    assert template.text_body == "Your code is {{code}}.\n\nBye."
    assert "\r" not in template.html_body


def test_the_migration_fixes_templates_saved_before():
    template = shipped_sign_in()
    Template.objects.filter(pk=template.pk).update(html_body=crlf(template.html_body))  # no save()
    Layout.objects.filter(pk=template.layout_id).update(html=crlf(template.layout.html))
    migration = importlib.import_module("emails.migrations.0008_normalize_newlines")
    migration.forwards(apps, None)
    assert Template.objects.get(pk=template.pk).html_body == template.html_body
    assert "\r" not in Layout.objects.get(pk=template.layout_id).html


def test_an_export_has_no_crlf(tmp_path):
    template = shipped_sign_in()
    template.html_body = crlf(template.html_body)  # as a browser would submit it
    template.save()
    call_command("export_templates", str(tmp_path / "out"))
    files = [path for path in (tmp_path / "out").rglob("*") if path.is_file()]
    assert files
    for path in files:
        assert b"\r" not in path.read_bytes(), path


def test_the_lists_do_not_load_the_code_editor_the_forms_do(admin_client):
    """Issue 13, bug 11: the template list loaded CodeMirror (1.3 MB) for nothing."""
    template = shipped_sign_in()
    for list_url in ("/admin/emails/template/", "/admin/emails/layout/"):
        page = admin_client.get(list_url).content.decode()
        assert "codemirror" not in page.lower(), list_url
    form = admin_client.get(f"/admin/emails/template/{template.pk}/change/").content.decode()
    assert "codemirror.js" in form and "emails/editor.js" in form
    layout = admin_client.get(f"/admin/emails/layout/{template.layout_id}/change/").content.decode()
    assert "codemirror.js" in layout and "emails/surround.js" in layout
