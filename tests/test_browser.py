"""The admin editor and the designers' preview, driven in Debian's Chromium by Playwright.

Skips when /usr/bin/chromium is missing on a developer's machine (`apt-get install chromium`);
fails under CI=true. Takes the README's screenshots (into docs/screenshots/ when
MAILROOM_SCREENSHOTS=docs/screenshots is set).
"""

import os
import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import User

from emails.content.defaults import sync_defaults
from emails.models import Layout, Template
from tests.factories import TemplateFactory
from tests.helpers import SCREENSHOTS

# Playwright's sync API runs an event loop in this thread; the ORM calls in these tests are
# ordinary synchronous ones against the test database.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_editor_previews_shares_and_revokes(admin_page, browser, live_server):
    from playwright.sync_api import expect

    page = admin_page
    # Given the shipped English sign-in template and a French one
    sync_defaults(Template, Layout)
    template = Template.objects.get(usage_type="SignIn", locale="en")
    TemplateFactory(usage_type="SignIn", locale="fr", subject="Votre code {{ code }}")

    # Open the template: the preview shows it rendered with the first sample
    page.goto(f"{live_server.url}/admin/emails/template/{template.pk}/change/")
    expect(page.locator("#mailroom-subject")).to_have_text("Your sign-in code")
    frame = page.frame_locator("#mailroom-frame")
    expect(frame.locator(".code")).to_have_text("482913")
    expect(frame.locator(".header")).to_have_text("Acme Web")  # the layout, with the brand

    # Type into the subject and into the code editor: the preview follows, unsaved
    page.fill("#id_subject", "Hello {{ code }} from the browser")
    expect(page.locator("#mailroom-subject")).to_have_text("Hello 482913 from the browser")
    page.locator(".CodeMirror[data-field=html_body]").click()
    page.keyboard.press("Control+End")
    page.keyboard.type("\n<p>Typed in Chromium for {{ application.name }}</p>")
    expect(frame.locator("body")).to_contain_text("Typed in Chromium for Acme Web")
    page.locator(".CodeMirror[data-field=text_body]").click()
    page.keyboard.press("Control+End")
    page.keyboard.type("Plain words for {{ application.name }}")
    expect(page.locator("#mailroom-text")).to_contain_text("Plain words for Acme Web")

    # The sample with markup in the name comes out escaped, as text: no script runs
    page.select_option("#mailroom-sample", "Name with markup")
    expect(frame.locator(".header")).to_contain_text("<script>alert('x')</script>")
    page.select_option("#mailroom-sample", "Branding and organization")
    expect(frame.locator(".header img")).to_have_attribute("alt", "Acme")
    page.locator("button[data-width=mobile]").click()
    expect(page.locator("#mailroom-frame-holder")).to_have_attribute("data-width", "mobile")
    page.locator("button[data-width=desktop]").click()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "editor.png"), full_page=False)

    # Break the template: the error shows inline with its line, the pane is not blank
    page.locator(".CodeMirror[data-field=html_body]").click()
    page.keyboard.press("Control+End")
    page.keyboard.type("\n{% if code %}")
    expect(page.locator("#mailroom-errors")).to_contain_text(
        re.compile(r"HTML body, line \d+: Unclosed tag")
    )
    expect(frame.locator("body")).to_contain_text("does not render")
    page.keyboard.press("Control+z")
    expect(page.locator("#mailroom-errors")).to_be_hidden()

    # Share a preview link and open it in a fresh context, without logging in
    page.click("button[data-share=saved]")
    expect(page.locator("#mailroom-share-url")).to_have_value(re.compile(r"/preview/"))
    url = page.input_value("#mailroom-share-url")
    designer = browser.new_context(viewport={"width": 1280, "height": 1000})
    shared = designer.new_page()
    shared.goto(url)
    # (the saved content, not the unsaved edits)
    expect(shared.locator("#preview-subject")).to_have_text("Your sign-in code")
    expect(shared.frame_locator("#preview-frame").locator(".code")).to_have_text("482913")
    shared.screenshot(path=str(SCREENSHOTS / "designer-preview.png"), full_page=False)
    shared.get_by_role("link", name="fr", exact=True).click()
    expect(shared.locator("#preview-subject")).to_have_text("Votre code 482913")

    # Revoke it in the admin: the designer's link is refused
    page.goto(f"{live_server.url}/admin/emails/previewlink/")
    page.locator("input.action-select").first.check()
    page.select_option("select[name=action]", "revoke")
    page.click("button[name=index]")
    expect(page.locator(".messagelist")).to_contain_text("Revoked 1 preview link")
    response = shared.goto(url)
    assert response.status == 410
    expect(shared.locator("h1")).to_have_text("This preview link has expired or was revoked")
    designer.close()


def test_markup_from_templates_and_samples_runs_nothing_on_our_pages(admin_page, live_server):
    """The shipped "Name with markup" sample and a template whose subject and plain text hold
    <script> and <img onerror> run nothing on the designer page, the gallery or the editor:
    no dialog opens and the browser reports no error (a blocked inline script is one)."""
    from playwright.sync_api import expect

    from emails.backoffice.preview_links import preview_link_create, preview_link_token

    page = admin_page
    dialogs, errors = [], []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    sync_defaults(Template, Layout)
    hostile = TemplateFactory(
        usage_type="SignIn",
        locale="de",
        subject="<img src=x onerror=alert('subject')> {{ code }}",
        html_body="<p>{{ code }}</p>",
        text_body="<script>alert('text')</script> <img src=x onerror=alert('img')> {{ code }}",
    )
    markup_sample = "Name with markup"

    for link_type in ("SignIn", ""):  # a usage type's link, then the gallery
        token = preview_link_token(preview_link_create(usage_type=link_type))
        for template in (hostile, Template.objects.get(usage_type="SignIn", locale="en")):
            page.goto(
                f"{live_server.url}/preview/{token}/?template={template.pk}&sample={markup_sample}"
            )
            expect(page.locator("#preview-text")).to_contain_text("<script>alert(")
            expect(page.frame_locator("#preview-frame").locator("body")).to_be_visible()
    expect(page.locator("#preview-subject")).to_contain_text("Your sign-in code")

    page.goto(f"{live_server.url}/admin/emails/template/{hostile.pk}/change/")
    page.select_option("#mailroom-sample", markup_sample)
    expect(page.locator("#mailroom-text")).to_contain_text("<script>alert('text')</script>")
    expect(page.locator("#mailroom-subject")).to_contain_text("<img src=x onerror=")
    page.wait_for_timeout(500)  # let the frame's last render arrive

    assert dialogs == []
    assert errors == []


def _delivery_history(now):
    """A day of counts as the worker writes them: steady sign-ins, a provider outage at
    10:00 (failed tries on postmark, slower deliveries), a few expired codes."""
    from emails.models import DeliveryStat

    rows = []
    for minutes_ago in range(0, 24 * 60, 5):
        minute = (now - timedelta(minutes=minutes_ago)).replace(second=0, microsecond=0)
        busy = 6 + (minutes_ago % 90) // 15
        outage = 40 <= minutes_ago <= 55
        rows += [
            DeliveryStat(minute=minute, kind="status", key="sent", count=busy),
            DeliveryStat(
                minute=minute, kind="latency", key="1" if not outage else "10", count=busy
            ),
            DeliveryStat(minute=minute, kind="requested", key="en", count=busy - 2),
            DeliveryStat(minute=minute, kind="requested", key="pt-BR", count=2),
            DeliveryStat(minute=minute, kind="locale", key="pt-BR:en", count=2),
        ]
        if outage:
            rows += [
                DeliveryStat(minute=minute, kind="provider", key="postmark", count=3),
                DeliveryStat(minute=minute, kind="status", key="expired", count=1),
                DeliveryStat(minute=minute, kind="reason", key="code expired", count=1),
            ]
    DeliveryStat.objects.bulk_create(rows)


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_delivery_dashboard_draws_its_charts(browser, live_server, scheme):
    from django.utils import timezone
    from playwright.sync_api import expect

    User.objects.create_superuser("ops", "ops@example.com", "browser-test-pw")
    _delivery_history(timezone.now())
    context = browser.new_context(viewport={"width": 1280, "height": 1200}, color_scheme=scheme)
    page = context.new_page()
    page.set_default_timeout(15000)
    errors = []
    page.on(
        "console",
        lambda msg: errors.append(f"{msg.text} {msg.location}") if msg.type == "error" else None,
    )
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{live_server.url}/admin/login/?next=/admin/emails/message/")
    page.fill("#id_username", "ops")
    page.fill("#id_password", "browser-test-pw")
    page.click("input[type=submit]")
    page.click("text=Delivery dashboard")
    expect(page.locator(".delivery")).to_have_attribute("data-charts", "ready")
    page.click("text=Last day")
    expect(page.locator(".delivery")).to_have_attribute("data-charts", "ready")
    # Two charts, each a canvas with its legend: the series and their colours.
    expect(page.locator(".uplot canvas")).to_have_count(2)
    legend = page.locator("#chart-status .u-legend")
    expect(legend).to_contain_text("sent")
    expect(legend).to_contain_text("expired")
    expect(page.locator("#chart-latency .u-legend")).to_contain_text("p95")
    expect(page.locator("#locales")).to_contain_text("pt-BR")
    expect(page.locator("#providers")).to_contain_text("postmark")
    # The chart really drew something: its canvas is not blank.
    painted = page.evaluate(
        """() => { const c = document.querySelector('#chart-status canvas');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n; }"""
    )
    assert painted > 1000
    page.screenshot(path=str(SCREENSHOTS / f"delivery-{scheme}.png"), full_page=True)
    # No CSP violation, no script error (the browser's own favicon request is Django admin's 404).
    assert [error for error in errors if "/favicon.ico" not in error] == []
    context.close()


def test_the_code_editor_lets_the_keyboard_out_and_unsaved_edits_ask_first(admin_page, live_server):
    """Issue 13, bugs 8 and 7: Tab indents inside the editor, Esc then Tab moves on (no
    keyboard trap); leaving with unsaved edits asks, saving does not."""
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import expect

    page = admin_page
    sync_defaults(Template, Layout)
    template = Template.objects.get(usage_type="SignIn", locale="en")
    url = f"{live_server.url}/admin/emails/template/{template.pk}/change/"
    page.goto(url)
    editor = page.locator(".CodeMirror[data-field=html_body]")
    editor.click()
    page.keyboard.press("Control+End")
    page.keyboard.press("Tab")  # indents: focus stays in the editor
    focused = "() => document.activeElement.closest('.CodeMirror')?.dataset.field || ''"
    assert page.evaluate(focused) == "html_body"
    expect(page.locator("#mailroom-hint-html_body")).to_contain_text("Esc, then Tab")
    page.keyboard.press("Escape")
    page.keyboard.press("Tab")
    assert page.evaluate(focused) != "html_body"  # out of the editor

    # Unsaved: going away asks (the browser's own "Leave site?" dialog)
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.type), dialog.dismiss()))
    with pytest.raises(PlaywrightError, match="ERR_ABORTED"):  # the dialog said stay
        page.goto(f"{live_server.url}/admin/", wait_until="commit")
    assert dialogs == ["beforeunload"]
    assert page.url == url  # dismissed: still here, edits intact

    # Saving does not ask
    page.click("input[name=_save]")
    page.wait_for_url(re.compile(r".*/admin/emails/template/$"))
    assert dialogs == ["beforeunload"]


def test_the_layout_editor_lets_the_keyboard_out_too_and_a_sample_is_no_edit(
    admin_page, live_server
):
    page = admin_page
    sync_defaults(Template, Layout)
    layout = Layout.objects.first()
    page.goto(f"{live_server.url}/admin/emails/layout/{layout.pk}/change/")
    page.locator(".CodeMirror[data-field=html]").click()
    focused = "() => document.activeElement.closest('.CodeMirror')?.dataset.field || ''"
    page.keyboard.press("Tab")
    assert page.evaluate(focused) == "html"
    page.keyboard.press("Escape")
    page.keyboard.press("Tab")
    assert page.evaluate(focused) != "html"

    # On a template, choosing another sample is not an edit: leaving does not ask.
    template = Template.objects.get(usage_type="SignIn", locale="en")
    page.goto(f"{live_server.url}/admin/emails/template/{template.pk}/change/")
    options = page.locator("#mailroom-sample option").all_text_contents()
    page.select_option("#mailroom-sample", options[-1])
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.type), dialog.dismiss()))
    page.goto(f"{live_server.url}/admin/")
    assert dialogs == [] and page.url.endswith("/admin/")
