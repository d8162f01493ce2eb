"""The default templates shipped in ``fixtures/defaults/``: one JSON file per locale holding,
per usage type, a subject, an HTML fragment and a plain-text body; ``base.html`` wraps every
fragment into a complete, table-based email."""

from __future__ import annotations

import json
from pathlib import Path

DEFAULTS_DIR = Path(__file__).resolve().parent.parent / "fixtures" / "defaults"


def default_templates(directory: Path = DEFAULTS_DIR) -> list[dict]:
    """Every shipped default as model field values, in file order."""
    wrapper = (directory / "base.html").read_text(encoding="utf-8")
    templates = []
    for path in sorted(directory.glob("*.json")):
        locale = path.stem
        for usage_type, parts in json.loads(path.read_text(encoding="utf-8")).items():
            html = wrapper.replace("[[subject]]", parts["subject"]).replace(
                "[[content]]", parts["html"]
            )
            templates.append(
                {
                    "usage_type": usage_type,
                    "locale": locale,
                    "subject": parts["subject"],
                    "html_body": html,
                    "text_body": parts.get("text", ""),
                }
            )
    return templates


def create_missing_defaults(template_model) -> int:
    """Create the shipped defaults that have no (usage type, locale) row yet; returns how many.

    Takes the model class so a data migration can pass its historical model.
    """
    existing = set(template_model.objects.values_list("usage_type", "locale"))
    missing = [
        template_model(**fields)
        for fields in default_templates()
        if (fields["usage_type"], fields["locale"]) not in existing
    ]
    template_model.objects.bulk_create(missing)
    return len(missing)
