"""Drafts, review and publish: a saved edit reaches no user before it is published."""

import pytest
from django.core import mail
from django.core.management import call_command
from django.test import Client

from emails.backoffice.preview_links import preview_link_create, preview_link_token
from emails.models import Message, PreviewComment, Template, TemplateDraft
from tests.helpers import staff
from tests.test_management_api import client_for
from tests.test_versions import edit, form_data

pytestmark = pytest.mark.django_db


def sign_in_subject(send) -> str:
    """The subject of the English sign-in email Logto's next request gets."""
    mail.outbox.clear()
    code = str(100000 + Message.objects.count())
    body = {"to": "a@example.com", "type": "SignIn", "payload": {"code": code, "locale": "en"}}
    assert send(body).status_code == 200
    return mail.outbox[-1].subject


def sign_in():
    return Template.objects.get(usage_type="SignIn", locale="en")


def test_a_saved_edit_is_a_draft_until_it_is_published(admin_client, send):
    template = sign_in()
    edit(admin_client, template, publish=False, subject="Draft subject {{ code }}")
    template.refresh_from_db()
    # The template is unchanged; the edit is its draft, and emails keep the published one.
    assert template.subject == "Your sign-in code"
    assert TemplateDraft.objects.get(template=template).subject == "Draft subject {{ code }}"
    assert sign_in_subject(send) == "Your sign-in code"
    # The editor shows the draft, says it is not live and offers Publish and Discard.
    page = admin_client.get(f"/admin/emails/template/{template.pk}/change/").content.decode()
    assert "Editing draft revision 1: not live" in page
    assert 'value="Draft subject {{ code }}"' in page
    assert "Publish the saved draft" in page and "Discard the draft" in page
    # Beside the published version, on the page itself.
    beside = page.split('class="mailroom-draft-diff"')[1].split("</details>")[0]
    assert '<span class="diff_sub">Your sign-in code</span>' in beside
    assert '<span class="diff_add">Draft subject {{ code }}</span>' in beside
    # Publishing makes it the email, as a new version that says so.
    response = admin_client.post(f"/admin/emails/template/{template.pk}/draft/publish/")
    assert response.status_code == 302
    template.refresh_from_db()
    assert template.subject == "Draft subject {{ code }}"
    assert template.history.first().history_change_reason.startswith("published draft revision 1")
    assert not TemplateDraft.objects.filter(template=template).exists()
    assert sign_in_subject(send).startswith("Draft subject ")


def test_saving_the_same_content_again_is_the_same_revision(admin_client):
    template = sign_in()
    edit(admin_client, template, publish=False, subject="One")
    edit(admin_client, template, publish=False, subject="One")
    assert TemplateDraft.objects.get(template=template).revision == 1
    edit(admin_client, template, publish=False, subject="Two")
    assert TemplateDraft.objects.get(template=template).revision == 2
    # Saving the published content untouched makes no draft at all.
    other = Template.objects.get(usage_type="Register", locale="en")
    edit(admin_client, other, publish=False)
    assert not TemplateDraft.objects.filter(template=other).exists()


def test_the_enabled_switch_applies_at_once_and_the_content_waits(admin_client):
    template = sign_in()
    edit(admin_client, template, publish=False, enabled="", subject="Later")
    template.refresh_from_db()
    assert template.enabled is False and template.subject == "Your sign-in code"


def test_discard_drops_the_draft_and_keeps_the_published_email(admin_client):
    template = sign_in()
    edit(admin_client, template, publish=False, subject="Never mind")
    response = admin_client.post(f"/admin/emails/template/{template.pk}/draft/discard/")
    assert response.status_code == 302
    assert not TemplateDraft.objects.filter(template=template).exists()
    page = admin_client.get(f"/admin/emails/template/{template.pk}/change/").content.decode()
    assert 'value="Your sign-in code"' in page and "Published " in page


def test_an_editor_without_the_publish_permission_can_save_drafts_only(send):
    template = sign_in()
    editor = staff("view_template", "change_template")
    data = form_data(template, subject="Sneaky {{ code }}")
    assert editor.post(f"/admin/emails/template/{template.pk}/change/", data).status_code == 302
    page = editor.get(f"/admin/emails/template/{template.pk}/change/").content.decode()
    assert "Publish the saved draft" not in page
    assert editor.post(f"/admin/emails/template/{template.pk}/draft/publish/").status_code == 403
    # A revert makes that version the draft; restoring the shipped default would publish: the
    # action is not offered.
    history_id = template.history.first().history_id
    revert = f"/admin/emails/template/{template.pk}/history/{history_id}/revert/"
    assert editor.post(revert).status_code == 302
    listing = editor.get("/admin/emails/template/").content.decode()
    assert "restore_default" not in listing
    assert sign_in_subject(send) == "Your sign-in code"


def test_a_new_template_serves_nothing_until_it_is_published(admin_client, send):
    data = {
        "usage_type": "SignIn",
        "locale": "nl",
        "layout": "",
        "subject": "Je code {{ code }}",
        "preheader": "",
        "html_body": "<p>{{ code }}</p>",
        "text_body": "",
        "from_email": "",
        "reply_to": "",
        "enabled": "on",
    }
    assert admin_client.post("/admin/emails/template/add/", data).status_code == 302
    dutch = Template.objects.get(usage_type="SignIn", locale="nl")
    assert dutch.published_at is None
    body = {"to": "a@example.com", "type": "SignIn", "payload": {"code": "1", "locale": "nl"}}
    message = Message.objects.get(pk=send(body).json()["id"])
    assert message.template_locale == "en"
    coverage = admin_client.get("/admin/emails/template/coverage/").content.decode()
    assert 'class="unpublished"' in coverage
    admin_client.post(f"/admin/emails/template/{dutch.pk}/draft/publish/")
    body["payload"]["code"] = "2"
    message = Message.objects.get(pk=send(body).json()["id"])
    assert message.template_locale == "nl" and mail.outbox[-1].subject == "Je code 2"


def test_the_draft_beside_the_published_version(admin_client):
    template = sign_in()
    edit(admin_client, template, publish=False, subject="A new subject")
    page = admin_client.get(f"/admin/emails/template/{template.pk}/draft/compare/").content.decode()
    assert "published → draft revision 1" in page
    assert '<span class="diff_sub">Your sign-in code</span>' in page
    assert '<span class="diff_add">A new subject</span>' in page


def approve(token: str, template: Template, name: str = "Dana", approve: bool = True, seen=None):
    """A reviewer's approval through the link, of the revision their page showed (``seen``;
    default: the current one)."""
    if seen is None:
        seen = TemplateDraft.objects.get(template=template).revision
    return Client().post(
        f"/preview/{token}/",
        {
            "template": template.pk,
            "name": name,
            "body": "",
            "approve": "on" if approve else "",
            "draft_revision": seen,
        },
    )


def test_a_reviewer_sees_the_draft_and_approves_that_revision(admin_client, settings):
    settings.EMAILS_PUBLISH_REQUIRES_APPROVAL = True
    template = sign_in()
    edit(admin_client, template, publish=False, subject="Reviewed {{ code }}")
    token = preview_link_token(preview_link_create(usage_type="SignIn"))
    page = Client().get(f"/preview/{token}/?template={template.pk}").content.decode()
    assert "This is a draft (revision 1)" in page and "I approve this draft" in page
    html = Client().get(f"/preview/{token}/email/{template.pk}/").content.decode()
    assert "Reviewed " in html
    # Without an approval, Publish says what is missing and publishes nothing.
    publish = f"/admin/emails/template/{template.pk}/draft/publish/"
    refused = admin_client.post(publish, follow=True).content.decode()
    assert "Revision 1 of this draft has no approval yet" in refused
    template.refresh_from_db()
    assert template.subject == "Your sign-in code"
    # A comment alone is not an approval; a comment needs words or an approval.
    empty = approve(token, template, approve=False)
    assert "Write a comment (or approve the draft)." in empty.content.decode()
    assert approve(token, template).status_code == 302
    comment = PreviewComment.objects.get()
    assert (comment.approves, comment.draft_revision, comment.name) == (True, 1, "Dana")
    editor_page = admin_client.get(f"/admin/emails/template/{template.pk}/change/")
    assert "Approved by <bdi>Dana</bdi>" in editor_page.content.decode()
    # A new edit is a new revision: the approval was of the old one.
    edit(admin_client, template, publish=False, subject="Reviewed again {{ code }}")
    assert "no approval yet" in admin_client.post(publish, follow=True).content.decode()
    approve(token, template, name="Eve")
    assert admin_client.post(publish).status_code == 302
    template.refresh_from_db()
    assert template.subject == "Reviewed again {{ code }}"
    # The admin lists who approved which revision, and through which link.
    listing = admin_client.get("/admin/emails/previewcomment/").content.decode()
    assert "Eve" in listing and "Dana" in listing


def test_a_draft_that_cannot_be_sent_is_not_published(admin_client):
    template = sign_in()
    # Saved through the API (whose checks are the admin's), then broken behind its back.
    TemplateDraft.objects.create(
        template=template, subject="Hi", html_body="<p>no code here</p>", text_body=""
    )
    page = admin_client.post(
        f"/admin/emails/template/{template.pk}/draft/publish/", follow=True
    ).content.decode()
    assert "The draft cannot be published" in page and "{{ code }}" in page
    template.refresh_from_db()
    assert template.subject == "Your sign-in code"


def test_the_api_saves_reads_publishes_and_discards_drafts(send):
    template = sign_in()
    api = client_for("view_template", "change_template")
    url = f"/api/v1/templates/{template.pk}/draft/"
    assert api.get(url).status_code == 404
    body = {"details": {"subject": "API draft {{ code }}", "content": "<p>{{ code }}</p>"}}
    saved = api.put(url, body, format="json")
    assert saved.status_code == 200, saved.content
    assert saved.json()["revision"] == 1 and saved.json()["approved"] is False
    assert api.get(url).json()["details"]["subject"] == "API draft {{ code }}"
    assert sign_in_subject(send) == "Your sign-in code"
    # A draft is checked like the template: a sign-in email without its code is a 422.
    broken = api.put(url, {"details": {"subject": "x", "content": "<p>hi</p>"}}, format="json")
    assert broken.status_code == 422
    # Publishing takes the publish permission.
    assert api.post(f"{url}publish/").status_code == 403
    publisher = client_for("view_template", "publish_template")
    published = publisher.post(f"{url}publish/")
    assert published.status_code == 200 and published.json()["details"]["subject"].startswith(
        "API draft"
    )
    assert sign_in_subject(send).startswith("API draft ")
    assert publisher.post(f"{url}publish/").status_code == 409
    # Discarding.
    api.put(url, body | {"preheader": "p"}, format="json")
    assert api.delete(url).status_code == 204
    assert api.get(url).status_code == 404


def test_patch_through_the_api_still_publishes_at_once_so_it_takes_the_publish_permission(send):
    template = sign_in()
    change = {"details": {"subject": "Automated {{ code }}", "content": template.html_body}}
    url = f"/api/v1/templates/{template.pk}/"
    editor = client_for("view_template", "change_template", "add_template")
    assert editor.patch(url, change, format="json").status_code == 403
    assert editor.post("/api/v1/templates/", {}, format="json").status_code == 403
    assert sign_in_subject(send) == "Your sign-in code"
    publisher = client_for("view_template", "change_template", "publish_template")
    answer = publisher.patch(url, change, format="json")
    assert answer.status_code == 200, answer.content
    assert sign_in_subject(send).startswith("Automated ")


def test_an_approval_is_of_the_revision_the_reviewer_saw_and_never_of_a_later_draft(
    admin_client, settings
):
    settings.EMAILS_PUBLISH_REQUIRES_APPROVAL = True
    template = sign_in()
    publish = f"/admin/emails/template/{template.pk}/draft/publish/"
    token = preview_link_token(preview_link_create(usage_type="SignIn"))
    edit(admin_client, template, publish=False, subject="First {{ code }}")
    # The reviewer's page showed revision 1; the editor saved revision 2 meanwhile.
    edit(admin_client, template, publish=False, subject="Second {{ code }}")
    late = approve(token, template, seen=1)
    assert "The draft changed since this page was opened" in late.content.decode()
    assert not PreviewComment.objects.filter(approves=True).exists()
    # Approved and published; then a new draft (and a discarded one) starts after every
    # revision reviewers saw, so the old approval does not count for it.
    assert approve(token, template).status_code == 302
    assert admin_client.post(publish).status_code == 302
    edit(admin_client, template, publish=False, subject="Third {{ code }}")
    assert TemplateDraft.objects.get(template=template).revision == 3
    assert "no approval yet" in admin_client.post(publish, follow=True).content.decode()
    admin_client.post(f"/admin/emails/template/{template.pk}/draft/discard/")
    edit(admin_client, template, publish=False, subject="Fourth {{ code }}")
    assert "no approval yet" in admin_client.post(publish, follow=True).content.decode()
    # The publisher publishes the revision their page showed, not one saved since.
    approve(token, template)
    revision = TemplateDraft.objects.get(template=template).revision
    stale = admin_client.post(publish, {"draft_revision": revision - 1}, follow=True)
    assert "The draft changed since you looked at it" in stale.content.decode()
    assert admin_client.post(publish, {"draft_revision": revision}).status_code == 302
    template.refresh_from_db()
    assert template.subject == "Fourth {{ code }}"


def test_imports_can_land_as_drafts(tmp_path, send):
    template = sign_in()
    source = tmp_path / "logto.json"
    source.write_text(
        '[{"languageTag": "en", "templateType": "SignIn", "details": {"subject": '
        '"Imported {{ code }}", "content": "<p>{{ code }}</p>", "contentType": "text/html"}},'
        '{"languageTag": "nl", "templateType": "SignIn", "details": {"subject": '
        '"Geïmporteerd {{ code }}", "content": "<p>{{ code }}</p>", "contentType": '
        '"text/html"}}]'
    )
    call_command("import_templates", str(source), "--as-draft")
    template.refresh_from_db()
    assert template.subject == "Your sign-in code"
    assert TemplateDraft.objects.get(template=template).subject == "Imported {{ code }}"
    dutch = Template.objects.get(usage_type="SignIn", locale="nl")
    assert dutch.published_at is None and dutch.draft.subject == "Geïmporteerd {{ code }}"
    assert sign_in_subject(send) == "Your sign-in code"


def test_the_admin_import_lands_as_drafts_for_an_editor_who_cannot_publish(tmp_path):
    editor = staff(
        "view_template", "add_template", "change_template", "add_layout", "change_layout"
    )
    content = (
        b'[{"languageTag": "en", "templateType": "SignIn", "details": {"subject": '
        b'"Agency {{ code }}", "content": "<p>{{ code }}</p>", "contentType": "text/html"}}]'
    )
    from django.core.files.uploadedfile import SimpleUploadedFile

    def upload(**fields):
        return editor.post(
            "/admin/emails/template/import/",
            {"file": SimpleUploadedFile("t.json", content), **fields},
        ).content.decode()

    assert "You may import templates only as drafts here." in upload()
    assert sign_in().subject == "Your sign-in code"
    upload(as_draft="on")
    assert sign_in().subject == "Your sign-in code"
    assert TemplateDraft.objects.get(template=sign_in()).subject == "Agency {{ code }}"


def test_translate_into_makes_the_other_locale_as_a_draft_beside_its_source(admin_client, send):
    source = sign_in()
    response = admin_client.post(
        f"/admin/emails/template/{source.pk}/translate/", {"translate_locale": "NL-be"}
    )
    dutch = Template.objects.get(usage_type="SignIn", locale="nl-BE")
    assert response.status_code == 302
    assert response["Location"] == f"/admin/emails/template/{dutch.pk}/change/?source={source.pk}"
    assert dutch.published_at is None and dutch.draft.subject == source.subject
    page = admin_client.get(response["Location"]).content.decode()
    assert "Translating from" in page
    assert f'src="/admin/emails/template/{source.pk}/rendered/"' in page
    rendered = admin_client.get(f"/admin/emails/template/{source.pk}/rendered/")
    assert rendered.status_code == 200 and b"sign-in code" in rendered.content.lower()
    assert "sandbox" in rendered["Content-Security-Policy"]
    # Not live until published: a Belgian Dutch user still gets English.
    body = {"to": "a@example.com", "type": "SignIn", "payload": {"code": "9", "locale": "nl-BE"}}
    assert Message.objects.get(pk=send(body).json()["id"]).template_locale == "en"
    # Translating into a locale that exists opens it and overwrites nothing.
    admin_client.post(f"/admin/emails/template/{source.pk}/translate/", {"translate_locale": "de"})
    german = Template.objects.get(usage_type="SignIn", locale="de")
    assert (
        german.published_at is not None
        and not TemplateDraft.objects.filter(template=german).exists()
    )


def test_coverage_offers_translate_from_the_default_for_a_language_users_asked_for(
    admin_client, send
):
    body = {"to": "a@example.com", "type": "SignIn", "payload": {"code": "1", "locale": "nl"}}
    send(body)
    page = admin_client.get("/admin/emails/template/coverage/").content.decode()
    assert "Translate from en" in page
    answer = admin_client.post(
        "/admin/emails/template/translate/",
        {"translate_locale": "nl", "source_locale": "en"},
        follow=True,
    )
    english = Template.objects.filter(locale="en").count()
    assert f"Made {english} draft(s) in nl copied from en" in answer.content.decode()
    dutch = Template.objects.filter(locale="nl")
    assert dutch.count() == english and not dutch.filter(published_at__isnull=False).exists()
    assert TemplateDraft.objects.filter(template__locale="nl").count() == english


def test_translating_needs_add_and_change_permissions():
    source = sign_in()
    viewer = staff("view_template", "change_template")
    url = f"/admin/emails/template/{source.pk}/translate/"
    assert viewer.post(url, {"translate_locale": "nl"}).status_code == 403
    assert not Template.objects.filter(locale="nl").exists()


def test_export_and_import_round_trip_drafts_and_unpublished_templates(tmp_path, send):
    import io
    import json

    from emails.content.drafts import draft_save, draft_values, translation_start
    from emails.models import Layout

    plain = Layout.objects.create(
        name="Plain", html="<div>{{ content }}</div>", text="{{ content }}"
    )
    english = sign_in()
    draft_save(english, {**draft_values(english), "subject": "Draft {{ code }}", "layout": plain})
    dutch, _ = translation_start(english, "nl")
    draft_save(plain, {"html": "<section>{{ content }}</section>", "text": "{{ content }}"})
    call_command("export_templates", str(tmp_path), stdout=io.StringIO())
    meta = json.loads((tmp_path / "mailroom.json").read_text())
    entry = next(e for e in meta["templates"] if (e["usage_type"], e["locale"]) == ("SignIn", "en"))
    assert entry["published"] is True and entry["draft"]["subject"] == "Draft {{ code }}"
    assert entry["draft"]["layout"] == "Plain"
    assert (tmp_path / "templates/SignIn/en.draft.html").read_text() == english.html_body
    nl = next(e for e in meta["templates"] if (e["usage_type"], e["locale"]) == ("SignIn", "nl"))
    assert nl["published"] is False
    Template.objects.all().delete()
    Layout.objects.all().delete()
    out = io.StringIO()
    call_command("import_templates", str(tmp_path), stdout=out)
    assert "with its draft" in out.getvalue()
    english = sign_in()
    assert english.subject == "Your sign-in code" and english.published_at is not None
    assert english.draft.subject == "Draft {{ code }}" and english.draft.layout.name == "Plain"
    # (The translation was copied from what the English editor shows: its draft.)
    dutch = Template.objects.get(usage_type="SignIn", locale="nl")
    assert dutch.published_at is None and dutch.draft.subject == "Draft {{ code }}"
    plain = Layout.objects.get(name="Plain")
    assert plain.html == "<div>{{ content }}</div>"
    assert plain.draft.html == "<section>{{ content }}</section>"
    # Nothing of the drafts is live.
    assert sign_in_subject(send) == "Your sign-in code"


def test_a_layout_edit_is_a_draft_until_someone_who_may_publish_layouts_publishes_it(send):
    from emails.models import Layout, LayoutDraft

    layout = Layout.objects.get(name="Default")
    editor = staff("view_layout", "change_layout", "view_template")
    marked = layout.html.replace("<body", "<!-- draft marker --><body", 1)
    form = {"name": "Default", "html": marked, "text": layout.text}
    assert editor.post(f"/admin/emails/layout/{layout.pk}/change/", form).status_code == 302
    assert LayoutDraft.objects.get(layout=layout).html == marked
    assert "draft marker" not in Layout.objects.get(pk=layout.pk).html
    sign_in_subject(send)
    assert "draft marker" not in mail.outbox[-1].alternatives[0][0]
    page = editor.get(f"/admin/emails/layout/{layout.pk}/change/").content.decode()
    assert "Editing draft revision 1: not live" in page and "Publish the saved draft" not in page
    compare = editor.get(f"/admin/emails/layout/{layout.pk}/draft/compare/").content.decode()
    assert "draft marker" in compare
    assert editor.post(f"/admin/emails/layout/{layout.pk}/draft/publish/").status_code == 403
    publisher = staff("view_layout", "change_layout", "publish_layout")
    assert publisher.post(f"/admin/emails/layout/{layout.pk}/draft/publish/").status_code == 302
    sign_in_subject(send)
    assert "draft marker" in mail.outbox[-1].alternatives[0][0]


def test_the_api_drafts_layouts_too():
    from emails.models import Layout

    layout = Layout.objects.get(name="Default")
    api = client_for("view_layout", "change_layout")
    url = f"/api/v1/layouts/{layout.pk}/draft/"
    bad = api.put(url, {"html": "<div>no content</div>"}, format="json")
    assert bad.status_code == 422
    saved = api.put(url, {"html": "<div>{{ content }}</div>"}, format="json")
    assert saved.status_code == 200 and saved.json()["text"] == "{{ content }}"
    assert Layout.objects.get(pk=layout.pk).html != "<div>{{ content }}</div>"
    assert api.post(f"{url}publish/").status_code == 403
    publisher = client_for("view_layout", "publish_layout")
    assert publisher.post(f"{url}publish/").json()["html"] == "<div>{{ content }}</div>"


def test_an_editor_cannot_change_what_is_live_through_the_template_s_own_fields(send):
    template = sign_in()
    editor = staff("view_template", "change_template")
    # Switching a live email off (or another one on) is a publish.
    data = form_data(template, enabled="")
    page = editor.post(f"/admin/emails/template/{template.pk}/change/", data)
    assert page.status_code == 200
    assert "needs the publish permission" in page.content.decode()
    moved = editor.post(
        f"/admin/emails/template/{template.pk}/change/",
        {**data, "enabled": "on", "locale": "de-AT"},
    )
    assert "needs the publish permission" in moved.content.decode()
    template.refresh_from_db()
    assert (template.enabled, template.locale) == (True, "en")


def test_a_new_usage_type_must_suit_the_published_content(admin_client):
    template = sign_in()
    # The draft would suit an invitation, the published sign-in content (no {{ link }}) not.
    data = {
        "usage_type": "OrganizationInvitation",
        "locale": "en",
        "layout": "",
        "subject": "Join us",
        "preheader": "",
        "html_body": "<a href='{{ link }}'>Join</a>",
        "text_body": "",
        "from_email": "",
        "reply_to": "",
        "enabled": "on",
    }
    Template.objects.filter(usage_type="OrganizationInvitation", locale="en").delete()
    page = admin_client.post(f"/admin/emails/template/{template.pk}/change/", data)
    assert "The published content does not suit the new usage type" in page.content.decode()
    assert sign_in().usage_type == "SignIn"


def test_a_revert_by_whoever_may_not_publish_it_at_once_is_a_draft(admin_client, settings):
    template = sign_in()
    original = template.history.first()
    edit(admin_client, template, subject="Published later {{ code }}")
    revert = f"/admin/emails/template/{template.pk}/history/{original.history_id}/revert/"
    editor = staff("view_template", "change_template")
    assert editor.post(revert).status_code == 302
    template.refresh_from_db()
    assert template.subject == "Published later {{ code }}"
    assert template.draft.subject == "Your sign-in code"
    # With approval required, even a publisher's revert is a draft for review.
    TemplateDraft.objects.all().delete()
    settings.EMAILS_PUBLISH_REQUIRES_APPROVAL = True
    admin_client.post(revert)
    template.refresh_from_db()
    assert template.subject == "Published later {{ code }}"
    assert template.draft.subject == "Your sign-in code"


def test_with_approval_required_nothing_publishes_around_it(admin_client, settings):
    from django.core.files.uploadedfile import SimpleUploadedFile

    settings.EMAILS_PUBLISH_REQUIRES_APPROVAL = True
    template = sign_in()
    Template.objects.filter(pk=template.pk).update(subject="Edited {{ code }}")
    answer = admin_client.post(
        "/admin/emails/template/",
        {"action": "restore_default", "_selected_action": [template.pk]},
        follow=True,
    )
    assert "restoring the shipped default would skip it" in answer.content.decode()
    assert sign_in().subject == "Edited {{ code }}"
    content = (
        b'[{"languageTag": "en", "templateType": "SignIn", "details": {"subject": '
        b'"Around {{ code }}", "content": "<p>{{ code }}</p>", "contentType": "text/html"}}]'
    )
    page = admin_client.post(
        "/admin/emails/template/import/", {"file": SimpleUploadedFile("t.json", content)}
    )
    assert "You may import templates only as drafts here." in page.content.decode()
    assert sign_in().subject == "Edited {{ code }}"


def test_only_the_first_ten_ui_locales_are_matched():
    from emails.locales import requested_locales

    tags = " ".join(f"x{chr(97 + n // 26)}{chr(97 + n % 26)}" for n in range(500))
    assert len(requested_locales({"uiLocales": tags})) == 10


def test_a_revision_number_is_never_reused_after_a_discard_or_a_publish(admin_client):
    from emails.content.drafts import draft_discard, draft_save, draft_values
    from emails.models import Layout

    template = sign_in()
    first = draft_save(template, {**draft_values(template), "subject": "A {{ code }}"})
    draft_discard(template)
    second = draft_save(template, {**draft_values(template), "subject": "B {{ code }}"})
    assert (first.revision, second.revision) == (1, 2)
    # A publisher whose page showed A (revision 1) does not publish B.
    publish = f"/admin/emails/template/{template.pk}/draft/publish/"
    stale = admin_client.post(publish, {"draft_revision": 1}, follow=True).content.decode()
    assert "The draft changed since you looked at it" in stale
    assert sign_in().subject == "Your sign-in code"
    layout = Layout.objects.get(name="Default")
    one = draft_save(layout, {"html": "<div>{{ content }}</div>", "text": ""})
    draft_discard(layout)
    two = draft_save(layout, {"html": "<p>{{ content }}</p>", "text": ""})
    assert (one.revision, two.revision) == (1, 2)


def test_an_import_as_drafts_does_not_change_a_live_layout(tmp_path, send):
    import io
    import json

    from emails.models import Layout, LayoutDraft

    call_command("export_templates", str(tmp_path), stdout=io.StringIO())
    default = next(
        entry
        for entry in json.loads((tmp_path / "mailroom.json").read_text())["layouts"]
        if entry["name"] == "Default"
    )
    page = tmp_path / default["html"]
    page.write_text(page.read_text().replace("<body", "<!-- imported --><body", 1))
    call_command("import_templates", str(tmp_path), "--as-draft", stdout=io.StringIO())
    layout = Layout.objects.get(name="Default")
    assert "imported" not in layout.html
    assert "imported" in LayoutDraft.objects.get(layout=layout).html
    sign_in_subject(send)
    assert "imported" not in mail.outbox[-1].alternatives[0][0]


def test_a_draft_with_a_bad_sender_is_reported_not_a_crash(tmp_path):
    import io
    import json

    from django.core.management.base import CommandError

    from emails.content.drafts import draft_save, draft_values

    template = sign_in()
    draft_save(template, {**draft_values(template), "subject": "D {{ code }}"})
    call_command("export_templates", str(tmp_path), stdout=io.StringIO())
    meta = json.loads((tmp_path / "mailroom.json").read_text())
    for entry in meta["templates"]:
        if "draft" in entry:
            entry["draft"]["reply_to"] = "not an address"
    (tmp_path / "mailroom.json").write_text(json.dumps(meta))
    out = io.StringIO()
    with pytest.raises(CommandError, match="could not be imported"):
        call_command("import_templates", str(tmp_path), stdout=out)
    assert "its draft: reply_to 'not an address' is not an email address" in out.getvalue()


def test_with_approval_required_the_api_writes_drafts_not_templates(settings):
    settings.EMAILS_PUBLISH_REQUIRES_APPROVAL = True
    template = sign_in()
    publisher = client_for("view_template", "change_template", "publish_template")
    change = {"details": {"subject": "Unreviewed {{ code }}", "content": template.html_body}}
    refused = publisher.patch(f"/api/v1/templates/{template.pk}/", change, format="json")
    assert refused.status_code == 409 and "draft" in refused.json()["message"]
    assert sign_in().subject == "Your sign-in code"


def test_discard_refuses_a_draft_saved_since_the_page_was_shown(admin_client):
    template = sign_in()
    edit(admin_client, template, publish=False, subject="Mine {{ code }}")
    edit(admin_client, template, publish=False, subject="Theirs {{ code }}")
    revision = TemplateDraft.objects.get(template=template).revision
    discard = f"/admin/emails/template/{template.pk}/draft/discard/"
    answer = admin_client.post(discard, {"draft_revision": revision - 1}, follow=True)
    assert "nothing was discarded" in answer.content.decode()
    assert TemplateDraft.objects.get(template=template).subject == "Theirs {{ code }}"


def test_a_history_compare_with_a_bad_id_is_not_a_500(admin_client):
    template = sign_in()
    page = admin_client.get(f"/admin/emails/template/{template.pk}/history/compare/?a=abc&b=²")
    assert page.status_code == 200
