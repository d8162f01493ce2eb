"""Import (Logto SMTP config, Logto email-templates API, Mailroom's export) and export."""

import io
import json
import random
import re
import uuid
import zipfile
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.utils.html import escape
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from emails.backoffice.transfer_views import IMPORT_PERMISSIONS
from emails.content.transfer import (
    MAX_IMPORT_FILE_BYTES,
    TEMPLATE_FIELDS,
    ImportFormatError,
    import_templates,
    read_upload,
    read_zip,
    text_to_html,
)
from emails.models import Layout, Template
from tests.helpers import staff

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


def test_a_dry_run_offers_apply_which_imports_that_file_without_choosing_it_again(admin_client):
    with open(IMPORTS / "logto-smtp-config.json", "rb") as handle:
        page = admin_client.post(
            "/admin/emails/template/import/", {"file": handle, "locale": "it-CH", "dry_run": "on"}
        ).content.decode()
    assert "Dry run: nothing was written" in page and "Apply this import" in page
    token = re.search(r'name="apply" value="([^"]+)"', page).group(1)
    assert not Template.objects.filter(locale="it-CH").exists()

    for forged in ("not-the-token", "é", str(uuid.uuid4())):
        page = admin_client.post("/admin/emails/template/import/", {"apply": forged}).content
        assert "no longer waiting" in page.decode()
    other = staff(*(name.split(".")[1] for name in IMPORT_PERMISSIONS))
    assert (
        "no longer waiting"
        in other.post("/admin/emails/template/import/", {"apply": token}).content.decode()
    )  # only the uploader applies their dry run
    applied = admin_client.post("/admin/emails/template/import/", {"apply": token}).content
    assert "Imported" in applied.decode() and "Apply this import" not in applied.decode()
    assert Template.objects.filter(locale="it-CH").count() == 5
    again = admin_client.post("/admin/emails/template/import/", {"apply": token}).content
    assert "no longer waiting" in again.decode()  # applied once: the session forgot it


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


# --- Hardening: crafted files, caps, paths ---------------------------------------------------

IMPORT_URL = "/admin/emails/template/import/"
SIGN_IN_HTML = "<p>Your code: {{ code }}</p>"


def _zip(files: dict, compression=zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def _export(*, templates=None, layouts=None, files=None, compression=zipfile.ZIP_DEFLATED):
    """A zipped Mailroom export; by default one valid SignIn · nl template."""
    if templates is None:
        templates = [
            {
                "usage_type": "SignIn",
                "locale": "nl",
                "layout": None,
                "subject": "Code {{ code }}",
                "html": "t.html",
                "text": None,
            }
        ]
    meta = {"mailroom_export": 1, "layouts": layouts or [], "templates": templates}
    files = {"t.html": SIGN_IN_HTML, **(files or {}), "mailroom.json": json.dumps(meta)}
    return _zip({f"export/{name}": content for name, content in files.items()}, compression)


def _template(**changes):
    entry = {
        "usage_type": "SignIn",
        "locale": "nl",
        "layout": None,
        "subject": "Code {{ code }}",
        "html": "t.html",
        "text": None,
    }
    return {**entry, **changes}


def _patch_zip_headers(content: bytes, *, flags: int = 0, method: int | None = None) -> bytes:
    """Set general-purpose flag bits and/or the compression method in every local file header
    and every central directory record (the zipfile module offers neither)."""
    data = bytearray(content)
    for signature, flags_at, method_at in ((b"PK\x03\x04", 6, 8), (b"PK\x01\x02", 8, 10)):
        at = data.find(signature)
        while at != -1:
            old = int.from_bytes(data[at + flags_at : at + flags_at + 2], "little")
            data[at + flags_at : at + flags_at + 2] = (old | flags).to_bytes(2, "little")
            if method is not None:
                data[at + method_at : at + method_at + 2] = method.to_bytes(2, "little")
            at = data.find(signature, at + 4)
    return bytes(data)


def _logto(**details):
    return json.dumps(
        [
            {
                "languageTag": "nl",
                "templateType": "SignIn",
                "details": {"subject": "Code {{ code }}", "content": SIGN_IN_HTML, **details},
            }
        ]
    ).encode()


def _smtp(**entry):
    return json.dumps(
        {"templates": [{"usageType": "SignIn", "subject": "Code", "content": "x", **entry}]}
    ).encode()


STORED = _export(compression=zipfile.ZIP_STORED)
LONG_ADDRESS = "a" * 64 + "@" + ".".join(["b" * 63, "c" * 63, "d" * 63]) + ".com"  # 260 chars

# name -> (file content, message the page must show). Each one raised a 500 before.
CRAFTED = {
    "encrypted zip": (_patch_zip_headers(STORED, flags=0x1), "encrypted"),
    "unknown compression method": (
        _patch_zip_headers(STORED, method=77),
        "compression method 77",
    ),
    "stored bytes labelled deflated": (_patch_zip_headers(STORED, method=8), "the zip is broken"),
    "bad CRC": (STORED.replace(b"{{ code }}", b"{{ cxde }}"), "the zip is broken"),
    "bad central directory": (
        STORED.replace(b"PK\x01\x02", b"PK\x01\x09"),
        "the zip is broken",
    ),
    "JSON list of numbers": (b"[1, 2, 3]", "[0] must be an object, not a number"),
    "Logto details a list": (
        json.dumps([{"languageTag": "nl", "templateType": "SignIn", "details": ["x"]}]).encode(),
        "[0].details must be an object, not a list",
    ),
    "SMTP templates entry a string": (
        b'{"templates": ["SignIn"]}',
        "templates[0] must be an object, not a string",
    ),
    "SMTP content a number": (
        _smtp(contentType="text/plain", content=5),
        "templates[0].content must be a string, not a number",
    ),
    "Logto sendFrom a number": (_logto(sendFrom=5), "[0].details.sendFrom must be a string"),
    "Logto replyTo an object": (
        _logto(replyTo={"address": "help@example.com"}),
        "[0].details.replyTo must be a string",
    ),
    "JSON nested too deeply": (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    "subject of 10,000 characters": (
        _logto(subject="x" * 10_000),
        "subject is 10000 characters long; the limit is 500",
    ),
    "subject with a NUL": (_logto(subject="Code\u0000 {{ code }}"), "NUL"),
    "from of 400 characters": (
        _logto(sendFrom="A" * 400 + " <no-reply@example.com>"),
        "from_email is 423 characters long; the limit is 320",
    ),
    "reply-to of 260 characters": (
        _logto(replyTo=LONG_ADDRESS),
        "reply_to is 260 characters long; the limit is 254",
    ),
    "export: layout a list": (
        _export(templates=[_template(layout=["Default"])]),
        "templates[0].layout must be a string or null, not a list",
    ),
    "export: enabled a string": (
        _export(templates=[_template(enabled="yes")]),
        "templates[0].enabled must be true or false, not a string",
    ),
    "export: from_email a number": (
        _export(templates=[_template(from_email=5)]),
        "templates[0].from_email must be a string, not a number",
    ),
    "export: layout name an object": (
        _export(
            layouts=[{"name": {}, "html": "l.html", "text": "l.txt"}],
            files={"l.html": "<div>{{ content }}</div>", "l.txt": "{{ content }}"},
        ),
        "layouts[0].name must be a string, not an object",
    ),
    "export: layout name of 10,000 characters": (
        _export(
            templates=[],
            layouts=[{"name": "L" * 10_000, "html": "l.html", "text": "l.txt"}],
            files={"l.html": "<div>{{ content }}</div>", "l.txt": "{{ content }}"},
        ),
        "name is 10000 characters long; the limit is 100",
    ),
    "export: preheader of 301 characters": (
        _export(templates=[_template(preheader="p" * 301)]),
        "preheader is 301 characters long; the limit is 300",
    ),
}


def _post(client, content: bytes, *, name="upload", locale="nl", dry_run=False):
    upload = io.BytesIO(content)
    upload.name = name
    data = {"file": upload, "locale": locale}
    if dry_run:
        data["dry_run"] = "on"
    return client.post(IMPORT_URL, data)


@pytest.mark.parametrize("crafted", list(CRAFTED), ids=list(CRAFTED))
def test_admin_import_answers_a_crafted_file_with_a_clear_error(admin_client, crafted):
    content, message = CRAFTED[crafted]
    before = _snapshot()
    response = _post(admin_client, content)
    assert response.status_code == 200
    page = response.content.decode()
    assert escape(message) in page, page[-3000:]
    assert _snapshot() == before


@pytest.mark.parametrize(
    "content, message",
    [
        (b"not json", "not JSON"),
        (b"42", "not a Logto SMTP connector config"),
        (b'{"templates": "SignIn"}', "not a Logto SMTP connector config"),
        (_export(templates="abc"), "templates must be a list, not a string"),
        (_export(templates={"a": 1}), "templates must be a list, not an object"),
        (_zip({"export/mailroom.json": "[1]"}), "mailroom.json must be an object, not a list"),
        (_zip({"export/mailroom.json": b"\xff"}), "not UTF-8"),
        (_zip({"a.txt": "x"}), "no mailroom.json"),
        (_export(templates=[_template(html="../t.html")]), "'../t.html'"),
        (_export(templates=[_template(html="/etc/passwd")]), "'/etc/passwd'"),
        (_export(templates=[_template(html="missing.html")]), "no export/missing.html"),
        (
            _zip({"../evil.html": "x", "export/mailroom.json": "{}"}),
            "'../evil.html', which is not a relative path",
        ),
        (
            json.dumps({"mailroom_export": 1, "layouts": [], "templates": []}).encode(),
            "upload the whole export as a zip",
        ),
        (json.dumps([{}] * 2001).encode(), "2001 templates; the limit is 2000"),
    ],
)
def test_admin_import_refuses_other_broken_files(admin_client, content, message):
    response = _post(admin_client, content)
    assert response.status_code == 200
    assert escape(message) in response.content.decode()


def test_a_locale_that_is_no_language_tag_is_a_form_error(admin_client):
    response = _post(admin_client, _smtp(), locale="x" * 10_000)
    assert response.status_code == 200
    assert "is not a language tag" in response.content.decode()


def test_a_crafted_export_item_is_invalid_in_a_dry_run_too(admin_client):
    response = _post(admin_client, _logto(subject="x" * 10_000), dry_run=True)
    page = response.content.decode()
    assert "1 invalid" in page and "the limit is 500" in page


def test_an_upload_over_the_size_cap_is_refused(admin_client):
    response = _post(admin_client, b" " * (MAX_IMPORT_FILE_BYTES + 1) + b"[]")
    assert response.status_code == 200
    assert "the limit is 5 MB" in response.content.decode()


@pytest.mark.parametrize(
    "files, message",
    [
        # 20 members of 1 MB each: about 20 KB zipped, 20 MB unzipped.
        (
            {f"export/m{number}.html": "A" * (1 << 20) for number in range(20)},
            "the zip expands to 20 MB; the limit is 5 MB",
        ),
        ({"export/big.html": "A" * (3 << 20)}, "expands to 3 MB; the limit per file is 1 MB"),
        ({f"export/{number}": "" for number in range(2000)}, "2001 files; the limit is 2000"),
    ],
    ids=["total", "member", "count"],
)
def test_a_zip_bomb_is_refused_before_it_is_unpacked(admin_client, files, message):
    content = _zip({**files, "export/mailroom.json": "{}"})
    assert len(content) < 200_000
    response = _post(admin_client, content)
    assert response.status_code == 200
    assert escape(message) in response.content.decode()


def test_reading_an_export_stops_at_the_cap_whatever_the_zip_declares(admin_client):
    # Each member is under the caps, and so is their sum, but mailroom.json names the same
    # 1 MB file for six templates: reading counts every file read.
    big = "<p>{{ code }}</p>" + " " * ((1 << 20) - 20)
    templates = [
        _template(usage_type=usage_type, html="big.html")
        for usage_type in ("SignIn", "Register", "ForgotPassword", "Generic", "BindMfa", "Generic")
    ]
    response = _post(admin_client, _export(templates=templates, files={"big.html": big}))
    assert response.status_code == 200
    assert "add up to more than 5 MB" in response.content.decode()


def _directory_export(root: Path, entry: dict) -> Path:
    folder = root / "export"
    (folder / "templates").mkdir(parents=True)
    (folder / "templates" / "t.html").write_text(SIGN_IN_HTML)
    meta = {
        "mailroom_export": 1,
        "layouts": [],
        "templates": [{**_template(html="templates/t.html"), **entry}],
    }
    (folder / "mailroom.json").write_text(json.dumps(meta))
    return folder


SECRET = "<p>TOP SECRET {{ code }}</p>"


@pytest.mark.parametrize("how", ["dot-dot", "absolute", "symlink", "layout"])
def test_the_cli_never_reads_outside_the_export_folder(tmp_path, how):
    secret = tmp_path / "secret.html"
    secret.write_text(SECRET)
    if how == "dot-dot":
        folder = _directory_export(tmp_path, {"html": "../secret.html"})
    elif how == "absolute":
        folder = _directory_export(tmp_path, {"html": str(secret)})
    elif how == "symlink":
        folder = _directory_export(tmp_path, {"html": "templates/link.html"})
        (folder / "templates" / "link.html").symlink_to(secret)
    else:
        folder = _directory_export(tmp_path, {})
        meta = json.loads((folder / "mailroom.json").read_text())
        meta["layouts"] = [{"name": "Evil", "html": "templates/t.html", "text": "../secret.html"}]
        (folder / "mailroom.json").write_text(json.dumps(meta))
    for path in (folder, folder / "mailroom.json"):
        with pytest.raises(CommandError, match="outside the export folder"):
            run(str(path))
    assert not Template.objects.filter(html_body__contains="TOP SECRET").exists()
    assert not Layout.objects.filter(text__contains="TOP SECRET").exists()
    assert not Template.objects.filter(locale="nl").exists()


def test_the_cli_imports_a_clean_export_folder(tmp_path):
    folder = _directory_export(tmp_path, {"html": "templates/t.html"})
    assert "1 create" in run(str(folder))
    assert Template.objects.get(usage_type="SignIn", locale="nl").html_body == SIGN_IN_HTML


@pytest.mark.parametrize(
    "fmt, data, message",
    [
        ("logto", {"templates": []}, "must be a list, not an object"),
        ("smtp", [1], "must be an object, not a list"),
        ("logto", 5, "must be a list, not a number"),
    ],
)
def test_the_cli_refuses_a_forced_format_that_does_not_fit(tmp_path, fmt, data, message):
    path = tmp_path / "data.json"
    path.write_text(json.dumps(data))
    with pytest.raises(CommandError, match=re.escape(message)):
        run(str(path), "--format", fmt, "--locale", "en")


def test_reading_a_zip_raises_only_import_format_errors():
    """Random damage to a real export: every failure is an ImportFormatError."""
    content = _export(
        layouts=[{"name": "L", "html": "l.html", "text": "l.txt"}],
        files={"l.html": "<div>{{ content }}</div>", "l.txt": "{{ content }}"},
    )
    generator = random.Random(7)
    for _ in range(3000):
        data = bytearray(content)
        for _ in range(generator.randint(1, 4)):
            data[generator.randrange(len(data))] = generator.randrange(256)
        try:
            read_zip(bytes(data))
        except ImportFormatError:
            pass


_SHAPE_KEYS = (
    "templates", "usageType", "subject", "content", "contentType", "languageTag",
    "templateType", "details", "replyTo", "sendFrom", "layouts", "name", "html", "text",
    "usage_type", "locale", "layout", "enabled", "preheader", "from_email", "reply_to",
)  # fmt: skip
_SHAPES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.sampled_from(["SignIn", "nl", "text/plain", "t.html", SIGN_IN_HTML, "../t.html"]),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from(_SHAPE_KEYS) | st.text(max_size=5), children, max_size=6)
    ),
    max_leaves=25,
)


@hypothesis_settings(max_examples=150, deadline=None)
@given(data=_SHAPES, as_export=st.booleans())
def test_no_file_of_any_shape_escapes_as_another_error(data, as_export):
    """Any JSON, as an uploaded file or as the mailroom.json of a zip: an ImportFormatError
    or a report, nothing else."""
    content = json.dumps(data).encode()
    if as_export:
        content = _zip({"e/mailroom.json": content, "e/t.html": SIGN_IN_HTML})
    try:
        layouts, items = read_upload(content, locale="en")
    except ImportFormatError:
        return
    import_templates(layouts, items, dry_run=True)
