import os
import re

import pytest
from rest_framework.test import APIClient

from tests.helpers import AUTHORIZATION, FAULT_SUMMARY, use_providers
from tests.stubs import ProviderStub


def pytest_terminal_summary(terminalreporter):
    if not FAULT_SUMMARY:
        return
    columns = ["scenario", "accepted", "sent", "duplicates", "failed", "expired", "lost", "retries"]
    widths = [max(len(c), *(len(str(row.get(c, ""))) for row in FAULT_SUMMARY)) for c in columns]
    terminalreporter.section("fault suite summary")
    terminalreporter.write_line("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    for row in FAULT_SUMMARY:
        cells = [str(row.get(c, "")) for c in columns]
        terminalreporter.write_line(
            "  ".join(v.ljust(w) for v, w in zip(cells, widths, strict=True))
        )
        extra = {k: v for k, v in row.items() if k not in columns}
        if extra:
            terminalreporter.write_line(f"    {extra}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test item, so fixtures can tell a failed test."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium, one for the whole run: Playwright's sync API runs an event loop in
    this thread, and a second one could not start beside it."""
    if not os.path.exists(CHROMIUM):
        reason = f"{CHROMIUM} is not installed (apt-get install -y chromium)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true: {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def api():
    """A client that talks to the Logto endpoint the way Logto does."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=AUTHORIZATION)
    return client


@pytest.fixture
def post_email(api):
    def post(body, **extra):
        return api.post("/api/logto/email", body, format="json", **extra)

    return post


@pytest.fixture
def send(post_email, django_capture_on_commit_callbacks):
    """POST like Logto and run what happens after commit (in-process delivery)."""

    def send(body, **extra):
        with django_capture_on_commit_callbacks(execute=True):
            return post_email(body, **extra)

    return send


@pytest.fixture
def provider_stub():
    stub = ProviderStub().start()
    yield stub
    stub.stop()


@pytest.fixture
def postmark(settings, provider_stub):
    """Deliver through anymail's real Postmark backend to the local stub."""
    use_providers(settings, "postmark")
    settings.ANYMAIL = {
        "POSTMARK_SERVER_TOKEN": "stub-token",
        "POSTMARK_API_URL": provider_stub.url,
    }
    return provider_stub


@pytest.fixture
def admin_page(browser, live_server):
    """A Chromium page logged in to the admin as a superuser (editor@example.com)."""
    from django.contrib.auth.models import User

    User.objects.create_superuser("editor", "editor@example.com", "browser-test-pw")
    context = browser.new_context(viewport={"width": 1440, "height": 1100})
    page = context.new_page()
    page.set_default_timeout(15000)
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "editor")
    page.fill("#id_password", "browser-test-pw")
    page.click("input[type=submit]")
    page.wait_for_url(re.compile(r".*/admin/$"))
    yield page
    context.close()
