"""The shipped default emails: every usage type in every built-in language, with the default
layout, rendered against every sample payload."""

import re
from pathlib import Path

import pytest
from django.core.management import call_command

from emails.content.composer import compose_content, template_content
from emails.content.defaults import DEFAULTS_DIR, LOCALES, checksum, default_templates
from emails.content.rendering.text import html_to_text
from emails.content.samples import samples_for
from emails.logto import UsageType
from emails.models import Layout, Template
from tests.htmlcheck import html_problems

pytestmark = pytest.mark.django_db


def shipped():
    return Template.objects.select_related("layout").order_by("locale", "usage_type")


def test_fresh_database_holds_every_type_in_every_language():
    pairs = set(Template.objects.values_list("usage_type", "locale"))
    assert pairs == {(kind, locale) for kind in UsageType.values for locale in LOCALES}
    assert len(LOCALES) == 20 and len(pairs) == 180
    assert set(Template.objects.values_list("layout__name", flat=True)) == {"Default"}


def test_every_default_renders_every_sample_correctly():
    problems = []
    for template in shipped():
        for name, payload in samples_for(template.usage_type, locale=template.locale).items():
            where = f"{template} / {name}"
            email = compose_content(
                template_content(template), payload=payload, locale=template.locale
            )
            secret = payload.get("code") or payload["link"]
            if secret not in email.html or secret not in email.text:
                problems.append(f"{where}: code or link missing")
            if not email.subject.strip() or re.search(r"[\r\n]", email.subject):
                problems.append(f"{where}: bad subject {email.subject!r}")
            if len(email.text.strip()) < 20:
                problems.append(f"{where}: text part nearly empty")
            if "{{" in email.html + email.text + email.subject or "[[" in email.html:
                problems.append(f"{where}: unrendered placeholder")
            problems += [f"{where}: {p}" for p in html_problems(email.html)]
            rtl = template.locale in ("ar", "fa-IR")
            if ('dir="rtl"' in email.html) != rtl:
                problems.append(f"{where}: dir=rtl is {not rtl}")
            if 'class="code" style="' not in email.html and payload.get("code"):
                problems.append(f"{where}: CSS not inlined on the code")
    assert problems == []


def test_code_is_large_and_stands_on_its_own_line():
    template = Template.objects.get(usage_type="SignIn", locale="en")
    email = compose_content(template_content(template), payload={"code": "482913"}, locale="en")
    assert re.search(r'class="code" style="[^"]*font-size: 32px', email.html)
    assert "482913" in [line.strip() for line in email.text.splitlines()]


@pytest.mark.parametrize(
    ("locale", "ttl", "wording"),
    [
        ("en", 600, "expires in 10 minutes"),
        ("en", 900, "expires in 15 minutes"),
        ("de", 300, "5 Minuten lang gültig"),
        ("ar", 600, "خلال 10 دقائق"),
        ("ar", 900, "خلال 15 دقيقة"),
        ("ar", 60, "خلال دقيقة واحدة"),
        ("ja", 1200, "有効期限は20分です"),
    ],
)
def test_expiry_wording_follows_the_code_ttl(settings, locale, ttl, wording):
    settings.EMAILS_CODE_TTL = ttl
    template = Template.objects.get(usage_type="Register", locale=locale)
    email = compose_content(template_content(template), payload={"code": "1"}, locale=locale)
    assert wording in email.text and wording in email.html


@pytest.mark.parametrize(
    ("payload", "sentence"),
    [
        (
            {
                "organization": {"name": "Acme EU"},
                "inviter": {"name": "Jane"},
                "link": "https://x.example/i",
            },
            "Jane has invited you to join Acme EU.",
        ),
        (
            {
                "organization": {"name": "Acme EU"},
                "inviter": {"name": None, "username": "jdoe"},
                "link": "https://x.example/i",
            },
            "jdoe has invited you to join Acme EU.",
        ),
        (
            {"organization": {"name": "Acme EU"}, "link": "https://x.example/i"},
            "You have been invited to join Acme EU.",
        ),
        ({"link": "https://x.example/i"}, "You have been invited to join an organization."),
    ],
)
def test_invitation_reads_well_with_and_without_inviter_and_organization(payload, sentence):
    template = Template.objects.get(usage_type="OrganizationInvitation", locale="en")
    email = compose_content(template_content(template), payload=payload, locale="en")
    assert sentence in email.text
    assert 'href="https://x.example/i"' in email.html
    assert email.subject in (
        "You're invited to join Acme EU",
        "You're invited to join an organization",
    )


def test_no_default_mentions_logto():
    files = [p for p in Path(DEFAULTS_DIR).rglob("*") if p.is_file() and p.suffix != ".md"]
    assert files and not [p for p in files if "logto" in p.read_text(encoding="utf-8").lower()]


def test_brand_comes_from_the_payload_then_from_settings(settings):
    settings.EMAILS_BRAND_NAME = "Configured Co"
    settings.EMAILS_BRAND_LOGO_URL = "https://cdn.example.com/configured.png"
    settings.EMAILS_COMPANY_INFO = "Configured Co, 1 Main St\nSpringfield"
    template = Template.objects.get(usage_type="SignIn", locale="en")

    def render(payload):
        return compose_content(template_content(template), payload=payload, locale="en")

    plain = render({"code": "1"})
    assert 'src="https://cdn.example.com/configured.png" alt="Configured Co"' in plain.html
    assert "Configured Co, 1 Main St<br>Springfield" in plain.html
    assert "Configured Co, 1 Main St\nSpringfield" in plain.text
    branded = render(
        {
            "code": "1",
            "application": {
                "name": "Acme Web",
                "displayName": "Acme",
                "branding": {"logoUrl": "https://cdn.example.com/app.png"},
            },
            "organization": {
                "name": "Org",
                "branding": {"logoUrl": "https://cdn.example.com/org.png"},
            },
        }
    )
    assert 'src="https://cdn.example.com/org.png" alt="Acme"' in branded.html
    settings.EMAILS_BRAND_LOGO_URL = ""
    named = render({"code": "1", "application": {"name": "Acme Web", "branding": {}}})
    assert '<td class="header"' in named.html and "Acme Web</td>" in named.html


def test_editing_the_layout_changes_every_email_that_uses_it():
    layout = Layout.objects.get(name="Default")
    layout.html = layout.html.replace("{{ content }}", "<p>Seasonal banner</p>{{ content }}")
    layout.save()
    for usage_type, locale in [("SignIn", "en"), ("OrganizationInvitation", "ja")]:
        template = Template.objects.get(usage_type=usage_type, locale=locale)
        payload = next(iter(samples_for(usage_type, locale=locale).values()))
        email = compose_content(template_content(template), payload=payload, locale=locale)
        assert "Seasonal banner" in email.html


def test_text_is_derived_from_the_html_when_a_template_has_none():
    template = Template.objects.get(usage_type="OrganizationInvitation", locale="en")
    template.text_body = ""
    payload = {"organization": {"name": "Acme"}, "link": "https://app.example.com/accept?i=1"}
    email = compose_content(template_content(template), payload=payload, locale="en")
    assert "Accept the invitation: https://app.example.com/accept?i=1" in email.text
    assert "<" not in email.text
    assert html_to_text('<p>Code:</p><p class="code">123456</p>').splitlines() == [
        "Code:",
        "",
        "123456",
    ]


def test_sync_keeps_edits_updates_unedited_and_forces_on_request(capsys):
    edited = Template.objects.get(usage_type="SignIn", locale="de")
    edited.subject = "Unser eigener Betreff"
    edited.save()
    outdated = Template.objects.get(usage_type="SignIn", locale="fr")
    # As if loaded from an older version of the files: content and checksum agree.
    outdated.subject = "Ancien sujet"
    outdated.default_checksum = checksum(
        outdated, ("subject", "preheader", "html_body", "text_body")
    )
    outdated.save()
    Template.objects.filter(usage_type="Generic", locale="ko").delete()

    call_command("sync_default_templates")

    assert "created 1, updated 1, unchanged 178, kept (edited) 1" in capsys.readouterr().out
    edited.refresh_from_db()
    outdated.refresh_from_db()
    assert edited.subject == "Unser eigener Betreff"
    assert outdated.subject == "Votre code de connexion"
    call_command("sync_default_templates", "--force")
    edited.refresh_from_db()
    assert edited.subject == "Ihr Anmeldecode"


def test_restore_default_action(admin_client):
    template = Template.objects.get(usage_type="Register", locale="pt-BR")
    template.subject = "Mudado"
    template.save()
    admin_client.post(
        "/admin/emails/template/", {"action": "restore_default", "_selected_action": [template.pk]}
    )
    template.refresh_from_db()
    assert template.subject == "Confirme seu endereço de e-mail"


def test_default_files_agree_with_what_is_loaded():
    loaded = {(t.usage_type, t.locale): t for t in Template.objects.all()}
    for fields in default_templates():
        template = loaded[(fields["usage_type"], fields["locale"])]
        assert template.default_checksum == fields["default_checksum"]
