"""README's "What Logto hears back", row by row: each row's condition is produced against the
real endpoint, and the answer must have the row's status and body; every answer the endpoint
can give must be a row.

How a body cell matches: the cell's `code` is the exact JSON answer as ``json.dumps`` writes it
(``", "`` and ``": "`` between items, keys in the order sent), except that ``<uuid>`` stands for
one UUID, any other ``<...>`` for one string's whole text, and ``...`` for the rest of a string's
text (``"Unsupported media type ..."``).
"""

import json
import re
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.test import Client
from rest_framework import exceptions

from emails.models import Message, MessageStatus, Template
from tests.database import database_refusing
from tests.factories import TemplateFactory
from tests.helpers import load_payload
from tests.readme import code_spans, readme_table

pytestmark = pytest.mark.django_db

URL = "/api/logto/email"
HEADING = "What Logto hears back"
API_SOURCE = Path(__file__).resolve().parent.parent / "emails" / "intake" / "api.py"

_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_STRING_TEXT = r'(?:[^"\\]|\\.)*'


def body_pattern(cell: str) -> re.Pattern:
    spans = code_spans(cell)
    assert len(spans) == 1, f"a body cell holds one `JSON` example: {cell!r}"
    regex = ""
    for part in re.split(r"(<[^<>]+>|\.\.\.)", spans[0]):
        if part == "<uuid>":
            regex += _UUID
        elif part == "..." or (part.startswith("<") and part.endswith(">")):
            regex += _STRING_TEXT
        else:
            regex += re.escape(part)
    return re.compile(regex)


def logto_body(*, code: str, to: str = "new.user@example.com", ip: str = "198.51.100.23"):
    body = load_payload("register-en.json")
    body["payload"]["code"] = code
    return body | {"to": to, "ip": ip}


# --- One scenario per row: the row's "when" cell -> how to make the endpoint answer it -------


def stored(ctx):
    answer = ctx.api.post(URL, logto_body(code="200001"), format="json")
    assert Message.objects.get(pk=answer.json()["id"]).status == MessageStatus.QUEUED
    return answer


def repeated(ctx):
    first = ctx.api.post(URL, logto_body(code="200002"), format="json").json()
    answer = None
    for state in (MessageStatus.QUEUED, MessageStatus.SENDING, MessageStatus.SENT):
        Message.objects.filter(pk=first["id"]).update(status=state)
        answer = ctx.api.post(URL, logto_body(code="200002"), format="json")
        assert answer.json() == {"id": first["id"], "status": state}
    assert Message.objects.filter(to="new.user@example.com").count() == 1
    return answer


def field_wrong(ctx):
    return ctx.api.post(URL, logto_body(code="200003", to="not an address"), format="json")


def not_json(ctx):
    return ctx.api.post(URL, '{"to": ', content_type="application/json")


def header_missing(ctx):
    return ctx.client.post(URL, logto_body(code="200004"), content_type="application/json")


def header_wrong(ctx):
    return ctx.client.post(
        URL,
        logto_body(code="200005"),
        content_type="application/json",
        HTTP_AUTHORIZATION="Bearer not-the-secret",
    )


def other_method(ctx):
    return ctx.api.get(URL)


def accept_without_json(ctx):
    return ctx.api.post(URL, logto_body(code="200006"), format="json", HTTP_ACCEPT="text/html")


def too_large(ctx):
    body = logto_body(code="200007")
    body["payload"]["padding"] = ["x" * 4000] * (ctx.settings.EMAILS_MAX_BODY_BYTES // 4000 + 1)
    return ctx.api.post(URL, body, format="json")


def not_json_content_type(ctx):
    return ctx.api.post(URL, json.dumps(logto_body(code="200008")), content_type="text/plain")


def no_template(ctx):
    Template.objects.update(enabled=False)
    return ctx.api.post(URL, logto_body(code="200009"), format="json")


def recipient_limit(ctx):
    ctx.settings.EMAILS_RATE_LIMIT_RECIPIENT = "2/600"
    answers = [
        ctx.api.post(URL, logto_body(code=f"20001{n}", to="limited@example.com"), format="json")
        for n in range(3)
    ]
    assert [answer.status_code for answer in answers[:2]] == [200, 200]
    return answers[2]


def ip_limit(ctx):
    ctx.settings.EMAILS_RATE_LIMIT_IP = "2/600"
    answers = [
        ctx.api.post(
            URL, logto_body(code="200020", to=f"u{n}@example.com", ip="203.0.113.9"), format="json"
        )
        for n in range(3)
    ]
    assert [answer.status_code for answer in answers[:2]] == [200, 200]
    return answers[2]


def database_down(ctx):
    with database_refusing():
        answer = ctx.api.post(URL, logto_body(code="200030"), format="json")
    assert not Message.objects.exists()
    return answer


def not_configured(ctx):
    ctx.settings.LOGTO_AUTHORIZATION = []
    return ctx.api.post(URL, logto_body(code="200031"), format="json")


SCENARIOS = {
    "stored and committed; delivery follows": stored,
    "the same email as one accepted earlier, still on its way or sent less than "
    "`EMAILS_DEDUP_SECONDS` ago (see below); nothing new is stored": repeated,
    "a field is wrong (named in the message)": field_wrong,
    "the body is not JSON": not_json,
    "no Authorization header": header_missing,
    "the Authorization header is wrong": header_wrong,
    "a method other than POST (Logto always posts)": other_method,
    "an `Accept` header without JSON (Logto sends none)": accept_without_json,
    "body over `EMAILS_MAX_BODY_BYTES`": too_large,
    "not `Content-Type: application/json`": not_json_content_type,
    "no enabled template for the type or for Generic in any candidate language": no_template,
    "the recipient's rate limit is used up (Logto shows it as a 400)": recipient_limit,
    "the end user's IP's rate limit is used up": ip_limit,
    "the database cannot store the message": database_down,
    "`LOGTO_AUTHORIZATION` is unset in production": not_configured,
}
# A scenario that breaks the web's database connection needs a real transaction.
NEEDS_TRANSACTION = {database_down}


def _rows():
    return readme_table(HEADING)


def _row_params():
    params = []
    for row in _rows():
        scenario = SCENARIOS.get(row["when"])
        marks = [pytest.mark.django_db(transaction=True)] if scenario in NEEDS_TRANSACTION else []
        params.append(pytest.param(row, marks=marks, id=f"{row['status']} {row['when'][:40]}"))
    return params


@pytest.fixture
def ctx(api, settings):
    TemplateFactory(usage_type="Register", locale="en")
    return SimpleNamespace(api=api, client=Client(), settings=settings)


@pytest.mark.parametrize("row", _row_params())
def test_each_row_of_the_table_is_what_the_endpoint_answers(row, ctx):
    scenario = SCENARIOS.get(row["when"])
    assert scenario is not None, (
        f"README row {row['status']} | {row['when']} has no scenario: add one to SCENARIOS in "
        "tests/test_readme_status.py that produces it"
    )
    answer = scenario(ctx)
    shown = json.dumps(answer.json(), ensure_ascii=False)
    assert (answer.status_code, answer["Content-Type"]) == (int(row["status"]), "application/json")
    assert body_pattern(row["body"]).fullmatch(shown), f"README shows {row['body']}, got {shown}"


def test_every_answer_the_endpoint_gives_is_a_row_of_the_table():
    rows = _rows()
    whens = {row["when"] for row in rows}
    missing = [when for when in SCENARIOS if when not in whens]
    assert not missing, f"answers the endpoint gives that README's table lacks: {missing}"
    # A status written into the view (or an exception class it raises) with no row.
    source = API_SOURCE.read_text()
    in_code = {int(code) for code in re.findall(r"HTTP_(\d{3})_", source)}
    for name in re.findall(r"exceptions\.(\w+)\(", source):
        in_code.add(getattr(exceptions, name).status_code)
    listed = {int(row["status"]) for row in rows}
    assert in_code - listed == set(), f"statuses in emails/intake/api.py without a row: {in_code}"


def test_the_body_rule_itself():
    """The matching rule is strict where the table is literal."""
    assert body_pattern('`{"id": "<uuid>", "status": "queued"}`').fullmatch(
        json.dumps({"id": str(uuid.uuid4()), "status": "queued"})
    )
    assert not body_pattern('`{"id": "<uuid>", "status": "queued"}`').fullmatch(
        json.dumps({"id": "x", "status": "queued"})
    )
    assert body_pattern('`{"message": "Unsupported media type ..."}`').fullmatch(
        json.dumps({"message": 'Unsupported media type "text/plain" in request.'})
    )
    assert not body_pattern('`{"message": "Request body is too large."}`').fullmatch(
        json.dumps({"message": "Request body is too large!"})
    )
