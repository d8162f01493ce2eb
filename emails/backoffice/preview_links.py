"""Preview links for designers: signed, unguessable, expiring, revocable."""

from __future__ import annotations

from django.core import signing
from django.utils import timezone

from emails.models import PreviewLink

SALT = "emails.preview-link"


class PreviewLinkInvalid(Exception):
    """No such link: a token that does not verify (answered 404)."""


class PreviewLinkGone(Exception):
    """A real link that expired or was revoked (answered 410)."""


def preview_link_create(
    *,
    usage_type: str = "",
    created_by=None,
    template=None,
    locale: str = "",
    content=None,
    application_id: str = "",
    organization_id: str = "",
) -> PreviewLink:
    """A link to the saved templates of ``usage_type`` (blank: all of them) or, with
    ``content``, to those unsaved edits of one template; as the application's and
    organization's users get them when a scope is given."""
    return PreviewLink.objects.create(
        usage_type=usage_type,
        created_by=created_by,
        template=template,
        locale=locale,
        content=content,
        application_id=application_id,
        organization_id=organization_id,
    )


def preview_link_token(link: PreviewLink) -> str:
    """The URL token: the link's id and nonce, signed with SECRET_KEY."""
    return signing.dumps({"id": link.pk, "nonce": link.nonce}, salt=SALT, compress=True)


def preview_link_resolve(token: str) -> PreviewLink:
    """The active link behind ``token``; raises PreviewLinkInvalid or PreviewLinkGone."""
    try:
        data = signing.loads(token, salt=SALT)
        link = PreviewLink.objects.get(pk=int(data["id"]), nonce=str(data["nonce"]))
    except (signing.BadSignature, PreviewLink.DoesNotExist, KeyError, TypeError, ValueError):
        raise PreviewLinkInvalid() from None
    if not link.is_active:
        raise PreviewLinkGone()
    return link


def preview_links_revoke(links) -> int:
    return links.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
