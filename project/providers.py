"""Turn the provider environment variables into Django/anymail settings.

Pure functions of a mapping of environment variables, called once from settings.py, so that
switching provider is a restart with other env and the mapping can be tested without a process.

An environment variable is always a string, but anymail reads some settings as booleans,
numbers, dicts or lists and would fail on the string at the first send (``"10"`` as
REQUESTS_TIMEOUT makes every send a ValueError; ``"false"`` is a true value). ANYMAIL_SETTING_TYPES
lists every such setting anymail 15 reads (tests/test_providers.py scans anymail's installed
source and fails when a new one appears); each is converted here, and a value that does not
convert stops start-up with a one-line ImproperlyConfigured naming the variable.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from typing import Any

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
    # Django's SMTP backend, which also trusts EMAIL_SSL_CAFILE (a private CA) when it is set.
    "smtp": "emails.delivery.smtp.EmailBackend",
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


def email_providers_from(value: str) -> dict[str, str]:
    """EMAIL_PROVIDER's names, in order, each with its EMAIL_BACKEND dotted path.

    ``postmark`` is one provider; ``postmark,amazon_ses,smtp`` a failover list: each email goes
    to the first provider whose circuit is closed (emails/delivery/circuits.py). Raises
    ImproperlyConfigured for an unknown, repeated or empty name, and for ``console`` in a
    list (it never fails, so nothing after it would ever be used, and it reaches no inbox).
    """
    names = [name.strip().lower() for name in value.split(",")]
    if any(not name for name in names):
        raise ImproperlyConfigured(
            f"EMAIL_PROVIDER={value!r} has an empty name: write the providers in order, "
            "separated by commas, e.g. EMAIL_PROVIDER=postmark,amazon_ses"
        )
    backends = {name: email_backend_for(name) for name in names}
    if len(backends) < len(names):
        repeated = sorted({name for name in names if names.count(name) > 1})
        raise ImproperlyConfigured(
            f"EMAIL_PROVIDER={value!r} names {', '.join(repeated)} more than once"
        )
    if len(backends) > 1 and "console" in backends:
        raise ImproperlyConfigured(
            f"EMAIL_PROVIDER={value!r}: console cannot be part of a failover list (it never "
            "fails, so the providers after it would never be used, and it delivers nothing)"
        )
    return backends


def amazon_ses_client_params(params: dict | None, timeout: float) -> dict:
    """boto3's client for SES waits 60 s to connect and 60 s for an answer, and retries on
    its own: a hung SES would hold the email for minutes. EMAIL_TIMEOUT bounds each try, as
    for every provider, and Mailroom does the retrying (or the failover). A ``config`` in
    ANYMAIL_AMAZON_SES_CLIENT_PARAMS (a JSON object of botocore Config's arguments) is kept,
    with these as defaults."""
    from botocore.config import Config

    params = dict(params or {})
    given = params.get("config") or {}
    if not isinstance(given, dict):
        raise ImproperlyConfigured(
            "ANYMAIL_AMAZON_SES_CLIENT_PARAMS: config must be a JSON object of botocore "
            'Config arguments, e.g. {"config": {"read_timeout": 10}}'
        )
    defaults = {
        "connect_timeout": timeout,
        "read_timeout": timeout,
        "retries": {"total_max_attempts": 1},
    }
    params["config"] = Config(**{**defaults, **given})
    return params


# --- converters: each takes the variable's name and its text, returns what anymail expects --
# Messages quote the value only for settings that cannot hold a secret (booleans, numbers);
# JSON settings can (AMAZON_SES_CLIENT_PARAMS may carry aws_secret_access_key), so their
# messages say where the JSON is broken, never what it says.

_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")


def _boolean(variable: str, raw: str) -> bool:
    text = raw.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ImproperlyConfigured(f"{variable}={raw!r} must be true or false")


def _positive_integer(variable: str, raw: str) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        value = 0
    if value <= 0:
        raise ImproperlyConfigured(f"{variable}={raw!r} must be a whole number above 0")
    return value


def _seconds(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return seconds if math.isfinite(seconds) and seconds > 0 else None


def _timeout(variable: str, raw: str) -> float | tuple[float, float]:
    """requests' timeout: seconds, or a (connect, read) pair. A list would not do: requests
    takes anything but a tuple for one number and fails at the first send."""
    text = raw.strip()
    if text.startswith("["):
        try:
            pair = json.loads(text)
        except ValueError:
            pair = None
        if isinstance(pair, list) and len(pair) == 2:
            connect, read = (_seconds(item) for item in pair)
            if connect is not None and read is not None:
                return (connect, read)
    elif (seconds := _seconds(text)) is not None:
        return seconds
    raise ImproperlyConfigured(
        f"{variable}={raw!r} must be a number of seconds above 0, "
        "or [connect, read] seconds in JSON"
    )


def _json(variable: str, raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{variable} is not valid JSON: {exc}") from None


def _json_object(variable: str, raw: str) -> dict:
    value = _json(variable, raw)
    if not isinstance(value, dict):
        raise ImproperlyConfigured(f'{variable} must be a JSON object, e.g. {{"key": "value"}}')
    return value


def _string_or_list(variable: str, raw: str) -> str | list[str]:
    """WEBHOOK_SECRET: one "user:password", or a JSON list of them while rotating."""
    if not raw.strip().startswith("["):
        return raw
    value = _json(variable, raw)
    if not (isinstance(value, list) and all(isinstance(item, str) for item in value)):
        raise ImproperlyConfigured(
            f'{variable} must be "user:password" or a JSON list of such strings'
        )
    return value


_Converter = Callable[[str, str], Any]

# Every anymail setting that is not a plain string: the type comes from the default anymail
# passes to get_anymail_setting() (or, for WEBHOOK_SECRET and REQUESTS_TIMEOUT, from its docs).
ANYMAIL_SETTING_TYPES: dict[str, _Converter] = {
    # Every backend (anymail/backends/base.py, base_requests.py).
    "IGNORE_UNSUPPORTED_FEATURES": _boolean,
    "IGNORE_RECIPIENT_STATUS": _boolean,
    "DEBUG_API_REQUESTS": _boolean,
    "SEND_DEFAULTS": _json_object,
    **{f"{provider.upper()}_SEND_DEFAULTS": _json_object for provider in ANYMAIL_PROVIDERS},
    "REQUESTS_TIMEOUT": _timeout,
    # Webhooks (anymail/webhooks/base.py): basic auth, shared by every provider.
    "WEBHOOK_SECRET": _string_or_list,
    # One provider each.
    "AMAZON_SES_SESSION_PARAMS": _json_object,
    "AMAZON_SES_CLIENT_PARAMS": _json_object,
    "AMAZON_SES_AUTO_CONFIRM_SNS_SUBSCRIPTIONS": _boolean,
    "AMAZON_SES_DOWNLOAD_CHUNK_SIZE": _positive_integer,
    "BREVO_WORKAROUND_DISPLAY_NAME_BUGS": _boolean,
    "BREVO_PREVENT_HEADER_ENCODING_BUGS": _boolean,
    "MAILTRAP_DOWNLOAD_CHUNK_SIZE": _positive_integer,
    "POSTMARK_USE_BULK_API": _boolean,
    "POSTMARK_GENERATE_MESSAGE_ID": _boolean,
    "RESEND_VERIFY_ATTACHMENT_EXTENSIONS": _boolean,
    "RESEND_DOWNLOAD_CHUNK_SIZE": _positive_integer,
    "SENDGRID_GENERATE_MESSAGE_ID": _boolean,
    "SPARKPOST_TRACK_INITIAL_OPEN_AS_OPENED": _boolean,
    "UNISENDER_GO_GENERATE_MESSAGE_ID": _boolean,
    "UNISENDER_GO_WORKAROUND_DISPLAY_NAME_BUGS": _boolean,
}


def anymail_setting_value(name: str, raw: str) -> Any:
    """The value anymail expects for ANYMAIL[name], from the text of ANYMAIL_<name>.

    Settings in ANYMAIL_SETTING_TYPES are converted to their type; any other value that
    starts with { or [ is read as JSON (a setting a newer anymail may add); the rest are
    strings, as written. Raises ImproperlyConfigured naming the variable."""
    variable = f"ANYMAIL_{name}"
    converter = ANYMAIL_SETTING_TYPES.get(name)
    if converter is not None:
        return converter(variable, raw)
    if raw.strip()[:1] in ("{", "["):
        return _json(variable, raw)
    return raw


def anymail_settings_from_env(environ: Mapping[str, str]) -> dict:
    """Every ANYMAIL_<NAME> env var becomes ANYMAIL["<NAME>"]."""
    return {
        key[len("ANYMAIL_") :]: anymail_setting_value(key[len("ANYMAIL_") :], raw)
        for key, raw in environ.items()
        if key.startswith("ANYMAIL_") and len(key) > len("ANYMAIL_")
    }
