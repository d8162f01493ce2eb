"""Turn the provider environment variables into Django/anymail settings.

Pure functions of a mapping of environment variables, called once from settings.py, so that
switching provider is a restart with other env and the mapping can be tested without a process.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from django.core.exceptions import ImproperlyConfigured

# anymail's own backend names (anymail/backends/<name>.py). "sendinblue" is anymail's old
# name for Brevo and is left out on purpose: new deployments should say "brevo".
ANYMAIL_PROVIDERS = (
    "amazon_ses",
    "brevo",
    "mailersend",
    "mailgun",
    "mailjet",
    "mailtrap",
    "mandrill",
    "postal",
    "postmark",
    "resend",
    "scaleway",
    "sendgrid",
    "sparkpost",
    "unisender_go",
)
DJANGO_PROVIDERS = {
    "console": "django.core.mail.backends.console.EmailBackend",
    "smtp": "django.core.mail.backends.smtp.EmailBackend",
}
PROVIDERS = (*DJANGO_PROVIDERS, *ANYMAIL_PROVIDERS)


def email_backend_for(provider: str) -> str:
    """Return the EMAIL_BACKEND dotted path for an EMAIL_PROVIDER value.

    Raises ImproperlyConfigured (which stops start-up) naming every valid value.
    """
    name = provider.strip().lower()
    if name in DJANGO_PROVIDERS:
        return DJANGO_PROVIDERS[name]
    if name in ANYMAIL_PROVIDERS:
        return f"anymail.backends.{name}.EmailBackend"
    raise ImproperlyConfigured(
        f"EMAIL_PROVIDER={provider!r} is not a known provider. "
        f"Valid values: {', '.join(PROVIDERS)}."
    )


def _setting_value(raw: str):
    """anymail settings are mostly strings, but a few are booleans, numbers or dicts
    (e.g. ANYMAIL_SEND_DEFAULTS, ANYMAIL_AMAZON_SES_CLIENT_PARAMS): accept JSON for those."""
    text = raw.strip()
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    if text[:1] in ("{", "["):
        try:
            return json.loads(text)
        except ValueError as exc:
            raise ImproperlyConfigured(f"could not parse JSON value: {exc}") from None
    return raw


def anymail_settings_from_env(environ: Mapping[str, str]) -> dict:
    """Every ANYMAIL_<NAME> env var becomes ANYMAIL["<NAME>"]."""
    settings = {}
    for key, raw in environ.items():
        if key.startswith("ANYMAIL_") and len(key) > len("ANYMAIL_"):
            name = key[len("ANYMAIL_") :]
            try:
                settings[name] = _setting_value(raw)
            except ImproperlyConfigured as exc:
                raise ImproperlyConfigured(f"{key}: {exc}") from None
    return settings
