"""Templates, senders and brands per Logto application and organization (issue 15): which
template serves a message (language first, then scope), whose sender and brand it carries,
and what the workers note of the applications and organizations they saw."""

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.utils import timezone

from emails.content.selectors import template_chain_pick
from emails.models import (
    Message,
    ScopeBrand,
    SeenScope,
    SenderProfile,
    Template,
    validate_from_domain,
)
from tests.factories import TemplateFactory

APP, ORG = "app-shop", "org-acme"

# Which template serves a SignIn message, by what exists. Each template is
# "<locale>" (unscoped), "<locale>@org", "<locale>@app" or "<locale>@app+org"; the message
# is of application APP and (org: yes) organization ORG, asking for a locale.
SELECTION = [
    # available templates,              org,  asks,   served
    ("en, fr, en@org", True, "en", "en@org"),
    # Language first: the organization overrides only English, so French users get French.
    ("en, fr, en@org", True, "fr", "fr"),
    ("en, fr, en@org", False, "en", "en"),  # not of that organization: the unscoped one
    ("en, en@app, en@org", True, "en", "en@org"),  # the organization before the application
    ("en, en@app, en@org", False, "en", "en@app"),
    ("en, en@app, en@org, en@app+org", True, "en", "en@app+org"),  # both: most specific
    ("en, en@app+org", False, "en", "en"),  # both, but not that organization
    # The organization's fr-CA is a closer language than the unscoped fr: it serves.
    ("en, fr, fr-CA@org", True, "fr-CA", "fr-CA@org"),
    ("en, fr, fr-CA@org", False, "fr-CA", "fr"),
    # Nothing in the language: the default locale's most specific template.
    ("en, en@org, de", True, "ja", "en@org"),
    ("en@org", False, "en", "Generic en"),  # only another scope has SignIn: Generic serves
    ("en@org", True, "de", "en@org"),  # the default locale, in the organization's scope
    ("en, en@org", "only", "en", "en@org"),  # an organization's message with no application
    ("en, en@app", "none", "en", "en"),  # a message naming neither
    # uiLocales: "nl de" asks Dutch, then German; the organization has German only.
    ("en, de@org, nl", True, "nl de", "nl"),
    ("en, de@org, fr", True, "nl de", "de@org"),
]


def _available(cell: str) -> dict:
    available = {("Generic", "en", "", ""): "Generic en"}
    for item in cell.split(","):
        locale, _, scope = item.strip().partition("@")
        app = APP if scope in ("app", "app+org") else ""
        org = ORG if scope in ("org", "app+org") else ""
        available[("SignIn", locale, app, org)] = item.strip()
    return available


@pytest.mark.parametrize(("templates", "in_org", "asks", "served"), SELECTION)
def test_the_chain_picks_language_first_then_the_most_specific_scope(
    templates, in_org, asks, served, settings
):
    settings.EMAILS_DEFAULT_LOCALE = "en"
    picked = template_chain_pick(
        usage_type="SignIn",
        wanted=asks.split(),
        available=_available(templates),
        application_id=APP if in_org in (True, False) else "",
        organization_id=ORG if in_org in (True, "only") else "",
    )
    assert picked is not None and picked[2] == served


@pytest.mark.django_db
@pytest.mark.parametrize(("templates", "in_org", "asks", "served"), SELECTION)
def test_an_accepted_message_is_served_and_records_its_scope(
    templates, in_org, asks, served, send, settings
):
    settings.EMAILS_DEFAULT_LOCALE = "en"
    Template.objects.all().delete()
    TemplateFactory(usage_type="Generic", locale="en", subject="Generic en")
    for label, (usage_type, locale, app, org) in {
        v: k for k, v in _available(templates).items()
    }.items():
        if usage_type == "SignIn":
            TemplateFactory(
                usage_type=usage_type,
                locale=locale,
                application_id=app,
                organization_id=org,
                subject=label,
            )
    first, *more = asks.split()
    payload = {"code": "123456", "locale": first, "uiLocales": " ".join(more)}
    if in_org in (True, False):
        payload["application"] = {"id": APP, "name": "Shop"}
    if in_org in (True, "only"):
        payload["organization"] = {"id": ORG, "name": "Acme", "branding": {}}

    response = send({"to": "jane@example.com", "type": "SignIn", "payload": payload})

    assert response.status_code == 200, response.content
    [email] = mail.outbox
    assert email.subject == served
    message = Message.objects.get()
    scope = served.partition("@")[2]
    assert (
        message.template_scope
        == {
            "": "",
            "app": "application",
            "org": "organization",
            "app+org": "application+organization",
        }[scope]
    )


@pytest.mark.django_db
def test_a_payload_with_no_usable_ids_gets_the_unscoped_template(send):
    TemplateFactory(locale="en", subject="unscoped")
    TemplateFactory(locale="en", organization_id=ORG, subject="org")
    for number, bad in enumerate(({"id": 42}, {"id": "x" * 129}, "org-acme", {"id": "a b"})):
        mail.outbox.clear()
        payload = {"code": "123456", "locale": "en", "organization": bad}
        to = f"user{number}@example.com"
        assert send({"to": to, "type": "SignIn", "payload": payload}).status_code == 200
        assert [e.subject for e in mail.outbox] == ["unscoped"]


@pytest.mark.django_db
def test_a_scoped_template_that_is_disabled_or_unpublished_does_not_serve(send):
    TemplateFactory(locale="en", subject="unscoped")
    scoped = TemplateFactory(locale="en", organization_id=ORG, subject="org", enabled=False)
    payload = {"code": "123456", "locale": "en", "organization": {"id": ORG}}
    send({"to": "a@example.com", "type": "SignIn", "payload": payload})
    scoped.enabled, scoped.published_at = True, None
    scoped.save()
    send({"to": "b@example.com", "type": "SignIn", "payload": {**payload, "code": "654321"}})
    assert [e.subject for e in mail.outbox] == ["unscoped", "unscoped"]


@pytest.mark.django_db
def test_one_template_per_type_locale_and_scope():
    TemplateFactory(locale="en", organization_id=ORG)
    TemplateFactory(locale="en", application_id=APP)
    TemplateFactory(locale="en", application_id=APP, organization_id=ORG)
    duplicate = Template(
        usage_type="SignIn", locale="en", organization_id=ORG, subject="s", html_body="b"
    )
    with pytest.raises(ValidationError, match="already exists"):
        duplicate.validate_constraints()


# Senders: the template's own, else the scope's profile (organization first), else the
# default.


def _deliver(send, payload, to="jane@example.com"):
    mail.outbox.clear()
    response = send({"to": to, "type": "SignIn", "payload": {"code": "123456", **payload}})
    assert response.status_code == 200, response.content
    [email] = mail.outbox
    return email


@pytest.mark.django_db
def test_a_scope_sender_profile_is_used_unless_the_template_names_its_own(send, settings):
    settings.DEFAULT_FROM_EMAIL = "Mailroom <no-reply@mailroom.example>"
    TemplateFactory(locale="en", from_email="", reply_to="")
    SenderProfile.objects.create(
        application_id=APP, from_name="Shop", from_address="hello@shop.example"
    )
    SenderProfile.objects.create(
        organization_id=ORG, from_address="team@acme.example", reply_to="help@acme.example"
    )
    app = {"application": {"id": APP}}
    org = {"organization": {"id": ORG}}

    email = _deliver(send, app)
    assert (email.from_email, email.reply_to) == ("Shop <hello@shop.example>", [])
    # The organization's profile comes first; a blank name takes the default's.
    email = _deliver(send, {**app, **org}, to="b@example.com")
    assert (email.from_email, email.reply_to) == (
        "Mailroom <team@acme.example>",
        ["help@acme.example"],
    )
    email = _deliver(send, {}, to="c@example.com")
    assert email.from_email == "Mailroom <no-reply@mailroom.example>"

    # A template made for the application names its own sender: it comes first.
    TemplateFactory(locale="en", application_id=APP, from_email="Own <own@shop.example>")
    email = _deliver(send, {**app, **org}, to="d@example.com")
    assert (email.from_email, email.reply_to) == ("Own <own@shop.example>", ["help@acme.example"])


@pytest.mark.django_db
def test_from_addresses_outside_the_allowed_domains_are_refused(settings):
    settings.EMAILS_ALLOWED_FROM_DOMAINS = ["acme.example", "shop.example"]
    validate_from_domain("Acme <no-reply@ACME.example>")
    profile = SenderProfile(organization_id=ORG, from_address="x@evil.example")
    with pytest.raises(ValidationError) as refused:
        profile.full_clean()
    assert refused.value.message_dict["from_address"] == [
        "evil.example is not a sending domain here; allowed: acme.example, shop.example"
    ]
    template = TemplateFactory.build(from_email="Evil <x@evil.example>")
    with pytest.raises(ValidationError) as refused:
        template.full_clean(exclude=["layout"])
    assert "evil.example is not a sending domain here" in str(refused.value)
    settings.EMAILS_ALLOWED_FROM_DOMAINS = []
    SenderProfile(organization_id=ORG, from_address="x@evil.example").full_clean()


@pytest.mark.django_db
def test_a_profile_or_brand_needs_a_scope():
    for model in (SenderProfile, ScopeBrand):
        with pytest.raises(ValidationError):
            model().validate_constraints()


# Brands: the scope's own fields, then Logto's branding in the payload, then the global
# brand settings.


@pytest.mark.django_db
def test_a_scope_brand_comes_before_the_payloads_branding_and_the_global_brand(send, settings):
    settings.EMAILS_BRAND_NAME = "Global"
    TemplateFactory(
        locale="en",
        subject="{{ brand.name }}",
        html_body="<p>{{ brand.name }}|{{ brand.logo_url }}|{{ brand.footer_text }}</p>",
    )
    ScopeBrand.objects.create(organization_id=ORG, product_name="Acme", footer_text="Acme Inc.")
    ScopeBrand.objects.create(application_id=APP, product_name="Shop", footer_text="Shop Ltd.")
    payload = {
        "application": {"id": APP, "name": "Logto's name", "branding": {}},
        "organization": {"id": ORG, "branding": {"logoUrl": "https://cdn.example/acme.png"}},
    }

    email = _deliver(send, payload)
    html = email.alternatives[0][0]
    assert email.subject == "Acme"
    assert "Acme|https://cdn.example/acme.png|Acme Inc." in html

    email = _deliver(send, {"application": payload["application"]}, to="b@example.com")
    assert "Shop||Shop Ltd." in email.alternatives[0][0]
    email = _deliver(send, {"application": {"id": "app-else", "name": "Else"}}, to="c@x.example")
    assert email.subject == "Else"  # Logto's name for an application with no brand of its own
    email = _deliver(send, {}, to="d@example.com")
    assert email.subject == "Global"


@pytest.mark.django_db
def test_workers_note_the_applications_and_organizations_they_saw(send):
    TemplateFactory(locale="en")
    _deliver(send, {"application": {"id": APP, "name": "Shop"}, "organization": {"id": ORG}})
    _deliver(
        send,
        {"application": {"id": APP, "displayName": "The Shop"}, "organization": {"id": "o 1"}},
        to="b@example.com",
    )
    seen = {(s.kind, s.logto_id): s.name for s in SeenScope.objects.all()}
    assert seen == {("application", APP): "The Shop", ("organization", ORG): ""}


# The admin: scope fields with a picker, filters, the scope's sample data in the preview.

PLAIN = {"html_body": "<p>{{ code }}</p>", "text_body": "{{ code }}"}


@pytest.mark.django_db
def test_the_scope_picker_offers_the_ids_seen_in_messages_with_their_names(admin_client):
    SeenScope.objects.create(
        kind="organization", logto_id=ORG, name="Acme Corp", last_seen_at=timezone.now()
    )
    TemplateFactory(locale="de", application_id=APP)
    page = admin_client.get("/admin/emails/template/add/").content.decode()
    assert 'list="mailroom-organization-ids"' in page
    assert f'<option value="{ORG}">Acme Corp</option>' in page
    assert f'<option value="{APP}">{APP}</option>' in page  # a scoped template's id


@pytest.mark.django_db
def test_the_template_list_filters_by_scope(admin_client):
    TemplateFactory(locale="de", subject="unscoped de")
    TemplateFactory(locale="de", organization_id=ORG, subject="Acme de")
    TemplateFactory(locale="de", application_id=APP, subject="Shop de")
    listing = admin_client.get("/admin/emails/template/?scope=organization&locale=de")
    assert listing.status_code == 200
    assert [str(t.subject) for t in listing.context["cl"].result_list] == ["Acme de"]
    listing = admin_client.get(f"/admin/emails/template/?application_id={APP}")
    assert [str(t.subject) for t in listing.context["cl"].result_list] == ["Shop de"]
    listing = admin_client.get("/admin/emails/template/?scope=any&locale=de&q=unscoped")
    assert [str(t.subject) for t in listing.context["cl"].result_list] == ["unscoped de"]


@pytest.mark.django_db
def test_the_live_preview_shows_the_scopes_brand_and_sender(admin_client):
    ScopeBrand.objects.create(organization_id=ORG, product_name="Acme Corp")
    SenderProfile.objects.create(
        organization_id=ORG, from_name="Acme", from_address="a@acme.example"
    )
    data = {
        "usage_type": "SignIn",
        "subject": "{{ brand.name }} code {{ code }}",
        "html_body": "<p>{{ organization.name }} {{ code }}</p>",
        "payload": '{"code": "482913"}',
        "organization_id": ORG,
    }
    answer = admin_client.post("/admin/emails/template/preview/", data).json()
    assert answer["subject"] == "Acme Corp code 482913"
    assert answer["sender"] == {"name": "Acme", "address": "a@acme.example"}
    unscoped = admin_client.post("/admin/emails/template/preview/", {**data, "organization_id": ""})
    assert unscoped.json()["subject"] != "Acme Corp code 482913"


@pytest.mark.django_db
def test_changing_a_published_templates_scope_needs_the_publish_permission():
    from tests.helpers import staff
    from tests.test_versions import form_data

    template = TemplateFactory(locale="de", **PLAIN)
    editor = staff("view_template", "change_template")
    page = editor.post(
        f"/admin/emails/template/{template.pk}/change/",
        form_data(template, organization_id=ORG),
    )
    assert page.status_code == 200
    assert page.context["adminform"].form.errors, "refused"
    assert "scope and enabled switch change the published email" in str(
        page.context["adminform"].form.errors
    )
    template.refresh_from_db()
    assert template.organization_id == ""


@pytest.mark.django_db
def test_a_scoped_layout_wraps_only_its_scopes_templates(admin_client):
    from emails.models import Layout
    from tests.test_versions import form_data

    layout = Layout.objects.create(name="Acme", html="{{ content }}", organization_id=ORG)
    template = TemplateFactory(locale="de", **PLAIN)
    page = admin_client.post(
        f"/admin/emails/template/{template.pk}/change/", form_data(template, layout=layout.pk)
    )
    assert "This layout is for organization org-acme only." in str(
        page.context["adminform"].form.errors
    )
    scoped = TemplateFactory(locale="de", organization_id=ORG, **PLAIN)
    page = admin_client.post(
        f"/admin/emails/template/{scoped.pk}/change/", form_data(scoped, layout=layout.pk)
    )
    assert page.status_code == 302


# Designer links and the gallery for a scope: what that scope's users get, with its brand.


@pytest.mark.django_db
def test_a_gallery_link_for_an_organization_shows_its_emails_with_its_brand(admin_client, client):
    TemplateFactory(locale="en", subject="Everyone en", **PLAIN)
    TemplateFactory(locale="fr", subject="Tout le monde fr", **PLAIN)
    TemplateFactory(locale="en", organization_id=ORG, subject="{{ brand.name }} en", **PLAIN)
    TemplateFactory(locale="en", organization_id="org-other", subject="Other en", **PLAIN)
    ScopeBrand.objects.create(organization_id=ORG, product_name="Acme Corp")

    def gallery(**scope):
        answer = admin_client.post(
            "/admin/emails/template/gallery/share/", scope, HTTP_ACCEPT="application/json"
        )
        page = client.get(answer.json()["url"].removeprefix("http://testserver") + "?view=grid")
        return page.context["cards"], page.content.decode()

    cards, page = gallery(organization_id=ORG)
    sign_in = {
        c["template"].locale: c["template"].subject for c in cards if c["label"] == "Sign-in"
    }
    assert sign_in["en"] == "{{ brand.name }} en" and sign_in["fr"] == "Tout le monde fr"
    assert "Other en" not in sign_in.values()
    assert f"as organization {ORG} gets them" in page
    # The other organization's template is not in the link at all.
    other = Template.objects.get(organization_id="org-other")
    base = cards[0]["email_url"].rsplit("/email/", 1)[0]
    assert client.get(f"{base}/email/{other.pk}/").status_code == 404

    cards, _ = gallery()
    sign_in = {
        c["template"].locale: c["template"].subject for c in cards if c["label"] == "Sign-in"
    }
    assert sign_in["en"] == "Everyone en"


@pytest.mark.django_db
def test_a_link_shared_from_a_scoped_template_shows_it_with_its_scopes_brand(admin_client, client):
    template = TemplateFactory(
        locale="en",
        organization_id=ORG,
        subject="s",
        html_body="<p>{{ brand.name }} · {{ organization.id }} {{ code }}</p>",
        text_body="{{ code }}",
    )
    ScopeBrand.objects.create(organization_id=ORG, product_name="Acme Corp")
    answer = admin_client.post(
        f"/admin/emails/template/{template.pk}/share/", HTTP_ACCEPT="application/json"
    )
    url = answer.json()["url"].removeprefix("http://testserver")
    email = client.get(f"{url}email/{template.pk}/").content.decode()
    assert f"Acme Corp · {ORG}" in email


# What the review found.


@pytest.mark.django_db
def test_a_profile_comes_before_an_unscoped_templates_own_sender_not_a_scoped_ones(send, settings):
    settings.DEFAULT_FROM_EMAIL = "Mailroom <no-reply@mailroom.example>"
    TemplateFactory(locale="en", from_email="Everyone <all@mailroom.example>", reply_to="")
    TemplateFactory(locale="de", organization_id=ORG, from_email="Acme DE <de@acme.example>")
    SenderProfile.objects.create(
        organization_id=ORG, from_name="Boutique Zoë", from_address="team@acme.example"
    )
    org = {"organization": {"id": ORG}}
    email = _deliver(send, {**org, "locale": "en"})
    assert email.from_email == "Boutique Zoë <team@acme.example>"  # not RFC 2047 here
    email = _deliver(send, {**org, "locale": "de"}, to="b@example.com")
    assert email.from_email == "Acme DE <de@acme.example>"
    email = _deliver(send, {"locale": "en"}, to="c@example.com")
    assert email.from_email == "Everyone <all@mailroom.example>"


@pytest.mark.django_db
def test_noting_a_scope_never_fails_a_delivery(send, monkeypatch):
    from django.db import OperationalError

    TemplateFactory(locale="en")

    def broken(*args, **kwargs):
        raise OperationalError("the database went away")

    monkeypatch.setattr(SeenScope.objects, "update_or_create", broken)
    _deliver(send, {"organization": {"id": ORG}})
    assert Message.objects.get().status == "sent"


@pytest.mark.django_db
def test_names_logto_sent_are_text_in_the_picker(admin_client):
    SeenScope.objects.create(
        kind="application",
        logto_id="app-x",
        name="<img src=x onerror=alert(1)>",
        last_seen_at=timezone.now(),
    )
    page = admin_client.get("/admin/emails/template/add/").content.decode()
    assert "<img src=x" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page


@pytest.mark.django_db
def test_translating_every_template_copies_the_unscoped_ones_only(admin_client):
    TemplateFactory(locale="en", organization_id=ORG, **PLAIN)
    response = admin_client.post(
        "/admin/emails/template/translate/", {"translate_locale": "nl", "source_locale": "en"}
    )
    assert response.status_code == 302
    made = Template.objects.filter(locale="nl")
    assert made.exists() and not made.exclude(organization_id="").exists()


@pytest.mark.django_db
def test_a_scopes_gallery_skips_its_switched_off_templates(admin_client, client):
    TemplateFactory(locale="en", subject="Everyone en", **PLAIN)
    TemplateFactory(locale="en", organization_id=ORG, subject="Off", enabled=False, **PLAIN)
    answer = admin_client.post(
        "/admin/emails/template/gallery/share/",
        {"organization_id": ORG},
        HTTP_ACCEPT="application/json",
    )
    page = client.get(answer.json()["url"].removeprefix("http://testserver") + "?view=grid")
    subjects = {c["template"].subject for c in page.context["cards"] if c["label"] == "Sign-in"}
    assert "Everyone en" in subjects and "Off" not in subjects


@pytest.mark.django_db
def test_comments_stay_with_their_scopes_template(admin_client):
    from emails.models import PreviewComment

    unscoped = TemplateFactory(locale="de", **PLAIN)
    scoped = TemplateFactory(locale="de", organization_id=ORG, **PLAIN)
    for template, words in ((unscoped, "on everyone's"), (scoped, "on Acme's")):
        PreviewComment.objects.create(
            template=template, usage_type="SignIn", locale="de", name="D", body=words
        )
    page = admin_client.get(f"/admin/emails/template/{scoped.pk}/change/").content.decode()
    assert "on Acme&#x27;s" in page or "on Acme's" in page
    assert "on everyone" not in page
    page = admin_client.get(f"/admin/emails/template/{unscoped.pk}/change/").content.decode()
    assert "on everyone" in page and "on Acme" not in page
