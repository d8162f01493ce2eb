import pytest
from django.core import mail

from emails.models import Message, Template
from tests.helpers import load_payload

pytestmark = pytest.mark.django_db


def form_data(template, **changes) -> dict:
    """The template's change form as posted, with ``changes``."""
    return {
        **{
            "usage_type": template.usage_type,
            "locale": template.locale,
            "application_id": template.application_id,
            "organization_id": template.organization_id,
            "layout": template.layout_id or "",
            "subject": template.subject,
            "preheader": template.preheader,
            "html_body": template.html_body,
            "text_body": template.text_body,
            "from_email": template.from_email,
            "reply_to": template.reply_to,
            "enabled": "on" if template.enabled else "",
        },
        **changes,
    }


def edit(admin_client, template, *, publish=True, **changes):
    """Save ``changes`` in the admin (a draft), then, unless ``publish=False``, publish it:
    the versions are the published ones."""
    response = admin_client.post(
        f"/admin/emails/template/{template.pk}/change/", form_data(template, **changes)
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    if publish:
        published = admin_client.post(f"/admin/emails/template/{template.pk}/draft/publish/")
        assert published.status_code == 302
    template.refresh_from_db()
    return template


def test_every_save_is_a_version_with_who_and_when(admin_client, admin_user):
    template = Template.objects.get(usage_type="SignIn", locale="en")
    assert template.history.count() == 1  # the shipped default
    edit(admin_client, template, subject="Sign-in code, take two")
    edit(admin_client, template, subject="Sign-in code, take three")
    latest = template.history.first()
    assert (template.version, template.history.count()) == (3, 3)
    assert latest.history_user == admin_user and latest.subject == "Sign-in code, take three"
    page = admin_client.get(f"/admin/emails/template/{template.pk}/history/").content.decode()
    assert "Sign-in code, take two" in page and "Revert to this" in page


def test_diff_between_two_versions(admin_client):
    template = Template.objects.get(usage_type="SignIn", locale="en")
    first = template.history.first().history_id
    edit(admin_client, template, subject="A brand new subject")
    second = template.history.first().history_id
    page = admin_client.get(
        f"/admin/emails/template/{template.pk}/history/compare/?a={first}&b={second}"
    ).content.decode()
    # difflib's side-by-side table: the old line struck, the new one added
    assert "<h3>Subject</h3>" in page and 'class="diff"' in page
    assert '<span class="diff_sub">Your sign-in code</span>' in page
    assert '<span class="diff_add">A brand new subject</span>' in page


def test_a_long_line_is_one_row_the_browser_wraps_between_words(admin_client):
    template = Template.objects.get(usage_type="SignIn", locale="en")
    first = template.history.first().history_id
    sentence = " ".join(["Use this confirmation code to finish signing in"] * 5) + " {{ code }}"
    edit(admin_client, template, subject=sentence)
    page = admin_client.get(
        f"/admin/emails/template/{template.pk}/history/compare/?a={first}"
    ).content.decode()
    # The whole line in one cell: no cut at 80 columns, no "&gt;" continuation row, and the
    # spaces are breakable ones (the cell's CSS is white-space: pre-wrap)
    assert f'<span class="diff_add">{sentence}</span>' in page
    assert "nowrap" not in page and "&nbsp;" not in page.split("<h3>Subject</h3>")[1]


def test_one_click_revert(admin_client):
    template = Template.objects.get(usage_type="SignIn", locale="en")
    original = template.history.first()
    edit(admin_client, template, subject="Oops")
    response = admin_client.post(
        f"/admin/emails/template/{template.pk}/history/{original.history_id}/revert/"
    )
    assert response.status_code == 302
    template.refresh_from_db()
    assert template.subject == "Your sign-in code" and template.version == 3
    assert template.history.first().history_change_reason.startswith("reverted to version 1")


def test_revert_needs_post(admin_client):
    template = Template.objects.get(usage_type="SignIn", locale="en")
    history_id = template.history.first().history_id
    url = f"/admin/emails/template/{template.pk}/history/{history_id}/revert/"
    assert admin_client.get(url).status_code == 405


def test_each_message_records_the_version_that_rendered_it(
    admin_client, post_email, django_capture_on_commit_callbacks
):
    template = Template.objects.get(usage_type="Register", locale="en")
    edit(admin_client, template, subject="Welcome aboard")
    with django_capture_on_commit_callbacks(execute=True):
        answer = post_email(load_payload("register-en.json")).json()
    message = Message.objects.get(pk=answer["id"])
    assert message.template_version == 2
    assert mail.outbox[0].subject == "Welcome aboard"


def test_layouts_are_versioned_too(admin_client):
    from emails.models import Layout

    layout = Layout.objects.get(name="Default")
    response = admin_client.post(
        f"/admin/emails/layout/{layout.pk}/change/",
        {
            "name": "Default",
            "html": layout.html.replace("<body>", "<body><!-- v2 -->"),
            "text": layout.text,
        },
    )
    assert response.status_code == 302
    assert layout.history.count() == 1  # saved as a draft
    assert layout.draft.html.startswith(layout.html.split("<body>")[0])
    assert admin_client.post(f"/admin/emails/layout/{layout.pk}/draft/publish/").status_code == 302
    assert layout.history.count() == 2
