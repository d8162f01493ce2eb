"""Test settings: production settings with test values on top.

The tests run on the machine's PostgreSQL when it answers (TEST_DATABASE_URL, default
postgres://postgres@127.0.0.1:5432/mailroom; pytest-django creates test_mailroom). On a laptop
without it they fall back to SQLite and the integration tests skip; with CI=true a missing
PostgreSQL is an error, so CI never passes by skipping.
"""

import os
import socket
import tempfile
from urllib.parse import urlsplit

os.environ.setdefault("DJANGO_SECRET_KEY", "tests-only-secret-key")
os.environ["DJANGO_DEBUG"] = "false"

from project.settings import *  # noqa: F403
from project.settings import env

IN_CI = os.environ.get("CI", "").lower() == "true"
TEST_DATABASE_URL = os.environ.get(
    "TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/mailroom"
)


def _reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname, parts.port or 5432), timeout=1):
            return True
    except OSError:
        return False


POSTGRES_AVAILABLE = _reachable(TEST_DATABASE_URL)
if POSTGRES_AVAILABLE:
    DATABASES = {"default": env.db_url_config(TEST_DATABASE_URL)}
elif IN_CI:
    raise RuntimeError(f"CI=true but PostgreSQL at {TEST_DATABASE_URL} does not answer.")
else:
    # A file, not :memory:, so that a test that closes and reopens the connection (or
    # uses another thread) sees the same database.
    _sqlite = os.path.join(tempfile.gettempdir(), f"mailroom-tests-{os.getpid()}.sqlite3")
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": _sqlite,
            "TEST": {"NAME": _sqlite},
        }
    }
DATABASES["default"]["CONN_MAX_AGE"] = 0
# pytest-django's test database is named after this process, so two runs against one
# PostgreSQL (two checkouts, a developer and a CI job) never drop each other's database.
if POSTGRES_AVAILABLE:
    DATABASES["default"]["TEST"] = {"NAME": f"test_{DATABASES['default']['NAME']}_{os.getpid()}"}

# The test client and the live server speak plain HTTP: production's HTTPS settings (tested
# on their own in tests/test_production.py) are off here. {% static %} needs no manifest.
SECURE_SSL_REDIRECT = False
# Uploaded brand logos: a folder of this run, never the checkout.
MEDIA_ROOT = tempfile.mkdtemp(prefix="mailroom-media-")
SECURE_HSTS_SECONDS = 0
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
STORAGES = {
    **STORAGES,  # noqa: F405
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
STATIC_ROOT = os.path.join(tempfile.gettempdir(), "mailroom-tests-static")
os.makedirs(STATIC_ROOT, exist_ok=True)

LOGTO_AUTHORIZATION = ["Bearer test-token"]
# Django's in-memory backend (mail.outbox), under a name of its own; tests/helpers.py's
# use_providers() switches to real anymail backends (a failover list included).
EMAIL_PROVIDERS = {"locmem": "django.core.mail.backends.locmem.EmailBackend"}
EMAIL_PROVIDER = "locmem"
EMAIL_BACKEND = EMAIL_PROVIDERS["locmem"]
ANYMAIL = {}
DEFAULT_FROM_EMAIL = "Acme <no-reply@acme.example>"
EMAILS_DEFAULT_LOCALE = "en"
CELERY_BROKER_URL = "memory://localhost/"
CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = False
# Retries come due at once, so eager (in-process) retries can claim the message again.
EMAILS_RETRY_BASE_DELAY = 0.01
# Tests change templates with queryset updates (no signals): always read them afresh.
EMAILS_TEMPLATE_CACHE_SECONDS = 0
EMAILS_RATE_LIMIT_RECIPIENT = "15/600"
EMAILS_RATE_LIMIT_IP = "300/600"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
