"""Drafts and publishing: a template's published content is the only thing emails use; the
admin saves a working draft (``TemplateDraft``, at most one per template), and publishing
copies it onto the template as a new version.

Publishing needs ``emails.publish_template`` (the caller checks who; this checks what), and
with ``EMAILS_PUBLISH_REQUIRES_APPROVAL`` an approval of the draft's current revision from a
preview link (``PreviewComment.approves``); a new save of the draft is a new revision, so an
older approval no longer counts.
"""

from __future__ import annotations

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from emails.content.clean import template_content_check
from emails.models import DRAFT_FIELDS, PreviewComment, Template, TemplateDraft


class PublishRefused(Exception):
    """The draft cannot be published yet; the message says why, for the person pressing it."""


def draft_values(source) -> dict:
    """The draft's fields of a template, a draft or any object with them."""
    return {name: getattr(source, name) for name in DRAFT_FIELDS}


def draft_of(template: Template) -> TemplateDraft | None:
    return TemplateDraft.objects.filter(template=template).first()


def with_draft(template: Template, draft: TemplateDraft | None = None) -> Template:
    """``template`` showing its draft's content (unsaved; same pk), or itself without one:
    what the editor, a designer's link and a test send show."""
    draft = draft if draft is not None else draft_of(template)
    if draft is None:
        return template
    shown = Template.objects.get(pk=template.pk) if template._state.adding else template
    for name, value in draft_values(draft).items():
        setattr(shown, name, value)
    return shown


def draft_save(template: Template, values: dict, *, user=None) -> TemplateDraft:
    """Save ``values`` (DRAFT_FIELDS) as the template's draft. A change of content is a new
    revision (approvals of the old one stop counting); the same content saved again is not."""
    with transaction.atomic():
        draft = TemplateDraft.objects.select_for_update().filter(template=template).first()
        if draft is None:
            draft = TemplateDraft(template=template, **values, updated_by=user)
            draft.save()
            return draft
        before = draft_values(draft)
        for name, value in values.items():
            setattr(draft, name, value)
        draft.full_clean(exclude=["template"])
        draft.save()  # normalises line endings before comparing
        if draft_values(draft) != before:
            draft.revision += 1
            draft.updated_by = user
            draft.save(update_fields=["revision", "updated_by", "updated_at"])
        return draft


def draft_approved(draft: TemplateDraft) -> PreviewComment | None:
    """The newest approval of the draft's current revision, if any."""
    return (
        PreviewComment.objects.filter(
            template=draft.template, draft_revision=draft.revision, approves=True
        )
        .order_by("-created_at")
        .first()
    )


def draft_publish(template: Template, *, user=None) -> Template:
    """Copy the draft onto the template (a new version) and drop the draft. Raises
    PublishRefused (no draft, no approval when one is required) or ValidationError (the
    draft's content cannot be sent)."""
    with transaction.atomic():
        template = Template.objects.select_for_update().get(pk=template.pk)
        draft = TemplateDraft.objects.select_for_update().filter(template=template).first()
        if draft is None:
            raise PublishRefused("There is no draft to publish.")
        if settings.EMAILS_PUBLISH_REQUIRES_APPROVAL and draft_approved(draft) is None:
            raise PublishRefused(
                f"Revision {draft.revision} of this draft has no approval yet: share it with a "
                "preview link and ask a reviewer to approve it."
            )
        template_content_check(
            usage_type=template.usage_type,
            subject=draft.subject,
            preheader=draft.preheader,
            html_body=draft.html_body,
            text_body=draft.text_body,
        )
        for name, value in draft_values(draft).items():
            setattr(template, name, value)
        template.published_at = timezone.now()
        who = f" by {user.get_username()}" if user is not None else ""
        template._change_reason = f"published draft revision {draft.revision}{who}"  # type: ignore[attr-defined]
        template.save()
        draft.delete()
    return template


def draft_discard(template: Template) -> bool:
    """Drop the draft; the published content stays. False when there was none."""
    deleted, _ = TemplateDraft.objects.filter(template=template).delete()
    return bool(deleted)


def translation_start(source: Template, locale: str, *, user=None) -> tuple[Template, bool]:
    """A template of ``source``'s usage type in ``locale``, made as a draft copied from
    ``source`` (unpublished: it serves nothing until someone publishes it), or the one that
    exists already, untouched. Returns it and whether it was made."""
    existing = Template.objects.filter(usage_type=source.usage_type, locale=locale).first()
    if existing is not None:
        return existing, False
    try:
        return _translation_make(source, locale, user=user), True
    except IntegrityError:  # made meanwhile by another request
        return Template.objects.get(usage_type=source.usage_type, locale=locale), False


def _translation_make(source: Template, locale: str, *, user=None) -> Template:
    with transaction.atomic():
        template = Template(
            usage_type=source.usage_type,
            locale=locale,
            enabled=True,
            published_at=None,
            **draft_values(source),
        )
        template._change_reason = f"translation of {source.locale} started"  # type: ignore[attr-defined]
        template.save()
        draft_save(template, draft_values(with_draft(source)), user=user)
    return template
