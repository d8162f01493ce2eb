import pytest

from tests.factories import MessageFactory

pytestmark = pytest.mark.django_db


def test_template_and_message_lists_open(admin_client):
    MessageFactory(payload={"code": "918273", "locale": "en"})
    assert admin_client.get("/admin/emails/template/").status_code == 200
    response = admin_client.get("/admin/emails/message/")
    assert response.status_code == 200
    assert b"918273" not in response.content


def test_message_page_never_shows_the_code(admin_client):
    message = MessageFactory(payload={"code": "918273", "link": "https://x.example/inv_secret"})
    response = admin_client.get(f"/admin/emails/message/{message.pk}/change/")
    assert response.status_code == 200
    assert message.to.encode() in response.content
    assert b"918273" not in response.content
    assert b"inv_secret" not in response.content


def test_message_page_shows_the_event_timeline(admin_client):
    from django.utils import timezone

    message = MessageFactory(status="sent", provider_message_id="pm-9")
    message.events.create(
        event_id="postmark:1",
        event_type="bounced",
        occurred_at=timezone.now(),
        description="unknown user",
    )
    response = admin_client.get(f"/admin/emails/message/{message.pk}/change/")
    assert b"bounced" in response.content and b"unknown user" in response.content


def test_template_form_refuses_a_broken_template(admin_client):
    response = admin_client.post(
        "/admin/emails/template/add/",
        {
            "usage_type": "SignIn",
            "locale": "pt-br",
            "subject": "Code",
            "html_body": "<p>{% if code %}</p>",
            "text_body": "",
            "enabled": "on",
        },
    )
    assert response.status_code == 200
    assert b"endif" in response.content


def test_template_form_normalises_the_locale(admin_client):
    from emails.models import Template

    response = admin_client.post(
        "/admin/emails/template/add/",
        {
            "usage_type": "SignIn",
            "locale": "zh-hant-tw",
            "subject": "Code {{ code }}",
            "html_body": "<p>{{ code }}</p>",
            "text_body": "",
            "enabled": "on",
        },
    )
    assert response.status_code == 302
    assert Template.objects.filter(usage_type="SignIn", locale="zh-Hant-TW").exists()
