"""Import and export of templates and layouts.

Imports understand three shapes:
1. a Logto SMTP connector config (``{"templates": [{"usageType", "contentType", "subject",
   "content"}], ...}``), into one chosen locale;
2. Logto's email-templates management API (``[{"languageTag", "templateType", "details":
   {"subject", "content", "contentType", "replyTo", "sendFrom"}}]``);
3. Mailroom's own export: a directory (or a zip of it) with ``mailroom.json`` and one HTML and
   one text file per template and layout, laid out to read well in a git diff.

Only Mailroom's export carries scopes: a template's or layout's ``application_id`` and
``organization_id`` in mailroom.json (absent, null or "": any; an export from before scopes
has none). A scoped template is matched by its type, locale and scope, and its files go in a
folder of its scope (``templates/SignIn/org-<id>/en.html``); the unscoped ones keep their
paths. Logto's own formats have no scope: they import into the unscoped templates.

Every imported template passes the same validation as the admin; a dry run reports what would
be created, changed or left alone without writing.

An import file is untrusted input. Whatever is wrong with it ends as an ImportFormatError that
says what and where (or as an "invalid" item, for a value the database could not store), never
as another exception: shapes are checked before use, a zip's members (count, declared sizes,
names, encryption, compression) before anything is unpacked, and every file is read to at most
its cap + 1 byte (the MAX_IMPORT_* caps below). Paths named in mailroom.json must be relative,
without ``..``, and, for a folder, resolve inside it (a symlink out is refused too).
"""

from __future__ import annotations

import io
import json
import re
import zipfile
import zlib
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path, PureWindowsPath

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone
from django.utils.html import escape

from emails.content.drafts import draft_save, draft_values, with_draft
from emails.content.scopes import layout_rescope_problem, layout_scope_problem
from emails.content.validation import Problem, validate_layout, validate_template
from emails.locales import normalize_locale
from emails.logto import UsageType, is_logto_id
from emails.models import (
    LOGTO_ID,
    Layout,
    Template,
    scope_label,
    validate_from_domain,
    validate_sender,
)

EXPORT_VERSION = 1
EXPORT_META = "mailroom.json"

# Caps on what one import may make the server read and hold (an import is validated, and so
# compiled, in full before anything is written).
MAX_IMPORT_FILE_BYTES = 5 << 20  # an uploaded file, or the file the command is given
MAX_IMPORT_BYTES = 5 << 20  # all files of an export together, unpacked
MAX_IMPORT_MEMBER_BYTES = 1 << 20  # one file of an export, unpacked
MAX_IMPORT_MEMBERS = 2000  # files (and folders) in a zip
MAX_IMPORT_ITEMS = 2000  # templates, or layouts, in one import
TEMPLATE_FIELDS = (
    "subject",
    "preheader",
    "html_body",
    "text_body",
    "enabled",
    "from_email",
    "reply_to",
)
_TEMPLATE_TAG = re.compile(r"(\{\{.*?\}\}|\{%.*?%\})", re.S)


class ImportFormatError(Exception):
    """The file is none of the known shapes, or is broken."""


@dataclass
class Item:
    usage_type: str
    locale: str
    values: dict  # TEMPLATE_FIELDS (any subset) + "layout" (a layout name or None)
    # A Mailroom export's draft of the template (the same keys), and whether its content was
    # ever published (False: it is imported unpublished, as it was).
    draft: dict | None = None
    published: bool = True
    # Its scope (blank: any): only a Mailroom export names one.
    application_id: str = ""
    organization_id: str = ""


@dataclass
class Outcome:
    kind: str  # "template" or "layout"
    key: str
    action: str  # create, change, unchanged, invalid, skipped
    detail: str = ""


@dataclass
class ImportReport:
    outcomes: list[Outcome] = field(default_factory=list)
    dry_run: bool = False

    def count(self, action: str) -> int:
        return sum(1 for outcome in self.outcomes if outcome.action == action)

    def summary(self) -> str:
        counts = ", ".join(
            f"{self.count(action)} {action}"
            for action in ("create", "change", "unchanged", "invalid", "skipped")
        )
        return counts + (" (dry run: nothing written)" if self.dry_run else "")


def text_to_html(source: str) -> str:
    """Plain-text template -> HTML paragraphs, escaping text but never template tags."""
    paragraphs = re.split(r"\n\s*\n", source.strip())

    def html(paragraph: str) -> str:
        parts = _TEMPLATE_TAG.split(paragraph)
        escaped = "".join(part if index % 2 else escape(part) for index, part in enumerate(parts))
        return "<p>" + escaped.replace("\n", "<br>\n") + "</p>"

    return "\n".join(html(paragraph) for paragraph in paragraphs if paragraph.strip())


# --- Reading ----------------------------------------------------------------------------------


def read_source(path: Path, *, fmt: str = "auto", locale: str | None = None):
    """(layouts, items) from a file, a zip or an export directory."""
    if path.is_dir():
        files = _FolderFiles(path)
        return _read_export(_load_json(files.read(EXPORT_META), EXPORT_META), files)
    try:
        with path.open("rb") as handle:
            content = handle.read(MAX_IMPORT_FILE_BYTES + 1)
    except OSError as exc:
        raise ImportFormatError(f"cannot read {path}: {exc.strerror or exc}") from None
    _check_file_size(len(content), path.name)
    if zipfile.is_zipfile(io.BytesIO(content)):
        return read_zip(content)
    data = _load_json(content, path.name)
    if fmt in ("auto", "mailroom") and isinstance(data, dict) and "mailroom_export" in data:
        files = _FolderFiles(path.parent)
        files.budget.charge(len(content), path.name)
        return _read_export(data, files)
    return [], parse_json(data, fmt=fmt, locale=locale)


def read_upload(content: bytes, *, locale: str | None = None):
    """(layouts, items) from an uploaded file: a zipped export or a Logto JSON file."""
    _check_file_size(len(content), "the file")
    if zipfile.is_zipfile(io.BytesIO(content)):
        return read_zip(content)
    data = _load_json(content, "the file")
    if isinstance(data, dict) and "mailroom_export" in data:
        raise ImportFormatError(
            "this is a Mailroom export's mailroom.json, which names the export's other files: "
            "upload the whole export as a zip"
        )
    return [], parse_json(data, locale=locale)


def read_zip(content: bytes):
    """(layouts, items) from a zipped Mailroom export, within the caps above."""
    _check_file_size(len(content), "the zip")
    try:
        archive = zipfile.ZipFile(io.BytesIO(content))
    except (zipfile.BadZipFile, NotImplementedError, ValueError) as exc:
        # ValueError: undecodable member names (UnicodeDecodeError); NotImplementedError: a
        # zip version this module does not read.
        raise ImportFormatError(f"the zip is broken: {_short(str(exc), 200)}") from None
    with archive:
        files = _ZipFiles(archive, len(content))
        return _read_export(_load_json(files.read(EXPORT_META), EXPORT_META), files)


def format_size(size: int) -> str:
    if size >= 1 << 20:
        return f"{size / (1 << 20):.1f}".removesuffix(".0") + " MB"
    return f"{size / (1 << 10):.1f}".removesuffix(".0") + " KB"


def _check_file_size(size: int, name: str) -> None:
    if size > MAX_IMPORT_FILE_BYTES:
        raise ImportFormatError(
            f"{name} is larger than {format_size(MAX_IMPORT_FILE_BYTES)}, the limit"
        )


def _load_json(source: bytes | str, name: str):
    try:
        return json.loads(source)
    except RecursionError:
        raise ImportFormatError(f"{name} is nested too deeply to be read") from None
    except ValueError as exc:  # UnicodeDecodeError included
        raise ImportFormatError(f"{name} is not JSON: {_short(str(exc), 200)}") from None


# Shapes: every value is checked before it is used, so a wrong shape is an ImportFormatError
# that says where, never a TypeError or AttributeError on the way.


def _kind(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _object(value, where: str) -> dict:
    if not isinstance(value, dict):
        raise ImportFormatError(f"{where} must be an object, not {_kind(value)}")
    return value


def _entries(value, where: str, noun: str) -> list:
    if not isinstance(value, list):
        raise ImportFormatError(f"{where} must be a list, not {_kind(value)}")
    if len(value) > MAX_IMPORT_ITEMS:
        raise ImportFormatError(
            f"{where} holds {len(value)} {noun}; the limit is {MAX_IMPORT_ITEMS}"
        )
    return value


def _string(entry: dict, key: str, where: str, *, required=False, null_is_absent=False) -> str:
    """entry[key], a string; "" when absent (an error when required)."""
    value = entry.get(key)
    if key not in entry or (value is None and null_is_absent):
        if required:
            raise ImportFormatError(f"{where}.{key} is missing")
        return ""
    if not isinstance(value, str):
        raise ImportFormatError(f"{where}.{key} must be a string, not {_kind(value)}")
    return value


def _string_or_null(entry: dict, key: str, where: str) -> str | None:
    value = entry.get(key)
    if value is not None and not isinstance(value, str):
        raise ImportFormatError(f"{where}.{key} must be a string or null, not {_kind(value)}")
    return value


def _with_context(context: str, parse, *args, **kwargs):
    try:
        return parse(*args, **kwargs)
    except ImportFormatError as exc:
        raise ImportFormatError(f"{context}: {exc}") from None


def parse_json(data, *, fmt: str = "auto", locale: str | None = None) -> list[Item]:
    if fmt == "auto":
        if isinstance(data, dict) and isinstance(data.get("templates"), list):
            fmt = "smtp"
        elif isinstance(data, list):
            fmt = "logto"
        else:
            raise ImportFormatError(
                "not a Logto SMTP connector config, a Logto email-templates list or a "
                "Mailroom export"
            )
    if fmt == "smtp":
        config = _object(data, "a Logto SMTP config")
        entries = _entries(config.get("templates"), "a Logto SMTP config's templates", "templates")
        if not locale:
            raise ImportFormatError("a Logto SMTP config has no language: choose a locale")
        try:
            locale = normalize_locale(locale)
        except ValueError as exc:
            raise ImportFormatError(f"locale: {exc}") from None
        return _with_context("Logto SMTP config", _smtp_items, entries, locale)
    if fmt == "logto":
        entries = _entries(data, "a Logto email-templates list", "templates")
        return _with_context("Logto email-templates list", _logto_items, entries)
    if fmt == "mailroom":
        raise ImportFormatError("not a Mailroom export: it has no mailroom_export key")
    raise ImportFormatError(f"unknown format {fmt!r}")


def _content(content: str, content_type: str) -> dict:
    if content_type == "text/plain":
        return {"html_body": text_to_html(content), "text_body": content}
    return {"html_body": content, "text_body": ""}


def _smtp_items(entries: list, locale: str) -> list[Item]:
    items = []
    for index, entry in enumerate(entries):
        where = f"templates[{index}]"
        entry = _object(entry, where)
        text = partial(_string, entry, where=where, null_is_absent=True)
        values = {
            "subject": text("subject"),
            "layout": None,
            **_content(text("content"), text("contentType") or "text/html"),
        }
        items.append(Item(text("usageType"), locale, values))
    return items


def _logto_items(entries: list) -> list[Item]:
    items = []
    for index, entry in enumerate(entries):
        where = f"[{index}]"
        entry = _object(entry, where)
        details = entry.get("details")
        details = {} if details is None else _object(details, f"{where}.details")
        text = partial(_string, details, where=f"{where}.details", null_is_absent=True)
        values = {
            "subject": text("subject"),
            "layout": None,
            **_content(text("content"), text("contentType") or "text/html"),
        }
        if reply_to := text("replyTo"):
            values["reply_to"] = reply_to
        if send_from := text("sendFrom"):
            values["from_email"] = send_from
        usage_type = _string(entry, "templateType", where, null_is_absent=True)
        items.append(Item(usage_type, _string(entry, "languageTag", where), values))
    return items


# Mailroom's export: mailroom.json names the other files by relative path.


@dataclass
class _LayoutEntry:
    name: str
    html: str  # paths inside the export
    text: str
    draft: tuple[str, str] | None = None  # its draft's html and text paths
    application_id: str = ""
    organization_id: str = ""


@dataclass
class _TemplateEntry:
    usage_type: str
    locale: str
    values: dict  # TEMPLATE_FIELDS but the bodies, + "layout"
    html: str
    text: str | None
    draft: _TemplateEntry | None = None
    published: bool = True
    application_id: str = ""
    organization_id: str = ""


def _read_export(meta, files) -> tuple[list[dict], list[Item]]:
    """Check all of mailroom.json and every path it names, then read the files."""
    if not isinstance(meta, dict):
        raise ImportFormatError(f"{EXPORT_META} must be an object, not {_kind(meta)}")
    layout_entries, template_entries = _with_context(EXPORT_META, _export_entries, meta)
    drafts = [entry.draft for entry in template_entries if entry.draft is not None]
    for path in [
        *(path for entry in layout_entries for path in (entry.html, entry.text)),
        *(path for entry in layout_entries if entry.draft for path in entry.draft),
        *(
            path
            for entry in [*template_entries, *drafts]
            for path in (entry.html, entry.text)
            if path
        ),
    ]:
        if not _is_safe_relative_path(path):
            raise ImportFormatError(
                f"{EXPORT_META} names {_short(path, 100)!r}, outside the export folder: paths in "
                "an export must be relative, without '..'"
            )
    layouts = [
        {
            "name": entry.name,
            "application_id": entry.application_id,
            "organization_id": entry.organization_id,
            "html": files.read(entry.html),
            "text": files.read(entry.text),
            "draft": {"html": files.read(entry.draft[0]), "text": files.read(entry.draft[1])}
            if entry.draft
            else None,
        }
        for entry in layout_entries
    ]

    def read(entry: _TemplateEntry) -> dict:
        return {
            **entry.values,
            "html_body": files.read(entry.html),
            "text_body": files.read(entry.text) if entry.text else "",
        }

    items = [
        Item(
            entry.usage_type,
            entry.locale,
            read(entry),
            draft=read(entry.draft) if entry.draft is not None else None,
            published=entry.published,
            application_id=entry.application_id,
            organization_id=entry.organization_id,
        )
        for entry in template_entries
    ]
    return layouts, items


def _template_entry(entry: dict, where: str) -> _TemplateEntry:
    values: dict[str, str | bool | None] = {
        name: _string(entry, name, where)
        for name in ("subject", "preheader", "from_email", "reply_to")
        if name in entry
    }
    if "enabled" in entry:
        if not isinstance(entry["enabled"], bool):
            raise ImportFormatError(
                f"{where}.enabled must be true or false, not {_kind(entry['enabled'])}"
            )
        values["enabled"] = entry["enabled"]
    values["layout"] = _string_or_null(entry, "layout", where)
    required = partial(_string, entry, where=where, required=True)
    return _TemplateEntry(
        usage_type=required("usage_type"),
        locale=required("locale"),
        values=values,
        html=required("html"),
        text=_string_or_null(entry, "text", where),
    )


SCOPE_FIELDS = ("application_id", "organization_id")


def _scope(entry: dict, where: str) -> dict[str, str]:
    """An entry's application_id and organization_id: "" when absent or null (any). Whether
    they are Logto ids is checked per entry on import, like its other values."""
    return {name: _string(entry, name, where, null_is_absent=True) for name in SCOPE_FIELDS}


def _export_entries(meta: dict) -> tuple[list[_LayoutEntry], list[_TemplateEntry]]:
    version = meta.get("mailroom_export", EXPORT_VERSION)
    if type(version) is not int or version != EXPORT_VERSION:
        raise ImportFormatError(
            f"export version {_short(repr(version), 40)}; this Mailroom reads version "
            f"{EXPORT_VERSION}"
        )
    for key in ("layouts", "templates"):
        if key not in meta:
            raise ImportFormatError(f"{key} is missing")
    layouts = []
    for index, entry in enumerate(_entries(meta["layouts"], "layouts", "layouts")):
        where = f"layouts[{index}]"
        entry = _object(entry, where)
        required = partial(_string, entry, where=where, required=True)
        scope = _scope(entry, where)
        layout = _LayoutEntry(
            required("name"),
            required("html"),
            required("text"),
            application_id=scope["application_id"],
            organization_id=scope["organization_id"],
        )
        if entry.get("draft") is not None:
            draft_where = f"{where}.draft"
            draft = _object(entry["draft"], draft_where)
            in_draft = partial(_string, draft, where=draft_where, required=True)
            layout.draft = (in_draft("html"), in_draft("text"))
        layouts.append(layout)
    templates = []
    for index, entry in enumerate(_entries(meta["templates"], "templates", "templates")):
        where = f"templates[{index}]"
        entry = _object(entry, where)
        template = _template_entry(entry, where)
        # A draft is of its template's scope: only the template's entry names one.
        scope = _scope(entry, where)
        template.application_id = scope["application_id"]
        template.organization_id = scope["organization_id"]
        if "published" in entry:
            if not isinstance(entry["published"], bool):
                raise ImportFormatError(
                    f"{where}.published must be true or false, not {_kind(entry['published'])}"
                )
            template.published = entry["published"]
        if entry.get("draft") is not None:
            draft_where = f"{where}.draft"
            draft = _object(entry["draft"], draft_where)
            draft.update(usage_type=template.usage_type, locale=template.locale)
            template.draft = _template_entry(draft, draft_where)
            template.draft.values.pop("enabled", None)  # the template's own, not the draft's
        templates.append(template)
    return layouts, templates


def _is_safe_relative_path(path: str) -> bool:
    """Relative, without '..', without a drive or NUL: it cannot name anything outside."""
    if not path or "\x00" in path:
        return False
    unified = path.replace("\\", "/")
    if unified.startswith("/") or PureWindowsPath(path).drive:
        return False
    return ".." not in unified.split("/")


class _Budget:
    """What the files of one export may add up to, counted as they are read (a file named
    twice counts twice): what a zip declares is checked first, but never trusted."""

    def __init__(self):
        self.used = 0

    def charge(self, size: int, name: str) -> None:
        if size > MAX_IMPORT_MEMBER_BYTES:
            raise ImportFormatError(
                f"{_short(name, 100)} is larger than {format_size(MAX_IMPORT_MEMBER_BYTES)}, "
                "the limit per file"
            )
        self.used += size
        if self.used > MAX_IMPORT_BYTES:
            raise ImportFormatError(
                f"the export's files add up to more than {format_size(MAX_IMPORT_BYTES)}, the limit"
            )

    def text(self, data: bytes, name: str) -> str:
        self.charge(len(data), name)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise ImportFormatError(f"{_short(name, 100)} is not UTF-8 text") from None


class _FolderFiles:
    """The files of an export folder; a path that leads outside it (``..``, an absolute path,
    a symlink) is refused."""

    def __init__(self, folder: Path):
        try:
            self.root = folder.resolve(strict=True)
        except (OSError, RuntimeError) as exc:
            raise ImportFormatError(f"cannot read {folder}: {exc}") from None
        self.budget = _Budget()

    def read(self, name: str) -> str:
        shown = _short(name, 100)
        try:
            target = (self.root / name).resolve()
        except (OSError, RuntimeError):  # RuntimeError: a symlink loop
            raise ImportFormatError(f"{shown!r} cannot be resolved in the export folder") from None
        if not target.is_relative_to(self.root):
            raise ImportFormatError(f"{shown!r} leads outside the export folder")
        if not target.is_file():
            raise ImportFormatError(f"the export folder has no file {shown!r}")
        try:
            with target.open("rb") as handle:
                data = handle.read(MAX_IMPORT_MEMBER_BYTES + 1)
        except OSError as exc:
            raise ImportFormatError(f"cannot read {shown!r}: {exc.strerror or exc}") from None
        return self.budget.text(data, name)


# General-purpose flag bits the zip module cannot read: 0 encrypted, 5 compressed patched
# data, 6 strong encryption.
_ZIP_ENCRYPTED, _ZIP_UNSUPPORTED_FLAGS = 0x41, 0x20
_ZIP_COMPRESSIONS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)


class _ZipFiles:
    """The files of a zipped export, under the folder that holds mailroom.json. The whole
    zip is checked before anything is unpacked: member count, declared sizes, names,
    encryption and compression; then each member is read to at most its cap + 1 byte."""

    def __init__(self, archive: zipfile.ZipFile, size: int):
        self.archive, self.budget = archive, _Budget()
        members = archive.infolist()
        if len(members) > MAX_IMPORT_MEMBERS:
            raise ImportFormatError(
                f"the zip holds {len(members)} files; the limit is {MAX_IMPORT_MEMBERS}"
            )
        declared = sum(member.file_size for member in members)
        if declared > MAX_IMPORT_BYTES:
            raise ImportFormatError(
                f"the zip expands to {format_size(declared)}; the limit is "
                f"{format_size(MAX_IMPORT_BYTES)}"
            )
        for member in members:
            self._check(member, size)
        roots = sorted(
            (member.filename.count("/"), member.filename[: -len(EXPORT_META)])
            for member in members
            if member.filename == EXPORT_META or member.filename.endswith("/" + EXPORT_META)
        )
        if not roots:
            raise ImportFormatError(f"the zip holds no {EXPORT_META}")
        if len(roots) > 1 and roots[0][0] == roots[1][0]:
            raise ImportFormatError(
                f"the zip holds more than one export: {roots[0][1]!r} and {roots[1][1]!r}"
            )
        self.root = roots[0][1]

    def _check(self, member: zipfile.ZipInfo, size: int) -> None:
        name = _short(member.filename, 100)
        if not _is_safe_relative_path(member.filename):
            raise ImportFormatError(
                f"the zip holds {name!r}, which is not a relative path inside the export"
            )
        if member.file_size > MAX_IMPORT_MEMBER_BYTES:
            raise ImportFormatError(
                f"{name} expands to {format_size(member.file_size)}; the limit per file is "
                f"{format_size(MAX_IMPORT_MEMBER_BYTES)}"
            )
        if member.flag_bits & _ZIP_ENCRYPTED:
            raise ImportFormatError(
                f"the zip is encrypted ({name}): export it again without a password"
            )
        if member.flag_bits & _ZIP_UNSUPPORTED_FLAGS:
            raise ImportFormatError(f"{name} is stored as compressed patched data: unsupported")
        if member.compress_type not in _ZIP_COMPRESSIONS:
            raise ImportFormatError(
                f"{name} uses compression method {member.compress_type}; only stored and "
                "deflated (what zip tools write by default) are supported"
            )
        if not 0 <= member.header_offset < size:
            raise ImportFormatError(f"the zip is broken: {name} starts outside the file")

    def read(self, name: str) -> str:
        path = self.root + name
        try:
            member = self.archive.getinfo(path)
        except KeyError:
            raise ImportFormatError(f"the zip has no {_short(path, 100)}") from None
        if member.is_dir():
            raise ImportFormatError(f"{_short(path, 100)} is a folder, not a file")
        try:
            with self.archive.open(member) as handle:
                data = handle.read(MAX_IMPORT_MEMBER_BYTES + 1)
        except (zipfile.BadZipFile, zlib.error, EOFError, UnicodeDecodeError) as exc:
            # Damage only reading shows: a bad CRC or header, a broken deflate stream, data
            # cut short, an undecodable name in the local header.
            raise ImportFormatError(
                f"the zip is broken: {_short(path, 100)}: {_short(str(exc), 200)}"
            ) from None
        return self.budget.text(data, path)


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- Applying ---------------------------------------------------------------------------------


def import_templates(
    layouts: list[dict], items: list[Item], *, dry_run: bool, as_draft: bool = False
) -> ImportReport:
    """Create or update layouts, then templates; invalid ones are reported, not written.
    ``as_draft``: each template's content becomes its draft (a new template is created
    unpublished), for review before it goes live; so does a changed layout's (a new layout is
    created as it is: no template uses it yet)."""
    report = ImportReport(dry_run=dry_run)
    with transaction.atomic():
        known_layouts = {layout.name: layout for layout in Layout.objects.all()}
        for fields in layouts:
            _import_layout(fields, known_layouts, report, dry_run, as_draft)
        for item in items:
            _import_template(item, known_layouts, report, dry_run, as_draft)
    return report


def _import_layout(
    fields: dict, known: dict, report: ImportReport, dry_run: bool, as_draft: bool = False
) -> None:
    key = _short(fields["name"], 80)
    draft = fields.get("draft")  # a Mailroom export's draft of the layout: {html, text}
    if as_draft and draft is not None:
        # Landing as a draft: the export's draft, where it has one, is what is under review.
        fields, draft = {**fields, **draft}, None
    fields = {name: value for name, value in fields.items() if name != "draft"}
    scope = {name: fields.pop(name, "") or "" for name in SCOPE_FIELDS}
    problems = _scope_problems(scope) + _storage_problems(Layout, fields)
    if not fields["name"].strip():
        problems.append("a layout needs a name")
    if not problems:
        problems = list(map(str, validate_layout(html=fields["html"], text=fields["text"])))
    if not problems and draft is not None:
        problems = [
            f"its draft: {problem}"
            for problem in [
                *_storage_problems(Layout, draft),
                *map(str, validate_layout(html=draft["html"], text=draft["text"])),
            ]
        ]
    if problems:
        report.outcomes.append(Outcome("layout", key, "invalid", "; ".join(problems)))
        return
    layout = known.get(fields["name"])
    # A layout's name is unique whatever its scope: its scope is carried, like its content.
    rescoped = layout is not None and scope != {name: getattr(layout, name) for name in scope}
    content = (fields["html"], fields["text"])
    if layout is None:
        action, layout, new_content = "create", Layout(name=fields["name"], **scope), True
    else:
        new_content = _layout_content(layout, as_draft) != content
        action = "change" if new_content or rescoped else "unchanged"
    if rescoped and (refused := layout_rescope_problem(layout, **scope)):
        report.outcomes.append(Outcome("layout", key, "invalid", refused))
        return
    for name, value in scope.items():
        setattr(layout, name, value)
    scope_detail = f"scope: {layout.scope_label}" if rescoped else ""
    if as_draft and action == "change":
        # The content becomes its draft; a scope is no content, and applies at once.
        if not dry_run and rescoped:
            layout.save()
        if not dry_run and new_content:
            draft_save(layout, {"html": fields["html"], "text": fields["text"]})
        detail = "; ".join(filter(None, ["as a draft" if new_content else "", scope_detail]))
        report.outcomes.append(Outcome("layout", key, action, detail))
        return
    if action != "unchanged":
        layout.html, layout.text = content
        if not dry_run:
            layout.save()
    if draft is not None and not dry_run:
        draft_save(layout, {"html": draft["html"], "text": draft["text"]})
    known[fields["name"]] = layout
    detail = "; ".join(filter(None, [scope_detail, "with its draft" if draft else ""]))
    report.outcomes.append(Outcome("layout", key, action, detail))


def _layout_content(layout: Layout, as_draft: bool) -> tuple[str, str]:
    """What an import compares with: the draft's content when it lands as a draft."""
    shown = with_draft(Layout.objects.get(pk=layout.pk)) if as_draft else layout
    return shown.html, shown.text


def _import_template(
    item: Item, layouts: dict, report: ImportReport, dry_run: bool, as_draft: bool = False
) -> None:
    scope = {"application_id": item.application_id, "organization_id": item.organization_id}
    key = f"{_short(item.usage_type, 40)} · {_short(item.locale, 40)}"
    if any(scope.values()):
        key += " · " + scope_label(*(_short(value, 40) for value in scope.values()))
    if item.usage_type not in UsageType.values:
        report.outcomes.append(Outcome("template", key, "skipped", "unknown usage type"))
        return
    try:
        locale = normalize_locale(item.locale)
    except ValueError as exc:
        report.outcomes.append(Outcome("template", key, "invalid", str(exc)))
        return
    if refused := _scope_problems(scope):
        report.outcomes.append(Outcome("template", key, "invalid", "; ".join(refused)))
        return
    if as_draft and item.draft is not None:
        # Landing as a draft: the export's draft, where it has one, is what is under review.
        enabled = {"enabled": item.values["enabled"]} if "enabled" in item.values else {}
        item = replace(item, values={**item.draft, **enabled}, draft=None, published=True)
    values = dict(item.values)
    layout_name = values.pop("layout", None)
    refused = _storage_problems(Template, values)
    if refused:
        report.outcomes.append(Outcome("template", key, "invalid", "; ".join(refused)))
        return
    if layout_name and layout_name not in layouts:
        report.outcomes.append(
            Outcome("template", key, "invalid", f"no layout {_short(layout_name, 80)!r}")
        )
        return
    # Its type, locale and scope are which template it is: a scoped template never changes the
    # unscoped one (or another scope's), and Logto's formats (no scope) only the unscoped.
    template = Template.objects.filter(usage_type=item.usage_type, locale=locale, **scope).first()
    action = "create" if template is None else "change"
    template = template or Template(usage_type=item.usage_type, locale=locale, **scope)
    if as_draft and template.pk is not None:
        template = with_draft(template)  # compared with, and changing, its draft
    before = {name: getattr(template, name) for name in TEMPLATE_FIELDS}
    before_layout = template.layout.name if template.layout is not None else None
    for name, value in values.items():
        setattr(template, name, value)
    template.layout = layouts.get(layout_name) if layout_name else None
    scope_of = {
        "application_id": template.application_id,
        "organization_id": template.organization_id,
    }
    if template.layout and (problem := layout_scope_problem(template.layout, **scope_of)):
        report.outcomes.append(Outcome("template", key, "invalid", problem))
        return
    problems: list[Problem | str] = validate_template(
        usage_type=template.usage_type,
        subject=template.subject,
        preheader=template.preheader,
        html_body=template.html_body,
        text_body=template.text_body,
    ) + _sender_problems(template)
    if problems:
        report.outcomes.append(Outcome("template", key, "invalid", "; ".join(map(str, problems))))
        return
    draft = None if as_draft or item.draft is None else _draft_from(item.draft, layouts)
    if isinstance(draft, dict) and draft["layout"]:
        draft = layout_scope_problem(draft["layout"], **scope_of) or draft
    if isinstance(draft, str):
        report.outcomes.append(Outcome("template", key, "invalid", f"its draft: {draft}"))
        return
    if draft is not None:
        draft_problems = validate_template(
            usage_type=template.usage_type,
            subject=draft["subject"],
            preheader=draft["preheader"],
            html_body=draft["html_body"],
            text_body=draft["text_body"],
        )
        if draft_problems:
            detail = "its draft: " + "; ".join(map(str, draft_problems))
            report.outcomes.append(Outcome("template", key, "invalid", detail))
            return
    after = {name: getattr(template, name) for name in TEMPLATE_FIELDS}
    if as_draft:
        # A draft holds content: the enabled switch stays the template's, as it is.
        before.pop("enabled", None)
        after.pop("enabled", None)
    if action == "change" and before == after and before_layout == layout_name:
        if draft is not None and not dry_run:
            draft_save(template, draft)
        detail = "" if draft is None else "its draft imported"
        report.outcomes.append(Outcome("template", key, "unchanged", detail))
        return
    changed = [name for name in after if before[name] != after[name]]
    if before_layout != layout_name:
        changed.append("layout")
    if not dry_run and as_draft:
        values = draft_values(template)
        if template.pk is None:
            template.published_at = None  # serves nothing until its draft is published
            template._change_reason = "imported as a draft"
            template.save()
        draft_save(Template.objects.get(pk=template.pk), values)
    elif not dry_run:
        # A plain import publishes, except what was exported before its first publish.
        if template.pk is None and not item.published:
            template.published_at = None
        elif item.published:
            template.published_at = timezone.now()
        # simple-history reads the reason of the version it records from this attribute.
        template._change_reason = "imported"  # type: ignore[attr-defined]
        template.save()
        if draft is not None:
            draft_save(template, draft)
    detail = "" if action == "create" else ", ".join(changed)
    if as_draft:
        detail = f"as a draft{': ' + detail if detail else ''}"
    elif draft is not None:
        detail = f"{detail}; with its draft" if detail else "with its draft"
    report.outcomes.append(Outcome("template", key, action, detail))


def _draft_from(values: dict, layouts: dict) -> dict | str:
    """An export's draft as draft_save() takes it, or what is wrong with it."""
    fields = {name: value for name, value in values.items() if name != "layout"}
    refused = _storage_problems(Template, fields) + _sender_problems(
        Template(from_email=fields.get("from_email", ""), reply_to=fields.get("reply_to", ""))
    )
    if refused:
        return "; ".join(refused)
    layout_name = values.get("layout")
    if layout_name and layout_name not in layouts:
        return f"no layout {_short(layout_name, 80)!r}"
    return {
        "subject": values.get("subject", ""),
        "preheader": values.get("preheader", ""),
        "html_body": values.get("html_body", ""),
        "text_body": values.get("text_body", ""),
        "from_email": values.get("from_email", ""),
        "reply_to": values.get("reply_to", ""),
        "layout": layouts.get(layout_name) if layout_name else None,
    }


def _scope_problems(scope: dict[str, str]) -> list[str]:
    """What is wrong with a scope's ids (blank is fine: any)."""
    return [
        f"{name} {_short(value, 80)!r} is not {LOGTO_ID.message}"
        for name, value in scope.items()
        if value and not is_logto_id(value)
    ]


def _storage_problems(model, values: dict) -> list[str]:
    """What the database would refuse (and fail the whole import on): a value longer than its
    column, a NUL character, a lone surrogate (which JSON can spell)."""
    problems = []
    for name, value in values.items():
        if not isinstance(value, str):
            continue
        max_length = model._meta.get_field(name).max_length
        if max_length is not None and len(value) > max_length:
            problems.append(f"{name} is {len(value)} characters long; the limit is {max_length}")
        if "\x00" in value:
            problems.append(f"{name} contains a NUL character, which cannot be stored")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            problems.append(f"{name} is not valid Unicode (a lone surrogate)")
    return problems


def _sender_problems(template) -> list[str]:
    problems = []
    for name, validator in (("from_email", validate_sender), ("reply_to", validate_email)):
        value = getattr(template, name)
        if value:
            try:
                validator(value)
            except ValidationError:
                problems.append(f"{name} {value[:80]!r} is not an email address")
    if template.from_email and not problems:
        try:
            validate_from_domain(template.from_email)
        except ValidationError as refused:
            problems.append(f"from_email: {refused.message}")
    return problems


# --- Exporting --------------------------------------------------------------------------------


DRAFT_EXPORT_FIELDS = ("subject", "preheader", "from_email", "reply_to")


def export_files(templates=None, layouts=None) -> dict[str, str]:
    """Every file of an export, by relative path: mailroom.json plus one .html and one .txt per
    template (templates/<UsageType>/<locale>.*, a scoped one's in a folder of its scope:
    templates/<UsageType>/org-<id>/<locale>.*) and layout (layouts/<name>.*). A path another
    entry's files already use (whatever the case) gets a ~2, ~3… suffix."""
    templates = (
        Template.objects.select_related("layout", "draft__layout").all()
        if templates is None
        else templates
    )
    layouts = Layout.objects.select_related("draft").all() if layouts is None else layouts
    files: dict[str, str] = {}
    taken: set[str] = set()
    layout_entries: list[dict] = []
    template_entries: list[dict] = []
    meta = {
        "mailroom_export": EXPORT_VERSION,
        "layouts": layout_entries,
        "templates": template_entries,
    }
    for layout in layouts:
        stem = _free_stem(f"layouts/{_slug(layout.name)}", taken)
        files[f"{stem}.html"], files[f"{stem}.txt"] = layout.html, layout.text
        layout_entry: dict = {
            "name": layout.name,
            **_scope_entry(layout),
            "html": f"{stem}.html",
            "text": f"{stem}.txt",
        }
        layout_draft = getattr(layout, "draft", None)
        if layout_draft is not None:
            files[f"{stem}.draft.html"] = layout_draft.html
            files[f"{stem}.draft.txt"] = layout_draft.text
            layout_entry["draft"] = {"html": f"{stem}.draft.html", "text": f"{stem}.draft.txt"}
        layout_entries.append(layout_entry)
    for template in templates:
        folder = "/".join(["templates", template.usage_type, *_scope_folder(template)])
        stem = _free_stem(f"{folder}/{template.locale}", taken)
        entry = {
            "usage_type": template.usage_type,
            "locale": template.locale,
            **_scope_entry(template),
            "layout": template.layout.name if template.layout_id else None,
            **{
                name: getattr(template, name)
                for name in TEMPLATE_FIELDS
                if name not in ("html_body", "text_body")
            },
            "html": f"{stem}.html",
            "text": f"{stem}.txt" if template.text_body else None,
            "published": template.published_at is not None,
        }
        files[f"{stem}.html"] = template.html_body
        if template.text_body:
            files[f"{stem}.txt"] = template.text_body
        draft = getattr(template, "draft", None)
        if draft is not None:
            entry["draft"] = {
                "layout": draft.layout.name if draft.layout_id else None,
                **{
                    name: getattr(draft, name)
                    for name in ("subject", "preheader", "from_email", "reply_to")
                },
                "html": f"{stem}.draft.html",
                "text": f"{stem}.draft.txt" if draft.text_body else None,
            }
            files[f"{stem}.draft.html"] = draft.html_body
            if draft.text_body:
                files[f"{stem}.draft.txt"] = draft.text_body
        template_entries.append(entry)
    files["mailroom.json"] = json.dumps(meta, indent=2, ensure_ascii=False) + "\n"
    return files


def export_to_directory(directory: Path, **kwargs) -> int:
    files = export_files(**kwargs)
    for name, content in files.items():
        target = directory / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content, encoding="utf-8")
    return len(files)


def export_zip(**kwargs) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in export_files(**kwargs).items():
            archive.writestr(f"mailroom-templates/{name}", content)
    return buffer.getvalue()


def _scope_entry(obj) -> dict[str, str]:
    """The scope's keys of an export entry, only those set: an unscoped entry reads as it did
    before scopes (and an export from before them imports unscoped)."""
    return {name: getattr(obj, name) for name in SCOPE_FIELDS if getattr(obj, name)}


def _scope_folder(template) -> list[str]:
    """The folder of a scoped template's files (app-<id>, org-<id> or app-<id>+org-<id>;
    none for the unscoped): the prefix keeps any id from naming '..'."""
    parts = [
        f"{prefix}-{re.sub(r'[^A-Za-z0-9._-]+', '-', value)}"
        for prefix, value in (("app", template.application_id), ("org", template.organization_id))
        if value
    ]
    return ["+".join(parts)] if parts else []


_EXPORT_SUFFIXES = (".html", ".txt", ".draft.html", ".draft.txt")


def _free_stem(stem: str, taken: set[str]) -> str:
    """``stem``, or the first of ``stem~2``, ``stem~3``… whose files (its draft's included)
    no earlier entry uses, compared ignoring case (as macOS and Windows folders do)."""
    candidate, number = stem, 1
    while any((candidate + suffix).lower() in taken for suffix in _EXPORT_SUFFIXES):
        number += 1
        candidate = f"{stem}~{number}"
    taken.update((candidate + suffix).lower() for suffix in _EXPORT_SUFFIXES)
    return candidate


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "layout"
