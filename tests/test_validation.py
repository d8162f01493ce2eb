import pytest

from emails.content.defaults import default_layout, default_templates
from emails.content.validation import validate_layout, validate_template


def problems(usage_type="SignIn", **parts):
    parts.setdefault("subject", "Your code")
    parts.setdefault("html_body", "<p>{{ code }}</p>")
    return [(p.field, p.line, p.message) for p in validate_template(usage_type=usage_type, **parts)]


def test_a_correct_template_has_no_problems():
    assert (
        problems(
            html_body="<p>{{ code }} for {{ application.displayName|default:application.name }}</p>"
        )
        == []
    )


def test_syntax_error_has_its_line():
    [(field, line, message)] = problems(html_body="<p>{{ code }}</p>\n\n{% if code %}")
    assert (field, line) == ("html_body", 3) and "endif" in message


def test_misspelt_variable_suggests_the_known_one():
    [(field, line, message)] = problems(subject="Welcome to {{ aplication.name }}")
    assert field == "subject" and line == 1
    assert message == (
        "unknown variable 'aplication.name': the payload has no 'aplication'. "
        "Did you mean 'application'?"
    )


def test_misspelt_nested_variable_suggests_the_known_one():
    [(_, _, message)] = problems(
        html_body="<p>{{ code }}</p><img src='{{ organization.branding.logourl }}'>"
    )
    assert "Did you mean 'organization.branding.logoUrl'?" in message


def test_variables_in_tags_and_filter_arguments_are_checked():
    found = problems(
        html_body="<p>{{ code }}</p>{% if usr.name %}{% endif %}{{ code|default:aplication }}"
    )
    assert [message.split(":")[0] for _, _, message in found] == [
        "unknown variable 'usr.name'",
        "unknown variable 'aplication'",
    ]


def test_loop_and_with_variables_are_known():
    assert (
        problems(
            usage_type="UserPermissionValidation",
            html_body="<p>{{ code }}</p>{% for key, value in user.profile.items %}"
            "{{ key }}{{ value }}{% endfor %}{% with who=user.name %}{{ who }}{% endwith %}"
            "{% firstof user.name user.username as name %}{{ name }}",
        )
        == []
    )


def test_code_is_required_where_logto_sends_one():
    [(field, _, message)] = problems(html_body="<p>Hello</p>")
    assert field == "html_body" and message.startswith("{{ code }} is missing")
    [(field, _, _)] = problems(html_body="<p>{{ code }}</p>", text_body="no code")
    assert field == "text_body"


def test_link_is_required_for_invitations_and_caller_keys_are_allowed():
    assert problems(
        usage_type="OrganizationInvitation",
        subject="Join",
        html_body="<p>{{ organization.name }}</p>",
    )[0][2].startswith("{{ link }} is missing")
    assert (
        problems(
            usage_type="OrganizationInvitation",
            subject="Join {{ teamName }}",
            html_body="<a href='{{ link }}'>{{ customMessage }}</a>",
        )
        == []
    )
    assert (
        "Did you mean 'link'"
        in problems(
            usage_type="OrganizationInvitation", subject="x", html_body="{{ link }}{{ lnk }}"
        )[0][2]
    )


def test_types_see_only_what_logto_sends_them():
    assert (
        "the payload has no 'inviter'" in problems(html_body="{{ code }}{{ inviter.name }}")[0][2]
    )
    assert (
        problems(usage_type="Generic", html_body="{{ code }}{{ inviter.name }}{{ user.name }}")
        == []
    )


@pytest.mark.parametrize(
    "source", ["{% load static %}", "{% include 'x.html' %}", "{{ code.__class__ }}"]
)
def test_sandbox_violations_are_refused(source):
    [(_, _, message)] = problems(html_body="{{ code }}" + source)
    assert "not allowed" in message or "underscores" in message


def test_every_shipped_default_passes():
    for fields in default_templates():
        assert (
            problems(
                usage_type=fields["usage_type"],
                subject=fields["subject"],
                preheader=fields["preheader"],
                html_body=fields["html_body"],
                text_body=fields["text_body"],
            )
            == []
        ), (fields["usage_type"], fields["locale"])
    layout = default_layout()
    assert validate_layout(html=layout["html"], text=layout["text"]) == []


# A join chain that would build a 100-million-character string (tests/test_budget.py)
BOMB = (
    '{% with a="abcdefghij" %}{% with b=a|join:a %}{% with c=b|join:b %}'
    "{% with d=c|join:c %}{{ d|length }}{% endwith %}{% endwith %}{% endwith %}{% endwith %}"
)


@pytest.mark.parametrize("field", ["subject", "preheader", "html_body", "text_body"])
def test_a_template_over_its_render_budget_is_refused_naming_the_field(field):
    parts = {"html_body": "<p>{{ code }}</p>", "text_body": "{{ code }}"}
    parts[field] = BOMB + ("{{ code }}" if field.endswith("_body") else "")
    [(found, _, message)] = problems(**parts)
    assert found == field
    assert message.startswith("template exceeds its budget (|join")


@pytest.mark.parametrize("field", ["html", "text"])
def test_a_layout_over_its_render_budget_is_refused_naming_the_field(field):
    parts = {"html": "<div>{{ content }}</div>", "text": "{{ content }}"}
    parts[field] = BOMB + "{{ content }}"
    [problem] = validate_layout(**parts)
    assert problem.field == field and "template exceeds its budget" in problem.message


@pytest.mark.django_db
def test_a_bomb_is_refused_by_the_admin_form(admin_client):
    response = admin_client.post(
        "/admin/emails/template/add/",
        {
            "usage_type": "SignIn",
            "locale": "nl",
            "subject": "Code",
            "html_body": BOMB + "<p>{{ code }}</p>",
            "text_body": "",
            "preheader": "",
            "enabled": "on",
        },
    )
    assert response.status_code == 200
    assert "template exceeds its budget" in response.content.decode()


def test_layout_needs_content():
    [problem] = validate_layout(html="<html>{{ brand.name }}</html>")
    assert "{{ content }} is missing" in problem.message


@pytest.mark.django_db
def test_admin_form_shows_validation_with_suggestion(admin_client):
    response = admin_client.post(
        "/admin/emails/template/add/",
        {
            "usage_type": "SignIn",
            "locale": "nl",
            "subject": "{{ aplication.name }}",
            "html_body": "<p>{{ code }}</p>",
            "text_body": "",
            "preheader": "",
            "enabled": "on",
        },
    )
    assert response.status_code == 200
    assert "Did you mean &#x27;application&#x27;?" in response.content.decode()
