"""Import (Logto SMTP config, Logto email-templates API, Mailroom's export) and export."""

import io
import json
import zipfile
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from emails.models import Layout, Template
from emails.transfer import TEMPLATE_FIELDS, text_to_html

pytestmark = pytest.mark.django_db

IMPORTS = Path(__file__).resolve().parent.parent / "fixtures" / "imports"


def run(*args):
    out = io.StringIO()
    call_command("import_templates", *args, stdout=out)
    return out.getvalue()


def test_logto_smtp_config_imports_into_the_chosen_locale():
    output = run(str(IMPORTS / "logto-smtp-config.json"), "--locale", "nl-be")
    assert "5 create" in output and "1 skipped" in output  # the old "Test" type
    sign_in = Template.objects.get(usage_type="SignIn", locale="nl-BE")
    assert sign_in.subject == "Sign-in code {{code}}" and sign_in.layout is None
    register = Template.objects.get(usage_type="Register", locale="nl-BE")
    assert register.text_body == "Your code is {{code}}.\n\nWelcome aboard & see you soon."
    assert register.html_body == (
        "<p>Your code is {{code}}.</p>\n<p>Welcome aboard &amp; see you soon.</p>"
    )
    assert sign_in.history.first().history_change_reason == "imported"


def test_smtp_config_needs_a_locale():
    with pytest.raises(CommandError, match="choose a locale"):
        run(str(IMPORTS / "logto-smtp-config.json"))


def test_logto_api_list_imports_and_refuses_what_does_not_validate():
    with pytest.raises(CommandError, match="1 item"):
        run(str(IMPORTS / "logto-email-templates.json"))
    sign_in = Template.objects.get(usage_type="SignIn", locale="nl")
    assert (sign_in.reply_to, sign_in.from_email) == (
        "hulp@example.com",
        "Acme <no-reply@example.com>",
    )
    assert Template.objects.filter(locale="nl").count() == 2
    assert not Template.objects.filter(locale="sv").exists()  # {{ aplication.name }}


def test_dry_run_reports_and_writes_nothing():
    before = Template.objects.count()
    output = run(str(IMPORTS / "logto-smtp-config.json"), "--locale", "en", "--dry-run")
    assert Template.objects.count() == before
    assert "change  template SignIn · en — subject, html_body, text_body, layout" in output
    assert "(dry run: nothing written)" in output


def test_importing_the_same_again_leaves_everything_alone():
    run(str(IMPORTS / "logto-smtp-config.json"), "--locale", "nl")
    output = run(str(IMPORTS / "logto-smtp-config.json"), "--locale", "nl")
    assert "0 create, 0 change, 5 unchanged" in output


def test_export_reads_well_and_round_trips_losslessly(tmp_path):
    # Given edited templates, a second layout and a template without layout
    custom = Layout.objects.create(
        name="Plain", html="<div>{{ content }}</div>", text="{{ content }}"
    )
    edited = Template.objects.get(usage_type="SignIn", locale="de")
    edited.subject, edited.layout, edited.reply_to = "Neu {{ code }}", custom, "hilfe@example.com"
    edited.enabled = False
    edited.save()
    Template.objects.filter(usage_type="Generic", locale="ja").update(layout=None)
    snapshot = _snapshot()

    # When everything is exported, the database emptied, and the export imported
    call_command("export_templates", str(tmp_path), stdout=io.StringIO())
    meta = json.loads((tmp_path / "mailroom.json").read_text())
    assert (tmp_path / "templates/SignIn/de.html").read_text() == edited.html_body
    assert {entry["name"] for entry in meta["layouts"]} == {"Default", "Plain"}
    Template.objects.all().delete()
    Layout.objects.all().delete()
    output = run(str(tmp_path))

    # Then every template and layout is back exactly
    assert "182 create" in output
    assert _snapshot() == snapshot


def test_a_zipped_export_imports_too(tmp_path, admin_client):
    response = admin_client.post(
        "/admin/emails/template/",
        {
            "action": "export",
            "_selected_action": list(
                Template.objects.filter(locale="fr").values_list("pk", flat=True)
            ),
        },
    )
    assert response["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert "mailroom-templates/templates/SignIn/fr.html" in archive.namelist()
    Template.objects.filter(locale="fr").delete()
    path = tmp_path / "export.zip"
    path.write_bytes(response.content)
    assert "9 create" in run(str(path))


def test_admin_import_page_dry_runs_then_imports(admin_client):
    def upload(dry_run):
        with open(IMPORTS / "logto-smtp-config.json", "rb") as handle:
            return admin_client.post(
                "/admin/emails/template/import/",
                {
                    "file": handle,
                    "locale": "it-CH",
                    **({"dry_run": "on"} if dry_run else {}),
                },
            ).content.decode()

    page = upload(dry_run=True)
    assert "Dry run: nothing was written" in page and "5 create" in page
    assert not Template.objects.filter(locale="it-CH").exists()
    upload(dry_run=False)
    assert Template.objects.filter(locale="it-CH").count() == 5


def test_admin_import_refuses_garbage(admin_client):
    page = admin_client.post(
        "/admin/emails/template/import/",
        {
            "file": io.BytesIO(b"not json"),
            "locale": "",
        },
    ).content.decode()
    assert "errorlist" in page


def test_text_to_html_keeps_template_tags():
    assert text_to_html('Hi {% if user.name == "A&B" %}{{ user.name }}{% endif %} & co\nline') == (
        '<p>Hi {% if user.name == "A&B" %}{{ user.name }}{% endif %} &amp; co<br>\nline</p>'
    )


def _snapshot():
    templates = {
        (t.usage_type, t.locale): (
            *(getattr(t, name) for name in TEMPLATE_FIELDS),
            t.layout.name if t.layout else None,
        )
        for t in Template.objects.select_related("layout")
    }
    layouts = {layout.name: (layout.html, layout.text) for layout in Layout.objects.all()}
    return templates, layouts


def test_import_refuses_a_sender_that_is_no_address(tmp_path):
    path = tmp_path / "logto.json"
    path.write_text(
        json.dumps(
            [
                {
                    "languageTag": "nl",
                    "templateType": "SignIn",
                    "details": {
                        "subject": "Code",
                        "content": "<p>{{ code }}</p>",
                        "sendFrom": "nobody",
                    },
                }
            ]
        )
    )
    with pytest.raises(CommandError):
        run(str(path))
    assert not Template.objects.filter(locale="nl").exists()
