"""Import and export carry scopes (a template's or layout's application and organization);
Logto's own formats keep importing into the unscoped templates."""

import io
import json
import zipfile
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command

from emails.content.drafts import draft_save, draft_values
from emails.content.transfer import (
    TEMPLATE_FIELDS,
    export_files,
    export_zip,
    import_templates,
    read_source,
    read_zip,
)
from emails.models import Layout, LayoutDraft, Template, TemplateDraft
from tests.factories import TemplateFactory

pytestmark = pytest.mark.django_db

IMPORTS = Path(__file__).resolve().parent.parent / "fixtures" / "imports"
SIGN_IN_HTML = "<p>Code {{ code }}</p>"


def run(*args):
    out = io.StringIO()
    call_command("import_templates", *args, stdout=out)
    return out.getvalue()


def _scope(obj) -> tuple[str, str]:
    return obj.application_id, obj.organization_id


def _snapshot():
    templates = {
        (t.usage_type, t.locale, *_scope(t)): (
            *(getattr(t, name) for name in TEMPLATE_FIELDS),
            t.layout.name if t.layout else None,
            t.published_at is not None,
        )
        for t in Template.objects.select_related("layout")
    }
    layouts = {
        layout.name: (layout.html, layout.text, *_scope(layout)) for layout in Layout.objects.all()
    }
    drafts = {
        (d.template.usage_type, d.template.locale, *_scope(d.template)): {
            **draft_values(d),
            "layout": d.layout.name if d.layout else None,
        }
        for d in TemplateDraft.objects.select_related("template", "layout")
    }
    return templates, layouts, drafts


def _sign_in_en(**scope) -> Template:
    return Template.objects.get(usage_type="SignIn", locale="en", **scope)


def _template(**values) -> Template:
    """A template whose content validates (the factory's has a {{ link }} SignIn lacks)."""
    body = {"html_body": f"<p>{values['subject']}</p>", "text_body": values["subject"]}
    return TemplateFactory(**{**body, **values})


@pytest.fixture
def scoped():
    """Beside the starter SignIn·en (unscoped): the same type and locale for an organization
    (in its own layout, with a draft), for an application, and for both; a scoped layout."""
    layout = Layout.objects.create(
        name="Acme",
        html="<div>Acme {{ content }}</div>",
        text="{{ content }}",
        organization_id="org1",
    )
    org = _template(organization_id="org1", subject="Acme {{ code }}", layout=layout)
    draft_save(org, {**draft_values(org), "subject": "Acme, soon {{ code }}"})
    _template(application_id="app1", subject="App {{ code }}", reply_to="help@app.example")
    _template(application_id="app1", organization_id="org1", subject="Both {{ code }}")
    return org


def test_scoped_and_unscoped_templates_and_a_scoped_layout_round_trip(tmp_path, scoped):
    # Given four SignIn·en templates (unscoped, organization, application, both) and a layout
    # of the organization
    unscoped = _sign_in_en(application_id="", organization_id="")
    snapshot = _snapshot()

    # When everything is exported
    call_command("export_templates", str(tmp_path), stdout=io.StringIO())

    # Then each has its own files, the unscoped one where it always was, and mailroom.json
    # names the scopes (and nothing for the unscoped)
    assert (tmp_path / "templates/SignIn/en.html").read_text() == unscoped.html_body
    assert (tmp_path / "templates/SignIn/org-org1/en.html").read_text() == scoped.html_body
    assert (tmp_path / "templates/SignIn/org-org1/en.draft.html").is_file()
    assert (tmp_path / "templates/SignIn/app-app1/en.html").is_file()
    assert (tmp_path / "templates/SignIn/app-app1+org-org1/en.html").is_file()
    meta = json.loads((tmp_path / "mailroom.json").read_text())
    sign_in_en = [
        entry
        for entry in meta["templates"]
        if (entry["usage_type"], entry["locale"]) == ("SignIn", "en")
    ]
    assert sorted(
        (e.get("application_id", "-"), e.get("organization_id", "-")) for e in sign_in_en
    ) == [
        ("-", "-"),
        ("-", "org1"),
        ("app1", "-"),
        ("app1", "org1"),
    ]
    assert len({entry["html"] for entry in sign_in_en}) == 4
    acme = next(entry for entry in meta["layouts"] if entry["name"] == "Acme")
    assert acme["organization_id"] == "org1" and "application_id" not in acme
    default = next(entry for entry in meta["layouts"] if entry["name"] == "Default")
    assert "organization_id" not in default and "application_id" not in default

    # When the database is emptied and the export imported
    Template.objects.all().delete()
    Layout.objects.all().delete()
    output = run(str(tmp_path))

    # Then every template, layout and draft is back exactly, in its scope
    assert "185 create" in output and "0 invalid" in output
    assert "create  template SignIn · en · organization org1 — with its draft" in output
    assert _snapshot() == snapshot

    # And importing it again changes nothing
    assert "0 create, 0 change" in run(str(tmp_path))
    assert Template.objects.filter(usage_type="SignIn", locale="en").count() == 4


def test_reimporting_updates_the_scoped_template_in_place(tmp_path, scoped):
    unscoped = _sign_in_en(application_id="", organization_id="")
    call_command("export_templates", str(tmp_path), stdout=io.StringIO())
    page = tmp_path / "templates/SignIn/org-org1/en.html"
    page.write_text("<p>Acme, again: {{ code }}</p>")

    output = run(str(tmp_path))

    assert "1 change" in output
    assert "change  template SignIn · en · organization org1 — html_body" in output
    assert _sign_in_en(organization_id="org1", application_id="").pk == scoped.pk
    assert Template.objects.get(pk=scoped.pk).html_body == "<p>Acme, again: {{ code }}</p>"
    assert Template.objects.get(pk=unscoped.pk).html_body == unscoped.html_body


def test_a_zipped_export_imports_scopes_as_drafts_too(scoped):
    content = export_zip()
    Template.objects.all().delete()
    Layout.objects.all().delete()

    layouts, items = read_zip(content)
    report = import_templates(layouts, items, dry_run=False, as_draft=True)

    assert report.count("invalid") == 0
    assert Layout.objects.get(name="Acme").organization_id == "org1"
    template = _sign_in_en(organization_id="org1", application_id="")
    assert template.published_at is None  # a new template lands unpublished, as a draft
    assert TemplateDraft.objects.get(template=template).subject == "Acme, soon {{ code }}"
    assert _sign_in_en(application_id="app1", organization_id="").reply_to == "help@app.example"


def test_importing_as_drafts_changes_the_scoped_draft_only(tmp_path, scoped):
    call_command("export_templates", str(tmp_path), stdout=io.StringIO())
    page = tmp_path / "templates/SignIn/app-app1/en.html"
    page.write_text("<p>App, reviewed: {{ code }}</p>")
    app = _sign_in_en(application_id="app1", organization_id="")

    output = run(str(tmp_path), "--as-draft")

    assert "change  template SignIn · en · application app1 — as a draft: html_body" in output
    assert Template.objects.get(pk=app.pk).html_body == app.html_body  # what is published
    assert TemplateDraft.objects.get(template=app).html_body == "<p>App, reviewed: {{ code }}</p>"
    assert not TemplateDraft.objects.filter(
        template=_sign_in_en(application_id="", organization_id="")
    ).exists()


def test_a_layouts_scope_is_carried_onto_the_layout_of_that_name(tmp_path, scoped):
    call_command("export_templates", str(tmp_path), stdout=io.StringIO())
    Layout.objects.filter(name="Acme").update(organization_id="", application_id="app9")

    output = run(str(tmp_path), "--as-draft")

    assert "change  layout Acme — scope: organization org1" in output
    layout = Layout.objects.get(name="Acme")
    assert _scope(layout) == ("", "org1")
    assert not LayoutDraft.objects.filter(layout=layout).exists()  # its content is the same


def _write_export(folder: Path, templates: list[dict], layouts: list[dict] = ()) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "t.html").write_text(SIGN_IN_HTML)
    (folder / "l.html").write_text("<main>{{ content }}</main>")
    (folder / "l.txt").write_text("{{ content }}")
    meta = {"mailroom_export": 1, "layouts": list(layouts), "templates": templates}
    (folder / "mailroom.json").write_text(json.dumps(meta))
    return folder


def _entry(**values) -> dict:
    return {
        "usage_type": "SignIn",
        "locale": "nl",
        "subject": "Code {{ code }}",
        "html": "t.html",
        "text": None,
        **values,
    }


def test_an_export_without_scope_keys_imports_unscoped(tmp_path):
    # Given an organization's own SignIn·nl, and an export from before scopes
    org = _template(locale="nl", organization_id="org1", subject="Org {{ code }}")
    layout = {"name": "Old", "html": "l.html", "text": "l.txt"}
    folder = _write_export(
        tmp_path / "old",
        [_entry(layout="Old"), _entry(locale="de", application_id=None, organization_id="")],
        [layout],
    )

    # When it is imported
    output = run(str(folder))

    # Then it creates the unscoped SignIn·nl beside the organization's, which is untouched
    assert "create  template SignIn · nl" in output and "organization" not in output
    created = Template.objects.get(usage_type="SignIn", locale="nl", organization_id="")
    assert _scope(created) == ("", "") and created.html_body == SIGN_IN_HTML
    assert created.layout == Layout.objects.get(name="Old")
    assert _scope(Layout.objects.get(name="Old")) == ("", "")
    assert Template.objects.get(pk=org.pk).subject == "Org {{ code }}"
    # null and "" are unscoped too: the starter SignIn·de is the one changed
    assert Template.objects.filter(usage_type="SignIn", locale="de").count() == 1
    assert _sign_in_de().html_body == SIGN_IN_HTML


def _sign_in_de() -> Template:
    return Template.objects.get(usage_type="SignIn", locale="de")


@pytest.mark.parametrize("as_draft", [False, True])
@pytest.mark.parametrize(
    "scope, message",
    [
        ({"organization_id": "not an id!"}, "organization_id 'not an id!' is not a Logto id"),
        ({"application_id": "a/b"}, "application_id 'a/b' is not a Logto id"),
        ({"application_id": "app1\n"}, "application_id 'app1\\n' is not a Logto id"),
        ({"organization_id": "x" * 129}, "is not a Logto id"),
    ],
)
def test_a_bad_scope_id_is_reported_and_nothing_of_that_entry_is_written(
    tmp_path, scope, message, as_draft
):
    # Given an export with an entry and a layout of a bad scope, a template that uses that
    # layout, and one good entry
    unscoped_de = _sign_in_de()
    before = Template.objects.count()
    draft = {"subject": "Soon {{ code }}", "html": "t.html", "text": None}
    folder = _write_export(
        tmp_path / "bad",
        [
            _entry(locale="de", draft=draft, **scope),
            _entry(locale="fr", layout="Bad"),
            _entry(locale="nl", organization_id="org1"),
        ],
        [{"name": "Bad", "html": "l.html", "text": "l.txt", **scope}],
    )
    layouts, items = read_source(folder)

    # When it is imported
    report = import_templates(layouts, items, dry_run=False, as_draft=as_draft)

    # Then the bad entries are reported, each with what is wrong, and none is written
    invalid = {
        o.key.split(" · ")[1] if o.kind == "template" else o.key: o.detail
        for o in report.outcomes
        if o.action == "invalid"
    }
    assert set(invalid) == {"Bad", "de", "fr"}
    assert message in invalid["de"] and message in invalid["Bad"]
    assert invalid["fr"] == "no layout 'Bad'"
    assert not Layout.objects.filter(name="Bad").exists()
    assert Template.objects.count() == before + 1  # the good one
    assert _sign_in_de() == unscoped_de and _sign_in_de().html_body == unscoped_de.html_body
    assert not TemplateDraft.objects.filter(template__locale__in=("de", "fr")).exists()
    assert _scope(Template.objects.get(usage_type="SignIn", locale="nl")) == ("", "org1")
    # and the command says so
    with pytest.raises(CommandError, match="3 item"):
        run(str(folder), "--dry-run")


def test_the_admin_reports_a_bad_scope_id_never_an_error(admin_client, tmp_path):
    folder = _write_export(tmp_path / "bad", [_entry(organization_id="bad id")])
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in folder.iterdir():
            archive.write(path, path.name)
    page = admin_client.post(
        "/admin/emails/template/import/",
        {"file": SimpleUploadedFile("export.zip", buffer.getvalue()), "dry_run": "on"},
    )
    assert page.status_code == 200
    content = page.content.decode()
    assert "1 invalid" in content and "is not a Logto id" in content


def test_a_scope_that_is_no_string_refuses_the_file(tmp_path):
    folder = _write_export(tmp_path / "bad", [_entry(organization_id=5)])
    with pytest.raises(CommandError, match=r"templates\[0\]\.organization_id must be a string"):
        run(str(folder))
    assert not Template.objects.filter(locale="nl").exists()


def test_export_paths_never_collide_whatever_the_case_or_the_id(scoped):
    _template(organization_id="ORG1", subject="Upper {{ code }}")
    _template(organization_id="..", subject="Dots {{ code }}")
    files = export_files()
    meta = json.loads(files["mailroom.json"])
    sign_in_en = [
        entry
        for entry in meta["templates"]
        if (entry["usage_type"], entry["locale"]) == ("SignIn", "en")
    ]
    paths = [entry["html"] for entry in sign_in_en]
    assert len({path.lower() for path in paths}) == len(paths) == 6
    assert "templates/SignIn/org-../en.html" in paths
    Template.objects.filter(usage_type="SignIn", locale="en").delete()

    report = import_templates(*read_zip(export_zip()), dry_run=False)  # the same, zipped
    assert report.count("invalid") == 0


@pytest.mark.parametrize(
    "source, args",
    [
        ("logto-smtp-config.json", ("--locale", "en")),
        ("logto-email-templates.json", ()),
    ],
)
def test_logto_formats_import_into_the_unscoped_template_only(source, args):
    # Given SignIn templates of an organization in the file's languages, and the unscoped
    # SignIn·en (but no unscoped SignIn·nl)
    org_en = _template(organization_id="org1", subject="Org {{ code }}")
    org_nl = _template(locale="nl", organization_id="org1", subject="Org {{ code }}")
    unscoped_en = _sign_in_en(application_id="", organization_id="")

    # When a Logto file is imported
    try:
        run(str(IMPORTS / source), *args)
    except CommandError:  # the email-templates list holds one invalid template
        pass

    # Then the unscoped template of its language is changed or created, never the scoped one
    locale = "en" if args else "nl"
    target = Template.objects.get(
        usage_type="SignIn", locale=locale, application_id="", organization_id=""
    )
    assert target.subject in ("Sign-in code {{code}}", "Je inlogcode")
    if locale == "en":
        assert target.pk == unscoped_en.pk
    for org in (org_en, org_nl):
        assert Template.objects.get(pk=org.pk).subject == "Org {{ code }}"
    assert not Template.objects.exclude(organization_id="").exclude(pk__in=[org_en.pk, org_nl.pk])
    assert not Template.objects.exclude(application_id="").exists()


def _invalid(folder: Path, *, as_draft: bool = False) -> dict[str, str]:
    """Import ``folder``: {key: why} of the entries refused."""
    layouts, items = read_source(folder)
    report = import_templates(layouts, items, dry_run=False, as_draft=as_draft)
    return {o.key: o.detail for o in report.outcomes if o.action == "invalid"}


@pytest.mark.parametrize("as_draft", [False, True])
def test_an_import_refuses_a_from_address_outside_the_allowed_domains(tmp_path, settings, as_draft):
    settings.EMAILS_ALLOWED_FROM_DOMAINS = ["acme.example"]
    evil = {"from_email": "Evil <x@evil.example>"}
    folder = _write_export(
        tmp_path / "x",
        [_entry(locale="nl", **evil), _entry(locale="de", draft={**_entry(), **evil})],
    )
    invalid = _invalid(folder, as_draft=as_draft)
    refusal = "evil.example is not a sending domain here; allowed: acme.example"
    assert refusal in invalid["SignIn · nl"]
    assert refusal in invalid["SignIn · de"]  # its draft (or, as drafts, what lands)
    assert not Template.objects.filter(from_email__contains="evil").exists()
    assert not TemplateDraft.objects.filter(from_email__contains="evil").exists()


def test_an_import_keeps_scoped_layouts_to_their_scope(tmp_path):
    layout = {"name": "Acme", "html": "l.html", "text": "l.txt", "organization_id": "org1"}
    folder = _write_export(
        tmp_path / "x",
        [
            _entry(locale="nl", layout="Acme"),
            _entry(locale="fr", layout="Acme", organization_id="org1"),
        ],
        [layout],
    )
    invalid = _invalid(folder)
    assert invalid == {"SignIn · nl": "This layout is for organization org1 only."}
    assert Template.objects.get(locale="fr", organization_id="org1").layout.name == "Acme"
    assert not Template.objects.filter(locale="nl", layout__name="Acme").exists()
    # Rescoping the layout while another organization's template uses it is refused.
    folder = _write_export(tmp_path / "y", [], [{**layout, "organization_id": "org2"}])
    assert _invalid(folder) == {
        "Acme": "1 template(s) or draft(s) of another organization use this layout."
    }
    assert Layout.objects.get(name="Acme").organization_id == "org1"
