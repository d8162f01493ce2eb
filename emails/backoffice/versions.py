"""Versions of templates and layouts (django-simple-history): a side-by-side diff of any
two, and one-click revert, which is itself a new version."""

from __future__ import annotations

import difflib

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_POST

from emails.backoffice.forms import int_or_none
from emails.content.clean import layout_content_check, template_content_check
from emails.content.drafts import draft_of, draft_save, draft_values
from emails.models import Layout, Template

HISTORY_FIELDS = {
    "template": (
        "subject",
        "preheader",
        "html_body",
        "text_body",
        "layout_id",
        "enabled",
        "from_email",
        "reply_to",
    ),
    "layout": ("name", "html", "text"),
}


def _history_record(model_admin, object_id, history_id):
    return get_object_or_404(model_admin.model.history, id=object_id, history_id=history_id)


def history_compare(request, model_admin, object_id):
    """Side-by-side diff of two versions (``?a=<history id>&b=<history id>``; ``b`` defaults
    to the current version)."""
    obj = get_object_or_404(model_admin.model, pk=object_id)
    if not model_admin.has_view_or_change_permission(request, obj):
        raise PermissionDenied
    records = obj.history.all()
    older = records.filter(history_id=int_or_none(request.GET.get("a"))).first() or records.last()
    newer = records.filter(history_id=int_or_none(request.GET.get("b"))).first() or records.first()
    if older.history_date > newer.history_date:
        older, newer = newer, older
    diffs = field_diffs(
        older,
        newer,
        HISTORY_FIELDS[model_admin.model._meta.model_name],
        _version_label(older),
        _version_label(newer),
    )
    context = {
        **model_admin.admin_site.each_context(request),
        "title": f"Compare versions of {obj}",
        "opts": model_admin.model._meta,
        "original": obj,
        "older": older,
        "newer": newer,
        "older_label": _version_label(older),
        "newer_label": _version_label(newer),
        "diffs": diffs,
    }
    return TemplateResponse(request, "admin/emails/history_compare.html", context)


def field_diffs(older, newer, fields, older_label: str, newer_label: str) -> list:
    """[(field label, side-by-side HTML table)] of each field that differs."""
    # No wrapcolumn: difflib would cut lines at 80 characters, mid-word. The browser wraps.
    differ = difflib.HtmlDiff(tabsize=2)
    diffs = []
    for name in fields:
        before, after = str(getattr(older, name) or ""), str(getattr(newer, name) or "")
        if before != after:
            table = differ.make_table(
                before.splitlines(),
                after.splitlines(),
                older_label,
                newer_label,
                context=True,
                numlines=3,
            )
            diffs.append((name.replace("_", " "), mark_safe(_wrappable(table))))  # noqa: S308  (difflib escapes)
    return diffs


def draft_compare(request, model_admin, object_id):
    """The published template (or layout) beside its draft: what publishing would change."""
    obj = get_object_or_404(model_admin.model, pk=object_id)
    if not model_admin.has_view_or_change_permission(request, obj):
        raise PermissionDenied
    draft = draft_of(obj)
    name = model_admin.model._meta.model_name
    if draft is None:
        messages.info(request, f"{obj} has no draft.")
        return redirect(f"admin:emails_{name}_change", obj.pk)
    published, newer, diffs = draft_diffs(obj, draft)
    context = {
        **model_admin.admin_site.each_context(request),
        "title": f"Draft of {obj} beside the published version",
        "opts": model_admin.model._meta,
        "original": obj,
        "older_label": published,
        "newer_label": newer,
        "diffs": diffs,
    }
    return TemplateResponse(request, "admin/emails/history_compare.html", context)


def draft_diffs(obj, draft) -> tuple[str, str, list]:
    """The published template (or layout, from the database) beside ``draft``: the two
    labels and the diff of each field that differs."""
    published_row = type(obj).objects.get(pk=obj.pk)  # ``obj`` may be showing the draft
    published = "published" if getattr(published_row, "published_at", True) else "never published"
    newer = f"draft revision {draft.revision}"
    name = type(obj)._meta.model_name
    fields = [
        field
        for field in (_DRAFT_DIFF_FIELDS if isinstance(obj, Template) else HISTORY_FIELDS[name])
        if hasattr(draft, field)
    ]
    return published, newer, field_diffs(published_row, draft, fields, published, newer)


_DRAFT_DIFF_FIELDS = tuple(name for name in HISTORY_FIELDS["template"] if name != "enabled")


def _wrappable(table: str) -> str:
    """difflib's table with ordinary spaces and no ``nowrap``, so a long line wraps between
    words (the page's CSS keeps the spaces: ``white-space: pre-wrap``). Safe: difflib has
    escaped the text, so a ``&nbsp;`` of the content reads ``&amp;nbsp;`` here."""
    return table.replace("&nbsp;", " ").replace(' nowrap="nowrap"', "")


@require_POST
def history_revert(request, model_admin, object_id, history_id):
    """Make a past version the current one (itself a new version, so it can be undone): at
    once for who may publish it (no approval required), else as the draft, to publish."""
    obj = get_object_or_404(model_admin.model, pk=object_id)
    if not model_admin.has_change_permission(request, obj):
        raise PermissionDenied
    record = _history_record(model_admin, object_id, history_id)
    try:
        return _revert(request, model_admin, obj, record)
    except ValidationError as invalid:
        # A version saved under older rules may not pass today's checks: say so, change nothing.
        messages.error(
            request, f"{_version_label(record)} cannot be used: {'; '.join(invalid.messages)}"
        )
        return redirect(f"admin:emails_{model_admin.model._meta.model_name}_history", obj.pk)


def _revert(request, model_admin, obj, record):
    is_template = isinstance(obj, Template)
    at_once = model_admin.has_publish_permission(request) and not (
        is_template and settings.EMAILS_PUBLISH_REQUIRES_APPROVAL
    )
    if not at_once:
        values = {name: getattr(record, name) for name in draft_values(obj) if name != "layout"}
        if is_template:
            values["layout"] = Layout.objects.filter(pk=record.layout_id).first()
        _check_content(obj, values)
        draft = draft_save(obj, values, user=request.user)
        messages.success(
            request,
            f"The draft of {obj} is now {_version_label(record)} (draft revision "
            f"{draft.revision}): publish it to make it the email.",
        )
        return redirect(f"admin:emails_{model_admin.model._meta.model_name}_change", obj.pk)
    for name in HISTORY_FIELDS[model_admin.model._meta.model_name]:
        setattr(obj, name, getattr(record, name))
    obj._change_reason = f"reverted to {_version_label(record)}"
    obj.full_clean()
    _check_content(obj, {name: getattr(obj, name) for name in draft_values(obj)})
    if is_template:
        obj.published_at = timezone.now()  # a revert publishes
    obj.save()
    messages.success(request, f"{obj} is back to {_version_label(record)}.")
    return redirect(
        reverse(f"admin:emails_{model_admin.model._meta.model_name}_history", args=[obj.pk])
    )


def _check_content(obj, values: dict) -> None:
    if isinstance(obj, Template):
        template_content_check(
            usage_type=obj.usage_type,
            subject=values["subject"],
            preheader=values["preheader"],
            html_body=values["html_body"],
            text_body=values["text_body"],
        )
    else:
        layout_content_check(html=values["html"], text=values["text"])


def _version_label(record) -> str:
    version = getattr(record, "version", None)
    when = record.history_date.strftime("%Y-%m-%d %H:%M")
    return f"version {version} ({when})" if version else f"{when} #{record.history_id}"
