import re

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


def test_languages_asked_for_without_a_template_are_listed_with_what_served_them(
    admin_client, send
):
    # Dutch twice, Catalan, Portuguese and British English once: nl and ca have no template,
    # pt is served by pt-BR at distance 0 (not a fallback), en-GB by en at distance 5.
    for number, asked in enumerate(("nl", "nl", "ca", "pt", "en-GB")):
        payload = {"code": str(number), "locale": asked}
        body = {"to": f"user{number}@example.com", "type": "SignIn", "payload": payload}
        assert send(body).status_code == 200
    page = admin_client.get("/admin/emails/template/coverage/").content.decode()
    asked = page.split('id="asked"')[1]
    rows = [
        re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", row)).strip()
        for row in re.findall(r"<tr><th scope=\"row\">(.*?)</tr>", asked, re.S)
    ]
    assert rows == [
        "nl 2 en (distance 0): 2 Translate from en",
        "ca 1 en (distance 0): 1 Translate from en",
        "en-GB 1 en (distance 5): 1 Translate from en",
    ]
    # Each becomes a column of the matrix, its fallback counted in the type's row.
    assert cell(page, "Sign-in", "nl") == 'class="fallback" title="fallback: en"> → en 2'
    assert cell(page, "Registration", "nl") == 'class="fallback" title="fallback: en"> → en'
    # A regional English is served by en at its distance: the matrix says so.
    assert cell(page, "Sign-in", "en-GB") == (
        'class="fallback" title="fallback: en (distance 5)"> → en (distance 5) 1'
    )
    assert "pt" not in re.findall(r'<th scope="col">(.*?)</th>', page)
