"""The management API: templates and layouts as code, token auth, model permissions."""

import pytest
from django.contrib.auth.models import Permission, User
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from emails.models import Layout, Template

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
        "publish_template",
        "publish_layout",
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
    """Well-formed but not sendable is a 422 with every problem; a taken type and language a
    409 (before: both 400, which the schema said could not happen)."""
    bad = {**NEW, "details": {**NEW["details"], "subject": "{{ aplication.name }}"}}
    response = api.post("/api/v1/templates/", bad, format="json")
    assert response.status_code == 422
    body = response.json()
    assert body["field"] == "details.subject"
    assert body["problems"][0]["field"] == "details.subject"
    assert "Did you mean 'application'?" in body["problems"][0]["message"]
    assert body["message"].startswith("details.subject")
    duplicate = api.post("/api/v1/templates/", {**NEW, "languageTag": "en"}, format="json")
    assert duplicate.status_code == 409
    assert duplicate.json()["field"] == "languageTag"
    assert "A SignIn template in en exists already" in duplicate.json()["message"]


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
    assert missing.status_code == 422
    assert missing.json()["problems"] == [
        {
            "field": "html",
            "line": None,
            "message": "{{ content }} is missing: where does the email go?",
        }
    ]
    taken = api.post(
        "/api/v1/layouts/", {"name": "Bare", "html": "<p>{{ content }}</p>"}, format="json"
    )
    assert taken.status_code == 409 and taken.json()["field"] == "name"


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
    assert response.status_code == 422 and response.json()["field"] == "details.sendFrom"


def test_rendering_inline_content_needs_the_change_permission():
    reader = client_for("view_template")
    inline = {"details": {"subject": "x", "content": "{{ code }}"}, "payload": {"code": "1"}}
    assert reader.post("/api/v1/render", inline, format="json").status_code == 403
    saved = Template.objects.get(usage_type="SignIn", locale="en")
    answer = reader.post(
        "/api/v1/render", {"template": saved.pk, "payload": {"code": "7"}}, format="json"
    )
    assert answer.status_code == 200 and "7" in answer.json()["text"]


# --- The schema is the truth (issue: schemathesis found 29 failures) ------------------------


def test_deleting_a_layout_that_templates_use_is_409_saying_how_many():
    """Before: Django's ProtectedError, an HTML "Server Error (500)"."""
    api = client_for("delete_layout")
    layout = Layout.objects.create(name="Used", html="<div>{{ content }}</div>")
    Template.objects.filter(usage_type="SignIn", locale__in=["en", "fr"]).update(layout=layout)
    response = api.delete(f"/api/v1/layouts/{layout.pk}/")
    assert response.status_code == 409
    assert response.json() == {
        "message": "This layout is used by 2 templates: point them elsewhere before deleting it."
    }
    assert Layout.objects.filter(pk=layout.pk).exists()
    Template.objects.filter(layout=layout).update(layout=None)
    assert api.delete(f"/api/v1/layouts/{layout.pk}/").status_code == 204


def test_every_error_answer_has_the_one_shape(api):
    answers = {
        401: APIClient().get("/api/v1/templates/"),
        403: client_for().get("/api/v1/layouts/"),
        404: api.get("/api/v1/templates/0/"),
        400: api.post("/api/v1/templates/", {**NEW, "languageTag": ""}, format="json"),
        415: api.post("/api/v1/validate", "templateType=SignIn", content_type="text/plain"),
        409: api.post("/api/v1/templates/", {**NEW, "languageTag": "EN"}, format="json"),
        422: api.post("/api/v1/layouts/", {"name": "x", "html": "<p></p>"}, format="json"),
    }
    for status, response in answers.items():
        assert response.status_code == status, (status, response.content)
        body = response.json()
        assert isinstance(body["message"], str) and body["message"], (status, body)
        assert set(body) <= {"message", "field", "problems"}, (status, body)
    assert answers[400].json()["problems"][0]["field"] == "languageTag"


def test_render_needs_a_body_with_a_template_or_content(api):
    """Before: no body rendered nothing and answered 200."""
    for body in (None, {}, {"payload": {}}):
        response = api.post("/api/v1/render", body, format="json")
        assert response.status_code == 400, body
        assert "Send `template`" in response.json()["message"]
    saved = Template.objects.get(usage_type="SignIn", locale="en")
    both = {"template": saved.pk, "details": {"subject": "x", "content": "y"}, "payload": {}}
    assert api.post("/api/v1/render", both, format="json").status_code == 400
    no_payload = api.post("/api/v1/render", {"template": saved.pk}, format="json")
    assert no_payload.status_code == 400 and no_payload.json()["field"] == "payload"
    gone = api.post("/api/v1/render", {"template": 10**9, "payload": {}}, format="json")
    assert gone.status_code == 422 and gone.json()["field"] == "template"


def test_what_the_schema_allows_is_accepted_and_what_it_refuses_is_400(api):
    blank_optional = {**NEW, "text": "", "preheader": "", "details": {**NEW["details"]}}
    created = api.post("/api/v1/templates/", blank_optional, format="json")
    assert created.status_code == 201, created.content
    url = f"/api/v1/templates/{created.json()['id']}/"
    for refused in (
        {"details": {"subject": ""}},
        {"details": {"subject": "   "}},
        {"details": {"subject": 5}},
        {"languageTag": "e"},
        {"languageTag": " en"},
        {"enabled": "true"},
        {"layout": "1"},
        {"preheader": "x\x00y"},
    ):
        response = api.patch(url, refused, format="json")
        assert response.status_code == 400, (refused, response.content)
    assert api.patch(url, {"details": {"subject": " Je code "}}, format="json").status_code == 200
    assert Template.objects.get(pk=created.json()["id"]).subject == " Je code "


def test_answers_carry_every_field_and_plain_text_content_reads_back_as_html(api):
    """Before: the schema declared details.contentType as `not: {}` (never present), and
    every answer carried it."""
    plain = {
        **NEW,
        "details": {"subject": "Code", "content": "{{ code }}", "contentType": "text/plain"},
    }
    body = api.post("/api/v1/templates/", plain, format="json").json()
    assert body["details"] == {
        "subject": "Code",
        "content": "<p>{{ code }}</p>",
        "contentType": "text/html",
        "replyTo": "",
        "sendFrom": "",
    }
    assert set(body) == {
        "id",
        "languageTag",
        "templateType",
        "applicationId",
        "organizationId",
        "details",
        "text",
        "preheader",
        "layout",
        "enabled",
        "version",
        "createdAt",
        "updatedAt",
    }


def test_the_list_filters_are_checked_and_blank_means_all(api):
    assert api.get("/api/v1/templates/?templateType=Nope").status_code == 400
    assert api.get("/api/v1/templates/?languageTag=not a tag").status_code == 400
    everything = api.get("/api/v1/templates/?templateType=&languageTag=").json()
    assert len(everything) == Template.objects.count()
    pt = api.get("/api/v1/templates/?templateType=SignIn&languageTag=PT_br").json()
    assert [(item["templateType"], item["languageTag"]) for item in pt] == [("SignIn", "pt-BR")]


def test_the_schema_documents_the_error_answers_of_every_operation():
    schema = client_for("view_template").get("/api/schema/?format=json").json()
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    operations = [
        (path, method, operation)
        for path, methods in schema["paths"].items()
        for method, operation in methods.items()
    ]
    assert len(operations) >= 14
    for path, method, operation in operations:
        codes = set(operation["responses"])
        assert {"401", "403"} <= codes, (path, method)
        if "{id}" in path:
            assert "404" in codes, (path, method)
        if method in ("post", "put", "patch"):
            assert {"400", "415"} <= codes, (path, method)
        for code in codes - {"200", "201", "204"}:
            assert operation["responses"][code]["content"] == error, (path, method, code)
    delete_layout = schema["paths"]["/api/v1/layouts/{id}/"]["delete"]["responses"]
    assert "409" in delete_layout
    assert "409" not in schema["paths"]["/api/v1/templates/{id}/"]["delete"]["responses"]
    assert (
        "{{ content }}"
        in schema["components"]["schemas"]["LayoutRequest"]["properties"]["html"]["description"]
    )
    assert "not" not in schema["components"]["schemas"]["Details"]["properties"]["contentType"]
