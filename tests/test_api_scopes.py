"""The management API's scopes (issue 15): templates and layouts for one Logto application or
organization, and the sender profiles and brands of applications and organizations."""

import pytest
from django.contrib.auth.models import Permission, User
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from emails.models import Layout, ScopeBrand, SenderProfile, Template
from tests.factories import TemplateFactory

pytestmark = pytest.mark.django_db


def client_for(*codenames, staff=False):
    user = User.objects.create_user(f"bot-{User.objects.count()}", is_staff=staff)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


def every_permission_on(*models):
    return [f"{verb}_{model}" for model in models for verb in ("view", "add", "change", "delete")]


@pytest.fixture
def api():
    return client_for(
        *every_permission_on("template", "layout", "senderprofile", "scopebrand"),
        "publish_template",
        "publish_layout",
    )


SIGN_IN = {
    "languageTag": "en",
    "templateType": "SignIn",
    "details": {"subject": "Acme code {{ code }}", "content": "<p>{{ code }}</p>"},
}


def errors_of(response):
    body = response.json()
    assert set(body) <= {"message", "field", "problems"}, body
    return body


# --- Scoped templates and layouts ---------------------------------------------------------


def test_a_scoped_template_round_trips_and_null_is_any(api):
    created = api.post(
        "/api/v1/templates/", {**SIGN_IN, "organizationId": "org_acme"}, format="json"
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert (body["applicationId"], body["organizationId"]) == (None, "org_acme")
    template = Template.objects.get(pk=body["id"])
    assert (template.application_id, template.organization_id) == ("", "org_acme")
    url = f"/api/v1/templates/{body['id']}/"
    changed = api.patch(url, {"applicationId": "app-1"}, format="json")
    assert changed.status_code == 200, changed.content
    assert api.get(url).json()["applicationId"] == "app-1"
    # null takes the scope away again: stored blank
    unscoped = api.patch(url, {"applicationId": None, "organizationId": None}, format="json")
    # ... which clashes with the shipped unscoped SignIn · en
    assert unscoped.status_code == 409
    assert api.patch(url, {"applicationId": None}, format="json").status_code == 200
    template.refresh_from_db()
    assert (template.application_id, template.organization_id) == ("", "org_acme")
    shipped = Template.objects.get(usage_type="SignIn", locale="en", organization_id="")
    answer = api.get(f"/api/v1/templates/{shipped.pk}/").json()
    assert (answer["applicationId"], answer["organizationId"]) == (None, None)


@pytest.mark.parametrize("bad", ["", "has space", "ü", "x" * 129, "line\n", 5])
def test_a_bad_scope_id_is_a_400_naming_the_field(api, bad):
    response = api.post("/api/v1/templates/", {**SIGN_IN, "applicationId": bad}, format="json")
    assert response.status_code == 400, response.content
    assert errors_of(response)["field"] == "applicationId"
    layout = api.post(
        "/api/v1/layouts/",
        {"name": "Org", "html": "<div>{{ content }}</div>", "organizationId": bad},
        format="json",
    )
    assert layout.status_code == 400 and errors_of(layout)["field"] == "organizationId"


def test_the_template_clash_includes_the_scope(api):
    """An organization's SignIn · en beside the unscoped one, but not twice."""
    scoped = {**SIGN_IN, "organizationId": "org_acme"}
    assert api.post("/api/v1/templates/", scoped, format="json").status_code == 201
    again = api.post("/api/v1/templates/", scoped, format="json")
    assert again.status_code == 409
    body = errors_of(again)
    assert body["field"] == "languageTag"
    assert "A SignIn template in en for organization org_acme exists already" in body["message"]
    # the same organization within one application is another scope
    both = {**scoped, "applicationId": "app-1"}
    assert api.post("/api/v1/templates/", both, format="json").status_code == 201
    unscoped = api.post("/api/v1/templates/", SIGN_IN, format="json")
    assert unscoped.status_code == 409
    assert "A SignIn template in en exists already" in unscoped.json()["message"]


def test_a_scoped_layout_round_trips(api):
    created = api.post(
        "/api/v1/layouts/",
        {"name": "App one", "html": "<div>{{ content }}</div>", "applicationId": "app-1"},
        format="json",
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert (body["applicationId"], body["organizationId"]) == ("app-1", None)
    assert Layout.objects.get(pk=body["id"]).application_id == "app-1"
    url = f"/api/v1/layouts/{body['id']}/"
    changed = api.put(
        url,
        {"name": "App one", "html": "<p>{{ content }}</p>", "organizationId": "org_acme"},
        format="json",
    )
    assert changed.status_code == 200, changed.content
    layout = Layout.objects.get(pk=body["id"])
    assert (layout.application_id, layout.organization_id) == ("app-1", "org_acme")


def test_lists_filter_by_scope_and_blank_means_unscoped(api):
    TemplateFactory(usage_type="SignIn", locale="en", application_id="app-1")
    TemplateFactory(usage_type="SignIn", locale="de", application_id="app-1", organization_id="o")
    TemplateFactory(usage_type="Register", locale="en", organization_id="o")

    def scopes(query):
        answer = api.get(f"/api/v1/templates/?{query}")
        assert answer.status_code == 200, answer.content
        found = [
            (
                item["templateType"],
                item["languageTag"],
                item["applicationId"],
                item["organizationId"],
            )
            for item in answer.json()
        ]
        return sorted(found, key=repr)

    assert scopes("applicationId=app-1") == [
        ("SignIn", "de", "app-1", "o"),
        ("SignIn", "en", "app-1", None),
    ]
    assert scopes("organizationId=o&templateType=Register") == [("Register", "en", None, "o")]
    assert scopes("applicationId=app-1&organizationId=") == [("SignIn", "en", "app-1", None)]
    unscoped = scopes("applicationId=&organizationId=")
    assert len(unscoped) == Template.objects.filter(application_id="", organization_id="").count()
    assert {(application, organization) for *_, application, organization in unscoped} == {
        (None, None)
    }
    assert len(scopes("")) == Template.objects.count()
    assert api.get("/api/v1/templates/?applicationId=not an id").status_code == 400

    Layout.objects.create(name="Org", html="<div>{{ content }}</div>", organization_id="o")
    names = [item["name"] for item in api.get("/api/v1/layouts/?organizationId=o").json()]
    assert names == ["Org"]
    assert "Org" not in [
        item["name"] for item in api.get("/api/v1/layouts/?organizationId=").json()
    ]


# --- Sender profiles ------------------------------------------------------------------------

PROFILE = {
    "organizationId": "org_acme",
    "fromName": "Acme",
    "fromAddress": "no-reply@acme.example",
    "replyTo": "help@acme.example",
}


def test_sender_profiles_create_read_update_delete(api):
    created = api.post("/api/v1/sender-profiles/", PROFILE, format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert body == {
        "id": body["id"],
        "applicationId": None,
        **PROFILE,
        "updatedAt": body["updatedAt"],
    }
    profile = SenderProfile.objects.get(pk=body["id"])
    assert (profile.application_id, profile.organization_id) == ("", "org_acme")
    url = f"/api/v1/sender-profiles/{body['id']}/"
    assert api.get(url).json() == body
    patched = api.patch(url, {"fromName": "Acme Support"}, format="json")
    assert patched.status_code == 200 and patched.json()["fromName"] == "Acme Support"
    replaced = api.put(url, {"applicationId": "app-1", "fromAddress": ""}, format="json")
    assert replaced.status_code == 200, replaced.content
    profile.refresh_from_db()
    assert (profile.application_id, profile.organization_id, profile.from_address) == (
        "app-1",
        "org_acme",
        "",
    )
    api.post("/api/v1/sender-profiles/", {"applicationId": "app-2"}, format="json")
    listed = api.get("/api/v1/sender-profiles/?applicationId=app-1").json()
    assert [item["id"] for item in listed] == [body["id"]]
    assert len(api.get("/api/v1/sender-profiles/").json()) == 2
    assert api.get("/api/v1/sender-profiles/?organizationId=").json()[0]["applicationId"] == (
        "app-2"
    )
    assert api.delete(url).status_code == 204
    assert not SenderProfile.objects.filter(pk=body["id"]).exists()
    assert api.get(url).status_code == 404


def test_a_sender_profile_needs_a_scope_of_its_own(api):
    for body in ({"fromName": "Anyone"}, {"applicationId": None, "organizationId": None}):
        response = api.post("/api/v1/sender-profiles/", body, format="json")
        assert response.status_code == 422, response.content
        assert "set `applicationId`, `organizationId` or both" in errors_of(response)["message"]
    created = api.post("/api/v1/sender-profiles/", {"applicationId": "app-1"}, format="json")
    url = f"/api/v1/sender-profiles/{created.json()['id']}/"
    emptied = api.patch(url, {"applicationId": None}, format="json")
    assert emptied.status_code == 422
    assert SenderProfile.objects.get().application_id == "app-1"


def test_one_sender_profile_per_scope(api):
    assert api.post("/api/v1/sender-profiles/", PROFILE, format="json").status_code == 201
    again = api.post("/api/v1/sender-profiles/", PROFILE, format="json")
    assert again.status_code == 409
    assert (
        "The sender profile of organization org_acme exists already"
        in (errors_of(again)["message"])
    )
    other = api.post("/api/v1/sender-profiles/", {"applicationId": "app-1"}, format="json")
    moved = api.patch(
        f"/api/v1/sender-profiles/{other.json()['id']}/",
        {"applicationId": None, "organizationId": "org_acme"},
        format="json",
    )
    assert moved.status_code == 409


def test_a_from_address_outside_the_allowed_domains_is_refused(api, settings):
    settings.EMAILS_ALLOWED_FROM_DOMAINS = ["acme.example"]
    refused = api.post(
        "/api/v1/sender-profiles/",
        {**PROFILE, "fromAddress": "no-reply@evil.example"},
        format="json",
    )
    assert refused.status_code == 422
    body = errors_of(refused)
    assert body["field"] == "fromAddress"
    assert body["problems"][0]["message"] == (
        "evil.example is not a sending domain here; allowed: acme.example"
    )
    assert not SenderProfile.objects.exists()
    assert api.post("/api/v1/sender-profiles/", PROFILE, format="json").status_code == 201
    # a template's own sender is held to the same list
    template = {**SIGN_IN, "applicationId": "app-1"}
    template["details"] = {**SIGN_IN["details"], "sendFrom": "Evil <x@evil.example>"}
    answer = api.post("/api/v1/templates/", template, format="json")
    assert answer.status_code == 422 and errors_of(answer)["field"] == "details.sendFrom"
    assert "evil.example is not a sending domain here" in answer.json()["message"]


def test_a_sender_name_is_one_line(api):
    response = api.post(
        "/api/v1/sender-profiles/", {**PROFILE, "fromName": "Acme\r\nBcc: x"}, format="json"
    )
    assert response.status_code == 400 and errors_of(response)["field"] == "fromName"


# --- Brands ---------------------------------------------------------------------------------

BRAND = {
    "applicationId": "app-1",
    "productName": "Acme",
    "accentColor": "#5d34f2",
    "footerText": "You get this because you have an Acme account.",
    "supportUrl": "mailto:help@acme.example",
    "legalAddress": "Acme Ltd, 1 Main Street",
}


def test_brands_create_read_update_delete(api):
    created = api.post("/api/v1/brands/", BRAND, format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert body == {
        "id": body["id"],
        **BRAND,
        "organizationId": None,
        "logoUrl": None,
        "updatedAt": body["updatedAt"],
    }
    brand = ScopeBrand.objects.get(pk=body["id"])
    assert (brand.application_id, brand.product_name, brand.legal_address) == (
        "app-1",
        "Acme",
        "Acme Ltd, 1 Main Street",
    )
    url = f"/api/v1/brands/{body['id']}/"
    patched = api.patch(url, {"accentColor": "", "organizationId": "org_acme"}, format="json")
    assert patched.status_code == 200, patched.content
    assert (patched.json()["accentColor"], patched.json()["organizationId"]) == ("", "org_acme")
    assert api.put(url, {**BRAND, "productName": "Acme One"}, format="json").status_code == 200
    assert ScopeBrand.objects.get(pk=body["id"]).product_name == "Acme One"
    assert [item["id"] for item in api.get("/api/v1/brands/?organizationId=org_acme").json()] == [
        body["id"]
    ]
    assert api.get("/api/v1/brands/?organizationId=other").json() == []
    assert api.delete(url).status_code == 204
    assert not ScopeBrand.objects.exists()


def test_a_brands_logo_is_read_only_as_its_url(api, settings):
    settings.EMAILS_PUBLIC_URL = "https://mail.acme.example"
    brand = ScopeBrand.objects.create(organization_id="org_acme", logo="brand/acme.png")
    url = f"/api/v1/brands/{brand.pk}/"
    assert api.get(url).json()["logoUrl"] == "https://mail.acme.example/brand/acme.png"
    api.patch(url, {"logoUrl": "https://evil.example/x.png"}, format="json")
    brand.refresh_from_db()
    assert brand.logo.name == "brand/acme.png"


def test_brands_are_checked_and_one_per_scope(api):
    assert api.post("/api/v1/brands/", {"productName": "Nobody's"}, format="json").status_code == (
        422
    )
    bad_colour = api.post("/api/v1/brands/", {**BRAND, "accentColor": "red"}, format="json")
    assert bad_colour.status_code == 400 and errors_of(bad_colour)["field"] == "accentColor"
    bad_link = api.post("/api/v1/brands/", {**BRAND, "supportUrl": "ftp://x"}, format="json")
    assert bad_link.status_code == 422 and errors_of(bad_link)["field"] == "supportUrl"
    assert api.post("/api/v1/brands/", BRAND, format="json").status_code == 201
    again = api.post("/api/v1/brands/", BRAND, format="json")
    assert again.status_code == 409
    assert "The brand of application app-1 exists already" in errors_of(again)["message"]


# --- Permissions ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "model", "body"),
    [
        ("/api/v1/sender-profiles/", "senderprofile", PROFILE),
        ("/api/v1/brands/", "scopebrand", BRAND),
    ],
)
def test_each_verb_takes_its_model_permission(path, model, body):
    assert APIClient().get(path).status_code == 401
    # a staff user with every permission on templates, none on this model
    staff = client_for(*every_permission_on("template", "layout"), "publish_template", staff=True)
    assert staff.get(path).status_code == 403
    assert staff.post(path, body, format="json").status_code == 403
    reader = client_for(f"view_{model}")
    assert reader.get(path).status_code == 200
    assert reader.post(path, body, format="json").status_code == 403
    adder = client_for(f"add_{model}")
    created = adder.post(path, body, format="json")
    assert created.status_code == 201, created.content
    url = f"{path}{created.json()['id']}/"
    assert reader.get(url).status_code == 200
    assert reader.patch(url, {"applicationId": "other"}, format="json").status_code == 403
    assert reader.delete(url).status_code == 403
    changer = client_for(f"change_{model}")
    assert changer.patch(url, {"applicationId": "other"}, format="json").status_code == 200
    assert changer.delete(url).status_code == 403
    assert client_for(f"delete_{model}").delete(url).status_code == 204


def test_writing_a_scoped_template_takes_the_publish_permission_as_before():
    editor = client_for(*every_permission_on("template"))
    scoped = {**SIGN_IN, "organizationId": "org_acme"}
    assert editor.post("/api/v1/templates/", scoped, format="json").status_code == 403
    assert not Template.objects.filter(organization_id="org_acme").exists()


# --- The schema -----------------------------------------------------------------------------


def test_the_schema_documents_the_scopes_and_the_new_resources(api):
    schema = api.get("/api/schema/?format=json").json()
    components = schema["components"]["schemas"]
    for name in ("Template", "Layout", "SenderProfile", "ScopeBrand"):
        scope = components[name]["properties"]["applicationId"]
        assert scope["nullable"] is True and scope["pattern"], name
        assert {"applicationId", "organizationId"} <= set(components[name]["required"]), name
    assert components["ScopeBrand"]["properties"]["logoUrl"]["readOnly"] is True
    for path in ("/api/v1/sender-profiles/", "/api/v1/brands/"):
        listed = schema["paths"][path]["get"]
        assert {p["name"] for p in listed["parameters"]} == {"applicationId", "organizationId"}
        assert {"409", "422"} <= set(schema["paths"][path]["post"]["responses"])
        assert set(schema["paths"][f"{path}{{id}}/"]) == {"get", "put", "patch", "delete"}
    template_filters = schema["paths"]["/api/v1/templates/"]["get"]["parameters"]
    assert {"applicationId", "organizationId"} <= {p["name"] for p in template_filters}
