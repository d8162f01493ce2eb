"""Mailroom settings. The environment is read here, once, at the top; nothing else reads it.

Every variable is listed in README.md's configuration table.
"""

import os
import tempfile
from datetime import timedelta
from pathlib import Path

import environ
from csp.constants import NONE, SELF, UNSAFE_INLINE
from django.core.exceptions import ImproperlyConfigured
from whitenoise.compress import Compressor

from project.metrics_files import DEFAULT_DIRECTORY as DEFAULT_METRICS_DIRECTORY
from project.providers import (
    amazon_ses_client_params,
    anymail_settings_from_env,
    email_providers_from,
)

BASE_DIR = Path(__file__).resolve().parent.parent
if not (BASE_DIR / "manage.py").is_file():
    raise ImproperlyConfigured(
        f"Mailroom runs from its checkout, not from {BASE_DIR}: clone it and "
        "`pip install -e .` there (README, Production)."
    )

env = environ.Env()

DEBUG = env.bool("DJANGO_DEBUG", default=False)
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off.")
    SECRET_KEY = "insecure-development-key-do-not-use-in-production"  # noqa: S105
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

# --- HTTPS (production serves only HTTPS, behind a TLS-terminating proxy) -------------------
# Safe defaults with debug off, so `manage.py check --deploy` is clean; each can be turned off.
# Behind a proxy, DJANGO_SECURE_PROXY_SSL_HEADER names the header it sets (X-Forwarded-Proto)
# to say the client used HTTPS: only a proxy that always sets (or strips) it may be trusted.
_proxy_ssl_header = env.str("DJANGO_SECURE_PROXY_SSL_HEADER", default="")
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_" + _proxy_ssl_header.upper().replace("-", "_"), "https") if _proxy_ssl_header else None
)
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=not DEBUG)
# Machine clients are answered where they call: a redirect cannot protect what a POST has
# already sent in the clear, and it would drop Logto's Authorization header. Browsers (the
# admin, designer links, Swagger UI at /api/docs/) are redirected to HTTPS.
SECURE_REDIRECT_EXEMPT = [r"^api/logto/email/?$", r"^api/v1/", r"^anymail/"]
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=0 if DEBUG else 31_536_000)
# HSTS sent by mailroom.example.com covers it and its own subdomains, not its siblings.
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
# Preloading is the domain owner's decision (it binds the whole registered domain, for
# months): off unless asked, and Django's reminder about it (security.W021) is silenced.
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=False)
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]
SESSION_COOKIE_SECURE = env.bool("DJANGO_SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("DJANGO_CSRF_COOKIE_SECURE", default=not DEBUG)

# --- Logto's HTTP Email connector ----------------------------------------------------------
# The exact "Authorization Header" value(s) typed into Logto, comma-separated for rotation.
LOGTO_AUTHORIZATION = [
    value.strip()
    for value in env.str("LOGTO_AUTHORIZATION", default="").split(",")
    if value.strip()
]
EMAILS_DEFAULT_LOCALE = env.str("EMAILS_DEFAULT_LOCALE", default="en")
# Publishing a template's draft needs a reviewer's approval of that draft revision, given on
# a preview link (emails/content/drafts.py).
EMAILS_PUBLISH_REQUIRES_APPROVAL = env.bool("EMAILS_PUBLISH_REQUIRES_APPROVAL", default=False)
# How far (CLDR language distance, emails/locales.py) a stored locale may be from the one asked
# for and still serve it instead of the default: 9 allows other regions and scripts' likely
# forms of the same language (pt -> pt-BR, en-AU -> en-GB), not other languages (nb -> da 12).
EMAILS_LOCALE_MAX_DISTANCE = env.int("EMAILS_LOCALE_MAX_DISTANCE", default=9)
if not 0 <= EMAILS_LOCALE_MAX_DISTANCE <= 100:
    raise ImproperlyConfigured("EMAILS_LOCALE_MAX_DISTANCE must be between 0 and 100.")
# A Logto body is ~1 KiB; 64 KiB leaves room for invitation callers' own keys.
EMAILS_MAX_BODY_BYTES = env.int("EMAILS_MAX_BODY_BYTES", default=64 * 1024)
EMAILS_MAX_VALUE_LENGTH = env.int("EMAILS_MAX_VALUE_LENGTH", default=4096)
# Which templates exist is read once per this many seconds per process, not per request; an
# edit in another process (the admin's) reaches the endpoint within it.
EMAILS_TEMPLATE_CACHE_SECONDS = env.float("EMAILS_TEMPLATE_CACHE_SECONDS", default=2.0)

# --- Delivery ------------------------------------------------------------------------------
# A Logto verification code lives 600 s by default. A code email is never sent after that
# (status "expired"), and retries stop before it.
EMAILS_CODE_TTL = env.int("EMAILS_CODE_TTL", default=600)
# A request identical to a sent one is the same email within this many seconds (a retry),
# a deliberate resend after it; one still queued or sending is always the same email.
EMAILS_DEDUP_SECONDS = env.int("EMAILS_DEDUP_SECONDS", default=60)
# Emails without a code (invitations) are retried for this long.
EMAILS_RETRY_WINDOW = env.int("EMAILS_RETRY_WINDOW", default=3600)
EMAILS_MAX_ATTEMPTS = env.int("EMAILS_MAX_ATTEMPTS", default=6)
EMAILS_RETRY_BASE_DELAY = env.float("EMAILS_RETRY_BASE_DELAY", default=5.0)
# Hard limit on one delivery task; a message "sending" for longer than EMAILS_SENDING_TIMEOUT
# (default twice the limit) cannot still be in flight, so the sweeper hands it out again.
EMAILS_SEND_TIME_LIMIT = env.int("EMAILS_SEND_TIME_LIMIT", default=60)
EMAILS_SENDING_TIMEOUT = env.int("EMAILS_SENDING_TIMEOUT", default=2 * EMAILS_SEND_TIME_LIMIT)
EMAILS_SWEEP_INTERVAL = env.float("EMAILS_SWEEP_INTERVAL", default=30.0)
# A queued message nobody claimed for this long is published again (lost publish, broker down).
EMAILS_REPUBLISH_AFTER = env.int("EMAILS_REPUBLISH_AFTER", default=60)
# With PostgreSQL and a broker, workers learn of new messages from the database (LISTEN/NOTIFY,
# see emails/delivery/relay.py) and the web request never talks to the broker. Off: publish
# per message.
EMAILS_RELAY = env.bool("EMAILS_RELAY", default=True)
EMAILS_RELAY_POLL = env.float("EMAILS_RELAY_POLL", default=5.0)
EMAILS_RELAY_COALESCE = env.float("EMAILS_RELAY_COALESCE", default=0.02)
# Worker sessions commit without waiting for the disk (emails/signals.py). A session setting:
# turn it off when workers reach PostgreSQL through a transaction-pooling PgBouncer, where it
# would stay on a pooled connection that a web process may use next.
EMAILS_WORKER_ASYNC_COMMIT = env.bool("EMAILS_WORKER_ASYNC_COMMIT", default=True)
EMAILS_RETENTION_DAYS = env.int("EMAILS_RETENTION_DAYS", default=30)
EMAILS_PREVIEW_LINK_DAYS = env.int("EMAILS_PREVIEW_LINK_DAYS", default=7)
# Previews (admin editor, designer links) show no remote image, font or stylesheet unless this
# is on: a template could otherwise learn each viewer's IP address from a remote image. The
# configured EMAILS_BRAND_LOGO_URL is always allowed (an operator's setting, not an author's).
EMAILS_PREVIEW_REMOTE_IMAGES = env.bool("EMAILS_PREVIEW_REMOTE_IMAGES", default=False)
# Admin test sends go to the requesting staff user's own address, or to these addresses and
# @domains ("@example.com,designer@agency.example"); at most EMAILS_TEST_SEND_LIMIT per user.
EMAILS_TEST_RECIPIENTS = env.list("EMAILS_TEST_RECIPIENTS", default=[])
EMAILS_TEST_SEND_LIMIT = env.str("EMAILS_TEST_SEND_LIMIT", default="20/3600")
# The brand shown when Logto's payload names none (no application or organization branding).
EMAILS_BRAND_NAME = env.str("EMAILS_BRAND_NAME", default="")
EMAILS_BRAND_LOGO_URL = env.str("EMAILS_BRAND_LOGO_URL", default="")
EMAILS_COMPANY_INFO = env.str("EMAILS_COMPANY_INFO", default="")
# The admin's brand settings (emails.models.Brand) override those three. An uploaded logo is
# stored with Django's default storage (files under DJANGO_MEDIA_ROOT) and served by this
# server at /brand/…; emails can only point at it with this server's public address.
EMAILS_PUBLIC_URL = env.str("EMAILS_PUBLIC_URL", default="")
# "<count>/<seconds>"; Logto itself allows 10 sends per recipient per 10 minutes.
EMAILS_RATE_LIMIT_RECIPIENT = env.str("EMAILS_RATE_LIMIT_RECIPIENT", default="15/600")
EMAILS_RATE_LIMIT_IP = env.str("EMAILS_RATE_LIMIT_IP", default="300/600")

# --- Email provider ------------------------------------------------------------------------
# One provider, or an ordered failover list ("postmark,amazon_ses,smtp"): name -> backend.
EMAIL_PROVIDERS = email_providers_from(env.str("EMAIL_PROVIDER", default="console"))
EMAIL_PROVIDER = next(iter(EMAIL_PROVIDERS))  # the first: the one used while all is well
EMAIL_BACKEND = EMAIL_PROVIDERS[EMAIL_PROVIDER]
ANYMAIL = anymail_settings_from_env(os.environ)
# Consecutive provider failures that open its circuit (the next provider takes over), and
# seconds before one email probes it again (emails/delivery/circuits.py). Failover needs
# two providers or more; one provider is retried with backoff, as always.
EMAILS_FAILOVER_AFTER = env.int("EMAILS_FAILOVER_AFTER", default=3)
EMAILS_FAILOVER_COOLDOWN = env.float("EMAILS_FAILOVER_COOLDOWN", default=30.0)
# A send that timed out may have been delivered: is the next provider tried at once anyway?
# "codes" (emails with a verification code, which die in minutes), "true" (every email),
# "false" (none: it is retried on the same provider, with backoff).
EMAILS_FAILOVER_ON_TIMEOUT = env.str("EMAILS_FAILOVER_ON_TIMEOUT", default="codes").lower()
if EMAILS_FAILOVER_ON_TIMEOUT not in ("codes", "true", "false"):
    raise ImproperlyConfigured(
        f"EMAILS_FAILOVER_ON_TIMEOUT={EMAILS_FAILOVER_ON_TIMEOUT!r} must be codes, true or false"
    )
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Mailroom <no-reply@localhost>")
# The domains a template or sender profile may send from ("acme.example,beta.example");
# empty: any. The provider must have verified them, or emails bounce or land in spam.
EMAILS_ALLOWED_FROM_DOMAINS = [
    domain.strip().lower().lstrip("@")
    for domain in env.list("EMAILS_ALLOWED_FROM_DOMAINS", default=[])
    if domain.strip()
]
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
EMAIL_USE_SSL = env.bool("EMAIL_USE_SSL", default=False)
# Seconds one provider may take to answer: SMTP, and every anymail provider unless
# ANYMAIL_REQUESTS_TIMEOUT says otherwise. Short, so that a hung provider hands the email to
# the next one while its code lives (and every provider of the list fits in one task).
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)
ANYMAIL.setdefault("REQUESTS_TIMEOUT", EMAIL_TIMEOUT)
if "amazon_ses" in EMAIL_PROVIDERS:
    ANYMAIL["AMAZON_SES_CLIENT_PARAMS"] = amazon_ses_client_params(
        ANYMAIL.get("AMAZON_SES_CLIENT_PARAMS"), EMAIL_TIMEOUT
    )
# A private CA for the SMTP server only (emails/delivery/smtp.py); SSL_CERT_FILE is process-wide.
EMAIL_SSL_CAFILE = env.str("EMAIL_SSL_CAFILE", default="")

# Operations (emails/operations/): GET /metrics needs "Authorization: Bearer <token>"; without a
# token it is off in production (404) and open with DJANGO_DEBUG on. gunicorn's and the Celery
# worker's processes write their values under this directory (one subdirectory per role):
# give both the same one on a host. (Not a systemd PrivateTmp: use /run or /var/lib.)
EMAILS_METRICS_TOKEN = env.str("EMAILS_METRICS_TOKEN", default="")
# (Read as gunicorn's config reads it: no "$VAR" expansion, the same folder for both.)
EMAILS_METRICS_DIR = os.environ.get("EMAILS_METRICS_DIR") or DEFAULT_METRICS_DIRECTORY
# The queue's depth and age are read from the database at most this often per process.
EMAILS_METRICS_QUEUE_CACHE = env.float("EMAILS_METRICS_QUEUE_CACHE", default=5.0)
# Logs: "plain" lines, or "json" (one object per line, with message_id on lines about a message).
EMAILS_LOG_FORMAT = env.str("EMAILS_LOG_FORMAT", default="plain").lower()
if EMAILS_LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured("EMAILS_LOG_FORMAT must be plain or json.")

# --- Celery --------------------------------------------------------------------------------
_broker_url = env.str("CELERY_BROKER_URL", default="")
# No broker: run tasks in-process right after commit, so the one-command dev setup needs no
# Redis. Never use this in production: the request then waits for the provider.
CELERY_TASK_ALWAYS_EAGER = not _broker_url
# (Celery still takes a producer from the pool in eager mode: "memory://" without a host made
# kombu warn "No hostname was supplied" with every email.)
CELERY_BROKER_URL = _broker_url or "memory://localhost/"
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_TASK_DEFAULT_QUEUE", default="mailroom")
CELERY_TASK_IGNORE_RESULT = True
# Ack after the task ran, and give the message back if the worker process dies, so a crash
# mid-send leaves the message to another worker (the claim on the record stops a double send).
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# One message at a time per process: a prefetched message would wait behind a slow send.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Sending is waiting: a provider's API answers in 100-400 ms, during which a worker process
# does nothing else. Celery's default (one process per core) sends at most ~13 emails a
# second on 2 cores at 150 ms each, fewer than a busy Logto asks for (docs/benchmarks.md,
# "Side by side"). Eight per core (the cores this process may run on, as gunicorn counts
# them), at most 16: each is one more database connection and ~60-80 MB of its own.
try:
    _cores = len(os.sched_getaffinity(0))
except AttributeError:  # not Linux
    _cores = os.cpu_count() or 1
CELERY_WORKER_CONCURRENCY = env.int("CELERY_WORKER_CONCURRENCY", default=min(16, 8 * _cores))
# In JSON, the worker's lines (Celery's own included) go through LOGGING below, not Celery's.
CELERY_WORKER_HIJACK_ROOT_LOGGER = EMAILS_LOG_FORMAT != "json"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Publishing happens on the request path: fail fast if Redis is unreachable rather than make
# Logto's user wait (the stored message is picked up later).
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "socket_connect_timeout": 1,
    "socket_timeout": 5,
    # kombu's default is to retry a lost connection with 2 s, 4 s, ... pauses before giving
    # up, inside the request. One immediate retry, then the stored message waits for the
    # sweeper. (Workers reconnect by their own policy, broker_connection_max_retries.)
    "max_retries": 1,
    "interval_start": 0,
    # Redis hands an unacknowledged task to another worker after this long. It must be longer
    # than any retry countdown (tasks wait out their countdown unacknowledged) and than a send;
    # a task handed out twice anyway is harmless: the claim on the record lets one through.
    "visibility_timeout": 900,
}
CELERY_BROKER_CONNECTION_TIMEOUT = 1
# No delivery runs forever: a provider that hangs is cut off (soft limit first, so the
# message is put back for a retry), and the sweeper's sending timeout is longer than this.
CELERY_TASK_TIME_LIMIT = EMAILS_SEND_TIME_LIMIT
CELERY_TASK_SOFT_TIME_LIMIT = max(1, EMAILS_SEND_TIME_LIMIT * 3 // 4)
# Celery's Django fixup closes the database connection around every task, so each email would
# pay for a new PostgreSQL connection. Keep connections as web requests do: emails/signals.py
# runs Django's close_old_connections() (CONN_MAX_AGE, health checks) before each task instead.
CELERY_DB_REUSE_MAX = 1_000_000
# Beat keeps when each job last ran in a file; the default folder exists (or is created) on any
# machine. One beat per deployment.
CELERY_BEAT_SCHEDULER = "project.beat.Scheduler"
CELERY_BEAT_SCHEDULE_FILENAME = env.str(
    "CELERY_BEAT_SCHEDULE_FILENAME",
    default=os.path.join(tempfile.gettempdir(), f"mailroom-{os.getuid()}", "celerybeat-schedule"),
)
CELERY_BEAT_SCHEDULE = {
    "sweep-messages": {"task": "emails.tasks.sweep_messages", "schedule": EMAILS_SWEEP_INTERVAL},
    "purge-old-messages": {"task": "emails.tasks.purge_old_messages", "schedule": 3600.0},
}

# --- Django --------------------------------------------------------------------------------
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "simple_history",
    "anymail",
    "csp",
    "axes",
    "emails",
]

MIDDLEWARE = [
    # /healthz and /readyz, answered before the host check and the HTTPS redirect: probes
    # come by IP over plain HTTP (emails/operations/health.py).
    "emails.operations.health.HealthMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Static files from the app itself (admin, editor, Swagger UI): compressed, hashed names,
    # cached for ten years. A CDN or proxy in front may cache them, or serve STATIC_ROOT itself.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Records who made each template/layout version.
    "simple_history.middleware.HistoryRequestMiddleware",
    "csp.middleware.CSPMiddleware",
    # Last, as django-axes asks: counts failed admin logins and locks out (429).
    "axes.middleware.AxesMiddleware",
]

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Admin login throttling (django-axes; its own variable names): after AXES_FAILURE_LIMIT
# failed logins for one username from one IP address, that pair is locked out for
# AXES_COOLOFF_TIME hours. The address is REMOTE_ADDR, never a forwarded header a client can
# invent; behind a proxy that makes the lockout one per username (README, "Security model").
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(hours=env.float("AXES_COOLOFF_TIME", default=1.0))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True

# Every HTML page we serve (admin, designer previews, Swagger UI) runs only scripts from our
# own static files: no inline script, no eval, nothing from another origin. Inline styles are
# allowed (the admin uses style attributes); rendered email HTML is never part of these pages,
# it is served to a sandboxed iframe with a policy of its own (emails/backoffice/editor.py).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [NONE],
        "script-src": [SELF],
        "style-src": [SELF, UNSAFE_INLINE],
        "img-src": [SELF, "data:"],
        "font-src": [SELF, "data:"],
        "connect-src": [SELF],
        "frame-src": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [SELF],
        "base-uri": [NONE],
        "object-src": [NONE],
    }
}

ROOT_URLCONF = "project.urls"
WSGI_APPLICATION = "project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if "sqlite" in DATABASES["default"]["ENGINE"]:
    # The message table's covering index (emails_message_fallback_idx) is a plain index on
    # SQLite, which has no INCLUDE: the same results, only not read from the index alone.
    SILENCED_SYSTEM_CHECKS.append("models.W040")
if "postgresql" in DATABASES["default"]["ENGINE"]:
    # A database host that does not answer at all costs 5 s, not the system's minutes of TCP
    # retries, for each request and each /readyz probe (?connect_timeout=N overrides it).
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("connect_timeout", 5)
    # A host that stops answering an open connection (a partition, a dead VM) fails the
    # query after 10 s of unacknowledged data, not the system's ~15 minutes of TCP retries
    # (libpq's tcp_user_timeout, milliseconds; ?tcp_user_timeout=N overrides it).
    DATABASES["default"]["OPTIONS"].setdefault("tcp_user_timeout", 10000)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# `manage.py collectstatic` writes here: hashed, gzip and brotli copies, and the manifest
# that {% static %} reads (a page fails loudly rather than point at a missing file).
STATIC_ROOT = env.path("DJANGO_STATIC_ROOT", default=BASE_DIR / "staticfiles")
# Uploaded brand logos (the default storage). Mailroom serves them itself (/brand/…).
MEDIA_ROOT = env.path("DJANGO_MEDIA_ROOT", default=BASE_DIR / "media")
MEDIA_URL = "media/"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
# Source maps (14 MB of Swagger UI's and ReDoc's) are for a developer's tools, not worth
# compressing at every deploy: collectstatic takes 15 s instead of 45 s on 2 cores.
WHITENOISE_SKIP_COMPRESS_EXTENSIONS = (
    *Compressor.SKIP_COMPRESS_EXTENSIONS,
    "map",
)

# Logto's endpoint is served with and without the slash by its own URL patterns; nothing here
# may answer it with a redirect (a redirect drops Logto's Authorization header).
APPEND_SLASH = True

REST_FRAMEWORK = {
    # Logto's endpoint sets its own; the management API (emails/content/management_api.py)
    # uses tokens.
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Mailroom management API",
    "DESCRIPTION": "Email templates and layouts as code: list, create, update, delete, render "
    "and validate. Token authentication (`Authorization: Token <key>`) with model permissions."
    '\n\nEvery error answer is `{"message": ..., "field"?: ..., "problems"?: [...]}`. '
    "400: the request does not match this schema (a request it allows is never a 400). "
    "409: a unique field is taken, or what a delete would remove is still used. 422: "
    "well-formed, but not an email that can be sent (template errors with their line, "
    "variables Logto does not send, a layout without `{{ content }}`, ids of nothing).",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # Request and response components of their own: read-only fields (id, version, dates)
    # only in answers, minLength only in requests, and what answers always carry required.
    "COMPONENT_SPLIT_REQUEST": True,
    # Tags and operation ids from the path after it: templates, layouts, render, validate.
    "SCHEMA_PATH_PREFIX": r"/api/v1/",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

_LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        # One JSON object per line: time, level, logger, message, and the fields a line passes
        # in `extra` (message_id, state, provider on the lines about an email).
        "json": {
            "()": "project.logfilters.JsonFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    # A designer's preview link is a bearer secret in the URL path; Django logs the path of
    # every 4xx answer (and runserver every request): it is written as /preview/<token>/.
    "filters": {"preview_tokens": {"()": "project.logfilters.RedactPreviewTokens"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": EMAILS_LOG_FORMAT,
            "filters": ["preview_tokens"],
        }
    },
    "root": {"handlers": ["console"], "level": _LOG_LEVEL},
    # Django's own loggers (4xx paths, runserver's request lines) through the same filter.
    "loggers": {
        "django": {"handlers": ["console"], "level": _LOG_LEVEL, "propagate": False},
        "django.server": {"handlers": ["console"], "level": _LOG_LEVEL, "propagate": False},
    },
}
