"""Import and export of templates and layouts.

Imports understand three shapes:
1. a Logto SMTP connector config (``{"templates": [{"usageType", "contentType", "subject",
   "content"}], ...}``), into one chosen locale;
2. Logto's email-templates management API (``[{"languageTag", "templateType", "details":
   {"subject", "content", "contentType", "replyTo", "sendFrom"}}]``);
3. Mailroom's own export: a directory (or a zip of it) with ``mailroom.json`` and one HTML and
   one text file per template and layout, laid out to read well in a git diff.

Every imported template passes the same validation as the admin; a dry run reports what would
be created, changed or left alone without writing.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils.html import escape

from emails.locales import normalize_locale
from emails.models import Layout, Template, UsageType, validate_sender
from emails.validation import validate_layout, validate_template

EXPORT_VERSION = 1
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
        return _read_export(lambda name: (path / name).read_text(encoding="utf-8"))
    if zipfile.is_zipfile(path):
        return read_zip(path.read_bytes())
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ImportFormatError(f"{path.name} is not JSON: {exc}") from None
    if fmt in ("auto", "mailroom") and isinstance(data, dict) and "mailroom_export" in data:
        return _read_export(lambda name: (path.parent / name).read_text(encoding="utf-8"))
    return [], parse_json(data, fmt=fmt, locale=locale)


def read_zip(content: bytes):
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        names = archive.namelist()
        root = next(
            (n[: -len("mailroom.json")] for n in names if n.endswith("mailroom.json")), None
        )
        if root is None:
            raise ImportFormatError("the zip holds no mailroom.json")
        return _read_export(lambda name: archive.read(root + name).decode("utf-8"))


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
        if not locale:
            raise ImportFormatError("a Logto SMTP config has no language: choose a locale")
        return [_smtp_item(entry, normalize_locale(locale)) for entry in data.get("templates", [])]
    if fmt == "logto":
        return [_logto_item(entry) for entry in data]
    raise ImportFormatError(f"unknown format {fmt!r}")


def _content(content: str, content_type: str) -> dict:
    if content_type == "text/plain":
        return {"html_body": text_to_html(content), "text_body": content}
    return {"html_body": content, "text_body": ""}


def _smtp_item(entry: dict, locale: str) -> Item:
    values = {
        "subject": entry.get("subject", ""),
        "layout": None,
        **_content(entry.get("content", ""), entry.get("contentType", "text/html")),
    }
    return Item(str(entry.get("usageType", "")), locale, values)


def _logto_item(entry: dict) -> Item:
    details = entry.get("details") or {}
    values = {
        "subject": details.get("subject", ""),
        "layout": None,
        **_content(details.get("content", ""), details.get("contentType", "text/html")),
    }
    if details.get("replyTo"):
        values["reply_to"] = details["replyTo"]
    if details.get("sendFrom"):
        values["from_email"] = details["sendFrom"]
    return Item(str(entry.get("templateType", "")), str(entry.get("languageTag", "")), values)


def _read_export(read):
    try:
        meta = json.loads(read("mailroom.json"))
        layouts = [
            {"name": entry["name"], "html": read(entry["html"]), "text": read(entry["text"])}
            for entry in meta["layouts"]
        ]
        items = []
        for entry in meta["templates"]:
            values = {name: entry[name] for name in TEMPLATE_FIELDS if name in entry}
            values["html_body"] = read(entry["html"])
            values["text_body"] = read(entry["text"]) if entry.get("text") else ""
            values["layout"] = entry.get("layout")
            items.append(Item(entry["usage_type"], entry["locale"], values))
    except (KeyError, TypeError, ValueError, FileNotFoundError) as exc:
        raise ImportFormatError(f"broken Mailroom export: {exc!r}") from None
    return layouts, items


# --- Applying ---------------------------------------------------------------------------------


def import_templates(layouts: list[dict], items: list[Item], *, dry_run: bool) -> ImportReport:
    """Create or update layouts, then templates; invalid ones are reported, not written."""
    report = ImportReport(dry_run=dry_run)
    with transaction.atomic():
        known_layouts = {layout.name: layout for layout in Layout.objects.all()}
        for fields in layouts:
            _import_layout(fields, known_layouts, report, dry_run)
        for item in items:
            _import_template(item, known_layouts, report, dry_run)
    return report


def _import_layout(fields: dict, known: dict, report: ImportReport, dry_run: bool) -> None:
    problems = validate_layout(html=fields["html"], text=fields["text"])
    if problems:
        report.outcomes.append(
            Outcome("layout", fields["name"], "invalid", "; ".join(map(str, problems)))
        )
        return
    layout = known.get(fields["name"])
    if layout is None:
        action, layout = "create", Layout(name=fields["name"])
    elif (layout.html, layout.text) == (fields["html"], fields["text"]):
        report.outcomes.append(Outcome("layout", fields["name"], "unchanged"))
        return
    else:
        action = "change"
    layout.html, layout.text = fields["html"], fields["text"]
    if not dry_run:
        layout.save()
    known[fields["name"]] = layout
    report.outcomes.append(Outcome("layout", fields["name"], action))


def _import_template(item: Item, layouts: dict, report: ImportReport, dry_run: bool) -> None:
    key = f"{item.usage_type} · {item.locale}"
    if item.usage_type not in UsageType.values:
        report.outcomes.append(Outcome("template", key, "skipped", "unknown usage type"))
        return
    try:
        locale = normalize_locale(item.locale)
    except ValueError as exc:
        report.outcomes.append(Outcome("template", key, "invalid", str(exc)))
        return
    values = dict(item.values)
    layout_name = values.pop("layout", None)
    if layout_name and layout_name not in layouts:
        report.outcomes.append(Outcome("template", key, "invalid", f"no layout {layout_name!r}"))
        return
    template = Template.objects.filter(usage_type=item.usage_type, locale=locale).first()
    action = "create" if template is None else "change"
    template = template or Template(usage_type=item.usage_type, locale=locale)
    before = {name: getattr(template, name) for name in TEMPLATE_FIELDS}
    before_layout = template.layout.name if template.layout_id else None
    for name, value in values.items():
        setattr(template, name, value)
    template.layout = layouts.get(layout_name) if layout_name else None
    problems = validate_template(
        usage_type=template.usage_type,
        subject=template.subject,
        preheader=template.preheader,
        html_body=template.html_body,
        text_body=template.text_body,
    ) + _sender_problems(template)
    if problems:
        report.outcomes.append(Outcome("template", key, "invalid", "; ".join(map(str, problems))))
        return
    after = {name: getattr(template, name) for name in TEMPLATE_FIELDS}
    if action == "change" and before == after and before_layout == layout_name:
        report.outcomes.append(Outcome("template", key, "unchanged"))
        return
    changed = [name for name in TEMPLATE_FIELDS if before[name] != after[name]]
    if before_layout != layout_name:
        changed.append("layout")
    if not dry_run:
        template._change_reason = "imported"
        template.save()
    report.outcomes.append(
        Outcome("template", key, action, "" if action == "create" else ", ".join(changed))
    )


def _sender_problems(template) -> list[str]:
    problems = []
    for name, validator in (("from_email", validate_sender), ("reply_to", validate_email)):
        value = getattr(template, name)
        if value:
            try:
                validator(value)
            except ValidationError:
                problems.append(f"{name} {value[:80]!r} is not an email address")
    return problems


# --- Exporting --------------------------------------------------------------------------------


def export_files(templates=None, layouts=None) -> dict[str, str]:
    """Every file of an export, by relative path: mailroom.json plus one .html and one .txt per
    template (templates/<UsageType>/<locale>.*) and layout (layouts/<name>.*)."""
    templates = Template.objects.select_related("layout").all() if templates is None else templates
    layouts = Layout.objects.all() if layouts is None else layouts
    files: dict[str, str] = {}
    meta = {"mailroom_export": EXPORT_VERSION, "layouts": [], "templates": []}
    for layout in layouts:
        stem = f"layouts/{_slug(layout.name)}"
        files[f"{stem}.html"], files[f"{stem}.txt"] = layout.html, layout.text
        meta["layouts"].append({"name": layout.name, "html": f"{stem}.html", "text": f"{stem}.txt"})
    for template in templates:
        stem = f"templates/{template.usage_type}/{template.locale}"
        entry = {
            "usage_type": template.usage_type,
            "locale": template.locale,
            "layout": template.layout.name if template.layout_id else None,
            **{
                name: getattr(template, name)
                for name in TEMPLATE_FIELDS
                if name not in ("html_body", "text_body")
            },
            "html": f"{stem}.html",
            "text": f"{stem}.txt" if template.text_body else None,
        }
        files[f"{stem}.html"] = template.html_body
        if template.text_body:
            files[f"{stem}.txt"] = template.text_body
        meta["templates"].append(entry)
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


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "layout"
