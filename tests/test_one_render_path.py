"""The preview is the email: every way of rendering one (delivery to the provider, the admin's
live preview, a test send, a designer's link, the management API) gives the same HTML, byte
for byte, for every shipped template and for hand-written ones that take the slow path."""

import json

import pytest
from django.contrib.auth.models import Permission, User
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from emails.backoffice.preview_links import preview_link_create, preview_link_token
from emails.content.composer import template_content
from emails.content.defaults import sync_defaults
from emails.content.samples import samples_for
from emails.models import Layout, Template

pytestmark = pytest.mark.django_db

LOGO = "http://testserver/static/emails/sample-logo.svg"

STYLED_LAYOUT = """<!DOCTYPE html>
<html lang="{{ lang }}"><head><style>
  .box { padding: 12px; color: #123456; }
  td.code { font-size: 28px; }
  p + p { margin-top: 0; }
</style></head>
<body><div class="box">{{ content }}</div><p>{{ brand.name }}</p></body></html>"""

# Each takes the slower path somewhere (a tag in an attribute, a tag between table rows, a
# selector that is no class, markup from |safe or autoescape): the preview used to render
# them through another path than the email.
CUSTOM_BODIES = {
    "tag in an attribute": (
        '<p class="{% if application %}app{% else %}plain{% endif %}">{{ code }}</p>'
    ),
    "if around table rows": (
        "<table><tr><td class='code'>{{ code }}</td></tr>"
        "{% if application %}<tr><td>{{ application.name }}</td></tr>{% endif %}</table>"
    ),
    "safe": "<p>{{ code }}</p>{{ '<p><b>bold</b> & more</p>'|safe }}",
    "autoescape": "{% autoescape off %}<p>{{ code }} {{ application.name }}</p>{% endautoescape %}",
}


@pytest.fixture
def renderers(admin_client, postmark, send, settings, django_capture_on_commit_callbacks):
    """Functions (template, sample name) -> the HTML each path produces."""
    settings.EMAILS_TEST_RECIPIENTS = ["@example.com"]
    settings.EMAILS_TEST_SEND_LIMIT = "0"
    settings.EMAILS_RATE_LIMIT_RECIPIENT = "0"
    user = User.objects.create_user("renderer")
    user.user_permissions.add(*Permission.objects.filter(codename="view_template"))
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    counter = iter(range(1_000_000))

    def payload(template, sample):
        chosen = samples_for(template.usage_type, locale=template.locale, logo_url=LOGO)[sample]
        # Generic samples may carry no locale: Logto's choice must land on this template.
        return {**chosen, "locale": template.locale}

    def delivered(template, sample):
        before = len(postmark.requests)
        body = {
            "to": f"user{next(counter)}@example.com",
            "type": template.usage_type,
            "payload": payload(template, sample),
        }
        assert send(body).status_code == 200
        [request] = postmark.requests[before:]
        return request.json()["HtmlBody"]

    def form(template, sample):
        content = template_content(template)
        return {
            "subject": content["subject"],
            "preheader": content["preheader"],
            "html_body": content["html"],
            "text_body": content["text"],
            "layout": content["layout_id"] or "",
            "payload": json.dumps(payload(template, sample)),
            "locale": template.locale,
        }

    def live_preview(template, sample):
        response = admin_client.post("/admin/emails/template/preview/html/", form(template, sample))
        return response.content.decode()

    def test_send(template, sample):
        before = len(postmark.requests)
        with django_capture_on_commit_callbacks(execute=True):
            response = admin_client.post(
                f"/admin/emails/template/{template.pk}/test-send/",
                {**form(template, sample), "to": f"designer{next(counter)}@example.com"},
            )
        assert response.status_code == 200, response.content
        [request] = postmark.requests[before:]
        return request.json()["HtmlBody"]

    def designer(template, sample):
        token = preview_link_token(preview_link_create(usage_type=template.usage_type))
        response = admin_client.get(f"/preview/{token}/email/{template.pk}/", {"sample": sample})
        return response.content.decode()

    def management_api(template, sample):
        response = api.post(
            "/api/v1/render",
            {"template": template.pk, "payload": payload(template, sample)},
            format="json",
        )
        return response.json()["html"]

    return {
        "delivery": delivered,
        "live preview": live_preview,
        "test send": test_send,
        "designer link": designer,
        "management API": management_api,
    }


def rendered_everywhere(renderers, template, sample):
    results = {name: render(template, sample) for name, render in renderers.items()}
    differing = [name for name, html in results.items() if html != results["delivery"]]
    assert not differing, f"{template} / {sample}: {differing} differ from the email"
    return results["delivery"]


def test_every_shipped_template_previews_as_it_is_sent(renderers):
    sync_defaults(Template, Layout)
    for template in Template.objects.select_related("layout"):
        sample = next(iter(samples_for(template.usage_type)))
        rendered_everywhere(renderers, template, sample)


@pytest.mark.parametrize("body", list(CUSTOM_BODIES.values()), ids=list(CUSTOM_BODIES))
def test_hand_written_templates_preview_as_they_are_sent(renderers, body):
    layout = Layout.objects.create(name="Styled", html=STYLED_LAYOUT)
    for text in ("", "Code {{ code }}"):
        template, _ = Template.objects.update_or_create(
            usage_type="SignIn",
            locale="en",
            defaults={"subject": "Code {{ code }}", "html_body": body, "text_body": text},
        )
        template.layout = layout
        template.save()
        for sample in samples_for("SignIn"):
            html = rendered_everywhere(renderers, template, sample)
            assert "482913" in html
