"""Production settings and processes as the README's production section gives them: HTTPS
settings from the environment, static files, beat's schedule and a missing beat made visible.

The end-to-end walk of the README (gunicorn, worker, beat, nginx, Chromium) is in
tests/test_production_smoke.py."""

import subprocess
import sys
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from emails.delivery.sweeper import messages_sweep, sweeper_late
from emails.models import Heartbeat
from tests.helpers import load_payload
from tests.test_configuration import ROOT, manage

PRINT_HTTPS = (
    "from django.conf import settings as s; print(s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS, "
    "s.SECURE_HSTS_INCLUDE_SUBDOMAINS, s.SECURE_HSTS_PRELOAD, s.SESSION_COOKIE_SECURE, "
    "s.CSRF_COOKIE_SECURE, s.SECURE_PROXY_SSL_HEADER, s.SILENCED_SYSTEM_CHECKS)"
)


def test_https_settings_are_on_by_default_in_production():
    result = manage("shell", "-c", PRINT_HTTPS, DJANGO_SECRET_KEY="x" * 50)
    assert result.returncode == 0, result.stderr
    # (models.W040: SQLite, the default database here, has no covering indexes)
    assert result.stdout.strip().splitlines()[-1] == (
        "True 31536000 True False True True None ['security.W021', 'models.W040']"
    )


def test_https_settings_come_from_the_environment():
    result = manage(
        "shell",
        "-c",
        PRINT_HTTPS,
        DJANGO_SECRET_KEY="x" * 50,
        DJANGO_SECURE_SSL_REDIRECT="false",
        DJANGO_SECURE_HSTS_SECONDS="3600",
        DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS="false",
        DJANGO_SECURE_HSTS_PRELOAD="true",
        DJANGO_SESSION_COOKIE_SECURE="false",
        DJANGO_CSRF_COOKIE_SECURE="false",
        DJANGO_SECURE_PROXY_SSL_HEADER="X-Forwarded-Proto",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == (
        "False 3600 False True False False ('HTTP_X_FORWARDED_PROTO', 'https') ['models.W040']"
    )


def test_development_keeps_plain_http():
    result = manage("shell", "-c", PRINT_HTTPS, DJANGO_DEBUG="true")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1].startswith("False 0 True False False False None")


@pytest.mark.django_db
def test_browsers_are_sent_to_https_but_machine_clients_are_answered(client, settings):
    settings.SECURE_SSL_REDIRECT = True
    response = client.get("/admin/login/")
    assert response.status_code == 301
    assert response["Location"] == "https://testserver/admin/login/"
    # Logto's POST is answered where it was made: a redirect would drop its Authorization
    # header, and could not take back what it already sent.
    response = client.post(
        "/api/logto/email", load_payload("sign-in-fr.json"), content_type="application/json"
    )
    assert response.status_code == 401
    assert response.json() == {"message": "Authorization header is missing."}
    webhook = client.post("/anymail/postmark/tracking/", {}, content_type="application/json")
    assert webhook.status_code != 301
    # Swagger UI is a page for people: sent to HTTPS before a token is typed into it.
    assert client.get("/api/docs/").status_code == 301


@pytest.mark.django_db
def test_behind_a_tls_proxy_the_forwarded_scheme_counts(client, settings):
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_HSTS_SECONDS = 31_536_000
    response = client.get("/admin/login/", headers={"x-forwarded-proto": "https"})
    assert response.status_code == 200
    assert response["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"


def _beat(env: dict, timeout: float = 20) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "celery", "-A", "project", "beat", "--loglevel", "INFO"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _beat_env(tmp_path, **extra) -> dict:
    from tests.processes import service_env

    # No broker answers on port 1: beat starts, opens its schedule, then waits to publish.
    return service_env(
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        CELERY_BROKER_URL="redis://127.0.0.1:1/0",
        **extra,
    )


def test_beat_creates_its_schedule_folder_on_a_fresh_machine(tmp_path):
    schedule = tmp_path / "state" / "beat" / "celerybeat-schedule"
    with pytest.raises(subprocess.TimeoutExpired) as running:
        _beat(_beat_env(tmp_path, CELERY_BEAT_SCHEDULE_FILENAME=str(schedule)), timeout=8)
    output = (running.value.stderr or b"").decode()
    assert "beat: Starting..." in output
    assert list(schedule.parent.glob("celerybeat-schedule*"))
    assert schedule.parent.stat().st_mode & 0o777 == 0o700


@pytest.mark.parametrize(
    ("folder", "reason"),
    [
        ("shared", "others may write to it"),
        ("missing-parent-file/x", "cannot keep its schedule"),
        # a link someone else could re-point between the check and the open
        ("link", "it is not a folder"),
    ],
)
def test_beat_refuses_an_unsafe_or_impossible_schedule_in_one_line(tmp_path, folder, reason):
    (tmp_path / "shared").mkdir(mode=0o777)
    (tmp_path / "shared").chmod(0o777)
    (tmp_path / "missing-parent-file").write_text("a file, not a folder")
    (tmp_path / "private").mkdir(mode=0o700)
    (tmp_path / "link").symlink_to(tmp_path / "private")
    schedule = tmp_path / folder / "celerybeat-schedule"
    result = _beat(_beat_env(tmp_path, CELERY_BEAT_SCHEDULE_FILENAME=str(schedule)))
    assert result.returncode != 0
    assert reason in result.stderr
    assert "Traceback" not in result.stderr
    assert "CELERY_BEAT_SCHEDULE_FILENAME" in result.stderr


@pytest.fixture
def with_broker(settings):
    settings.CELERY_TASK_ALWAYS_EAGER = False  # a broker, so beat is expected


@pytest.mark.django_db
def test_a_sweep_records_when_it_ran(with_broker):
    assert sweeper_late().startswith("The sweeper has never run")
    messages_sweep()
    assert Heartbeat.objects.get(name="sweeper").at > timezone.now() - timedelta(seconds=5)
    assert sweeper_late() == ""


@pytest.mark.django_db
def test_a_missing_beat_shows_in_the_message_log(admin_client, settings, with_broker):
    settings.EMAILS_SWEEP_INTERVAL = 30
    Heartbeat.objects.create(name="sweeper", at=timezone.now() - timedelta(seconds=600))
    response = admin_client.get("/admin/emails/message/")
    assert response.status_code == 200
    assert "The sweeper last ran 600 s ago (it runs every 30 s)" in response.text
    assert "celery -A project beat" in response.text

    Heartbeat.objects.filter(name="sweeper").update(at=timezone.now())
    assert "The sweeper" not in admin_client.get("/admin/emails/message/").text


@pytest.mark.django_db
def test_a_missing_beat_is_a_database_check_warning(capsys, with_broker):
    call_command("check", databases=["default"])
    assert "emails.W003" in capsys.readouterr().err
    messages_sweep()
    call_command("check", databases=["default"])
    assert "emails.W003" not in capsys.readouterr().err


@pytest.mark.django_db
def test_development_without_a_broker_expects_no_beat(admin_client):
    # tests/settings.py runs tasks eagerly, as `dev.py run` does without CELERY_BROKER_URL
    assert "The sweeper" not in admin_client.get("/admin/emails/message/").text


def test_development_mode_logs_no_broker_warning(tmp_path):
    """Each email in `dev.py run` logged kombu's "No hostname was supplied" (eager mode still
    takes a producer from the pool of the default memory:// broker URL)."""
    code = (
        "from rest_framework.test import APIClient\n"
        "r = APIClient().post('/api/logto/email', {'to': 'jane@example.com', 'type': 'SignIn', "
        "'payload': {'code': '123456', 'locale': 'en'}}, format='json', HTTP_HOST='localhost')\n"
        "print('status', r.status_code)\n"
    )
    database = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    assert manage("migrate", "-v0", DJANGO_DEBUG="true", DATABASE_URL=database).returncode == 0
    result = manage("shell", "-c", code, DJANGO_DEBUG="true", DATABASE_URL=database)
    assert "status 200" in result.stdout, result.stderr
    assert "Your sign-in code" in result.stdout  # the console backend printed the email
    assert "WARNING" not in result.stderr, result.stderr


def test_a_copy_without_its_checkout_refuses_to_start(tmp_path):
    """`pip install .` would copy only the packages: templates, fixtures and static files
    stay behind. Such a copy says what to do instead of serving pages without them."""
    import shutil

    shutil.copytree(ROOT / "project", tmp_path / "site-packages" / "project")
    result = subprocess.run(
        [sys.executable, "-c", "import project.settings"],
        cwd=tmp_path / "site-packages",
        env={"PATH": "/usr/bin:/bin", "DJANGO_SECRET_KEY": "x"},
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "Mailroom runs from its checkout" in result.stderr
