"""The coverage page for one application and/or organization (issue 15): each cell says
whether the scope overrides it with its own template or inherits it, and from what."""

import json
import os
import re

import pytest

from emails.content.coverage import coverage_matrix
from emails.models import SeenScope, Template
from tests.factories import MessageFactory, TemplateFactory
from tests.helpers import staff
from tests.test_coverage import cell

# Playwright's sync API runs an event loop in the test's thread (the browser test below).
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

pytestmark = pytest.mark.django_db

APP, ORG, OTHER_ORG = "app-shop", "org-acme", "org-other"
URL = "/admin/emails/template/coverage/"


def matrix_cell(matrix: dict, usage_type: str, locale: str):
    row = next(cells for kind, _label, cells in matrix["rows"] if kind == usage_type)
    return row[matrix["locales"].index(locale)]


def unscoped(usage_type: str, locale: str) -> int:
    return Template.objects.get(
        usage_type=usage_type, locale=locale, application_id="", organization_id=""
    ).pk


def test_an_organization_override_overrides_for_it_and_the_others_inherit():
    own = TemplateFactory(usage_type="SignIn", locale="en", organization_id=ORG)
    acme = coverage_matrix(organization_id=ORG)
    assert acme["scoped"] is True
    en = matrix_cell(acme, "SignIn", "en")
    assert (en.state, en.template_id) == ("overrides", own.pk)
    # Language first: French of this organization is the unscoped French template.
    fr = matrix_cell(acme, "SignIn", "fr")
    assert (fr.state, fr.served_id, fr.served_scope) == (
        "inherits",
        unscoped("SignIn", "fr"),
        "any",
    )
    assert matrix_cell(acme, "Register", "en").state == "inherits"
    for other in (coverage_matrix(organization_id=OTHER_ORG), coverage_matrix(application_id=APP)):
        en = matrix_cell(other, "SignIn", "en")
        assert (en.state, en.served_id, en.template_id) == (
            "inherits",
            unscoped("SignIn", "en"),
            None,
        )
    # With both, the organization's template is the one inherited.
    both = matrix_cell(coverage_matrix(application_id=APP, organization_id=ORG), "SignIn", "en")
    assert (both.state, both.served_id, both.served_scope) == ("inherits", own.pk, "organization")
    # The unscoped matrix is as before: the unscoped template, present.
    plain = matrix_cell(coverage_matrix(), "SignIn", "en")
    assert (plain.state, plain.template_id) == ("present", unscoped("SignIn", "en"))
    assert coverage_matrix()["scoped"] is False


def test_an_application_override_overrides_for_it_and_its_organizations_inherit_it():
    own = TemplateFactory(usage_type="Register", locale="de", application_id=APP)
    de = matrix_cell(coverage_matrix(application_id=APP), "Register", "de")
    assert (de.state, de.template_id) == ("overrides", own.pk)
    de = matrix_cell(coverage_matrix(application_id=APP, organization_id=ORG), "Register", "de")
    assert (de.state, de.served_id, de.served_scope) == ("inherits", own.pk, "application")
    de = matrix_cell(coverage_matrix(organization_id=ORG), "Register", "de")
    assert (de.state, de.served_id) == ("inherits", unscoped("Register", "de"))


def test_an_application_and_organization_template_is_only_that_combinations_own():
    own = TemplateFactory(usage_type="SignIn", locale="en", application_id=APP, organization_id=ORG)
    en = matrix_cell(coverage_matrix(application_id=APP, organization_id=ORG), "SignIn", "en")
    assert (en.state, en.template_id) == ("overrides", own.pk)
    for scope in ({"application_id": APP}, {"organization_id": ORG}):
        en = matrix_cell(coverage_matrix(**scope), "SignIn", "en")
        assert (en.state, en.served_id, en.served_scope) == (
            "inherits",
            unscoped("SignIn", "en"),
            "any",
        )


def test_a_scope_s_disabled_draft_fallback_and_missing_cells():
    disabled = TemplateFactory(usage_type="SignIn", locale="de", organization_id=ORG, enabled=False)
    draft = TemplateFactory(usage_type="SignIn", locale="fr", organization_id=ORG)
    Template.objects.filter(pk=draft.pk).update(published_at=None)
    own_only = TemplateFactory(usage_type="SignIn", locale="fr-CA", organization_id=ORG)
    Template.objects.filter(usage_type="Register", locale="it", organization_id="").delete()
    acme = coverage_matrix(organization_id=ORG)
    # The scope's own template does not serve: what serves instead is the unscoped one.
    de = matrix_cell(acme, "SignIn", "de")
    assert (de.state, de.template_id, de.served_by, de.served_scope) == (
        "disabled",
        disabled.pk,
        "de",
        "any",
    )
    fr = matrix_cell(acme, "SignIn", "fr")
    assert (fr.state, fr.template_id, fr.served_by) == ("unpublished", draft.pk, "fr")
    # A language only the organization has is a column of its matrix, not of the others'.
    assert matrix_cell(acme, "SignIn", "fr-CA").state == "overrides"
    assert "fr-CA" not in coverage_matrix(organization_id=OTHER_ORG)["locales"]
    # No Italian registration anywhere: English serves (a fallback, inherited from any).
    it = matrix_cell(acme, "Register", "it")
    assert (it.state, it.served_by, it.served_scope) == ("fallback", "en", "any")
    # Nothing left to serve: missing, in the scoped view as in the plain one.
    Template.objects.filter(locale="en").exclude(pk=own_only.pk).update(enabled=False)
    Template.objects.filter(usage_type="Generic").update(enabled=False)
    mfa = matrix_cell(coverage_matrix(organization_id=ORG), "MfaVerification", "en")
    assert (mfa.state, mfa.served_id) == ("missing", None)


def test_a_scope_counts_only_its_own_fallback_messages():
    acme = {"code": "1", "locale": "ca", "organization": {"id": ORG}}
    MessageFactory.create_batch(
        2, usage_type="SignIn", requested_locale="de", used_fallback=True, payload=acme
    )
    MessageFactory(usage_type="SignIn", requested_locale="de", used_fallback=True)
    counts = {
        scope: matrix_cell(coverage_matrix(organization_id=scope), "SignIn", "de").fallback_messages
        for scope in ("", ORG, OTHER_ORG)
    }
    assert counts == {"": 3, ORG: 2, OTHER_ORG: 0}


def test_the_page_offers_the_scopes_and_shows_the_one_chosen():
    own = TemplateFactory(usage_type="SignIn", locale="en", application_id=APP, organization_id=ORG)
    org_fr = TemplateFactory(usage_type="SignIn", locale="fr", organization_id=ORG)
    TemplateFactory(usage_type="SignIn", locale="de", application_id="app-from-template")
    SeenScope.objects.create(
        kind="application", logto_id=APP, name="Shop", last_seen_at="2026-12-01T10:00Z"
    )
    SeenScope.objects.create(
        kind="organization", logto_id=ORG, name="Acme Inc.", last_seen_at="2026-12-01T10:00Z"
    )
    client = staff("view_template")  # what the coverage page already asks for
    page = client.get(URL, {"application": APP, "organization": ORG, "days": 30}).content.decode()

    # The selector: labelled fields, their choices (ids with the names Logto sent).
    assert '<form method="get" class="coverage-scope" aria-label="Scope">' in page
    for kind, value in (("application", APP), ("organization", ORG)):
        assert f'<label for="id_scope_{kind}">{kind.title()}</label>' in page
        field = re.search(rf'<input type="text" id="id_scope_{kind}"[^>]*>', page).group(0)
        assert f'name="{kind}"' in field and f'value="{value}"' in field
        assert f'list="coverage-{kind}s"' in field
    assert '<option value="app-shop">Shop</option>' in page
    assert '<option value="app-from-template"></option>' in page
    assert '<option value="org-acme">Acme Inc.</option>' in page
    assert '<input type="hidden" name="days" value="30">' in page
    # The chosen scope, and the period links keep it.
    assert (
        "For application <code>app-shop</code> (Shop) + organization <code>org-acme</code>" in page
    )
    assert 'href="?days=7&amp;application=app-shop&amp;organization=org-acme"' in page
    # The cells: the combination's own English overrides, the organization's French and
    # the unscoped German are inherited.
    assert cell(page, "Sign-in", "en") == 'class="overrides" title="overrides"> ✓ own'
    assert f'href="/admin/emails/template/{own.pk}/change/">✓ own' in page
    assert cell(page, "Sign-in", "fr") == (
        'class="inherits" title="inherits: fr · organization"> ↑ organization'
    )
    assert f'↑ <a href="/admin/emails/template/{org_fr.pk}/change/">organization</a>' in page
    # ... and the template of another application is not in reach.
    assert cell(page, "Sign-in", "de") == 'class="inherits" title="inherits: de · any"> ↑ any'
    de = unscoped("SignIn", "de")
    assert f'↑ <a href="/admin/emails/template/{de}/change/">any</a>' in page


def test_the_plain_page_has_the_selector_blank():
    page = staff("view_template").get(URL).content.decode()
    assert re.search(
        r'<input type="text" id="id_scope_organization" name="organization" value=""', page
    )
    assert 'href="?days=7"' in page
    assert "Show any (unscoped)" not in page
    assert cell(page, "Sign-in", "en") == 'class="present" title="present"> ✓'


@pytest.mark.parametrize(
    "query",
    [
        {"application": "not an id!"},
        {"organization": "<script>alert(1)</script>"},
        {"application": "x" * 129, "organization": "a/b"},
        {"application": "\x00", "days": "9" * 5000},
    ],
)
def test_a_bad_id_is_ignored_with_a_message(admin_client, query):
    response = admin_client.get(URL, query)
    assert response.status_code == 200
    page = response.content.decode()
    assert '<p class="errornote" role="status">Ignored the ' in page
    assert "<script>alert" not in page
    assert cell(page, "Sign-in", "en") == 'class="present" title="present"> ✓'


def test_a_bad_id_beside_a_good_one_keeps_the_good_one(admin_client):
    TemplateFactory(usage_type="SignIn", locale="en", organization_id=ORG)
    page = admin_client.get(URL, {"application": "bad id", "organization": ORG}).content.decode()
    assert "Ignored the application id given" in page
    assert cell(page, "Sign-in", "en") == 'class="overrides" title="overrides"> ✓ own'


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("theme", ["light", "dark"])
def test_the_scoped_page_meets_wcag_aa(admin_page, live_server, theme):
    from emails.content.defaults import sync_defaults
    from emails.models import Layout
    from tests.test_browser_preview import axe_violations

    sync_defaults(Template, Layout)
    TemplateFactory(usage_type="SignIn", locale="en", organization_id=ORG)
    TemplateFactory(usage_type="SignIn", locale="de", organization_id=ORG, enabled=False)
    SeenScope.objects.create(
        kind="organization", logto_id=ORG, name="Acme", last_seen_at="2026-12-01T10:00Z"
    )
    page = admin_page
    page.evaluate(f"localStorage.setItem('theme', '{theme}')")
    page.goto(f"{live_server.url}{URL}?organization={ORG}")
    page.wait_for_load_state("networkidle")
    assert page.locator("td.overrides").count() == 1
    assert page.input_value("#id_scope_organization") == ORG
    violations = axe_violations(page, "#content")
    assert violations == [], json.dumps(violations, indent=1)
    # Bad input: the page says so and shows the unscoped matrix.
    page.goto(f"{live_server.url}{URL}?application=not%20an%20id")
    assert page.locator(".errornote").inner_text().startswith("Ignored the application id")
    violations = axe_violations(page, "#content")
    assert violations == [], json.dumps(violations, indent=1)
