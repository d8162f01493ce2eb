"""The editor's preview as the admin's script asks for it (HTTP level; tests/test_browser.py
drives the same in Chromium): live warnings with their lines, the inbox row, light and dark,
following a test send, sharing the edits on screen, and the designer page's comments, grid,
order and download."""

import re

import pytest
from django.core import mail

from emails.models import Message, PreviewComment, PreviewLink, Template
from tests.factories import TemplateFactory
from tests.helpers import staff

pytestmark = pytest.mark.django_db

PREVIEW = "/admin/emails/template/preview/"
PREVIEW_HTML = "/admin/emails/template/preview/html/"
PAYLOAD = '{"code": "482913", "application": {"name": "Acme Web"}}'


def form(**changes):
    data = {
        "usage_type": "SignIn",
        "subject": "Your code {{ code }}",
        "preheader": "It works for {{ expires_in_minutes }} minutes",
        "html_body": "<p>{{ code }}</p>",
        "text_body": "",
        "payload": PAYLOAD,
    }
    return {**data, **changes}


# --- Live warnings (bug 4) ------------------------------------------------------------------


def test_a_misspelt_variable_is_a_live_warning_on_its_line(admin_client):
    answer = admin_client.post(
        PREVIEW, form(html_body="<p>{{ code }}</p>\n<p>{{ aplication.name }}</p>")
    ).json()
    assert answer["errors"] == []  # it renders (as a blank): only saving refuses it
    [warning] = answer["warnings"]
    assert (warning["field"], warning["line"]) == ("html_body", 2)
    assert "application" in warning["message"]


def test_a_missing_code_is_a_live_warning(admin_client):
    answer = admin_client.post(PREVIEW, form(html_body="<p>No code here</p>")).json()
    [warning] = answer["warnings"]
    assert warning["field"] == "html_body" and "{{ code }} is missing" in warning["message"]


def test_a_syntax_error_is_one_error_not_also_a_warning(admin_client):
    answer = admin_client.post(PREVIEW, form(html_body="<p>{{ code }}</p>\n{% if code %}")).json()
    [error] = answer["errors"]
    assert (error["part"], error["field"], error["line"]) == ("HTML body", "html_body", 2)
    assert answer["warnings"] == []


# --- The inbox row and light/dark (beyond the anchors) ---------------------------------------


def test_the_preview_names_the_sender_subject_and_preheader_an_inbox_shows(admin_client):
    answer = admin_client.post(PREVIEW, form(from_email="Acme Support <help@acme.example>"))
    answer = answer.json()
    assert answer["sender"] == {"name": "Acme Support", "address": "help@acme.example"}
    assert answer["subject"] == "Your code 482913"
    assert answer["preheader"] == "It works for 10 minutes"
    default = admin_client.post(PREVIEW, form()).json()["sender"]
    assert default == {"name": "Acme", "address": "no-reply@acme.example"}  # DEFAULT_FROM_EMAIL


DARK_LAYOUT = (
    "<html><head><style>.card { color: #111111; } "
    "@media (prefers-color-scheme: dark) { .card { color: #eeeeee !important; } }"
    "</style></head><body>{{ content }}</body></html>"
)


@pytest.mark.parametrize(
    ("scheme", "query"), [("dark", "(min-width: 0px)"), ("light", "(max-width: 0px)")]
)
def test_light_and_dark_decide_the_emails_own_dark_mode_styles(admin_client, scheme, query):
    from emails.models import Layout

    layout = Layout.objects.create(name="dark test", html=DARK_LAYOUT)
    html = admin_client.post(PREVIEW_HTML, form(layout=layout.pk, scheme=scheme)).content.decode()
    assert "prefers-color-scheme" not in html
    assert f"@media {query}" in html


def test_the_preview_frame_may_show_only_static_images_of_this_server(admin_client):
    csp = admin_client.post(PREVIEW_HTML, form())["Content-Security-Policy"]
    img = re.search(r"img-src ([^;]+)", csp).group(1).split()
    assert "http://testserver/static/" in img and "http://testserver" not in img
    assert "sandbox allow-same-origin" in csp and "allow-scripts" not in csp


# --- Following a test send (bug 5) -----------------------------------------------------------


def send_test(client, template, **changes):
    return client.post(f"/admin/emails/template/{template.pk}/test-send/", form(**changes))


def test_a_test_send_can_be_followed_until_it_is_sent(
    admin_client, settings, django_capture_on_commit_callbacks
):
    settings.CELERY_TASK_ALWAYS_EAGER = False  # no worker: it stays queued until delivered
    settings.EMAILS_TEST_RECIPIENTS = ["@example.com"]
    template = TemplateFactory(usage_type="SignIn", locale="en")
    answer = send_test(admin_client, template, to="me@example.com").json()
    assert (answer["status"], answer["final"]) == ("queued", False)
    assert answer["log_url"] == f"/admin/emails/message/{answer['id']}/change/"
    from emails.tasks import deliver_message

    deliver_message(answer["id"])
    state = admin_client.get(answer["status_url"]).json()
    assert (state["status"], state["label"], state["final"]) == ("sent", "Sent", True)
    assert len(mail.outbox) == 1


def test_a_broken_test_send_says_it_failed_and_why(
    admin_client, settings, django_capture_on_commit_callbacks
):
    settings.EMAILS_TEST_RECIPIENTS = ["@example.com"]
    template = TemplateFactory(usage_type="SignIn", locale="en")
    with django_capture_on_commit_callbacks(execute=True):
        answer = send_test(
            admin_client, template, to="me@example.com", html_body="{% if code %}"
        ).json()
    state = admin_client.get(answer["status_url"]).json()
    assert (state["status"], state["final"]) == ("failed", True)
    assert "Unclosed tag" in state["error"]
    assert mail.outbox == []


def test_only_the_sender_of_a_test_can_follow_it(settings, django_capture_on_commit_callbacks):
    settings.EMAILS_TEST_RECIPIENTS = ["@example.com"]
    template = TemplateFactory(usage_type="SignIn", locale="en")
    editor = staff("change_template")
    with django_capture_on_commit_callbacks(execute=True):
        answer = send_test(editor, template, to="me@example.com").json()
    assert answer["log_url"] == ""  # no permission on the message log: no link to it
    assert editor.get(answer["status_url"]).json()["status"] == "sent"
    assert staff("change_template").get(answer["status_url"]).status_code == 404
    assert staff("view_template").get(answer["status_url"]).status_code == 403
    logto_message = Message.objects.create(to="x@example.com", usage_type="SignIn", payload={})
    url = answer["status_url"].replace(answer["id"], str(logto_message.pk))
    assert editor.get(url).status_code == 404  # a real user's email is not a test send


# --- Sharing the edits on screen (bug 6) -----------------------------------------------------


def share(client, template, **data):
    response = client.post(f"/admin/emails/template/{template.pk}/share/", data)
    assert response.status_code == 200
    return response.json()


def test_share_says_it_shows_the_saved_version(admin_client, client):
    template = TemplateFactory(usage_type="Register", locale="en", subject="Saved {{ code }}")
    answer = share(admin_client, template, **form(subject="Unsaved {{ code }}"))
    assert answer["shows"] == "the published version"
    page = client.get(answer["url"].removeprefix("http://testserver")).content.decode()
    assert "Saved 482913" in page and "Unsaved" not in page


def test_share_these_edits_shows_them_and_says_they_are_not_saved(admin_client, client):
    template = TemplateFactory(usage_type="Register", locale="fr", subject="Saved {{ code }}")
    edits = form(subject="Unsaved {{ code }}", html_body="<p>Draft words {{ code }}</p>")
    answer = share(admin_client, template, edits="1", locale="fr", **edits)
    assert answer["shows"] == "the edits on screen, as they are now"
    url = answer["url"].removeprefix("http://testserver")
    page = client.get(url).content.decode()
    assert "Unsaved 482913" in page and "They are not saved" in page
    frame = client.get(f"{url}email/{template.pk}/").content.decode()
    assert "Draft words 482913" in frame
    template.refresh_from_db()
    assert template.subject == "Saved {{ code }}"  # sharing saved nothing
    link = PreviewLink.objects.get()
    assert (link.template, link.locale, link.usage_type) == (template, "fr", "Register")


# --- The designer page: order, grid, download, comments (bug 10, beyond the anchors) --------


def gallery(admin_client) -> str:
    response = admin_client.post(
        "/admin/emails/template/gallery/share/", HTTP_ACCEPT="application/json"
    )
    return response.json()["url"].removeprefix("http://testserver")


def test_the_gallery_opens_on_the_first_usage_type_in_the_default_locale(admin_client, client):
    TemplateFactory(usage_type="BindMfa", locale="en", subject="Bind {{ code }}")
    TemplateFactory(usage_type="SignIn", locale="de", subject="Anmelden {{ code }}")
    TemplateFactory(usage_type="SignIn", locale="en", subject="Sign in {{ code }}")
    page = client.get(gallery(admin_client)).content.decode()
    assert re.search(r'id="preview-subject"><bdi>Sign in 482913<', page)
    assert page.index(">Sign-in<") < page.index(">Bind MFA<")


def test_the_grid_shows_every_type_and_locale(admin_client, client):
    Template.objects.all().delete()
    for usage_type, locale in [("SignIn", "en"), ("SignIn", "ar"), ("BindMfa", "en")]:
        TemplateFactory(usage_type=usage_type, locale=locale)
    url = gallery(admin_client)
    page = client.get(f"{url}?view=grid").content.decode()
    cards = re.findall(r'class="card-label">([^<]+) · <bdi>([^<]+)</bdi>', page)
    assert cards == [("Sign-in", "en"), ("Sign-in", "ar"), ("Bind MFA", "en")]
    assert page.count('loading="lazy"') == 3


def test_download_gives_the_email_as_a_file(admin_client, client):
    template = TemplateFactory(usage_type="SignIn", locale="en")
    url = gallery(admin_client)
    response = client.get(f"{url}email/{template.pk}/?download=1")
    assert response["Content-Disposition"] == 'attachment; filename="SignIn-en.html"'
    # The bytes a client gets: the email's own dark-mode query is left for the client to decide.
    assert b"482913" in response.content and b"prefers-color-scheme: dark" in response.content


def test_a_designer_comment_reaches_the_templates_editors(admin_client, client):
    template = TemplateFactory(usage_type="SignIn", locale="en")
    url = gallery(admin_client)
    sent = client.post(
        f"{url}?template={template.pk}",
        {"template": template.pk, "name": "Dana (design)", "body": "Make the code <b>bigger</b>"},
    )
    assert sent.status_code == 302 and "commented=1" in sent["Location"]
    page = client.get(sent["Location"]).content.decode()
    assert "Thank you" in page and "Make the code &lt;b&gt;bigger&lt;/b&gt;" in page
    comment = PreviewComment.objects.get()
    assert (comment.template, comment.name, comment.link) == (
        template,
        "Dana (design)",
        PreviewLink.objects.get(),
    )
    editor_page = admin_client.get(f"/admin/emails/template/{template.pk}/change/")
    assert "Comments from designers" in editor_page.content.decode()
    assert "Make the code &lt;b&gt;bigger&lt;/b&gt;" in editor_page.content.decode()
    listing = staff("view_previewcomment").get("/admin/emails/previewcomment/")
    assert "Dana (design)" in listing.content.decode()


def test_comments_are_bounded(admin_client, client, monkeypatch):
    template = TemplateFactory(usage_type="SignIn", locale="en")
    url = gallery(admin_client)
    too_long = client.post(url, {"template": template.pk, "name": "D", "body": "x" * 2001})
    assert too_long.status_code == 200 and "at most 2000 characters" in too_long.content.decode()
    monkeypatch.setattr(PreviewComment, "MAX_PER_LINK", 1)
    client.post(url, {"template": template.pk, "name": "D", "body": "first"})
    refused = client.post(url, {"template": template.pk, "name": "D", "body": "second"})
    assert "too many comments" in refused.content.decode()
    assert PreviewComment.objects.count() == 1


# --- The layout editor's live preview (beyond the anchors) ----------------------------------

LAYOUT_PREVIEW = "/admin/emails/layout/preview/"


def test_the_layout_preview_shows_the_unsaved_layout_around_a_template(admin_client):
    template = TemplateFactory(
        usage_type="SignIn", locale="en", subject="Code {{ code }}", html_body="<p>{{ code }}</p>"
    )
    data = {
        "html": "<html><body><div class='frame'>UNSAVED FRAME {{ content }}</div></body></html>",
        "text": "",
        "template": template.pk,
        "payload": PAYLOAD,
    }
    answer = admin_client.post(LAYOUT_PREVIEW, data).json()
    assert (answer["subject"], answer["errors"]) == ("Code 482913", [])
    html = admin_client.post(f"{LAYOUT_PREVIEW}html/", data).content.decode()
    assert "UNSAVED FRAME" in html and "<p>482913</p>" in html
    broken = admin_client.post(LAYOUT_PREVIEW, {**data, "html": "{{ content }}\n{% if %}"}).json()
    [error] = broken["errors"]
    assert (error["part"], error["field"], error["line"]) == ("layout", "html", 2)


def test_the_layout_preview_needs_the_layout_change_permission(admin_client):
    TemplateFactory(usage_type="SignIn", locale="en")
    data = {"html": "{{ content }}", "payload": PAYLOAD}
    assert staff("change_template").post(LAYOUT_PREVIEW, data).status_code == 403
    assert staff("change_layout").post(LAYOUT_PREVIEW, data).status_code == 403  # no templates
    layout_editor = staff("change_layout", "view_template")
    assert layout_editor.post(LAYOUT_PREVIEW, data).status_code == 200
    assert layout_editor.post(f"{LAYOUT_PREVIEW}html/", data).status_code == 200
