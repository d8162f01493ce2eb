"""Admin preview/test-send endpoints and designers' preview links (HTTP level; the browser
tests drive the same pages in Chromium)."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.core import mail
from django.test import Client
from django.utils import timezone

from emails.backoffice.preview_links import preview_link_create, preview_link_token
from emails.models import Message, MessageStatus, PreviewLink
from tests.factories import MessageFactory, TemplateFactory

pytestmark = pytest.mark.django_db

PREVIEW = "/admin/emails/template/preview/"
PREVIEW_HTML = "/admin/emails/template/preview/html/"


def form(**changes):
    data = {
        "subject": "Code {{ code }} for {{ application.name }}",
        "html_body": "<p>Hi {{ application.name }}, <b>{{ code }}</b></p>",
        "text_body": "",
        "payload": '{"code": "482913", "application": {"name": "<script>x</script>"}}',
    }
    return {**data, **changes}


def test_preview_renders_the_unsaved_form(admin_client):
    answer = admin_client.post(PREVIEW, form()).json()
    assert answer == {
        "subject": "Code 482913 for <script>x</script>",
        "preheader": "",
        "text": "Hi <script>x</script>, 482913\n",
        "sender": {"name": "Acme", "address": "no-reply@acme.example"},
        "errors": [],
        "warnings": [],
    }


def test_preview_html_is_escaped_and_served_with_a_script_free_csp(admin_client):
    response = admin_client.post(PREVIEW_HTML, form())
    assert response.status_code == 200
    assert b"&lt;script&gt;x&lt;/script&gt;" in response.content
    csp = response["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "sandbox" in csp and "script-src" not in csp
    assert response["X-Frame-Options"] == "SAMEORIGIN"


def test_a_broken_template_is_an_inline_error_with_its_line_not_a_500(admin_client):
    broken = form(html_body="<p>ok</p>\n<p>{% if code %}</p>")
    answer = admin_client.post(PREVIEW, broken).json()
    assert answer["subject"] == "Code 482913 for <script>x</script>"
    [error] = answer["errors"]
    assert (error["part"], error["line"]) == ("HTML body", 2)
    html = admin_client.post(PREVIEW_HTML, broken)
    assert html.status_code == 200 and b"line 2" in html.content


def test_bad_sample_json_is_reported(admin_client):
    answer = admin_client.post(PREVIEW, form(payload="{nope")).json()
    assert answer["errors"][0]["part"] == "sample data"


def test_preview_needs_change_permission_and_post(client, admin_client):
    viewer = User.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_template"))
    client.force_login(viewer)
    assert client.post(PREVIEW, form()).status_code == 403
    assert admin_client.get(PREVIEW).status_code == 405


def test_preview_refuses_a_post_without_csrf():
    admin = User.objects.create_superuser("root", "root@example.com", "pw")
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin)
    assert client.post(PREVIEW, form()).status_code == 403


def test_test_send_goes_through_the_pipeline_with_unsaved_content(
    admin_client, django_capture_on_commit_callbacks, settings
):
    settings.EMAILS_TEST_RECIPIENTS = ["@example.com"]
    template = TemplateFactory(usage_type="SignIn", locale="de")
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            f"/admin/emails/template/{template.pk}/test-send/",
            form(to="designer@example.com", subject="UNSAVED {{ code }}", locale="de"),
        )
    assert response.status_code == 200
    message = Message.objects.get(pk=response.json()["id"])
    assert (message.is_test, message.status, message.template_locale) == (True, "sent", "de")
    [email] = mail.outbox
    assert email.to == ["designer@example.com"] and email.subject == "UNSAVED 482913"
    log = admin_client.get("/admin/emails/message/?is_test__exact=1")
    assert b"designer@example.com" in log.content


def test_test_send_needs_an_address(admin_client):
    template = TemplateFactory()
    response = admin_client.post(f"/admin/emails/template/{template.pk}/test-send/", form(to="x"))
    assert response.status_code == 400
    assert not Message.objects.exists()


def test_change_form_offers_the_other_locales(admin_client):
    english = TemplateFactory(usage_type="Register", locale="en")
    german = TemplateFactory(usage_type="Register", locale="de")
    page = admin_client.get(f"/admin/emails/template/{english.pk}/change/").content.decode()
    assert f"/admin/emails/template/{german.pk}/change/" in page
    assert "mailroom-preview" in page and "codemirror.js" in page


# --- Preview links -------------------------------------------------------------------------


def share(admin_client, template):
    response = admin_client.post(f"/admin/emails/template/{template.pk}/share/")
    assert response.status_code == 200
    return response.json()["url"].removeprefix("http://testserver")


def test_shared_link_shows_every_locale_of_the_type_without_login(admin_client, client):
    english = TemplateFactory(usage_type="Register", locale="en", subject="Welcome {{ code }}")
    french = TemplateFactory(usage_type="Register", locale="fr", subject="Bienvenue {{ code }}")
    TemplateFactory(usage_type="SignIn", locale="en", subject="Not this one")
    url = share(admin_client, english)

    page = client.get(url)

    assert page.status_code == 200
    body = page.content.decode()
    assert "Welcome 482913" in body and ">fr<" in body and "Not this one" not in body
    assert page["X-Robots-Tag"] == "noindex, nofollow"
    assert '<meta name="robots" content="noindex, nofollow">' in body
    switched = client.get(f"{url}?template={french.pk}")
    assert "Bienvenue 482913" in switched.content.decode()


def test_shared_email_frame_is_read_only_html_with_csp(admin_client, client):
    template = TemplateFactory(usage_type="Register", locale="en")
    url = share(admin_client, template)
    frame = client.get(f"{url}email/{template.pk}/")
    assert frame.status_code == 200 and b"482913" in frame.content
    assert "sandbox" in frame["Content-Security-Policy"]
    other = TemplateFactory(usage_type="SignIn", locale="en")
    assert client.get(f"{url}email/{other.pk}/").status_code == 404
    assert client.post(f"{url}email/{template.pk}/").status_code == 405


def test_gallery_link_shows_all_types(admin_client, client):
    listing = admin_client.post("/admin/emails/template/gallery/share/", follow=True)
    assert b"Gallery preview:" in listing.content
    url = (
        PreviewLink.objects.get(usage_type="").pk
        and admin_client.post(
            "/admin/emails/template/gallery/share/", HTTP_ACCEPT="application/json"
        ).json()["url"]
    )
    body = client.get(url.removeprefix("http://testserver")).content.decode()
    for label in ("Sign-in", "Registration", "Organization invitation", "Bind MFA"):
        assert label in body


def test_revoked_link_is_410_and_shows_nothing(admin_client, client):
    template = TemplateFactory(usage_type="Register", locale="en", subject="Secret subject")
    url = share(admin_client, template)
    link = PreviewLink.objects.get()
    admin_client.post(
        "/admin/emails/previewlink/", {"action": "revoke", "_selected_action": [link.pk]}
    )
    page = client.get(url)
    assert page.status_code == 410
    assert b"expired or was revoked" in page.content and b"Secret subject" not in page.content
    assert client.get(f"{url}email/{template.pk}/").status_code == 410


def test_expired_link_is_410(client):
    TemplateFactory(usage_type="Register", locale="en")
    link = preview_link_create(usage_type="Register")
    PreviewLink.objects.filter(pk=link.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert client.get(f"/preview/{preview_link_token(link)}/").status_code == 410


@pytest.mark.parametrize("mangle", [lambda t: t[:-2] + "xx", lambda t: "1", lambda t: t + "a"])
def test_tampered_or_guessed_token_is_404(client, mangle):
    TemplateFactory(usage_type="Register", locale="en")
    token = preview_link_token(preview_link_create(usage_type="Register"))
    page = client.get(f"/preview/{mangle(token)}/")
    assert page.status_code == 404 and b"not valid" in page.content


def test_link_expiry_follows_the_setting(settings):
    settings.EMAILS_PREVIEW_LINK_DAYS = 2
    link = preview_link_create(usage_type="Register")
    assert timedelta(days=1, hours=23) < link.expires_at - timezone.now() <= timedelta(days=2)


# --- Message log ---------------------------------------------------------------------------


def test_resend_queues_a_recent_failure_again(admin_client, django_capture_on_commit_callbacks):
    message = MessageFactory(
        status=MessageStatus.FAILED,
        error="provider down",
        expires_at=timezone.now() + timedelta(minutes=5),
    )
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(
            "/admin/emails/message/", {"action": "resend", "_selected_action": [message.pk]}
        )
    message.refresh_from_db()
    assert message.status == MessageStatus.SENT
    assert "123456" in mail.outbox[0].body


def test_resend_refuses_a_dead_code(admin_client):
    message = MessageFactory(
        status=MessageStatus.FAILED, expires_at=timezone.now() - timedelta(seconds=1)
    )
    response = admin_client.post(
        "/admin/emails/message/",
        {"action": "resend", "_selected_action": [message.pk]},
        follow=True,
    )
    message.refresh_from_db()
    assert message.status == MessageStatus.FAILED
    assert b"could not be resent" in response.content
