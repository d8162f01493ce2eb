"""Every answer Logto (or a script, or a provider) can get under /api/ and /anymail/ is short
JSON, also the ones Django answers itself; the admin keeps Django's pages (debug is off here,
as in production)."""

import pytest
from django.test import Client

from emails.intake.api import LogtoEmailView
from tests.helpers import AUTHORIZATION, load_payload

pytestmark = pytest.mark.django_db


def test_a_host_not_allowed_is_a_short_json_400_for_logto():
    response = Client().post(
        "/api/logto/email",
        load_payload("sign-in-fr.json"),
        content_type="application/json",
        HTTP_HOST="evil.example",
        HTTP_AUTHORIZATION=AUTHORIZATION,
    )
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"message": "Bad request."}


@pytest.mark.parametrize("path", ["/api/nothing", "/api/v1/nothing/", "/anymail/nothing/"])
def test_an_unknown_machine_path_is_a_short_json_404(path):
    response = Client().get(path)
    assert (response.status_code, response.json()) == (404, {"message": "Not found."})


def test_an_unexpected_error_under_api_is_a_short_json_500(monkeypatch):
    def explode(self, request):
        raise RuntimeError("a bug with a secret in its text")

    monkeypatch.setattr(LogtoEmailView, "post", explode)
    client = Client(raise_request_exception=False)
    response = client.post(
        "/api/logto/email",
        load_payload("sign-in-fr.json"),
        content_type="application/json",
        HTTP_AUTHORIZATION=AUTHORIZATION,
    )
    assert response.status_code == 500
    assert response.json() == {"message": "Internal server error. Please try again later."}
    assert b"secret" not in response.content


def test_pages_for_people_keep_djangos_html():
    response = Client().get("/nothing-here/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
    response = Client().get("/admin/login/", HTTP_HOST="evil.example")
    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/html")
