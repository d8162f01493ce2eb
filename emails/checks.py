"""System checks: bad settings are reported at start-up, not at the first request or send."""

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register
from django.core.exceptions import ImproperlyConfigured


@register(Tags.security)
def check_logto_authorization(app_configs, **kwargs):
    if settings.LOGTO_AUTHORIZATION or settings.DEBUG:
        return []
    return [
        Error(
            "LOGTO_AUTHORIZATION is not set, so /api/logto/email refuses every request.",
            hint="Set it to the exact value typed into Logto's 'Authorization Header' field, "
            "e.g. LOGTO_AUTHORIZATION='Bearer <random token>'.",
            id="emails.E001",
        )
    ]


@register()
def check_email_provider(app_configs, **kwargs):
    """anymail backends check their required settings when built: build one now."""
    from django.core.mail import get_connection

    try:
        get_connection()
    except ImproperlyConfigured as exc:
        return [
            Error(
                f"EMAIL_PROVIDER={settings.EMAIL_PROVIDER} is missing settings: {exc}",
                hint="Every ANYMAIL_<NAME> environment variable becomes ANYMAIL['<NAME>'].",
                id="emails.E002",
            )
        ]
    return []


@register()
def check_console_in_production(app_configs, **kwargs):
    if settings.DEBUG or settings.EMAIL_BACKEND != "django.core.mail.backends.console.EmailBackend":
        return []
    return [
        Error(
            "EMAIL_PROVIDER is console (the default): every email, verification codes "
            "included, is printed to the worker's output and none is delivered.",
            hint="Set EMAIL_PROVIDER to your provider (postmark, mailgun, amazon_ses, smtp, ...).",
            id="emails.E005",
        )
    ]


@register()
def check_broker(app_configs, **kwargs):
    if not settings.CELERY_TASK_ALWAYS_EAGER or settings.DEBUG:
        return []
    return [
        Warning(
            "CELERY_BROKER_URL is not set: emails are sent inside Logto's request.",
            hint="Set CELERY_BROKER_URL=redis://... and run `celery -A project worker`.",
            id="emails.W001",
        )
    ]


@register()
def check_delivery_settings(app_configs, **kwargs):
    from emails.intake.ratelimit import Limit

    errors = []
    for name in ("EMAILS_RATE_LIMIT_RECIPIENT", "EMAILS_RATE_LIMIT_IP"):
        try:
            Limit.parse(getattr(settings, name), name=name)
        except ImproperlyConfigured as exc:
            errors.append(Error(str(exc), id="emails.E003"))
    # A deliver_due task starts sends for a quarter of the limit, then gives the last one the
    # whole limit (emails/tasks.py): a message can be "sending" for 1.25 times the limit.
    if settings.EMAILS_SENDING_TIMEOUT <= settings.EMAILS_SEND_TIME_LIMIT * 5 / 4:
        errors.append(
            Error(
                "EMAILS_SENDING_TIMEOUT must be longer than 1.25 × EMAILS_SEND_TIME_LIMIT, or "
                "the sweeper could hand out a message that is still being sent.",
                id="emails.E004",
            )
        )
    return errors
