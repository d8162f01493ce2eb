"""Publish or discard a template's draft from its change page, and start translations
(emails.content.drafts)."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from emails.backoffice.forms import int_or_none
from emails.content.drafts import (
    PublishRefused,
    draft_discard,
    draft_of,
    draft_publish,
    translation_start,
)
from emails.locales import normalize_locale
from emails.models import Template

TRANSLATE_PERMISSIONS = ("emails.add_template", "emails.change_template")


@require_POST
def publish(request, model_admin, object_id):
    """Publish the saved draft of a template or layout (``model_admin``'s)."""
    obj = get_object_or_404(model_admin.model, pk=object_id)
    if not model_admin.has_publish_permission(request):
        raise PermissionDenied
    revision = _seen_revision(request)
    try:
        # The revision the page showed: a draft saved since by someone else is not published.
        draft_publish(obj, user=request.user, revision=revision)
    except PublishRefused as refused:
        messages.error(request, str(refused))
    except ValidationError as invalid:
        problems = "; ".join(message for message in invalid.messages)
        messages.error(request, f"The draft cannot be published: {problems}")
    else:
        messages.success(request, f"Published {obj}: the next emails use it.")
    return redirect(_change_url(model_admin, obj))


@require_POST
def discard(request, model_admin, object_id):
    obj = get_object_or_404(model_admin.model, pk=object_id)
    if not model_admin.has_change_permission(request, obj):
        raise PermissionDenied
    draft = draft_of(obj)
    revision = _seen_revision(request)
    if draft is not None and revision is not None and draft.revision != revision:
        messages.error(
            request,
            f"The draft changed since you looked at it (now revision {draft.revision}): "
            "nothing was discarded.",
        )
    elif draft_discard(obj):
        messages.success(request, f"Discarded the draft of {obj}; the published email stays.")
    else:
        messages.info(request, f"{obj} had no draft.")
    return redirect(_change_url(model_admin, obj))


def _seen_revision(request) -> int | None:
    """The draft revision the page showed (its forms post it), or None."""
    return int_or_none(request.POST.get("draft_revision"))


def _change_url(model_admin, obj) -> str:
    return reverse(f"admin:emails_{model_admin.model._meta.model_name}_change", args=[obj.pk])


def _target_locale(request) -> str | None:
    try:
        return normalize_locale(request.POST.get("translate_locale", ""))
    except ValueError:
        messages.error(request, "Enter the language to translate into, e.g. nl or pt-BR.")
        return None


@require_POST
def translate(request, model_admin, object_id):
    """ "Translate into…": the other locale as a draft copied from this template."""
    source = get_object_or_404(Template, pk=object_id)
    if not request.user.has_perms(TRANSLATE_PERMISSIONS):
        raise PermissionDenied
    locale = _target_locale(request)
    if locale is None or locale == source.locale:
        return redirect("admin:emails_template_change", source.pk)
    template, made = translation_start(source, locale, user=request.user)
    if made:
        messages.success(
            request,
            f"{template} is a draft copied from {source.locale}: translate it, then publish. "
            "Until then it serves no email.",
        )
    else:
        messages.info(request, f"{template} exists already; here it is.")
    url = reverse("admin:emails_template_change", args=[template.pk])
    return redirect(f"{url}?source={source.pk}")


@require_POST
def translate_all(request, model_admin):
    """Coverage's "Translate from <default>": a draft in the asked-for locale of every usage
    type that has a template in the source locale and none in that one."""
    if not request.user.has_perms(TRANSLATE_PERMISSIONS):
        raise PermissionDenied
    locale = _target_locale(request)
    try:
        source_locale = normalize_locale(request.POST.get("source_locale", ""))
    except ValueError:
        source_locale = None
        messages.error(request, "Choose the language to translate from, e.g. en.")
    if locale is not None and source_locale is not None:
        made = [
            template
            # The unscoped templates: an application's or organization's own overrides are
            # translated from their own pages.
            for source in Template.objects.filter(
                locale=source_locale,
                enabled=True,
                published_at__isnull=False,
                application_id="",
                organization_id="",
            )
            for template, new in [translation_start(source, locale, user=request.user)]
            if new
        ]
        messages.success(
            request,
            f"Made {len(made)} draft(s) in {locale} copied from {source_locale}; they serve no "
            "email until published.",
        )
    return redirect("admin:emails_template_coverage")
