"""A template's or layout's content checked as a whole (emails.content.validation), as
Django's ValidationError by field: for the admin's forms and the revert of a version. The
models check only their own fields; this layer knows Logto's payload and the sandbox."""

from __future__ import annotations

from collections.abc import Iterable

from django.core.exceptions import ValidationError

from emails.content.validation import Problem, validate_layout, validate_template


def template_content_check(
    *, usage_type: str, subject: str, preheader: str, html_body: str, text_body: str
) -> None:
    """Raises ValidationError (by field) unless the template's content can be saved."""
    _raise(
        validate_template(
            usage_type=usage_type,
            subject=subject,
            preheader=preheader,
            html_body=html_body,
            text_body=text_body,
        )
    )


def layout_content_check(*, html: str, text: str) -> None:
    """Raises ValidationError (by field) unless the layout's content can be saved."""
    _raise(validate_layout(html=html, text=text))


def _raise(problems: Iterable[Problem]) -> None:
    errors: dict[str, list[str]] = {}
    for problem in problems:
        errors.setdefault(problem.field, []).append(str(problem))
    if errors:
        raise ValidationError(errors)
