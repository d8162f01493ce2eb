"""Sample Logto payloads for previews and test sends, per usage type: realistic shapes taken
from Logto's contract (with and without organization, with branding, long names, and a name
carrying markup that must come out escaped)."""

from __future__ import annotations

import copy

from emails.models import UsageType

APPLICATION = {"id": "a1b2c3d4e5f6g7h8i9j0k", "name": "Acme Web"}
BRANDED_APPLICATION = {
    **APPLICATION,
    "displayName": "Acme",
    "branding": {
        "logoUrl": "https://cdn.example.com/acme-logo.png",
        "darkLogoUrl": "https://cdn.example.com/acme-logo-dark.png",
    },
}
ORGANIZATION = {
    "id": "org4x8k2m9q1w7e3r5t6y",
    "name": "Acme Corp EU",
    "branding": {"logoUrl": "https://cdn.example.com/acme-eu-logo.png"},
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


def samples_for(usage_type: str, *, locale: str = "en") -> dict[str, dict]:
    """Named sample payloads for ``usage_type`` (ordered, the first is the default)."""
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
    return copy.deepcopy(samples)
