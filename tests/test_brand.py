"""Brand settings in the admin (issue 13): product name, logo upload (Django's storage API),
accent colour, footer text, support link, legal address; env values stay the defaults; the
layout uses them; the brand page previews unsaved values; the logo is served safely."""

import re

import pytest
from django.core import mail

from emails.content.brand import brand_forget
from emails.models import Brand, Template
from tests.factories import TemplateFactory
from tests.helpers import png, staff

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_brand():
    brand_forget()
    yield
    brand_forget()


def brand_form(**changes):
    data = {
        "product_name": "Acme Cloud",
        "accent_color": "#0a7d50",
        "support_url": "https://help.acme.example",
        "footer_text": "You get this email because you have an Acme Cloud account.",
        "legal_address": "Acme Inc.\nMain Street 1, Springfield",
    }
    return {**data, **changes}


def save_brand(client, files=None, **changes):
    return client.post("/admin/emails/brand/1/change/", {**brand_form(**changes), **(files or {})})


def test_the_brand_list_opens_the_one_brand(admin_client):
    response = admin_client.get("/admin/emails/brand/")
    assert response.status_code == 302 and response["Location"] == "/admin/emails/brand/1/change/"
    page = admin_client.get(response["Location"]).content.decode()
    assert "EMAILS_PUBLIC_URL is not set" in page and 'type="color"' in page


def test_saved_brand_settings_are_in_every_email(admin_client, settings, send):
    settings.EMAILS_BRAND_NAME = "Env name"
    from emails.content.defaults import sync_defaults
    from emails.models import Layout

    sync_defaults(Template, Layout)
    assert save_brand(admin_client).status_code == 302
    send({"to": "a@example.com", "type": "SignIn", "payload": {"code": "111222"}})
    [email] = mail.outbox
    html = email.alternatives[0][0]
    assert "Acme Cloud" in html and 'bgcolor="#0a7d50"' in html
    assert "You get this email because you have an Acme Cloud account." in html
    assert 'href="https://help.acme.example"' in html and ">help.acme.example<" in html
    assert "Acme Inc.<br>Main Street 1, Springfield" in html
    text = email.body  # the plain text has the footer too
    assert "you have an Acme Cloud account." in text and "help.acme.example" in text


def test_blank_brand_fields_fall_back_to_the_settings(admin_client, settings):
    from emails.content.brand import brand_current

    settings.EMAILS_BRAND_NAME = "Env name"
    settings.EMAILS_COMPANY_INFO = "Env Inc."
    save_brand(admin_client, product_name="", legal_address="")
    brand = brand_current()
    assert (brand["name"], brand["company_info"]) == ("Env name", "Env Inc.")


def test_a_logo_upload_is_stored_served_and_used(admin_client, client, settings):
    from django.core.files.uploadedfile import SimpleUploadedFile

    settings.EMAILS_PUBLIC_URL = "https://mailroom.example"
    content = png()
    response = save_brand(admin_client, {"logo": SimpleUploadedFile("logo.png", content)})
    assert response.status_code == 302
    name = Brand.objects.get().logo.name
    assert re.fullmatch(r"brand/logo-[0-9a-f]{16}\.png", name)
    served = client.get(f"/brand/{name.removeprefix('brand/')}")
    assert served.status_code == 200 and b"".join(served.streaming_content) == content
    assert served["Content-Type"] == "image/png" and served["X-Content-Type-Options"] == "nosniff"
    assert served["Content-Security-Policy"] == "default-src 'none'; sandbox"
    # In the email, at this server's public address
    template = TemplateFactory(usage_type="SignIn", locale="en", html_body="{{ brand.logo_url }}")
    from emails.content.composer import compose_content, template_content

    rendered = compose_content(template_content(template), payload={"code": "1"}, locale="en")
    assert f"https://mailroom.example/brand/{name.removeprefix('brand/')}" in rendered.html
    # and the previews may show it
    preview = admin_client.post(
        "/admin/emails/template/preview/html/", {"html_body": "x", "payload": "{}"}
    )
    assert "https://mailroom.example/brand/" in preview["Content-Security-Policy"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
            "SVG is not accepted",
        ),
        (b"\x89PNG\r\n\x1a\n" + b"x" * (512 * 1024), "the limit is 512 KB"),
        (b"GIF8 nope", "must be a PNG, JPEG, GIF or WebP"),
    ],
)
def test_a_logo_that_is_no_safe_image_is_refused(admin_client, content, message):
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = save_brand(admin_client, {"logo": SimpleUploadedFile("logo.png", content)})
    assert response.status_code == 200 and message in response.content.decode()
    assert not Brand.objects.filter(logo__gt="").exists()


def test_other_names_under_brand_are_not_served(client):
    for name in ("../settings.py", "logo-0123456789abcdef.svg", "other.png"):
        assert client.get(f"/brand/{name}").status_code == 404


def test_an_accent_colour_and_a_support_link_are_checked(admin_client):
    page = save_brand(admin_client, accent_color="red", support_url="javascript:alert(1)")
    body = page.content.decode()
    assert "a colour as #rrggbb" in body and "a link starting https:// or mailto:" in body
    assert save_brand(admin_client, support_url="mailto:help@acme.example").status_code == 302


def test_the_brand_page_previews_unsaved_values_with_its_permission(admin_client):
    TemplateFactory(
        usage_type="SignIn", locale="en", html_body="<p>{{ brand.name }} {{ code }}</p>"
    )
    data = {**brand_form(product_name="Not saved yet"), "payload": '{"code": "1"}'}
    html = admin_client.post("/admin/emails/brand/preview/html/", data).content.decode()
    assert "Not saved yet 1" in html
    assert not Brand.objects.filter(product_name="Not saved yet").exists()
    assert staff("change_template").post("/admin/emails/brand/preview/", data).status_code == 403
    # It shows a template: the brand permission alone does not read templates
    assert staff("change_brand").post("/admin/emails/brand/preview/", data).status_code == 403
    allowed = staff("change_brand", "view_template")
    assert allowed.post("/admin/emails/brand/preview/", data).status_code == 200


def test_a_view_only_brand_page_has_no_preview(admin_client):
    page = staff("view_brand").get("/admin/emails/brand/1/change/").content.decode()
    assert 'id="mailroom-preview"' not in page
    assert (
        'id="mailroom-preview"'
        in admin_client.get("/admin/emails/brand/1/change/").content.decode()
    )


def test_deeply_nested_sample_data_is_a_short_error(admin_client):
    TemplateFactory(usage_type="SignIn", locale="en")
    answer = admin_client.post("/admin/emails/brand/preview/", {"payload": "[" * 100000}).json()
    assert answer["errors"][0]["message"] == "Sample data is nested too deeply."


def test_logto_branding_in_the_payload_still_comes_first(admin_client):
    save_brand(admin_client)
    template = TemplateFactory(usage_type="SignIn", locale="en", html_body="{{ brand.name }}")
    from emails.content.composer import compose_content, template_content

    payload = {"code": "1", "application": {"name": "Logto app"}}
    rendered = compose_content(template_content(template), payload=payload, locale="en")
    assert "Logto app" in rendered.html
