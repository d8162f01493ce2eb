from html.parser import HTMLParser

import pytest

from emails.content.defaults import default_layout, default_templates
from emails.content.rendering import render as rendering
from emails.content.rendering.context import email_context
from emails.content.rendering.engine import TemplateRenderError, compile_template
from emails.content.rendering.render import LayoutSource, render_email
from emails.content.rendering.text import html_to_text
from emails.content.samples import samples_for


def render(html="", subject="s", text="t", **payload):
    return render_email(subject=subject, html=html, text=text, payload=payload)


def test_logto_style_placeholders_keep_working():
    rendered = render(
        html="{{code}} {{ application.name }} {{organization.branding.logoUrl}}",
        code="123456",
        application={"name": "Acme"},
        organization={"branding": {"logoUrl": "https://cdn.example.com/l.png"}},
    )
    assert rendered.html == "123456 Acme https://cdn.example.com/l.png"


def test_missing_values_render_empty():
    assert render(html="[{{ inviter.name }}][{{ nothing }}]").html == "[][]"


def test_payload_values_are_escaped_in_html_only():
    name = "<script>alert(1)</script> & Co"
    rendered = render(
        html="<b>{{ application.name }}</b>",
        subject="Welcome to {{ application.name }}",
        text="Hi {{ application.name }}",
        application={"name": name},
    )
    assert rendered.html == "<b>&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co</b>"
    assert rendered.subject == f"Welcome to {name}"
    assert rendered.text == f"Hi {name}"


def test_subject_never_contains_line_breaks():
    rendered = render(subject="Code {{ code }}\nBcc: x@evil.example", code="1\r\n2")
    assert "\n" not in rendered.subject and "\r" not in rendered.subject
    assert rendered.subject == "Code 1 2 Bcc: x@evil.example"


def test_blank_text_body_is_derived_from_html():
    rendered = render(
        html="<h1>Join Acme</h1><p>Your code</p><p><b>{{ code }}</b></p>"
        '<p><a href="{{ link }}">Accept</a></p>',
        text="",
        code="482913",
        link="https://app.example.com/accept?x=1",
    )
    assert "482913" in rendered.text.splitlines()
    assert "https://app.example.com/accept?x=1" in rendered.text
    assert "<" not in rendered.text.replace("<b>", "")


def test_html_to_text_of_nothing_is_empty():
    assert html_to_text("  ") == ""


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("{% load static %}", "{% load %} is not allowed"),
        ("{% include 'admin/base.html' %}", "{% include %} is not allowed"),
        ("{% extends 'admin/base.html' %}", "{% extends %} is not allowed"),
        ("{% debug %}", "{% debug %} is not allowed"),
        ("{% url 'admin:index' %}", "{% url %} is not allowed"),
        ("{% lorem 100000 w %}", "{% lorem %} is not allowed"),
        ("{% csrf_token %}", "{% csrf_token %} is not allowed"),
        ("{{ code.__class__ }}", "may not begin with underscores"),
        ("{{ code|center:1000000000 }}", "Invalid filter: 'center'"),
        ("{{ code|stringformat:'0999999999d' }}", "Invalid filter: 'stringformat'"),
    ],
)
def test_sandbox_refuses_escapes(source, reason):
    with pytest.raises(TemplateRenderError) as caught:
        render(html=source, code="1")
    assert reason in str(caught.value)
    assert str(caught.value).startswith("HTML body:")


def test_templates_cannot_mutate_the_payload():
    rendered = render(
        html="{{ user.clear }}{{ items.pop }}{{ items.clear }}[{{ user.name }}|{{ items|length }}]",
        user={"name": "Jane"},
        items=[1, 2, 3],
    )
    assert rendered.html.endswith("[Jane|3]")


def test_floatformat_precision_is_capped():
    assert render(html="{{ n|floatformat:2 }}", n=3.14159).html == "3.14"
    with pytest.raises(TemplateRenderError, match="capped"):
        render(html="{{ n|floatformat:99999999 }}", n=1.5)


def test_syntax_error_names_part_and_line():
    with pytest.raises(TemplateRenderError) as caught:
        render(text="line one\nline two {% if %}\n", html="ok")
    assert caught.value.part == "plain-text body"
    assert caught.value.line == 2
    assert "line 2" in str(caught.value)


def test_unclosed_block_is_a_clear_error():
    with pytest.raises(TemplateRenderError, match="endif"):
        compile_template("<p>{% if code %}{{ code }}</p>")


def test_ordinary_tags_and_filters_still_work():
    rendered = render(
        html="{% for k, v in user.profile.items %}{{ k }}={{ v|upper }};{% endfor %}"
        "{% if inviter %}yes{% else %}no{% endif %}|{{ user.name|default:'friend' }}",
        user={"name": None, "profile": {"givenName": "jane"}},
    )
    assert rendered.html == "givenName=JANE;no|friend"


def test_an_error_never_dumps_the_payload():
    with pytest.raises(TemplateRenderError) as caught:
        render(html="{{ name|default:missing.thing }}", code="482913", link="https://x/secret")
    text = str(caught.value)
    assert "'missing' does not exist here" in text
    assert "482913" not in text and "secret" not in text


def test_runtime_errors_name_no_values():
    with pytest.raises(TemplateRenderError) as caught:
        render(html="{{ 5|divisibleby:link }}", link="https://app.example.com/inv/SECRET")
    assert "SECRET" not in str(caught.value)
    assert str(caught.value) == "HTML body: ValueError while rendering a tag or filter (line 1)"


def test_loops_have_a_budget():
    assert render(html="{% for a in x %}{{ a }}{% endfor %}", x=list(range(100))).html
    with pytest.raises(TemplateRenderError, match="loops ran more than 10000 times"):
        render(html="{% for a in x %}{% for b in x %}.{% endfor %}{% endfor %}", x=list(range(200)))


def test_add_cannot_double_a_value_into_gigabytes():
    doubling = "".join(f"{{% with a{i + 1}=a{i}|add:a{i} %}}" for i in range(14))
    with pytest.raises(TemplateRenderError, match="longer than 1000000"):
        render(html=doubling + "{{ a14 }}" + "{% endwith %}" * 14, a0="x" * 100)
    assert render(html="{{ a|add:b }}", a="Jane ", b="Doe").html == "Jane Doe"
    with pytest.raises(TemplateRenderError, match="make_list"):
        render(html="{{ s|make_list|length }}", s="x" * 20_000)


class _Dom(HTMLParser):
    """An HTML document as a list of events, entities decoded, whitespace and the order of
    style declarations ignored: two serialisations of the same document compare equal."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.events = []

    def handle_starttag(self, tag, attrs):
        normal = []
        for name, value in sorted(attrs):
            if name == "style" and value:
                value = sorted(part.replace(" ", "") for part in value.split(";") if part.strip())
            normal.append((name, str(value)))
        self.events.append(("start", tag, normal))

    def handle_endtag(self, tag):
        self.events.append(("end", tag))

    def handle_data(self, data):
        if data.split():
            self.events.append(("text", " ".join(data.split())))


def _dom(html: str) -> list:
    parser = _Dom()
    parser.feed(html)
    return parser.events


def _both_paths(subject, html, text, layout, context, preheader=""):
    prepared = rendering._render_prepared(subject, html, text, preheader, layout, context)
    usual = rendering._render_all(subject, html, text, preheader, layout, context)
    assert not usual["errors"]
    return prepared, usual


def test_every_shipped_email_is_the_same_whether_its_css_is_inlined_once_or_per_email():
    layout = LayoutSource(html=default_layout()["html"], text=default_layout()["text"])
    brand = {"name": "Acme", "logo_url": "", "company_info": "Acme Inc.\nMain Street 1"}
    checked = 0
    for shipped in default_templates():
        for payload in samples_for(shipped["usage_type"]).values():
            context = email_context(
                payload, locale=shipped["locale"], brand=brand, expires_in_minutes=10
            )
            prepared, usual = _both_paths(
                shipped["subject"],
                shipped["html_body"],
                shipped["text_body"],
                layout,
                context,
                shipped["preheader"],
            )
            # Every shipped template takes the inlined-once path...
            assert prepared is not None, (shipped["usage_type"], shipped["locale"])
            # ...and it sends the same email as inlining each rendered one
            assert (prepared.subject, prepared.text) == (usual["subject"], usual["text"])
            assert _dom(prepared.html) == _dom(usual["html"])
            assert (
                'class="code" style="' in prepared.html
                or "{{ code }}" not in (shipped["html_body"])
            )
            checked += 1
    assert checked > 180


@pytest.mark.parametrize(
    ("layout_html", "why"),
    [
        (
            "<style>td + td { color: red; }</style><table><tr><td>a</td><td>{{ content }}"
            "</td></tr></table>",
            "a selector that depends on neighbours",
        ),
        (
            "<style>.x { color: red; }</style>{% if brand.name %}{{ content }}{% endif %}",
            "the body inside a tag",
        ),
        (
            '<style>.x { color: red; }</style><p class="{{ lang }}">{{ content }}</p>',
            "a template tag in a class attribute",
        ),
        (
            "<style>.x { color: red; }</style><table>{% if lang %}<tr><td>-</td></tr>"
            "{% endif %}<tr><td>{{ content }}</td></tr></table>",
            "a tag where the HTML parser moves text",
        ),
    ],
)
def test_css_is_inlined_per_email_when_inlining_once_could_differ(layout_html, why):
    layout = LayoutSource(html=layout_html, text="{{ content }}")
    context = email_context(
        {"code": "123456"}, locale="en", brand={"name": "Acme"}, expires_in_minutes=10
    )
    body = '<span class="x">{{ code }}</span>'
    prepared, usual = _both_paths("Code", body, "{{ code }}", layout, context)
    assert prepared is None, why
    # The email is still inlined, by the per-email path
    email = render_email(
        subject="Code", html=body, text="{{ code }}", payload={}, layout=layout, context=context
    )
    assert email.html == usual["html"] and 'style="color: red;"' in email.html


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ('<a {% if code %}class="x"{% endif %}>Go</a>', "a tag around an attribute"),
        ('<a {% if code %} class="x" {% endif %}>Go</a>', "the same, spaced"),
        ("<p class={{ code }}>x</p>", "a variable as an unquoted class"),
        ('<p class="x" style="color: {{ code }}">x</p>', "a variable in a style"),
        ('{% firstof code "" as brand_line %}<p class="x">x</p>', "a name the layout also uses"),
    ],
)
def test_a_body_that_could_render_differently_is_inlined_per_email(body, why):
    layout = LayoutSource(
        html="<style>.x { color: red; }</style><div>{{ content }}</div>{{ brand_line }}",
        text="{{ content }}",
    )
    context = email_context(
        {"code": "123456"}, locale="en", brand={"name": "Acme"}, expires_in_minutes=10
    )
    prepared, usual = _both_paths("Code", body, "{{ code }}", layout, context)
    assert prepared is None, why
    email = render_email(
        subject="Code", html=body, text="{{ code }}", payload={}, layout=layout, context=context
    )
    assert email.html == usual["html"]


def test_a_text_body_that_renders_empty_is_not_wrapped_in_the_layout_text():
    layout = LayoutSource(
        html='<style>.x { color: red; }</style><div class="x">{{ content }}</div>',
        text="{{ content }}\n-- Acme",
    )
    context = email_context({}, locale="en", brand={"name": "Acme"}, expires_in_minutes=10)
    prepared, usual = _both_paths(
        "Hi", "<p>Hi</p>", "{% if code %}{{ code }}{% endif %}", layout, context
    )
    assert prepared is not None and prepared.text == usual["text"] == ""
