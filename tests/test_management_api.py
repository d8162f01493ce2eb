"""The management API: templates and layouts as code, token auth, model permissions."""

import pytest
from django.contrib.auth.models import Permission, User
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from emails.models import Template

pytestmark = pytest.mark.django_db


def client_for(*codenames):
    user = User.objects.create_user(f"bot-{'-'.join(codenames) or 'none'}")
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


@pytest.fixture
def api():
    return client_for(
        "view_template",
        "add_template",
        "change_template",
        "delete_template",
        "view_layout",
        "add_layout",
        "change_layout",
    )


NEW = {
    "languageTag": "nl-be",
    "templateType": "SignIn",
    "details": {
        "subject": "Je code {{ code }}",
        "content": "<p>{{ code }}</p>",
        "contentType": "text/html",
        "replyTo": "hulp@example.com",
        "sendFrom": "",
    },
}


def test_create_read_update_delete_in_logtos_field_names(api):
    created = api.post("/api/v1/templates/", NEW, format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert (body["languageTag"], body["templateType"]) == ("nl-BE", "SignIn")
    assert body["details"] == {
        "subject": "Je code {{ code }}",
        "content": "<p>{{ code }}</p>",
        "contentType": "text/html",
        "replyTo": "hulp@example.com",
        "sendFrom": "",
    }
    url = f"/api/v1/templates/{body['id']}/"
    changed = api.patch(url, {"details": {"subject": "Nieuw {{ code }}"}}, format="json")
    assert changed.status_code == 200 and changed.json()["version"] == 2
    listed = api.get("/api/v1/templates/?templateType=SignIn&languageTag=nl-BE").json()
    assert [item["details"]["subject"] for item in listed] == ["Nieuw {{ code }}"]
    assert api.delete(url).status_code == 204
    assert not Template.objects.filter(locale="nl-BE").exists()


def test_writes_are_validated_like_the_admin(api):
    bad = {**NEW, "details": {**NEW["details"], "subject": "{{ aplication.name }}"}}
    response = api.post("/api/v1/templates/", bad, format="json")
    assert response.status_code == 400
    assert "Did you mean 'application'?" in response.json()["details.subject"][0]
    duplicate = {**NEW, "languageTag": "en"}
    assert (
        "exists"
        in api.post("/api/v1/templates/", duplicate, format="json").json()["languageTag"][0]
    )


def test_plain_text_content_becomes_both_parts(api):
    plain = {
        **NEW,
        "details": {**NEW["details"], "content": "Code: {{ code }}", "contentType": "text/plain"},
    }
    body = api.post("/api/v1/templates/", plain, format="json").json()
    template = Template.objects.get(pk=body["id"])
    assert (template.text_body, template.html_body) == (
        "Code: {{ code }}",
        "<p>Code: {{ code }}</p>",
    )


def test_render_saved_or_inline(api):
    template = Template.objects.get(usage_type="SignIn", locale="fr")
    saved = api.post(
        "/api/v1/render", {"template": template.pk, "payload": {"code": "123456"}}, format="json"
    ).json()
    assert saved["subject"] == "Votre code de connexion" and "123456" in saved["html"]
    inline = api.post(
        "/api/v1/render",
        {
            "templateType": "SignIn",
            "languageTag": "en",
            "details": {"subject": "Hi {{ application.name }}", "content": "<b>{{ code }}</b>"},
            "payload": {"code": "9", "application": {"name": "<Acme>"}},
        },
        format="json",
    ).json()
    assert inline == {"subject": "Hi <Acme>", "html": "<b>9</b>", "text": "9\n", "errors": []}


def test_validate_reports_every_problem_with_its_line(api):
    answer = api.post(
        "/api/v1/validate",
        {
            "templateType": "OrganizationInvitation",
            "details": {"subject": "Join {{ organisation.name }}", "content": "<p>\n{% if %}</p>"},
        },
        format="json",
    ).json()
    assert answer["valid"] is False
    assert [(p["field"], p["line"]) for p in answer["problems"]] == [
        ("details.subject", 1),
        ("details.content", 2),
    ]
    assert "Did you mean 'organization'?" in answer["problems"][0]["message"]


def test_layouts(api):
    created = api.post(
        "/api/v1/layouts/",
        {"name": "Bare", "html": "<div>{{ content }}</div>", "text": "{{ content }}"},
        format="json",
    )
    assert created.status_code == 201
    missing = api.post("/api/v1/layouts/", {"name": "Broken", "html": "<div></div>"}, format="json")
    assert missing.status_code == 400 and "content" in str(missing.json())


def test_tokens_and_permissions_are_enforced():
    assert APIClient().get("/api/v1/templates/").status_code == 401
    reader = client_for("view_template")
    assert reader.get("/api/v1/templates/").status_code == 200
    assert reader.post("/api/v1/templates/", NEW, format="json").status_code == 403
    nobody = client_for()
    assert nobody.get("/api/v1/templates/").status_code == 403
    assert nobody.post("/api/v1/render", {"payload": {}}, format="json").status_code == 403


def test_openapi_schema_and_docs_are_served_to_api_users():
    reader = client_for("view_template")
    schema = reader.get("/api/schema/")
    assert schema.status_code == 200
    text = schema.content.decode()
    assert "/api/v1/templates/" in text and "languageTag" in text and "/api/logto/email" not in text
    docs = reader.get("/api/docs/").content.decode()
    assert "swagger-ui" in docs and "cdn" not in docs.lower()
    # The start-up script is a file of its own: the page has no inline script (CSP).
    assert "<script>" not in docs.replace(" ", "")
    assert reader.get("/api/docs/?script=").status_code == 200


def test_openapi_schema_and_docs_need_the_same_auth_as_the_api(client):
    """Before: anyone could read the whole API's description."""
    assert client.get("/api/schema/").status_code == 401
    assert client.get("/api/docs/").status_code == 401
    assert client_for().get("/api/schema/").status_code == 403
    # A staff user logged into the admin opens Swagger UI in the browser.
    staff = User.objects.create_user("reader", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_template"))
    client.force_login(staff)
    assert client.get("/api/docs/").status_code == 200
    assert client.get("/api/schema/").status_code == 200


def test_bad_input_is_400_not_500(api):
    assert (
        api.post("/api/v1/render", {"layout": "abc", "payload": {}}, format="json").status_code
        == 400
    )
    assert api.post("/api/v1/render", {"template": "abc"}, format="json").status_code == 400
    assert api.post("/api/v1/render", [1, 2], format="json").status_code == 400
    assert api.post("/api/v1/validate", [1], format="json").status_code == 400
    bad_sender = {**NEW, "details": {**NEW["details"], "sendFrom": "not an address"}}
    response = api.post("/api/v1/templates/", bad_sender, format="json")
    assert response.status_code == 400 and "sendFrom" in response.json()["details"]


def test_rendering_inline_content_needs_the_change_permission():
    reader = client_for("view_template")
    inline = {"details": {"subject": "x", "content": "{{ code }}"}, "payload": {"code": "1"}}
    assert reader.post("/api/v1/render", inline, format="json").status_code == 403
    saved = Template.objects.get(usage_type="SignIn", locale="en")
    answer = reader.post(
        "/api/v1/render", {"template": saved.pk, "payload": {"code": "7"}}, format="json"
    )
    assert answer.status_code == 200 and "7" in answer.json()["text"]
