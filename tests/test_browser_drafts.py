"""Issue 14 in Chromium: an edit saved in the editor is a draft, a designer reviews and
approves exactly that draft from a link, Publish makes it the email; a new locale is started
from the coverage page and translated beside its source; the pages meet WCAG 2.2 AA.

Skips when /usr/bin/chromium is missing on a developer's machine; fails under CI=true.
"""

import json
import os

import pytest

from emails.content.defaults import sync_defaults
from emails.models import Layout, Message, PreviewComment, Template, TemplateDraft
from tests.helpers import SCREENSHOTS
from tests.test_browser_preview import axe_violations, editor, wait_until

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_a_draft_is_reviewed_and_approved_from_a_link_then_published(
    admin_page, browser, live_server, settings
):
    from playwright.sync_api import expect

    settings.EMAILS_PUBLISH_REQUIRES_APPROVAL = True
    page = admin_page
    sync_defaults(Template, Layout)
    template = Template.objects.get(usage_type="SignIn", locale="en")
    editor(page, live_server, template)
    expect(page.locator("#mailroom-draft-title")).to_have_text(
        "Published " + template.published_at.strftime("%-d %b %Y %H:%M")
    )

    # Save: a draft, which the page says is not live.
    page.fill("#id_subject", "Your code, reviewed {{ code }}")
    page.click("input[name=_continue]")
    expect(page.locator("#mailroom-draft-title")).to_have_text("Editing draft revision 1: not live")
    expect(page.locator(".messagelist")).to_contain_text("Saved as draft revision 1")
    expect(page.locator(".mailroom-approval-needed")).to_be_visible()
    page.locator("details.mailroom-draft-diff summary").click()
    page.locator("#mailroom-draft").screenshot(path=str(SCREENSHOTS / "draft-state.png"))
    assert Template.objects.get(pk=template.pk).subject == "Your sign-in code"
    assert page.input_value("#id_subject") == "Your code, reviewed {{ code }}"

    # Share the saved draft; the designer sees it, says it is a draft, and approves it.
    page.click("button[data-share=saved]")
    expect(page.locator("#mailroom-share-shows")).to_have_text(
        "This link shows the saved draft (revision 1), for review."
    )
    url = page.input_value("#mailroom-share-url")
    designer = browser.new_context()
    shared = designer.new_page()
    shared.goto(url)
    expect(shared.locator("#preview-subject")).to_have_text("Your code, reviewed 482913")
    expect(shared.locator(".notice").first).to_contain_text("This is a draft (revision 1)")
    shared.fill("#id_name", "Dana from design")
    shared.check("#id_approve")
    shared.locator("#id_approve").scroll_into_view_if_needed()
    shared.screenshot(path=str(SCREENSHOTS / "designer-approve.png"))
    shared.click("button[type=submit]")
    expect(shared.locator(".thanks")).to_be_visible()
    expect(shared.locator(".comment .who").first).to_contain_text("approved")
    designer.close()
    comment = PreviewComment.objects.get()
    assert (comment.approves, comment.draft_revision) == (True, 1)

    # Publish: the email changes, the page says so.
    page.reload()
    expect(page.locator(".mailroom-approved")).to_contain_text("Approved by Dana from design")
    page.click("text=Publish the saved draft")
    expect(page.locator(".messagelist")).to_contain_text("Published SignIn · en")
    expect(page.locator("#mailroom-draft-title")).to_contain_text("Published ")
    assert Template.objects.get(pk=template.pk).subject == "Your code, reviewed {{ code }}"


def test_publish_with_unsaved_edits_asks_first(admin_page, live_server):
    from playwright.sync_api import expect

    page = admin_page
    sync_defaults(Template, Layout)
    template = Template.objects.get(usage_type="SignIn", locale="en")
    editor(page, live_server, template)
    page.fill("#id_subject", "Saved draft {{ code }}")
    page.click("input[name=_continue]")
    page.wait_for_selector("text=Editing draft revision 1: not live")
    page.fill("#id_subject", "Typed, not saved {{ code }}")
    asked = []

    def dismiss(dialog):
        asked.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", dismiss)
    page.click("text=Publish the saved draft")
    assert asked and "unsaved edits will be lost" in asked[0]
    assert page.input_value("#id_subject") == "Typed, not saved {{ code }}"
    assert Template.objects.get(pk=template.pk).subject == "Your sign-in code"
    # Enter in a field saves the form (a new draft revision); it never publishes or discards.
    page.locator("#id_subject").press("Enter")
    page.wait_for_url(f"{live_server.url}/admin/emails/template/")  # admin's Save: to the list
    expect(page.locator(".messagelist")).to_contain_text("Saved as draft revision 2")
    assert Template.objects.get(pk=template.pk).subject == "Your sign-in code"
    assert TemplateDraft.objects.get(template=template).subject == "Typed, not saved {{ code }}"


def test_a_new_language_from_the_coverage_page_in_a_few_clicks(admin_page, live_server, send):
    from playwright.sync_api import expect

    page = admin_page
    sync_defaults(Template, Layout)
    body = {"to": "a@example.com", "type": "SignIn", "payload": {"code": "1", "locale": "nl"}}
    assert send(body).status_code == 200
    assert Message.objects.get().template_locale == "en"
    page.goto(f"{live_server.url}/admin/emails/template/coverage/")
    page.click("text=Translate from en")
    english = Template.objects.filter(locale="en").count()
    expect(page.locator(".messagelist")).to_contain_text(f"Made {english} draft(s) in nl")
    dutch = Template.objects.get(usage_type="SignIn", locale="nl")
    assert dutch.published_at is None

    # "Translate into…" from the English template opens the new one beside its source.
    source = Template.objects.get(usage_type="Register", locale="en")
    editor(page, live_server, source)
    page.fill("#mailroom-translate-locale", "fr-CA")
    page.click("text=Start a draft from en")
    expect(page.locator(".messagelist")).to_contain_text("is a draft copied from en")
    expect(page.locator(".mailroom-source figcaption")).to_contain_text("Translating from en")
    wait_until(
        page,
        "document.querySelector('.mailroom-source-frame').contentDocument.body"
        ".textContent.includes('Confirm your email address')",
    )
    assert Template.objects.get(usage_type="Register", locale="fr-CA").published_at is None
    # Side by side: the source on the left, the draft's fields, then its live preview.
    source_box = page.locator(".mailroom-source").bounding_box()
    fields_box = page.locator(".mailroom-fields").bounding_box()
    preview_box = page.locator("#mailroom-preview").bounding_box()
    assert source_box["x"] + source_box["width"] <= fields_box["x"]
    assert fields_box["x"] + fields_box["width"] <= preview_box["x"]
    wait_until(page, "document.getElementById('mailroom-subject').textContent.length > 0")
    page.screenshot(path=str(SCREENSHOTS / "translate-side-by-side.png"))


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_the_draft_pages_meet_wcag_aa(admin_page, browser, live_server, theme):
    from emails.backoffice.preview_links import preview_link_create, preview_link_token
    from emails.content.drafts import draft_save, draft_values, translation_start

    page = admin_page
    page.evaluate(f"localStorage.setItem('theme', '{theme}')")
    sync_defaults(Template, Layout)
    template = Template.objects.get(usage_type="SignIn", locale="en")
    draft_save(template, {**draft_values(template), "subject": "Drafted {{ code }}"})
    dutch, _ = translation_start(template, "nl")
    layout = Layout.objects.get(name="Default")
    draft_save(layout, {"html": layout.html.replace("<body", "<!-- d --><body"), "text": ""})
    pages = {
        "editor with a draft": f"/admin/emails/template/{template.pk}/change/",
        "translation beside its source": (
            f"/admin/emails/template/{dutch.pk}/change/?source={template.pk}"
        ),
        "draft compare": f"/admin/emails/template/{template.pk}/draft/compare/",
        "layout with a draft": f"/admin/emails/layout/{layout.pk}/change/",
    }
    found = {}
    for name, path in pages.items():
        page.goto(f"{live_server.url}{path}")
        page.wait_for_load_state("networkidle")
        found[name] = axe_violations(page, "#content")
    token = preview_link_token(preview_link_create(usage_type="SignIn"))
    designer = browser.new_context(color_scheme=theme)
    shared = designer.new_page()
    shared.goto(f"{live_server.url}/preview/{token}/?template={template.pk}")
    shared.wait_for_load_state("networkidle")
    found["designer page with approve"] = axe_violations(shared, "body")
    designer.close()
    assert {name: found[name] for name in found if found[name]} == {}, json.dumps(found, indent=1)
