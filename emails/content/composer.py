"""Putting an email together: template (or unsaved form) content + its layout + the payload +
the configured brand, rendered by emails.content.rendering. The one place that reads the
settings rendering needs, so delivery, the admin preview and designers' previews render alike."""

from __future__ import annotations

from collections.abc import Mapping

from django.conf import settings

from emails.content.brand import brand_current
from emails.content.rendering.context import email_context
from emails.content.rendering.render import LayoutSource, RenderedEmail, render_parts
from emails.content.scopes import scope_brand
from emails.models import Layout


def compose(
    *,
    subject: str,
    html: str,
    text: str,
    payload: Mapping,
    locale: str,
    preheader: str = "",
    layout: Layout | None = None,
    brand: Mapping | None = None,
    own_brand: Mapping | None = None,
) -> RenderedEmail:
    """Render one email through rendering's one path (render_parts): the same bytes for
    delivery and every preview. A part that fails is in ``errors``; sending refuses such an
    email, a preview shows them. ``brand``: the saved brand settings unless given (the brand
    page previews unsaved ones); ``own_brand``: the payload's application's or
    organization's saved brand (content/scopes.scope_brand) unless given."""
    context = email_context(
        payload,
        locale=locale,
        brand=brand if brand is not None else brand_current(),
        own_brand=own_brand if own_brand is not None else scope_brand(payload),
        expires_in_minutes=max(1, round(settings.EMAILS_CODE_TTL / 60)),
    )
    source = LayoutSource(html=layout.html, text=layout.text) if layout is not None else None
    return render_parts(
        subject=subject,
        html=html,
        text=text,
        payload=payload,
        preheader=preheader,
        layout=source,
        context=context,
    )


CONTENT_KEYS = ("subject", "html", "text", "preheader", "layout_id")


def template_content(template) -> dict:
    """A saved template's content in the shape compose() and test sends take."""
    return {
        "subject": template.subject,
        "html": template.html_body,
        "text": template.text_body,
        "preheader": template.preheader,
        "layout_id": template.layout_id,
    }


def compose_content(
    content: Mapping,
    *,
    payload: Mapping,
    locale: str,
    layout: Layout | None = None,
    brand: Mapping | None = None,
    own_brand: Mapping | None = None,
) -> RenderedEmail:
    """compose() for a content dict (template_content's shape). Pass ``layout`` when it is
    already loaded; otherwise ``layout_id`` is looked up."""
    if layout is None and content.get("layout_id"):
        layout = Layout.objects.filter(pk=content["layout_id"]).first()
    return compose(
        subject=content["subject"],
        html=content["html"],
        text=content["text"],
        preheader=content.get("preheader") or "",
        layout=layout,
        payload=payload,
        locale=locale,
        brand=brand,
        own_brand=own_brand,
    )
