"""A database outage leaves its cause in the log, once, and never a credential."""

import logging
import re

import pytest
from django.db import connection

from emails.intake.outage import redacted
from tests.database import database_refusing
from tests.factories import TemplateFactory
from tests.helpers import load_payload

URL = "/api/logto/email"
SERVICE_UNAVAILABLE = {"message": "Email service is temporarily unavailable. Please try again."}
PASSWORD = "hunter2-never-logged"


def post(api, code: str):
    body = load_payload("register-en.json")
    body["payload"]["code"] = code
    return api.post(URL, body, format="json")


def outage_lines(caplog) -> list[tuple[str, str]]:
    return [
        (record.levelname, record.getMessage())
        for record in caplog.records
        if record.name == "emails.intake.outage"
    ]


@pytest.mark.django_db(transaction=True)
def test_an_outage_is_logged_once_with_its_cause_and_host_and_its_end_once(api, caplog):
    # Given a database that answers (this also ends any outage an earlier test left behind)
    TemplateFactory(usage_type="Register", locale="en")
    assert post(api, "100001").status_code == 200
    caplog.clear()
    caplog.set_level(logging.INFO, logger="emails.intake.outage")

    # When it stops answering and Logto posts three times
    with database_refusing(password=PASSWORD):
        answers = [post(api, code) for code in ("100002", "100003", "100004")]

    # Then Logto hears three short 503s, and the log has one line naming class and target
    assert [answer.status_code for answer in answers] == [503, 503, 503]
    assert all(answer.json() == SERVICE_UNAVAILABLE for answer in answers)
    lines = outage_lines(caplog)
    assert [level for level, _ in lines] == ["ERROR"], lines
    error = lines[0][1]
    if connection.vendor == "postgresql":
        assert "127.0.0.1:1/" in error
        assert "psycopg.OperationalError" in error
        assert "Connection refused" in error
    else:
        assert "/nonexistent/dir/mailroom.sqlite3" in error
        assert "sqlite3.OperationalError" in error
    assert PASSWORD not in caplog.text
    assert "\n" not in error  # one line, not psycopg's hint on the next

    # When the database is back, the next request is accepted and the end is logged once
    assert post(api, "100005").status_code == 200
    assert post(api, "100006").status_code == 200
    lines = outage_lines(caplog)
    assert [level for level, _ in lines] == ["ERROR", "INFO"], lines
    assert re.fullmatch(
        r"database reachable again after \d+\.\d s \(3 requests answered 503\)", lines[1][1]
    )


@pytest.mark.parametrize(
    "message, expected",
    [
        (
            'invalid dsn: "host=db password=s3cret dbname=mailroom"',
            'invalid dsn: "host=db password=*** dbname=mailroom"',
        ),
        ("invalid dsn: password = 's3 cret' user=x", "invalid dsn: password = *** user=x"),
        (
            "could not parse postgres://mailroom:s3cret@db:5432/mailroom",
            "could not parse postgres://mailroom:***@db:5432/mailroom",
        ),
        ("server said s3cret back", "server said *** back"),
        (
            'connection to server at "127.0.0.1", port 1 failed: Connection refused',
            'connection to server at "127.0.0.1", port 1 failed: Connection refused',
        ),
    ],
)
def test_what_looks_like_a_password_is_masked(message, expected):
    assert redacted(message, password="s3cret") == expected


@pytest.mark.parametrize(
    "message",
    [
        "could not parse postgres://u:p@ss w@db/x",
        "could not parse postgres://u:p%40ss%20w@db/x",
        'invalid dsn: password="p@ss w" user=x',
    ],
)
def test_a_password_with_an_at_sign_or_a_space_is_masked_whole(message):
    """Found in review: the URL pattern cut "p@ss" at its @ before the configured password
    was looked for, and a double-quoted value was masked only up to its space."""
    masked = redacted(message, password="p@ss w")
    assert "p@ss" not in masked and "ss w" not in masked and "ss%20w" not in masked, masked
