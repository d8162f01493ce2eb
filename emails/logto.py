"""Logto's side of the contract (../shared/logto/CONTRACT.md): the usage types it sends, in
its own spelling, and which payload keys are secrets. Pure: imports nothing of emails."""

import re
from collections.abc import Mapping

from django.db import models


class UsageType(models.TextChoices):
    """Logto's nine email usage types, spelled exactly as Logto sends them."""

    SIGN_IN = "SignIn", "Sign-in"
    REGISTER = "Register", "Registration"
    FORGOT_PASSWORD = "ForgotPassword", "Forgot password"
    ORGANIZATION_INVITATION = "OrganizationInvitation", "Organization invitation"
    GENERIC = "Generic", "Generic"
    USER_PERMISSION_VALIDATION = "UserPermissionValidation", "User permission validation"
    BIND_NEW_IDENTIFIER = "BindNewIdentifier", "Bind new identifier"
    MFA_VERIFICATION = "MfaVerification", "MFA verification"
    BIND_MFA = "BindMfa", "Bind MFA"


# Payload keys that are secrets: never logged or shown, wiped once a message is final.
SECRET_PAYLOAD_KEYS = ("code", "link")

# Logto's ids (nanoids today); anything else in the payload names no scope.
_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")


def payload_scope(payload: Mapping) -> tuple[str, str]:
    """(application id, organization id) of a payload: Logto's ``application.id`` and
    ``organization.id``, each "" when absent or not an id (Logto drops these objects
    silently when a lookup fails)."""
    return _id_of(payload.get("application")), _id_of(payload.get("organization"))


def payload_scope_names(payload: Mapping) -> dict[str, tuple[str, str]]:
    """{"application": (id, name), "organization": (id, name)} for the objects the payload
    names by a valid id: what the admin's scope picker offers."""
    named = {}
    for kind in ("application", "organization"):
        owner = payload.get(kind)
        logto_id = _id_of(owner)
        if logto_id and isinstance(owner, Mapping):
            name = owner.get("displayName") or owner.get("name")
            named[kind] = (logto_id, name[:200] if isinstance(name, str) else "")
    return named


def is_logto_id(value) -> bool:
    return isinstance(value, str) and _ID.fullmatch(value) is not None


def _id_of(owner) -> str:
    value = owner.get("id") if isinstance(owner, Mapping) else None
    return value if isinstance(value, str) and is_logto_id(value) else ""
