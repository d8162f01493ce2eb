"""Every answer Logto can get is short JSON (README, "What Logto hears back").

Before: a Host not in DJANGO_ALLOWED_HOSTS got Django's HTML 400 page, and so did a 404 or a
500 under /api/; Logto shows that body to its end user. project/errors.py answers them
{"message": ...} under /api/ and /anymail/; the admin keeps Django's pages.
"""

import http.client
import json
import logging

import psycopg
import pytest
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.test import Client, RequestFactory
from django.urls import get_resolver

from tests.helpers import AUTHORIZATION, load_payload, require_postgres
from tests.processes import database_url, free_port, gunicorn, running, service_env

pytestmark = pytest.mark.django_db

SHORT = 120  # bytes: a sentence, not a page


def json_answer(response, status: int) -> dict:
    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    assert len(response.content) < SHORT
    return json.loads(response.content)


def logto_post(client, **extra):
    return client.post(
        "/api/logto/email",
        load_payload("sign-in-fr.json"),
        content_type="application/json",
        HTTP_AUTHORIZATION=AUTHORIZATION,
        **extra,
    )


@pytest.fixture
def disallowed_host_log(caplog):
    """Django's django.security.DisallowedHost records, whether or not the django loggers
    propagate to the root logger that caplog listens on (settings.LOGGING says not)."""
    logger = logging.getLogger("django.security.DisallowedHost")
    logger.addHandler(caplog.handler)
    yield caplog
    logger.removeHandler(caplog.handler)


def test_a_host_not_allowed_gets_short_json_and_a_log_line_without_the_secret(
    client, disallowed_host_log
):
    answer = logto_post(client, HTTP_HOST="mailroom.evil.example")
    assert json_answer(answer, 400) == {"message": "Bad request."}
    logged = {r.getMessage() for r in disallowed_host_log.records if r.name.endswith("Host")}
    assert logged == {
        "Invalid HTTP_HOST header: 'mailroom.evil.example'. "
        "You may need to add 'mailroom.evil.example' to ALLOWED_HOSTS."
    }
    assert "test-token" not in disallowed_host_log.text


def test_a_path_that_matches_nothing_gets_short_json(client):
    for path in ("/api/nothing", "/api/logto/emails", "/api/v1/nothing/", "/anymail/nothing/"):
        assert json_answer(client.post(path), 404) == {"message": "Not found."}, path


def test_an_unexpected_failure_under_the_api_gets_short_json(monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr("emails.intake.api.message_accept", broken)
    answer = logto_post(Client(raise_request_exception=False))
    assert json_answer(answer, 500) == {"message": "Internal server error. Please try again later."}


def test_a_wrong_method_on_logtos_endpoint_is_short_json(client):
    answer = client.get("/api/logto/email", HTTP_AUTHORIZATION=AUTHORIZATION)
    assert json_answer(answer, 405) == {"message": 'Method "GET" not allowed.'}


def test_permission_denied_under_the_api_is_short_json():
    # No Django view under /api/ raises PermissionDenied today (DRF's views answer their own);
    # the handler Django would call is still the JSON one.
    handler = get_resolver().resolve_error_handler(403)
    answer = handler(RequestFactory().get("/api/v1/templates/"), PermissionDenied())
    assert json_answer(answer, 403) == {"message": "Permission denied."}
    page = handler(RequestFactory().get("/admin/"), PermissionDenied())
    assert page.status_code == 403 and page["Content-Type"].startswith("text/html")


def test_the_admin_and_other_pages_keep_djangos_html(admin_client, client):
    for answer in (
        admin_client.get("/admin/nothing/"),
        client.get("/nothing"),
        client.get("/admin/login/", HTTP_HOST="mailroom.evil.example"),
    ):
        assert answer.status_code in (400, 404)
        assert answer["Content-Type"].startswith("text/html")


def ask(port: int, method: str, path: str, *, host: str = "127.0.0.1", body: dict | None = None):
    """(status, Content-Type, body) from the running server, with the Host header given."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        headers = {"Host": host, "Authorization": AUTHORIZATION}
        if body is not None:
            headers["Content-Type"] = "application/json"
        conn.request(method, path, body=json.dumps(body) if body else None, headers=headers)
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type"), response.read()
    finally:
        conn.close()


@pytest.fixture
def unmigrated_database():
    """A PostgreSQL database that `manage.py migrate` never ran on, dropped afterwards."""
    require_postgres()
    settings_dict = {**connection.settings_dict, "NAME": "postgres"}
    name = f"{connection.settings_dict['NAME']}_unmigrated"
    with psycopg.connect(database_url(settings_dict), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
    yield database_url({**connection.settings_dict, "NAME": name})
    with psycopg.connect(database_url(settings_dict), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_production_server_answers_its_errors_in_short_json(unmigrated_database):
    # A server whose operator has not run `migrate` yet: Logto's request fails in the
    # database with an error that is not an outage (503), the honest 500.
    env = service_env(DATABASE_URL=unmigrated_database, LOGTO_AUTHORIZATION=AUTHORIZATION)
    port = free_port()
    with running(gunicorn(env, port, config="project/gunicorn.conf.py")) as (server,):
        logto = load_payload("sign-in-fr.json")
        answers = {
            "wrong host": ask(port, "POST", "/api/logto/email", host="evil.example", body=logto),
            "no such path": ask(port, "GET", "/api/nothing"),
            "not migrated": ask(port, "POST", "/api/logto/email", body=logto),
            "admin, wrong host": ask(port, "GET", "/admin/login/", host="evil.example"),
        }
        log = server.output()
    assert answers["wrong host"] == (400, "application/json", b'{"message": "Bad request."}')
    assert answers["no such path"] == (404, "application/json", b'{"message": "Not found."}')
    assert answers["not migrated"] == (
        500,
        "application/json",
        b'{"message": "Internal server error. Please try again later."}',
    )
    status, content_type, _ = answers["admin, wrong host"]
    assert (status, content_type) == (400, "text/html; charset=utf-8")
    # The operator's side: what went wrong, and no secret.
    assert "Invalid HTTP_HOST header: 'evil.example'" in log
    assert 'relation "emails_' in log and "does not exist" in log
    assert "test-token" not in log and logto["payload"]["code"] not in log
