import pytest

from emails.models import Template
from tests.factories import MessageFactory

pytestmark = pytest.mark.django_db


def cell(page: str, usage_label: str, locale: str) -> str:
    """The text of one matrix cell, found by row label and column locale."""
    import re

    header = re.search(r"<thead><tr><th></th>(.*?)</tr></thead>", page, re.S).group(1)
    locales = re.findall(r'<th scope="col">(.*?)</th>', header)
    row = re.search(rf'<th scope="row">{re.escape(usage_label)}</th>(.*?)</tr>', page, re.S)
    cells = re.findall(r"<td (.*?)</td>", row.group(1), re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", cells[locales.index(locale)])).strip()


def test_matrix_shows_present_disabled_missing_and_fallback(admin_client):
    Template.objects.filter(usage_type="SignIn", locale="de").update(enabled=False)
    Template.objects.create(usage_type="Register", locale="pt", subject="x", html_body="{{ code }}")
    Template.objects.filter(usage_type="Register", locale="pt-BR").delete()
    MessageFactory.create_batch(
        3, usage_type="Register", requested_locale="pt-BR", used_fallback=True
    )
    page = admin_client.get("/admin/emails/template/coverage/").content.decode()
    assert 'class="present"' in page
    assert cell(page, "Sign-in", "de").startswith('class="disabled" title="disabled: en"')
    assert cell(page, "Registration", "pt-BR") == 'class="fallback" title="fallback: pt"> → pt 3'
    assert cell(page, "Registration", "pt").startswith('class="present"')


def test_matrix_shows_a_hole_nothing_serves(admin_client):
    Template.objects.filter(locale="en").update(enabled=False)
    Template.objects.filter(usage_type="Generic").update(enabled=False)
    page = admin_client.get("/admin/emails/template/coverage/?days=30").content.decode()
    assert cell(page, "MFA verification", "en") == 'class="disabled" title="disabled"> off'
    assert "last 30 days" in page
