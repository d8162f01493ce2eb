"""Logto's side of the contract (../shared/logto/CONTRACT.md): the usage types it sends, in
its own spelling, and which payload keys are secrets. Pure: imports nothing of emails."""

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
