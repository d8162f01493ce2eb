"""Drafts and publishing: a template's (or layout's) published content is the only thing
emails use; the admin saves a working draft (``TemplateDraft``, ``LayoutDraft``: at most one
each), and publishing copies it onto the template or layout as a new version.

Publishing needs ``emails.publish_template`` (``emails.publish_layout``; the caller checks
who, this checks what), and for a template with ``EMAILS_PUBLISH_REQUIRES_APPROVAL`` an
approval of the draft's current revision from a preview link (``PreviewComment.approves``); a
new save of the draft is a new revision, so an older approval no longer counts. (Layouts have
no preview links of their own, so no approval.)
"""

from __future__ import annotations

from typing import TypeVar

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Model
from django.utils import timezone

from emails.content.clean import layout_content_check, template_content_check
from emails.models import (
    DRAFT_FIELDS,
    LAYOUT_DRAFT_FIELDS,
    Layout,
    LayoutDraft,
    PreviewComment,
    Template,
    TemplateDraft,
)


class PublishRefused(Exception):
    """The draft cannot be published yet; the message says why, for the person pressing it."""


M = TypeVar("M", Template, Layout)

# What has drafts: the draft model, its link to the object, the fields a draft holds.
_DRAFTS: dict[type[Model], tuple[type[Model], str, tuple[str, ...]]] = {
    Template: (TemplateDraft, "template", DRAFT_FIELDS),
    Layout: (LayoutDraft, "layout", LAYOUT_DRAFT_FIELDS),
}


def _fields(source) -> tuple[str, ...]:
    if isinstance(source, (Layout, LayoutDraft)):
        return LAYOUT_DRAFT_FIELDS
    return DRAFT_FIELDS


def draft_values(source) -> dict:
    """The draft's fields of a template or layout, of a draft, or of an object with them."""
    return {name: getattr(source, name) for name in _fields(source)}


def _drafts(obj):
    model, link, _ = _DRAFTS[type(obj)]
    return model.objects.filter(**{link: obj}), model, link


def draft_of(obj):
    """The template's (or layout's) draft, or None."""
    return _drafts(obj)[0].first()


def with_draft(obj: M, draft=None) -> M:
    """``obj`` showing its draft's content (unsaved; same pk), or itself without one: what
    the editor, a designer's link and a test send show."""
    draft = draft if draft is not None else draft_of(obj)
    if draft is None:
        return obj
    shown = type(obj).objects.get(pk=obj.pk) if obj._state.adding else obj
    for name, value in draft_values(draft).items():
        setattr(shown, name, value)
    return shown


def draft_save(obj, values: dict, *, user=None):
    """Save ``values`` (the draft's fields) as the template's or layout's draft. A change of
    content is a new revision (approvals of the old one stop counting); the same content saved
    again is not."""
    queryset, model, link = _drafts(obj)
    with transaction.atomic():
        # The owner's row is the lock: two first saves at once make one draft, not a clash.
        owner = type(obj).objects.select_for_update().get(pk=obj.pk)
        draft = queryset.select_for_update().first()
        if draft is None:
            draft = model(**{link: obj}, **values, updated_by=user)
            draft.revision = _next_revision(owner)
            draft.full_clean(exclude=[link])
            draft.save()
            return draft
        before = draft_values(draft)
        for name, value in values.items():
            setattr(draft, name, value)
        draft.full_clean(exclude=[link])
        draft.save()  # normalises line endings before comparing
        if draft_values(draft) != before:
            draft.revision = _next_revision(owner)
            draft.updated_by = user
            draft.save(update_fields=["revision", "updated_by", "updated_at"])
        return draft


def _next_revision(owner) -> int:
    """The next draft revision of a (locked) template or layout: after every one it ever had,
    whether published, discarded or only commented on, so a revision number means one
    content and an approval or a page of an earlier draft never counts for a later one."""
    revision = owner.draft_revisions + 1
    # Not save(): this is bookkeeping, not a version of the template.
    type(owner).objects.filter(pk=owner.pk).update(draft_revisions=revision)
    owner.draft_revisions = revision
    return revision


def draft_approved(draft: TemplateDraft) -> PreviewComment | None:
    """The newest approval of the draft's current revision, if any."""
    return (
        PreviewComment.objects.filter(
            template=draft.template, draft_revision=draft.revision, approves=True
        )
        .order_by("-created_at")
        .first()
    )


def draft_publish(obj, *, user=None, revision: int | None = None):
    """Copy the draft onto the template or layout (a new version) and drop the draft. Raises
    PublishRefused (no draft; not ``revision``, the one the publisher looked at; no approval
    when one is required) or ValidationError (the draft's content cannot be sent)."""
    with transaction.atomic():
        obj = type(obj).objects.select_for_update().get(pk=obj.pk)
        draft = _drafts(obj)[0].select_for_update().first()
        if draft is None:
            raise PublishRefused("There is no draft to publish.")
        if revision is not None and draft.revision != revision:
            raise PublishRefused(
                f"The draft changed since you looked at it (now revision {draft.revision}): "
                "look at it again before publishing."
            )
        if isinstance(obj, Template):
            if settings.EMAILS_PUBLISH_REQUIRES_APPROVAL and draft_approved(draft) is None:
                raise PublishRefused(
                    f"Revision {draft.revision} of this draft has no approval yet: share it "
                    "with a preview link and ask a reviewer to approve it."
                )
            template_content_check(
                usage_type=obj.usage_type,
                subject=draft.subject,
                preheader=draft.preheader,
                html_body=draft.html_body,
                text_body=draft.text_body,
            )
            obj.published_at = timezone.now()
        else:
            layout_content_check(html=draft.html, text=draft.text)
        for name, value in draft_values(draft).items():
            setattr(obj, name, value)
        who = f" by {user.get_username()}" if user is not None else ""
        obj._change_reason = f"published draft revision {draft.revision}{who}"
        obj.save()
        draft.delete()
    return obj


def draft_discard(obj) -> bool:
    """Drop the draft; the published content stays. False when there was none."""
    deleted, _ = _drafts(obj)[0].delete()
    return bool(deleted)


def translation_start(source: Template, locale: str, *, user=None) -> tuple[Template, bool]:
    """A template of ``source``'s usage type and scope in ``locale``, made as a draft copied
    from ``source`` (unpublished: it serves nothing until someone publishes it), or the one
    that exists already, untouched. Returns it and whether it was made."""
    same = Template.objects.filter(
        usage_type=source.usage_type,
        locale=locale,
        application_id=source.application_id,
        organization_id=source.organization_id,
    )
    existing = same.first()
    if existing is not None:
        return existing, False
    try:
        return _translation_make(source, locale, user=user), True
    except IntegrityError:  # made meanwhile by another request
        return same.get(), False


def _translation_make(source: Template, locale: str, *, user=None) -> Template:
    with transaction.atomic():
        template = Template(
            usage_type=source.usage_type,
            locale=locale,
            application_id=source.application_id,
            organization_id=source.organization_id,
            enabled=True,
            published_at=None,
            **draft_values(source),
        )
        template._change_reason = f"translation of {source.locale} started"  # type: ignore[attr-defined]
        template.save()
        draft_save(template, draft_values(with_draft(source)), user=user)
    return template
