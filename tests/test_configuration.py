"""Configuration from the environment: provider switching, start-up refusals, system checks.

The subprocess tests run ``manage.py`` the way an operator would, with only the environment
changed, because that is the promise: switching provider is a restart with other env.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command

from project.providers import (
    ANYMAIL_PROVIDERS,
    PROVIDERS,
    anymail_settings_from_env,
    email_backend_for,
)

ROOT = Path(__file__).resolve().parent.parent


def manage(*args, **env):
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(
            ("ANYMAIL_", "EMAIL_", "LOGTO_", "DJANGO_", "CELERY_", "CACHE_", "DATABASE_")
        )
    }
    environment.update({"DJANGO_SETTINGS_MODULE": "project.settings", **env})
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


PRINT_BACKEND = (
    "from django.conf import settings; print(settings.EMAIL_BACKEND); print(settings.ANYMAIL)"
)


@pytest.mark.parametrize(
    ("provider", "backend"),
    [
        ("console", "django.core.mail.backends.console.EmailBackend"),
        # Django's SMTP backend, also trusting EMAIL_SSL_CAFILE (tests/test_providers.py)
        ("smtp", "emails.delivery.smtp.EmailBackend"),
        ("Postmark", "anymail.backends.postmark.EmailBackend"),
        ("amazon_ses", "anymail.backends.amazon_ses.EmailBackend"),
        ("unisender_go", "anymail.backends.unisender_go.EmailBackend"),
    ],
)
def test_provider_names_map_to_backends(provider, backend):
    assert email_backend_for(provider) == backend


@pytest.mark.parametrize("provider", ANYMAIL_PROVIDERS)
def test_every_anymail_provider_has_an_importable_backend(provider):
    from django.utils.module_loading import import_string

    backend = import_string(email_backend_for(provider))
    assert backend.__module__ == f"anymail.backends.{provider}"


def test_unknown_provider_names_every_valid_one():
    with pytest.raises(ImproperlyConfigured) as caught:
        email_backend_for("sendmail")
    for provider in PROVIDERS:
        assert provider in str(caught.value)


def test_anymail_env_vars_become_anymail_settings():
    environ = {
        "ANYMAIL_POSTMARK_SERVER_TOKEN": "pm-token",
        "ANYMAIL_POSTMARK_API_URL": "http://127.0.0.1:9/",
        "ANYMAIL_IGNORE_UNSUPPORTED_FEATURES": "true",
        "ANYMAIL_SEND_DEFAULTS": '{"tags": ["logto"]}',
        "ANYMAIL_": "ignored",
        "PATH": "/usr/bin",
    }
    assert anymail_settings_from_env(environ) == {
        "POSTMARK_SERVER_TOKEN": "pm-token",
        "POSTMARK_API_URL": "http://127.0.0.1:9/",
        "IGNORE_UNSUPPORTED_FEATURES": True,
        "SEND_DEFAULTS": {"tags": ["logto"]},
    }


def test_switching_provider_is_a_restart_with_other_env():
    mailgun = manage(
        "shell",
        "-c",
        PRINT_BACKEND,
        DJANGO_DEBUG="true",
        EMAIL_PROVIDER="mailgun",
        ANYMAIL_MAILGUN_API_KEY="key-123",
    )
    assert mailgun.returncode == 0, mailgun.stderr
    assert "anymail.backends.mailgun.EmailBackend" in mailgun.stdout
    assert "'MAILGUN_API_KEY': 'key-123'" in mailgun.stdout


def test_unknown_provider_stops_start_up():
    result = manage("check", DJANGO_DEBUG="true", EMAIL_PROVIDER="carrier-pigeon")
    assert result.returncode != 0
    assert "EMAIL_PROVIDER='carrier-pigeon' is not a known provider" in result.stderr
    assert "postmark" in result.stderr and "unisender_go" in result.stderr


def test_missing_provider_credentials_are_a_system_check_error():
    result = manage("check", DJANGO_DEBUG="true", EMAIL_PROVIDER="postmark")
    assert result.returncode != 0
    assert "emails.E002" in result.stderr
    assert "POSTMARK_SERVER_TOKEN" in result.stderr


def test_production_without_logto_authorization_fails_the_check():
    result = manage("check", DJANGO_SECRET_KEY="x" * 50)
    assert result.returncode != 0
    assert "emails.E001" in result.stderr
    assert "LOGTO_AUTHORIZATION" in result.stderr


def test_production_refuses_to_start_without_a_secret_key():
    result = manage("check", LOGTO_AUTHORIZATION="Bearer t")
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY must be set" in result.stderr


def test_configured_production_passes_the_checks():
    result = manage(
        "check",
        DJANGO_SECRET_KEY="x" * 50,
        LOGTO_AUTHORIZATION="Bearer t",
        CELERY_BROKER_URL="redis://127.0.0.1:6379/0",
        EMAIL_PROVIDER="smtp",
        EMAIL_HOST="smtp.example.com",
    )
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


def test_production_on_the_console_backend_is_refused():
    # The console backend prints every code to the worker's output and delivers nothing.
    result = manage("check", DJANGO_SECRET_KEY="x" * 50, LOGTO_AUTHORIZATION="Bearer t")
    assert result.returncode != 0
    assert "emails.E005" in result.stderr


@pytest.mark.django_db
def test_no_model_change_is_missing_a_migration():
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


def test_malformed_rate_limit_stops_start_up_not_a_request():
    result = manage("check", DJANGO_DEBUG="true", EMAILS_RATE_LIMIT_IP="lots")
    assert result.returncode != 0
    assert "emails.E003" in result.stderr and "EMAILS_RATE_LIMIT_IP" in result.stderr


def test_sending_timeout_shorter_than_the_send_limit_is_refused():
    result = manage(
        "check", DJANGO_DEBUG="true", EMAILS_SEND_TIME_LIMIT="60", EMAILS_SENDING_TIMEOUT="30"
    )
    assert result.returncode != 0
    assert "emails.E004" in result.stderr


@pytest.mark.parametrize(
    ("given", "expected"), [(None, min(16, 8 * len(os.sched_getaffinity(0)))), ("3", 3)]
)
def test_a_celery_worker_runs_many_processes_for_waiting_on_providers(given, expected):
    """`celery -A project worker` without --concurrency: eight processes per core it may run
    on (at most 16), since a send mostly waits on the provider; CELERY_WORKER_CONCURRENCY
    sets it."""
    code = "from project.celery import app; print(app.conf.worker_concurrency)"
    environment = {k: v for k, v in os.environ.items() if k != "CELERY_WORKER_CONCURRENCY"}
    environment.update(DJANGO_SETTINGS_MODULE="project.settings", DJANGO_DEBUG="true")
    if given is not None:
        environment["CELERY_WORKER_CONCURRENCY"] = given
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip().splitlines()[-1] == str(expected)
