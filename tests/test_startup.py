"""A provider that cannot send stops Mailroom at start-up, not at the first email.

One test (emails/delivery/provider_check.py) behind three doors: `manage.py check`
(emails.E002), the web (project/wsgi.py) and the worker (project/celery.py). The web and the
worker refuse with one line, "Mailroom cannot start: EMAIL_PROVIDER=...: <reason>".
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import pytest

from emails.delivery.provider_check import provider_problem
from project.providers import anymail_settings_from_env
from tests.helpers import use_providers
from tests.processes import ROOT, Process, celery_worker, free_port, service_env


@pytest.fixture
def no_aws(monkeypatch, tmp_path):
    """Nothing of this machine's AWS set-up (variables, files, instance role) reaches boto3."""
    for key in list(os.environ):
        if key.startswith("AWS_"):
            monkeypatch.delenv(key)
    for key, value in aws_isolation(tmp_path).items():
        monkeypatch.setenv(key, value)
    return monkeypatch


def aws_isolation(folder) -> dict:
    empty = folder / "aws-empty"
    empty.write_text("")
    return {
        "AWS_SHARED_CREDENTIALS_FILE": str(empty),
        "AWS_CONFIG_FILE": str(empty),
        "AWS_EC2_METADATA_DISABLED": "true",
    }


@pytest.fixture
def provider(settings):
    """Configure a provider from environment variables, as settings.py would."""

    def configure(name: str, **environ):
        use_providers(settings, name)
        settings.ANYMAIL = anymail_settings_from_env(environ)
        for key, value in environ.items():
            if not key.startswith("ANYMAIL_"):
                setattr(settings, key, value)

    return configure


# --- the check, provider by provider --------------------------------------------------------


def test_console_and_a_configured_provider_have_no_problem(provider):
    provider("console")
    assert provider_problem() is None
    provider("postmark", ANYMAIL_POSTMARK_SERVER_TOKEN="pm-token")
    assert provider_problem() is None
    provider("smtp", EMAIL_HOST="smtp.example.com")
    assert provider_problem() is None


@pytest.mark.parametrize(
    ("name", "environ", "reason"),
    [
        ("sendgrid", {}, "EMAIL_PROVIDER=sendgrid: ANYMAIL_SENDGRID_API_KEY is not set"),
        ("postmark", {}, "EMAIL_PROVIDER=postmark: ANYMAIL_POSTMARK_SERVER_TOKEN is not set"),
        (
            "mailjet",
            {"ANYMAIL_MAILJET_API_KEY": "mj-key"},
            "EMAIL_PROVIDER=mailjet: ANYMAIL_MAILJET_SECRET_KEY is not set",
        ),
        (
            "postal",
            {"ANYMAIL_POSTAL_API_KEY": "postal-secret-123"},
            "EMAIL_PROVIDER=postal: ANYMAIL_POSTAL_API_URL is not set",
        ),
    ],
)
@pytest.mark.filterwarnings("ignore::anymail.exceptions.AnymailNotSupportedWarning")
def test_a_missing_anymail_setting_is_named(provider, name, environ, reason):
    provider(name, **environ)
    assert provider_problem() == reason


def test_a_library_error_never_quotes_a_settings_value(provider, no_aws):
    """Found in review: botocore's "Invalid endpoint: <the URL>" came out as it was, and
    ANYMAIL_AMAZON_SES_CLIENT_PARAMS may hold a secret key."""
    no_aws.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    provider(
        "amazon_ses",
        ANYMAIL_AMAZON_SES_CLIENT_PARAMS='{"endpoint_url": "not a url S3cretValue", '
        '"aws_access_key_id": "AKIAEXAMPLE", "aws_secret_access_key": "S3cretKey"}',
    )
    problem = provider_problem()
    assert problem is not None and problem.startswith("EMAIL_PROVIDER=amazon_ses: ValueError")
    assert "S3cret" not in problem


def test_amazon_ses_without_credentials_is_a_problem(provider, no_aws):
    no_aws.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    provider("amazon_ses")
    assert provider_problem() == (
        "EMAIL_PROVIDER=amazon_ses: no AWS credentials found: set AWS_ACCESS_KEY_ID and "
        "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or run with an IAM role"
    )


def test_amazon_ses_without_a_region_is_a_problem(provider, no_aws):
    no_aws.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
    no_aws.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret-value")
    provider("amazon_ses")
    problem = provider_problem()
    assert problem == (
        "EMAIL_PROVIDER=amazon_ses: no AWS region: set AWS_DEFAULT_REGION, or region_name in "
        "ANYMAIL_AMAZON_SES_CLIENT_PARAMS"
    )


def test_amazon_ses_with_a_profile_that_does_not_exist_is_a_problem(provider, no_aws):
    no_aws.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    provider("amazon_ses", ANYMAIL_AMAZON_SES_SESSION_PARAMS='{"profile_name": "mailroom"}')
    assert provider_problem() == (
        "EMAIL_PROVIDER=amazon_ses: ProfileNotFound: The config profile (mailroom) could not "
        "be found"
    )


@pytest.mark.parametrize(
    "environ",
    [
        {
            "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE",
            "AWS_SECRET_ACCESS_KEY": "aws-secret-value",
            "AWS_DEFAULT_REGION": "eu-west-1",
        },
        {
            "ANYMAIL_AMAZON_SES_CLIENT_PARAMS": '{"aws_access_key_id": "AKIAEXAMPLE", '
            '"aws_secret_access_key": "aws-secret-value", "region_name": "eu-west-1"}'
        },
    ],
    ids=["environment", "client-params"],
)
def test_amazon_ses_with_credentials_and_a_region_has_no_problem(provider, no_aws, environ):
    for key, value in environ.items():
        if key.startswith("AWS_"):
            no_aws.setenv(key, value)
    provider("amazon_ses", **{k: v for k, v in environ.items() if k.startswith("ANYMAIL_")})
    assert provider_problem() is None


def test_smtp_with_a_missing_ca_file_is_a_problem(provider, tmp_path):
    missing = tmp_path / "no-such-ca.pem"
    provider("smtp", EMAIL_USE_TLS=True, EMAIL_SSL_CAFILE=str(missing))
    assert provider_problem() == (
        f"EMAIL_PROVIDER=smtp: EMAIL_SSL_CAFILE={missing} cannot be read: No such file or directory"
    )


def test_smtp_with_a_ca_file_that_holds_no_certificate_is_a_problem(provider, tmp_path):
    not_a_ca = tmp_path / "ca.pem"
    not_a_ca.write_text("-----BEGIN NONSENSE-----\n")
    provider("smtp", EMAIL_USE_TLS=True, EMAIL_SSL_CAFILE=str(not_a_ca))
    assert provider_problem() == (
        f"EMAIL_PROVIDER=smtp: EMAIL_SSL_CAFILE={not_a_ca} holds no CA certificate in PEM form"
    )


def test_smtp_with_a_ca_file_but_no_tls_is_a_problem(provider, tmp_path):
    from tests.test_providers import make_private_ca

    ca_file, _, _ = make_private_ca(tmp_path)
    provider("smtp", EMAIL_SSL_CAFILE=str(ca_file))
    assert provider_problem() == (
        "EMAIL_PROVIDER=smtp: EMAIL_SSL_CAFILE is set but neither EMAIL_USE_TLS nor "
        "EMAIL_USE_SSL is on: mail would go unencrypted and the CA would never be used"
    )
    provider("smtp", EMAIL_USE_SSL=True, EMAIL_SSL_CAFILE=str(ca_file))
    assert provider_problem() is None


def test_smtp_with_both_tls_modes_is_a_problem(provider):
    provider("smtp", EMAIL_USE_TLS=True, EMAIL_USE_SSL=True)
    assert provider_problem() == (
        "EMAIL_PROVIDER=smtp: EMAIL_USE_TLS/EMAIL_USE_SSL are mutually exclusive, so only set "
        "one of those settings to True."
    )


# --- the three doors ------------------------------------------------------------------------


def production_env(tmp_path, **overrides) -> dict:
    """What an operator's processes get (tests/processes.py), with no AWS set-up of this
    machine's and a database file of the test's own."""
    env = {key: value for key, value in service_env().items() if not key.startswith("AWS_")}
    env.update(aws_isolation(tmp_path))
    env.update(
        {
            "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
            "LOGTO_AUTHORIZATION": "Bearer startup-test",
            # Never reached: the refusal comes before the broker is.
            "CELERY_BROKER_URL": "redis://127.0.0.1:1/0",
        }
    )
    env.update(overrides)
    return env


# A metrics folder another local user could write to (project/metrics_files.py).
OPEN_FOLDER = tempfile.mkdtemp(prefix="mailroom-open-metrics-")
os.chmod(OPEN_FOLDER, 0o777)  # noqa: S103  (the point of the case)

MISCONFIGURED = {
    "a metrics folder anyone may write to": (
        {"EMAILS_METRICS_DIR": OPEN_FOLDER},
        f"Mailroom cannot start: EMAILS_METRICS_DIR={OPEN_FOLDER}: {OPEN_FOLDER} belongs to "
        "another user or others may write to it",
    ),
    "sendgrid without a key": (
        {"EMAIL_PROVIDER": "sendgrid"},
        "Mailroom cannot start: EMAIL_PROVIDER=sendgrid: ANYMAIL_SENDGRID_API_KEY is not set",
    ),
    "amazon_ses without credentials": (
        {"EMAIL_PROVIDER": "amazon_ses", "AWS_DEFAULT_REGION": "eu-west-1"},
        "Mailroom cannot start: EMAIL_PROVIDER=amazon_ses: no AWS credentials found",
    ),
    "smtp with a missing CA file": (
        {
            "EMAIL_PROVIDER": "smtp",
            "EMAIL_USE_TLS": "true",
            "EMAIL_SSL_CAFILE": "/nonexistent/mailroom-ca.pem",
        },
        "Mailroom cannot start: EMAIL_PROVIDER=smtp: EMAIL_SSL_CAFILE=/nonexistent/mailroom-ca.pem"
        " cannot be read: No such file or directory",
    ),
    "a timeout that is not a number": (
        {
            "EMAIL_PROVIDER": "postmark",
            "ANYMAIL_POSTMARK_SERVER_TOKEN": "pm-token",
            "ANYMAIL_REQUESTS_TIMEOUT": "ten",
        },
        "Mailroom cannot start: ANYMAIL_REQUESTS_TIMEOUT='ten' must be a number of seconds",
    ),
}


def test_manage_py_check_reports_what_stops_start_up(tmp_path):
    # amazon_ses without credentials used to pass `check` entirely.
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=production_env(tmp_path, EMAIL_PROVIDER="amazon_ses", AWS_DEFAULT_REGION="eu-west-1"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert (
        "(emails.E002) EMAIL_PROVIDER=amazon_ses: no AWS credentials found: set "
        "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or run with an IAM role"
    ) in result.stderr


def exit_of(process: Process, timeout: float = 15) -> tuple[int, str]:
    """The exit status and output of a process that should stop by itself."""
    try:
        process.popen.wait(timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{process.name} still runs after {timeout:.0f}s:\n{process.output()[-4000:]}")
    finally:
        process.stop()
    return process.popen.returncode, process.output()


@pytest.mark.integration
@pytest.mark.parametrize(("environ", "line"), MISCONFIGURED.values(), ids=MISCONFIGURED)
def test_gunicorn_refuses_to_start_with_the_reason(tmp_path, environ, line):
    # When an operator starts the web as the README says
    process = Process(
        "gunicorn",
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            "project/gunicorn.conf.py",
            "project.wsgi",
            "--bind",
            f"127.0.0.1:{free_port()}",
        ],
        production_env(tmp_path, WEB_CONCURRENCY="2", **environ),
    )

    # Then it stops by itself, with the status for "App failed to load" and the reason on one
    # line: the config's on_starting hook checks once, before any worker boots (workers failing
    # together made gunicorn's arbiter print a traceback of its own)
    status, output = exit_of(process)
    assert status == 4, output
    assert any(text.startswith(line) for text in output.splitlines()), output
    assert "Booting worker" not in output
    assert "Traceback" not in output


@pytest.mark.integration
@pytest.mark.parametrize(("environ", "line"), MISCONFIGURED.values(), ids=MISCONFIGURED)
def test_celery_worker_refuses_to_start_with_the_reason(tmp_path, environ, line):
    process = celery_worker(production_env(tmp_path, **environ))

    status, output = exit_of(process)

    assert status != 0, output
    assert any(text.startswith(line) for text in output.splitlines()), output
    assert "Traceback" not in output
    assert "ready." not in output  # never consumed a task
