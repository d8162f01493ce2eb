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
    """The provider can be built and has its credentials: the same test that stops the web
    and the worker from starting (emails/delivery/provider_check.py)."""
    from emails.delivery.provider_check import provider_problem

    problem = provider_problem()
    if problem is None:
        return []
    return [
        Error(
            problem,
            hint="Every ANYMAIL_<NAME> environment variable becomes ANYMAIL['<NAME>']; "
            "see README.md, 'Switching providers'.",
            id="emails.E002",
        )
    ]


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


@register()
def check_failover_fits_a_task(app_configs, **kwargs):
    """Every provider of a failover list, each hung for its whole timeout, fits in one
    delivery task: else the task's time limit cuts the email off before the next provider."""
    providers = settings.EMAIL_PROVIDERS
    if len(providers) < 2:
        return []
    total = sum(_send_timeout(path) for path in providers.values())
    if total <= settings.CELERY_TASK_SOFT_TIME_LIMIT:
        return []
    return [
        Warning(
            f"EMAIL_PROVIDER lists {len(providers)} providers whose timeouts add up to "
            f"{total:.0f} s, more than a delivery task may take "
            f"({settings.CELERY_TASK_SOFT_TIME_LIMIT} s): when the first ones hang, the last "
            "ones are not tried in the same attempt.",
            hint="Lower EMAIL_TIMEOUT (and ANYMAIL_REQUESTS_TIMEOUT if set), or raise "
            "EMAILS_SEND_TIME_LIMIT.",
            id="emails.W006",
        )
    ]


def _send_timeout(backend_path: str) -> float:
    """How long one hung try on this provider lasts: its longest single wait (a provider hangs
    while connecting or while answering, not both)."""
    timeout = settings.EMAIL_TIMEOUT
    if backend_path == "anymail.backends.amazon_ses.EmailBackend":
        config = settings.ANYMAIL.get("AMAZON_SES_CLIENT_PARAMS", {}).get("config")
        waits = [getattr(config, name, None) for name in ("connect_timeout", "read_timeout")]
        timeout = max((wait for wait in waits if wait is not None), default=60)  # boto3's
    elif backend_path.startswith("anymail."):
        timeout = settings.ANYMAIL.get("REQUESTS_TIMEOUT", 30)  # anymail's default
    return float(max(timeout) if isinstance(timeout, tuple | list) else timeout)


@register(Tags.database)
def check_sweeper_runs(app_configs, databases=None, **kwargs):
    """`manage.py check --database default`: is celery beat sweeping?"""
    if not databases:
        return []
    from django.db import DatabaseError

    from emails.delivery.sweeper import sweeper_late

    try:
        late = sweeper_late()
    except DatabaseError:
        return []  # not migrated yet, or no database: other checks and commands say so
    if not late:
        return []
    return [Warning(late, id="emails.W003")]


@register(Tags.security)
def check_tracking_webhooks(app_configs, **kwargs):
    """Without a shared secret the webhooks are not served in production
    (emails/delivery/webhooks.py); only providers reached through anymail post them."""
    from emails.delivery.webhooks import webhook_secrets

    anymail = [path for path in settings.EMAIL_PROVIDERS.values() if path.startswith("anymail.")]
    if settings.DEBUG or not anymail:
        return []
    secrets = webhook_secrets()
    if not secrets:
        return [
            Warning(
                "Tracking webhooks are off: ANYMAIL_WEBHOOK_SECRET is not set, so "
                "/anymail/<provider>/tracking/ answers 404 and delivery statuses (delivered, "
                "bounced, complained) are not recorded.",
                hint="Set ANYMAIL_WEBHOOK_SECRET=<random>:<random> and give the provider "
                "https://<random>:<random>@<this host>/anymail/<provider>/tracking/.",
                id="emails.W004",
            )
        ]
    if any(":" not in secret for secret in secrets):
        return [
            Warning(
                "ANYMAIL_WEBHOOK_SECRET is not of the form user:password, so every webhook "
                "post is refused (basic auth always sends both).",
                hint="Set ANYMAIL_WEBHOOK_SECRET=<random>:<random>.",
                id="emails.W005",
            )
        ]
    return []
