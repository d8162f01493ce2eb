"""Sample Logto payloads for previews and test sends, per usage type: realistic shapes taken
from Logto's contract (with and without organization, with branding, long names, and a name
carrying markup that must come out escaped).

Sample logos point at a logo bundled with Mailroom (``emails/static/emails/sample-logo.svg``),
never at a remote host: previews allow no remote image by default (EMAILS_PREVIEW_REMOTE_IMAGES),
and a sample must look right there."""

from __future__ import annotations

import copy

from django.templatetags.static import static

from emails.logto import UsageType

SAMPLE_LOGO = "emails/sample-logo.svg"
_LOGO = "https://mailroom.invalid/sample-logo"  # replaced by samples_for's logo_url

APPLICATION = {"id": "a1b2c3d4e5f6g7h8i9j0k", "name": "Acme Web"}
BRANDED_APPLICATION = {
    **APPLICATION,
    "displayName": "Acme",
    "branding": {
        "logoUrl": _LOGO,
        "darkLogoUrl": _LOGO,
    },
}
ORGANIZATION = {
    "id": "org4x8k2m9q1w7e3r5t6y",
    "name": "Acme Corp EU",
    "branding": {"logoUrl": _LOGO},
}
USER = {
    "id": "u7k2m9q1w7e3",
    "name": "Jane Doe",
    "username": "jane",
    "primaryEmail": "jane.doe@example.com",
    "primaryPhone": None,
    "avatar": None,
    "profile": {"givenName": "Jane", "familyName": "Doe"},
}
LONG_NAME = "The International Association of Extraordinarily Long Organization Names and Co."
MARKUP_NAME = "<script>alert('x')</script> Jane & \"Co\""
INVITATION_LINK = "https://app.example.com/invitation/accept/inv_9f8e7d6c5b4a3"

ACCOUNT_TYPES = {
    UsageType.USER_PERMISSION_VALIDATION,
    UsageType.BIND_NEW_IDENTIFIER,
    UsageType.BIND_MFA,
}


def sample_logo_url(request=None) -> str:
    """The bundled sample logo's URL: absolute when there is a request (a test send's email is
    read elsewhere), else the path on this server."""
    path = static(SAMPLE_LOGO)
    return request.build_absolute_uri(path) if request is not None else path


def samples_for(
    usage_type: str, *, locale: str = "en", logo_url: str | None = None
) -> dict[str, dict]:
    """Named sample payloads for ``usage_type`` (ordered, the first is the default), their
    logos at ``logo_url`` (default: sample_logo_url())."""
    if usage_type == UsageType.ORGANIZATION_INVITATION:
        base = {"link": INVITATION_LINK, "locale": locale}
        samples = {
            "Invitation from a person": {**base, "organization": ORGANIZATION, "inviter": USER},
            "Invitation without inviter": {**base, "organization": ORGANIZATION},
            "Long organization name": {
                **base,
                "organization": {**ORGANIZATION, "name": LONG_NAME},
                "inviter": USER,
            },
            "Inviter name with markup": {
                **base,
                "organization": ORGANIZATION,
                "inviter": {**USER, "name": MARKUP_NAME},
            },
        }
    elif usage_type == UsageType.GENERIC:
        samples = {
            "Management API": {"code": "771045"},
            "Console test": {"code": "000000"},
            "With locale": {"code": "771045", "locale": locale},
        }
    else:
        base = {"code": "482913", "locale": locale}
        extra = {"user": USER} if usage_type in ACCOUNT_TYPES else {}
        samples = {
            "Application": {**base, "application": APPLICATION, **extra},
            "Branding and organization": {
                **base,
                "application": BRANDED_APPLICATION,
                "organization": {**ORGANIZATION, "branding": {}},
                **extra,
            },
            "No application": {**base, **extra},
            "Long names": {
                **base,
                "application": {**APPLICATION, "name": LONG_NAME},
                "organization": {**ORGANIZATION, "name": LONG_NAME},
                **extra,
            },
            "Name with markup": {
                **base,
                "application": {**APPLICATION, "name": MARKUP_NAME},
                **extra,
            },
        }
    return _with_logo(copy.deepcopy(samples), logo_url or sample_logo_url())


def _with_logo(value, logo_url: str):
    if isinstance(value, dict):
        return {key: _with_logo(item, logo_url) for key, item in value.items()}
    return logo_url if value == _LOGO else value
