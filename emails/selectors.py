"""Reads."""

from __future__ import annotations

from dataclasses import dataclass

from emails.models import Template, UsageType


@dataclass(frozen=True)
class TemplateChoice:
    template: Template
    used_fallback: bool


def template_select(*, usage_type: str, locales: list[str]) -> TemplateChoice | None:
    """The enabled template that serves ``usage_type`` in the first of ``locales`` that has
    one; then the same chain for Generic. Unknown types (a newer Logto, the old ``Test``) go
    straight to Generic. One query. None when nothing can serve the message.

    ``locales`` are normalised tags, best first (``emails.locales.requested_locales``).
    """
    usage_types = [usage_type] if usage_type in UsageType.values else []
    if UsageType.GENERIC not in usage_types:
        usage_types.append(UsageType.GENERIC)
    available = {
        (template.usage_type, template.locale): template
        for template in Template.objects.filter(
            enabled=True, usage_type__in=usage_types, locale__in=locales
        )
    }
    for candidate_type in usage_types:
        for locale in locales:
            template = available.get((candidate_type, locale))
            if template is not None:
                exact = candidate_type == usage_type and locale == locales[0]
                return TemplateChoice(template=template, used_fallback=not exact)
    return None
