"""The default emails shipped in ``fixtures/defaults/``: one layout and, for each of Logto's
nine usage types, a subject, preheader, HTML body and plain-text body in each of Logto's 21
built-in languages.

Files (see fixtures/defaults/README.md):
- ``layout.html`` / ``layout.txt``: the default layout;
- ``bodies/code.*`` and ``bodies/invitation.*``: the body of every code email and of the
  invitation, with ``[[phrase]]`` slots;
- ``locales/<locale>.json``: each language's phrases (Django template syntax inside).

A template loaded from these files keeps a checksum of its content, so a later sync can tell
whether an admin has edited it since (and leave it alone unless forced).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from django.utils import timezone

from emails.content.rendering.context import RTL_LANGUAGES
from emails.logto import UsageType

DEFAULTS_DIR = Path(__file__).resolve().parents[2] / "fixtures" / "defaults"
DEFAULT_LAYOUT_NAME = "Default"
LOCALES = (
    "ar cs de en es fa-IR fr it ja ko pl-PL pt-PT pt-BR ru th tr-TR uk-UA zh-CN zh-HK zh-TW".split()
)
_SLOT = re.compile(r"\[\[(\w+)\]\]")
_IF_ORGANIZATION = "{{% if organization.name %}}{}{{% else %}}{}{{% endif %}}"
# Names Logto's users typed (an organization, an inviter), isolated from the sentence around
# them, so that an Arabic sentence does not move "Names and Co."'s full stop to the front:
# <bdi> in HTML, and in the plain-text parts of right-to-left languages Unicode's first-strong
# isolate (U+2068 … U+2069), which a mail client's text rendering follows.
_USER_VALUE = re.compile(r"\{\{ (?:organization\.name|inviter_name) \}\}")
_RTL_LOCALES = {locale for locale in LOCALES if locale.split("-")[0] in RTL_LANGUAGES}


def default_layout(directory: Path = DEFAULTS_DIR) -> dict:
    fields = {
        "name": DEFAULT_LAYOUT_NAME,
        "html": (directory / "layout.html").read_text(encoding="utf-8"),
        "text": (directory / "layout.txt").read_text(encoding="utf-8").rstrip("\n"),
    }
    fields["default_checksum"] = checksum(fields, ("html", "text"))
    return fields


def default_templates(directory: Path = DEFAULTS_DIR) -> list[dict]:
    """Every shipped default template as model field values (without the layout)."""
    bodies = {
        name: (directory / "bodies" / name).read_text(encoding="utf-8").rstrip("\n")
        for name in ("code.html", "code.txt", "invitation.html", "invitation.txt")
    }
    templates = []
    for locale in LOCALES:
        phrases = json.loads((directory / "locales" / f"{locale}.json").read_text("utf-8"))
        for usage_type in UsageType.values:
            templates.append(_template(usage_type, locale, phrases, bodies))
    return templates


def _template(usage_type: str, locale: str, phrases: dict, bodies: dict) -> dict:
    common = {key: value for key, value in phrases.items() if isinstance(value, str)}
    own = {**common, **phrases[usage_type]}
    # Chinese and Japanese put no space between sentences.
    own["expiry_line"] = common.get("sentence_separator", " ").join(
        [common["expiry"], common["never_share"]]
    )
    if usage_type == UsageType.ORGANIZATION_INVITATION:
        kind = "invitation"
        subject = (
            "{% if organization.name %}[[subject_org]]{% else %}[[subject_generic]]{% endif %}"
        )
        preheader = "{% if organization.name %}[[body_org]]{% else %}[[body_generic]]{% endif %}"
    else:
        kind = "code"
        subject, preheader = "[[subject]]", "[[expiry]]"
    fields = {
        "usage_type": usage_type,
        "locale": locale,
        "subject": _isolate_text(_fill(subject, own), locale),
        "preheader": _isolate_text(_fill(preheader, own), locale),
        "html_body": _USER_VALUE.sub(r"<bdi>\g<0></bdi>", _fill(bodies[f"{kind}.html"], own)),
        "text_body": _isolate_text(_fill(bodies[f"{kind}.txt"], own), locale),
    }
    fields["default_checksum"] = checksum(fields, CONTENT_FIELDS)
    return fields


def _isolate_text(source: str, locale: str) -> str:
    if locale not in _RTL_LOCALES:
        return source
    return _USER_VALUE.sub("\u2068\\g<0>\u2069", source)


def _fill(source: str, phrases: dict) -> str:
    return _SLOT.sub(lambda match: phrases[match.group(1)], source)


CONTENT_FIELDS = ("subject", "preheader", "html_body", "text_body")


def checksum(values, fields) -> str:
    """Of a dict or a model instance: what a sync compares to tell an edit apart."""
    get = values.get if isinstance(values, dict) else lambda name: getattr(values, name)
    material = "\x00".join(get(name) or "" for name in fields)
    return hashlib.sha256(material.encode()).hexdigest()


@dataclass
class SyncReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    kept_edited: int = 0


def sync_defaults(template_model, layout_model, *, force: bool = False) -> SyncReport:
    """Create missing defaults and bring unedited ones up to date with the files.

    A template or layout an admin has edited (its content no longer matches the checksum of
    the default it came from) is left alone unless ``force``. Takes the model classes so a
    data migration can pass its historical models.
    """
    report = SyncReport()
    layout_fields = default_layout()
    layout = layout_model.objects.filter(name=layout_fields["name"]).first()
    if layout is None:
        layout = layout_model.objects.create(**layout_fields)
        report.created += 1
    else:
        _update(layout, layout_fields, ("html", "text"), force, report)
    # The shipped defaults are the unscoped templates; an application's own are its operator's.
    templates = template_model.objects.all()
    if any(field.name == "application_id" for field in template_model._meta.fields):
        templates = templates.filter(application_id="", organization_id="")  # not in 0002's
    existing = {(t.usage_type, t.locale): t for t in templates}
    for fields in default_templates():
        template = existing.get((fields["usage_type"], fields["locale"]))
        if template is None:
            template_model.objects.create(**fields, layout=layout)
            report.created += 1
        else:
            _update(template, fields, CONTENT_FIELDS, force, report)
    return report


def _update(instance, fields: dict, content_fields, force: bool, report: SyncReport) -> None:
    if checksum(instance, content_fields) == fields["default_checksum"]:
        report.unchanged += 1
        return
    edited = checksum(instance, content_fields) != (instance.default_checksum or "")
    if edited and not force:
        report.kept_edited += 1
        return
    for name in (*content_fields, "default_checksum"):
        setattr(instance, name, fields[name])
    instance.save()
    report.updated += 1


def restore_default(template) -> bool:
    """Put the shipped content back into one template; False if none ships for its pair."""
    fields = next(
        (
            fields
            for fields in default_templates()
            if (fields["usage_type"], fields["locale"]) == (template.usage_type, template.locale)
        ),
        None,
    )
    if fields is None:
        return False
    for name in (*CONTENT_FIELDS, "default_checksum"):
        setattr(template, name, fields[name])
    template.published_at = timezone.now()  # restoring publishes the shipped content
    template.save()
    return True
