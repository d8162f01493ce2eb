"""Can the configured email provider send at all? One answer for `manage.py check`
(emails.E002) and for the start-up of the web and the worker (project/wsgi.py,
project/celery.py), so they never disagree.

``provider_problem()`` builds each backend the way delivery does (``get_connection()``: anymail
backends raise when a required setting is missing) and checks what building leaves to the
first send:
- amazon_ses: boto3 finds credentials and a region, with the session and client params
  anymail uses (ANYMAIL_AMAZON_SES_SESSION_PARAMS, ANYMAIL_AMAZON_SES_CLIENT_PARAMS);
- smtp: EMAIL_SSL_CAFILE, when set, is a readable CA bundle, and TLS is on to use it.
It never talks to the provider: a provider that is down is a reason to retry, not to refuse to
start. Reasons name settings, never their values.

``is_configuration_error()`` tells delivery which send failures an operator must fix (missing
settings, credentials or region, a certificate that does not verify): delivery retries those
like a provider outage, and logs each at ERROR.
"""

from __future__ import annotations

import re
import ssl

from botocore.exceptions import (
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ProfileNotFound,
)
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

_CONFIGURATION_ERRORS = (
    ImproperlyConfigured,  # AnymailConfigurationError (a required setting is missing) included
    ssl.SSLCertVerificationError,
    NoCredentialsError,
    PartialCredentialsError,
    NoRegionError,
    ProfileNotFound,
)

# anymail's text for a missing setting speaks of settings.py; here every setting is a variable.
_ANYMAIL_MISSING = re.compile(r"You must set ANYMAIL = \{'(?P<name>\w+)': \.\.\.\}")


def provider_problem() -> str | None:
    """Why a configured provider cannot send, in one line starting with
    ``EMAIL_PROVIDER=<value>: ``; None when every one can (as far as can be told without
    sending). In a failover list each provider is checked, and each problem names its
    provider: a fallback that cannot send would only be found in an outage."""
    providers = settings.EMAIL_PROVIDERS
    problems = [
        (name, reason) for name, backend in providers.items() if (reason := _problem(backend))
    ]
    if not problems:
        return None
    value = ",".join(providers)
    if len(providers) == 1:
        return f"EMAIL_PROVIDER={value}: {problems[0][1]}"
    return f"EMAIL_PROVIDER={value}: " + "; ".join(f"{name}: {reason}" for name, reason in problems)


def _problem(backend_path: str) -> str | None:
    from django.core.mail import get_connection

    try:
        backend = get_connection(backend_path, fail_silently=False)
        return _amazon_ses_problem(backend) or _smtp_problem(backend)
    except Exception as exc:
        return configuration_message(exc)


def configuration_message(exc: BaseException) -> str:
    """One line for an operator, e.g. "ANYMAIL_SENDGRID_API_KEY is not set"."""
    text = " ".join(str(exc).split())
    if missing := _ANYMAIL_MISSING.search(text):
        return f"ANYMAIL_{missing['name']} is not set"
    if isinstance(exc, NoRegionError):
        return (
            "no AWS region: set AWS_DEFAULT_REGION, or region_name in "
            "ANYMAIL_AMAZON_SES_CLIENT_PARAMS"
        )
    if isinstance(exc, ImproperlyConfigured) and text:
        return text  # anymail's and ours: they name settings, not their values
    if isinstance(exc, ProfileNotFound | ssl.SSLError):
        return f"{type(exc).__name__}: {text}"  # a profile's name; what TLS verification said
    if isinstance(exc, ValueError) and text.startswith("EMAIL_USE_TLS/EMAIL_USE_SSL"):
        return text  # Django's SMTP backend, naming its settings
    # Other libraries' texts may quote a value (botocore: "Invalid endpoint: <the URL>"), and
    # ANYMAIL_AMAZON_SES_CLIENT_PARAMS may hold a secret key: the class only.
    return (
        f"{type(exc).__name__} while building the backend from its settings "
        "(its text is not shown: it may quote a setting's value)"
    )


def is_configuration_error(exc: BaseException) -> bool:
    """Whether the failure, or what caused it, is a setting an operator must fix."""
    seen = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, _CONFIGURATION_ERRORS):
            return True
        seen.add(id(current))
        # requests raises its SSLError while handling urllib3's (context, not cause).
        current = current.__cause__ or current.__context__
    return False


def _amazon_ses_problem(backend) -> str | None:
    from anymail.backends.amazon_ses import EmailBackend as AmazonSESBackend

    if not isinstance(backend, AmazonSESBackend):
        return None
    import boto3

    # As anymail's open() does, with the params it read (may raise ProfileNotFound).
    session = boto3.session.Session(**backend.session_params)
    explicit = backend.client_params.get("aws_access_key_id") and backend.client_params.get(
        "aws_secret_access_key"
    )
    # Credentials are looked up (environment, config files, container or instance role) only
    # here; the client below reuses them, and a partial pair in client params raises there.
    if not explicit and session.get_credentials() is None:
        return (
            "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or "
            "AWS_PROFILE, or run with an IAM role"
        )
    session.client("sesv2", **backend.client_params).close()  # NoRegionError without a region
    return None


def _smtp_problem(backend) -> str | None:
    from emails.delivery.smtp import EmailBackend as SMTPBackend

    if not isinstance(backend, SMTPBackend) or not settings.EMAIL_SSL_CAFILE:
        return None
    if not (backend.use_tls or backend.use_ssl):
        return (
            "EMAIL_SSL_CAFILE is set but neither EMAIL_USE_TLS nor EMAIL_USE_SSL is on: "
            "mail would go unencrypted and the CA would never be used"
        )
    backend.ssl_context  # noqa: B018  (raises ImproperlyConfigured for a bad CA file)
    return None
