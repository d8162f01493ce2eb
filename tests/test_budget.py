"""Render budgets: whatever a template author writes, rendering one email stays within a
bounded time, output and size of every value a filter makes, and going over is a
TemplateRenderError saying "template exceeds its budget (<which limit>)": stored as the
message's error by delivery, shown by previews, refused at save by validation.

Celery's soft time limit (and SystemExit, KeyboardInterrupt) always get through a render.
"""

import gc
import signal
import time

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from django.db import connection

from emails.content.rendering import sandbox as sandbox_library
from emails.content.rendering.engine import TemplateRenderError
from emails.content.rendering.render import LayoutSource, render_email, render_parts
from emails.models import Message, MessageStatus
from tests.factories import MessageFactory, TemplateFactory
from tests.helpers import require_postgres, require_service
from tests.processes import celery_worker, database_url, running, service_env, wait_for

OVER_BUDGET = "template exceeds its budget"
MAX_OUTPUT = 1_000_000

# The join chain of the report, each step squaring the length: d would be 100 million
# characters (one step more, 10**16).
JOIN_BOMB = (
    '{% with a="abcdefghij" %}{% with b=a|join:a %}{% with c=b|join:b %}'
    "{% with d=c|join:c %}{{ d|length }}{% endwith %}{% endwith %}{% endwith %}{% endwith %}"
)
# Values made in the template: c has 10,000 characters, d 110,000.
BIG = (
    '{% with a="abcdefghij" %}{% with b=a|join:a %}{% with c=b|join:b %}'
    '{% with d=c|join:"0123456789" %}'
)
BIG_END = "{% endwith %}" * 4
# 9,999 iterations (under the loop budget) of a slow method on d: minutes of work, and no
# memory kept (the method is no filter, and |length makes a number).
SLOW_BOMB = (
    BIG + '{% for i in c|slice:":99" %}{% for j in c|slice:":100" %}'
    "{{ d.title|length }}{% endfor %}{% endfor %}" + BIG_END + "{{ code }}"
)


def render(html="", *, subject="s", text="t", **payload):
    return render_email(subject=subject, html=html, text=text, payload=payload)


def over_budget(html="", **kwargs) -> TemplateRenderError:
    with pytest.raises(TemplateRenderError) as caught:
        render(html, **kwargs)
    assert OVER_BUDGET in str(caught.value)
    return caught.value


@pytest.fixture
def seconds(monkeypatch):
    """Set the time budget of the renders in a test."""

    def set_budget(value: float):
        monkeypatch.setattr(sandbox_library, "RENDER_SECONDS", value, raising=False)

    return set_budget


# Sizes


def test_a_join_chain_is_refused_before_it_is_built():
    error = over_budget(JOIN_BOMB)
    assert "|join" in str(error) and error.part == "HTML body"


def test_a_loop_cannot_multiply_a_big_value():
    error = over_budget(
        "{% for i in x %}{{ big }}{% endfor %}", x=list(range(1000)), big="x" * 10**5
    )
    assert "output" in str(error)


def test_many_references_to_a_big_value_are_counted():
    over_budget("{{ big }}" * 30, big="x" * 50_000)


def test_a_filter_cannot_grow_a_value_past_the_cap():
    # Each addslashes doubles the backslashes: 2**25 of them
    error = over_budget("{{ s" + "|addslashes" * 25 + " }}", s="\\")
    assert "|addslashes made a value longer than 1000000 characters" in str(error)


def test_a_filter_tag_cannot_multiply_a_value_in_a_loop():
    over_budget(
        "{% for i in x %}{% filter addslashes|addslashes|addslashes|addslashes %}{{ s }}"
        "{% endfilter %}{% endfor %}",
        x=list(range(100)),
        s="\\" * 50_000,
    )


def test_output_up_to_the_cap_renders():
    big = "x" * (MAX_OUTPUT - 10)
    email = render("{{ big }}", text="{{ big }}", big=big)
    assert email.html == big and email.text == big


def test_an_iterating_filter_takes_a_bounded_number_of_items():
    assert render("{{ code|make_list|join:' ' }}", code="482913").html == "4 8 2 9 1 3"
    error = over_budget("{{ s|escapeseq|length }}", s="x" * 20_000)
    assert "|escapeseq takes at most 10000 items" in str(error)


def test_regroup_counts_its_items_against_the_loop_budget():
    error = over_budget("{% regroup s by 0 as groups %}{{ groups|length }}", s="x" * 20_000)
    assert "more than 10000" in str(error)


def test_the_loop_and_add_budgets_are_budget_errors():
    error = over_budget(
        "{% for a in x %}{% for b in x %}.{% endfor %}{% endfor %}", x=list(range(200))
    )
    assert "loops ran more than 10000 times" in str(error)
    doubling = "".join(f"{{% with a{i + 1}=a{i}|add:a{i} %}}" for i in range(14))
    error = over_budget(doubling + "{{ a14 }}" + "{% endwith %}" * 14, a0="x" * 100)
    assert "|add made a value longer than 1000000 characters" in str(error)


def test_a_budget_error_inside_an_if_is_not_swallowed():
    # Django's {% if %} operators turn any exception into False; the budget remembers
    error = over_budget("{% if a|join:a == 'x' %}yes{% endif %}no", a="x" * 5000)
    assert "|join" in str(error)


def test_once_over_budget_an_email_renders_no_further_part():
    preview = render_parts(
        subject="{{ code }}", html=JOIN_BOMB, text="{{ code }}", payload={"code": "1"}
    )
    assert preview.subject == "1" and preview.text == ""
    [error] = preview.error_list()
    assert error["part"] == "HTML body" and OVER_BUDGET in error["message"]


def test_a_template_source_has_a_size_limit():
    over_budget("x" * 300_000)


# CSS inlining and the derived plain text run on what the template made


def test_deeply_nested_html_is_not_handed_to_the_css_inliner():
    # css_inline's parser recurses per level: about 10,000 levels crash the process
    error = over_budget("<style>p { color: red; }</style>" + "<div>" * 20_000)
    assert "CSS" in str(error)


def test_css_that_would_inline_into_megabytes_is_refused():
    # Every element gets every declaration: 1,000 x 8 kB
    css = "* {" + ";".join(f"--p{i}: 1" for i in range(1000)) + "}"
    over_budget(f"<style>{css}</style>" + "<p></p>" * 1000)


def test_html_whose_parsing_multiplies_elements_is_not_inlined():
    # An HTML parser re-opens unclosed formatting elements in each new block: n² elements
    html = "".join(f"<div><b id={i}></div>" for i in range(900))
    over_budget("<style>b { color: red; }</style>" + html)


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ("<style>" * 25_000, "unclosed <style>: a lazy regex rescans the rest for each"),
        ("<style>" + "/* " * 60_000 + "</style>", "unclosed CSS comments: the same"),
        (("<a " + "x " * 30) * 3000, "unclosed tags: Python's HTMLParser rescans the rest"),
    ],
)
def test_html_that_a_parser_would_rescan_takes_no_quadratic_time(body, why):
    layout = LayoutSource(html="<style>.x { color: red; }</style>{{ content }}")
    started = time.monotonic()
    try:
        render_email(
            subject="s", html=body, text="{{ code }}", payload={"code": "1"}, layout=layout
        )
    except TemplateRenderError as exc:
        assert OVER_BUDGET in str(exc)
    assert time.monotonic() - started < 5, why  # it finishes: without the fix, minutes


def test_a_plain_text_body_is_derived_from_html_of_bounded_size():
    html = "{% for i in x %}<p>twenty-five characters</p>{% endfor %}"
    error = over_budget(html, text="", x=list(range(10_000)))
    assert error.part == "plain-text body"


# Time


def test_a_slow_render_stops_at_the_time_budget(seconds):
    seconds(0.5)
    started = time.monotonic()
    error = over_budget(SLOW_BOMB, code="1")
    assert "took longer than 0.5 seconds" in str(error)
    assert time.monotonic() - started < 5  # it finishes: without the budget, minutes


def test_method_calls_in_conditions_stop_at_the_time_budget(seconds):
    # No filter, no output: every operand copies ten megabytes four times (80 GB in all:
    # seconds even where copying is fast; one megabyte was done in under 0.5 s on some runs)
    seconds(0.5)
    operands = " or ".join(["big.upper.lower.upper.lower == 1"] * 2000)
    started = time.monotonic()
    error = over_budget(f"{{% if {operands} %}}yes{{% endif %}}", big="x" * 10**7)
    assert "took longer than 0.5 seconds" in str(error)
    assert time.monotonic() - started < 5


def test_a_loop_of_nodes_that_output_nothing_stops_at_the_time_budget(seconds):
    seconds(0.5)
    body = "{% comment %}{% endcomment %}{% if x %}{% endif %}" * 500
    error = over_budget(f"{{% for i in x %}}{body}{{% endfor %}}", x=list(range(10_000)))
    assert "took longer than 0.5 seconds" in str(error)


def test_a_variable_has_a_bounded_number_of_parts():
    assert render("{{ user.profile.givenName.upper.lower }}", user={"profile": {}}).html == ""
    error = over_budget("{{ code" + ".upper" * 9 + " }}", code="1")
    assert "a variable has at most 8 parts, not 10" in str(error)


def test_the_time_budget_covers_all_parts_of_an_email(monkeypatch):
    # A clock that moves 0.1 s whenever the budget looks at it: each part alone would fit
    # in the 2 s, all of them together do not.
    now = [1000.0]

    def clock():
        now[0] += 0.1
        return now[0]

    monkeypatch.setattr(sandbox_library, "_clock", clock, raising=False)
    loop = "{% for i in x %}{{ i|upper }}{% endfor %}"
    with pytest.raises(TemplateRenderError, match="took longer than 2 seconds"):
        render(loop, subject=loop, text=loop, x=list(range(7)))


def test_each_render_has_its_own_budget(seconds):
    seconds(0.5)
    for _ in range(3):
        assert render("{% for i in x %}{{ i }}{% endfor %}", x=list(range(100))).html
        time.sleep(0.2)


# Celery's soft time limit, SystemExit and KeyboardInterrupt are never swallowed


def raise_once(exception):
    """A clock that raises ``exception`` the second time it is read (the first sets the
    deadline), as Celery's soft time limit does in the middle of whatever runs."""
    calls = []

    def clock():
        calls.append(1)
        if len(calls) == 2:
            raise exception()
        return time.monotonic()

    return clock


@pytest.mark.parametrize("exception", [SoftTimeLimitExceeded, SystemExit, KeyboardInterrupt])
@pytest.mark.parametrize("preview", [False, True])
def test_a_soft_time_limit_in_an_if_operand_propagates(monkeypatch, exception, preview):
    monkeypatch.setattr(sandbox_library, "_clock", raise_once(exception), raising=False)
    render_function = render_parts if preview else render_email
    with pytest.raises(exception):
        render_function(
            subject="",
            html="{% if code|upper == 'X' %}yes{% endif %}{{ code }}",
            text="",
            payload={"code": "1"},
        )


@pytest.mark.parametrize("exception", [SoftTimeLimitExceeded, SystemExit, KeyboardInterrupt])
def test_a_signal_raising_during_a_render_propagates(seconds, exception):
    seconds(60)

    def handler(signum, frame):
        raise exception()

    # No garbage collection meanwhile: a signal that lands in a gc callback (hypothesis
    # installs one) is "ignored" by Python, whatever the render does (seen once in CI).
    gc_was_enabled = gc.isenabled()
    gc.disable()
    previous = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, 0.2)
    try:
        with pytest.raises(exception):
            render(SLOW_BOMB, code="1")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if gc_was_enabled:
            gc.enable()


@pytest.mark.django_db
def test_delivery_lets_a_soft_time_limit_through(monkeypatch, postmark):
    from emails.delivery.deliver import message_deliver

    message = MessageFactory(template=TemplateFactory(html_body="<p>{{ code|upper }}</p>"))
    monkeypatch.setattr(sandbox_library, "_clock", raise_once(SoftTimeLimitExceeded), raising=False)
    with pytest.raises(SoftTimeLimitExceeded):
        message_deliver(message_id=message.pk)
    assert postmark.requests == []


@pytest.mark.django_db
def test_a_bomb_fails_its_message_with_the_budget_error(postmark):
    from emails.delivery.deliver import message_deliver

    message = MessageFactory(template=TemplateFactory(html_body=JOIN_BOMB + "{{ code }}"))
    message_deliver(message_id=message.pk)
    message.refresh_from_db()
    assert message.status == MessageStatus.FAILED
    assert message.error.startswith(f"template error: HTML body: {OVER_BUDGET} (|join")
    assert postmark.requests == []


# Rendered parts are plain strings


def plain(value) -> bool:
    return type(value) is str


@pytest.mark.parametrize(
    ("html", "text", "layout"),
    [
        ("<p>{{ code }}</p>", "{{ code }}", None),
        ("<p>{{ code }}</p>", "", None),
        ("<style>p { color: red; }</style><p>{{ code }}</p>", "", None),
        (
            '<p class="x">{{ code }}</p>',
            "{{ code }}",
            LayoutSource(
                html="<style>.x { color: red; }</style><div>{{ content }}</div>",
                text="{{ content }}\n--",
            ),
        ),
        ("<p>{{ code }}</p>", "{{ code }}", LayoutSource(html="<div>{{ content }}</div>")),
    ],
)
def test_every_rendered_part_is_a_plain_str(html, text, layout):
    parts = {"subject": "Code {{ code }}", "html": html, "text": text, "preheader": "{{ code }}"}
    email = render_email(**parts, layout=layout, payload={"code": "1"})
    assert all(map(plain, (email.subject, email.html, email.text))), email
    preview = render_parts(**parts, layout=layout, payload={"code": "1"})
    assert all(plain(value) for value in (preview.subject, preview.html, preview.text)), preview


def test_error_messages_are_plain_str():
    preview = render_parts(subject="{{ code|upper:1 }}", html="{% if %}", text="", payload={})
    assert preview.errors and all(
        plain(error["message"]) and plain(error["part"]) for error in preview.error_list()
    )


# Every filter and tag


# Every filter the sandbox registers, how the budget bounds it, and the argument the walk
# below gives it (a context variable or a literal; None: it takes none). A Django upgrade
# that adds a filter fails test_every_registered_filter_and_tag_is_classified until someone
# decides where it belongs.
#   value: output at most a few times its input and argument, at C speed: the caps on
#          values and output bound it
#   small: a number, or one item of its input
#   items: iterates its input in Python: at most 10,000 items (|join predicts its size)
#   slow:  per-character Python work (HTML parsing, wrapping, numbering): a smaller input
FILTERS = {
    "add": ("value", "value"),
    "addslashes": ("value", None),
    "capfirst": ("value", None),
    "cut": ("value", "'x'"),
    "date": ("value", "value"),
    "default": ("value", "value"),
    "default_if_none": ("value", "value"),
    "dictsort": ("items", "'0'"),
    "dictsortreversed": ("items", "'0'"),
    "divisibleby": ("small", "3"),
    "escape": ("value", None),
    "escapejs": ("value", None),
    "escapeseq": ("items", None),
    "filesizeformat": ("small", None),
    "first": ("small", None),
    "floatformat": ("small", "20"),
    "force_escape": ("value", None),
    "get_digit": ("small", "1"),
    "iriencode": ("value", None),
    "join": ("items", "value"),
    "last": ("small", None),
    "length": ("small", None),
    "linebreaks": ("slow", None),
    "linebreaksbr": ("value", None),
    "linenumbers": ("slow", None),
    "lower": ("value", None),
    "make_list": ("items", None),
    "phone2numeric": ("value", None),
    "pluralize": ("value", "value"),
    "random": ("small", None),
    "safe": ("value", None),
    "safeseq": ("items", None),
    "slice": ("value", "':'"),
    "slugify": ("slow", None),
    "striptags": ("slow", None),
    "time": ("value", "value"),
    "timesince": ("small", "value"),
    "timeuntil": ("small", "value"),
    "title": ("value", None),
    "truncatechars": ("value", "10"),
    "truncatechars_html": ("slow", "10"),
    "truncatewords": ("value", "10"),
    "truncatewords_html": ("slow", "10"),
    "unordered_list": ("items", None),
    "upper": ("value", None),
    "urlencode": ("value", None),
    "urlize": ("value", None),
    "urlizetrunc": ("value", "5"),
    "wordcount": ("small", None),
    "wordwrap": ("slow", "1"),
    "yesno": ("value", "value"),
}
TAGS = {
    # output: what the nodes inside render, counted there ({% filter %}: what it adds)
    "autoescape": "container",
    "filter": "container",
    "for": "container (iterations counted)",
    "if": "container",
    "ifchanged": "container",
    "spaceless": "container",
    "with": "container",
    "comment": "renders nothing",
    "regroup": "no output (items counted as iterations)",
    "resetcycle": "no output",
    "cycle": "output counted",
    "firstof": "output counted",
    "now": "output counted",
    "templatetag": "output counted",
    "verbatim": "output counted",
    "widthratio": "output counted",
    **dict.fromkeys(
        ["load", "include", "extends", "block", "debug", "url", "csrf_token", "querystring"],
        "forbidden",
    ),
    "lorem": "forbidden",
}


def test_every_registered_filter_and_tag_is_classified():
    assert set(sandbox_library.register.filters) == set(FILTERS)
    assert set(sandbox_library.register.tags) == set(TAGS)
    limited = {name for name, (kind, _) in FILTERS.items() if kind in ("items", "slow")}
    assert set(sandbox_library.INPUT_LIMITS) == limited


NEAR_CAP = MAX_OUTPUT - 10_000
# Markup, entities, line breaks, tabs, characters that grow when upper-cased or encoded
MARKUP = (
    "<a href='http://x.y/?a=1&b=2'>Jane & \"Co\"</a>\n\n\t\U0001f600 \xdf \ufb03 "
    "x@y.z www.a.b (x). "
)
VALUES = {
    "markup": (MARKUP * (NEAR_CAP // len(MARKUP) + 1))[:NEAR_CAP],
    "lines": "\n" * NEAR_CAP,
    "items": tuple("x" * 99 for _ in range(9_000)),
}


@pytest.mark.parametrize("value", list(VALUES))
@pytest.mark.parametrize("name", sorted(FILTERS))
def test_every_filter_on_a_value_near_the_cap_stays_within_the_budget(seconds, name, value):
    seconds(0.25)
    _, argument = FILTERS[name]
    expression = f"value|{name}" + (f":{argument}" if argument else "")
    source = f"{{% for i in loop %}}{{{{ {expression} }}}}{{% endfor %}}"
    started = time.monotonic()
    try:
        email = render(source, text=source, value=VALUES[value], loop=list(range(1000)))
    except TemplateRenderError as exc:
        # Over budget, or the filter refusing the value (ValueError...): never out of memory
        assert OVER_BUDGET in str(exc) or "while rendering" in str(exc), exc
        assert "MemoryError" not in str(exc) and "RecursionError" not in str(exc)
    else:
        assert len(email.html) <= MAX_OUTPUT and len(email.text) <= MAX_OUTPUT
    assert time.monotonic() - started < 5  # it finishes (the budget is 0.25 s)


# A saved bomb, a real worker


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_saved_bomb_delays_other_emails_by_no_more_than_its_budget(settings, provider_stub):
    require_postgres()
    require_service("Redis", "127.0.0.1", 6379)
    from emails.intake.accept import message_accept

    settings.CELERY_TASK_ALWAYS_EAGER = False  # the relay's setting: workers hear PostgreSQL
    env = service_env(
        DATABASE_URL=database_url(connection.settings_dict),
        CELERY_BROKER_URL="redis://127.0.0.1:6379/0",
        LOGTO_AUTHORIZATION="Bearer budget-test",
        EMAIL_PROVIDER="postmark",
        ANYMAIL_POSTMARK_SERVER_TOKEN="budget-token",
        ANYMAIL_POSTMARK_API_URL=provider_stub.url,
        EMAILS_SEND_TIME_LIMIT="60",
        EMAILS_RELAY_POLL="1",
    )
    # Given a sign-in template that is a bomb, stored without validation, and a worker
    # that has delivered a first email (so it is up)
    TemplateFactory(usage_type="SignIn", locale="en", html_body=SLOW_BOMB)
    TemplateFactory(usage_type="Register", locale="en", html_body="<p>{{ code }}</p>")
    with running(celery_worker(env)):
        first = message_accept(to="first@example.com", usage_type="Register", payload={"code": "1"})
        wait_for(lambda: sent(first), timeout=60, what="the worker to send a first email")

        # When a sign-in email (the bomb) and then a registration email are accepted
        bomb = message_accept(to="bomb@example.com", usage_type="SignIn", payload={"code": "2"})
        normal = message_accept(
            to="normal@example.com", usage_type="Register", payload={"code": "3"}
        )

        # Then the bomb fails on its budget and the other email is sent right after it
        failed = wait_for(
            lambda: Message.objects.filter(pk=bomb.pk, status=MessageStatus.FAILED).first(),
            timeout=20,
            what="the bomb to fail",
        )
        assert OVER_BUDGET in failed.error and "took longer than 2 seconds" in failed.error
        wait_for(lambda: sent(normal), timeout=20, what="the other email to be sent")
    recipients = [request.json()["To"] for request in provider_stub.requests]
    assert recipients == ["first@example.com", "normal@example.com"]


def sent(message) -> Message | None:
    return Message.objects.filter(pk=message.pk, status=MessageStatus.SENT).first()


# Found in review: what the first budget let through


def test_many_big_values_held_at_once_are_refused():
    """Each value under the 1 MB cap, 180 of them bound at once: 700 MB before the per-email
    total of what filters make."""
    doubling = '{% with s0="😀' + "😀" * 3905 + '" %}'
    for step in range(1, 9):
        doubling += f"{{% with s{step}=s{step - 1}|add:s{step - 1} %}}"
    copies = " ".join(f'b{index}=s8|add:"{index}"' for index in range(180))
    template = doubling + "{% with " + copies + " %}{{ b0|length }}{% endwith %}"
    error = over_budget(template + "{% endwith %}" * 9)
    assert "filters made more than" in str(error)


def test_a_part_that_overran_the_clock_outside_a_loop_is_an_error(seconds):
    """No variable, no loop: nothing checked the clock, so a slow part finished unnoticed."""
    seconds(0.0)
    error = over_budget('{% now "Y" %} and plain text')
    assert "longer than 0 seconds" in str(error)


def test_date_formats_have_a_size_limit():
    long_format = "D" * 101
    with pytest.raises(TemplateRenderError, match="format of at most 100"):
        render(f'{{% now "{long_format}" as x %}}')
    over_budget(f'{{{{ when|date:"{long_format}" }}}}', when="2026-01-01")
    assert render('{% now "Y" %}').html.isdigit()
