"""Accepting: duplicates are one email, rate limits (counted in the database) answer 429."""

import threading
from datetime import timedelta

import pytest
from django.core import mail
from django.db import connection
from rest_framework.test import APIClient

from emails.models import Message, MessageStatus, Template
from tests.factories import MessageFactory, TemplateFactory
from tests.helpers import AUTHORIZATION, load_payload, require_postgres

pytestmark = pytest.mark.django_db

URL = "/api/logto/email"


def test_identical_post_within_the_ttl_is_one_email(send):
    body = load_payload("sign-in-fr.json")
    first, second = send(body), send(body)
    assert (first.status_code, second.status_code) == (200, 200)
    assert first.json()["id"] == second.json()["id"]
    assert Message.objects.count() == 1
    assert len(mail.outbox) == 1


def test_identical_invitation_is_one_email(send):
    body = load_payload("organization-invitation-es.json")
    assert send(body).json()["id"] == send(body).json()["id"]
    assert len(mail.outbox) == 1


@pytest.mark.parametrize(
    "change",
    [
        lambda body: body["payload"].update(code="111111"),
        lambda body: body.update(to="someone.else@example.com"),
        lambda body: body.update(type="Register"),
    ],
)
def test_a_different_code_recipient_or_type_is_a_new_email(send, change):
    body = load_payload("sign-in-fr.json")
    first = send(body)
    change(body)
    assert send(body).json()["id"] != first.json()["id"]
    assert len(mail.outbox) == 2


def test_the_same_code_after_the_ttl_is_a_new_email(send, settings):
    body = load_payload("sign-in-fr.json")
    first = send(body).json()["id"]
    Message.objects.filter(pk=first).update(
        created_at=Message.objects.get(pk=first).created_at
        - timedelta(seconds=settings.EMAILS_CODE_TTL + 1)
    )
    assert send(body).json()["id"] != first
    assert len(mail.outbox) == 2


@pytest.mark.django_db(transaction=True)
def test_identical_posts_at_the_same_moment_are_one_email():
    require_postgres()
    # Its own template: an earlier transactional test may have flushed the shipped ones.
    Template.objects.filter(usage_type="Register", locale="en").delete()
    TemplateFactory(usage_type="Register", locale="en")
    body = load_payload("register-en.json")
    answers, start = [], threading.Barrier(4)

    def post():
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=AUTHORIZATION)
        start.wait()
        answers.append(client.post(URL, body, format="json"))
        connection.close()

    threads = [threading.Thread(target=post) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [answer.status_code for answer in answers] == [200] * 4
    assert len({answer.json()["id"] for answer in answers}) == 1
    assert Message.objects.count() == 1


def test_recipient_over_the_limit_gets_429(send, settings):
    settings.EMAILS_RATE_LIMIT_RECIPIENT = "2/600"
    body = load_payload("register-en.json")
    answers = []
    for code in ("100001", "100002", "100003"):
        body["payload"]["code"] = code
        answers.append(send(body))
    assert [answer.status_code for answer in answers] == [200, 200, 429]
    assert answers[2].json() == {
        "message": "Too many emails to this address. Please wait a few minutes and try again."
    }
    assert Message.objects.count() == 2
    # Another recipient is not affected; a repeat of an accepted request still gets its id.
    body["to"] = "other@example.com"
    assert send(body).status_code == 200
    body["to"], body["payload"]["code"] = "new.user@example.com", "100001"
    assert send(body).json()["id"] == answers[0].json()["id"]


def test_ip_over_the_limit_gets_429(send, settings):
    settings.EMAILS_RATE_LIMIT_IP = "2/600"
    statuses = []
    for number in range(3):
        body = load_payload("register-en.json")
        body["to"] = f"user{number}@example.com"
        statuses.append(send(body).status_code)
    assert statuses == [200, 200, 429]
    body = load_payload("user-permission-validation-en.json")  # no ip: not limited by ip
    assert send(body).status_code == 200


def test_the_rate_limit_window_slides_and_test_sends_do_not_count(send, settings):
    settings.EMAILS_RATE_LIMIT_RECIPIENT = "1/600"
    body = load_payload("register-en.json")
    first = send(body).json()["id"]
    # A test send from the admin to the same address is not the user's email
    MessageFactory(to="New.User@example.com", is_test=True)
    body["payload"]["code"] = "200002"
    assert send(body).status_code == 429
    # Once the first email is older than the window, the next one is accepted
    _age(first, 601)
    assert send(body).status_code == 200


def _age(message_id, seconds):
    message = Message.objects.get(pk=message_id)
    Message.objects.filter(pk=message_id).update(
        created_at=message.created_at - timedelta(seconds=seconds)
    )


def test_a_sent_email_asked_for_again_after_the_dedup_window_is_sent_again(send, settings):
    # Logto's console test always sends the code 000000: a second test is a second email.
    body = load_payload("generic-console-test.json")
    first = send(body).json()["id"]
    _age(first, settings.EMAILS_DEDUP_SECONDS + 1)
    assert send(body).json()["id"] != first
    assert len(mail.outbox) == 2


def test_a_failed_email_asked_for_again_is_tried_again(send):
    body = load_payload("organization-invitation-es.json")
    first = send(body).json()["id"]
    Message.objects.filter(pk=first).update(status=MessageStatus.FAILED)
    second = send(body).json()["id"]
    assert second != first
    assert Message.objects.get(pk=second).status == MessageStatus.SENT


def test_an_email_still_queued_is_the_same_email_however_late_the_repeat(post_email, settings):
    # No on_commit delivery here: the first stays queued, as when the broker is down.
    body = load_payload("sign-in-fr.json")
    first = post_email(body).json()["id"]
    _age(first, settings.EMAILS_DEDUP_SECONDS * 5)
    assert post_email(body).json()["id"] == first
    assert Message.objects.count() == 1


def test_accepting_is_one_logged_statement(send):
    # The fast INSERT (PostgreSQL) is counted and logged like any Django query
    from django.test.utils import CaptureQueriesContext

    body = load_payload("register-en.json")
    send(body)  # the process's template list is read once
    body["payload"]["code"] = "300003"
    with CaptureQueriesContext(connection) as queries:
        assert send(body).status_code == 200
    inserts = [
        q["sql"] for q in queries if (q["sql"] or "").startswith('INSERT INTO "emails_message"')
    ]
    assert len(inserts) == 1, [q["sql"] for q in queries]


def test_the_prepared_insert_stores_what_the_orm_would():
    """The fast path (docs/ARCHITECTURE.md) against the plain one: the same message stored
    by outbox_insert and by Model.save reads back field for field the same."""
    from django.forms.models import model_to_dict
    from django.utils import timezone

    from emails.intake.outbox_insert import outbox_insert

    template = TemplateFactory(usage_type="SignIn", locale="fr")
    now = timezone.now()

    def message(to):
        return Message(
            to=to,
            usage_type="SignIn",
            payload={"code": "123456", "locale": "fr-CA", "application": {"name": "Ünï"}},
            ip="2001:db8:1:2::/64",
            template_id=template.pk,
            template_usage_type="SignIn",
            template_locale="fr",
            requested_locale="fr-CA",
            used_fallback=True,
            created_at=now,
            next_attempt_at=now,
            expires_at=now + timedelta(minutes=10),
            dedup_key=to,
        )

    fast, plain = message("fast@example.com"), message("plain@example.com")
    outbox_insert(fast, now=now)
    plain.save(force_insert=True)

    def stored(pk):
        row = model_to_dict(Message.objects.get(pk=pk))
        return {k: v for k, v in row.items() if k not in ("id", "to", "dedup_key")}

    assert stored(fast.pk) == stored(plain.pk)


# --- One mailbox, one rate limit -------------------------------------------------------
# Spellings that reach jane@example.com. Each one used to be stored as sent and counted as a
# mailbox of its own (or, with fullwidth letters, refused while its neighbours were not).
JANE_SPELLINGS = [
    "jane@example.com",
    "JANE@EXAMPLE.COM",  # the local part's case is kept, but counted case-blind
    "ｊａｎｅ@example.com",  # fullwidth letters
    "jane＠example.com",  # fullwidth at-sign
    "jane@ｅｘａｍｐｌｅ.ｃｏｍ",  # fullwidth domain
    "jane@example。com",  # ideographic full stop
    "jane@example．com",  # fullwidth full stop
    '"jane"@example.com',  # needless quotes
    '"ja\\ne"@example.com',  # needless quotes and a needless escape
    '"ｊａｎｅ"@ＥＸＡＭＰＬＥ。com',
]


def _to(to: str, code: str) -> dict:
    body = load_payload("register-en.json")
    body["to"], body["payload"]["code"] = to, code
    del body["ip"]
    return body


@pytest.mark.parametrize("to", JANE_SPELLINGS)
def test_every_spelling_of_a_mailbox_is_stored_and_sent_as_that_mailbox(send, to):
    response = send(_to(to, "400004"))
    assert response.status_code == 200, response.content
    message = Message.objects.get(pk=response.json()["id"])
    expected = "JANE@example.com" if to.startswith("JANE") else "jane@example.com"
    assert message.to == expected
    assert mail.outbox[0].to == [expected]


def test_spellings_of_one_mailbox_share_one_rate_limit(send, settings):
    settings.EMAILS_RATE_LIMIT_RECIPIENT = "3/600"
    statuses = [
        send(_to(to, f"5000{number:02}")).status_code for number, to in enumerate(JANE_SPELLINGS)
    ]
    assert statuses == [200] * 3 + [429] * (len(JANE_SPELLINGS) - 3)
    assert set(Message.objects.values_list("to", flat=True)) <= {
        "jane@example.com",
        "JANE@example.com",
    }
    # Another mailbox is not affected
    assert send(_to("john@example.com", "500099")).status_code == 200


def test_spellings_of_one_mailbox_are_one_email_for_one_code(send):
    first = send(_to("jane@example.com", "600006")).json()["id"]
    again = [send(_to(to, "600006")).json()["id"] for to in JANE_SPELLINGS]
    assert set(again) == {first}
    assert len(mail.outbox) == 1


@pytest.mark.parametrize(
    ("spellings", "stored"),
    [
        (["jane@BÜCHER.de", "jane@bücher.de", "jane@xn--bcher-kva.de"], "jane@xn--bcher-kva.de"),
        # IDNA 2008: ß is a letter of its own (IDNA 2003, Python's codec, made it "ss")
        (["jane@straße.de", "jane@STRAßE.de", "jane@xn--strae-oqa.de"], "jane@xn--strae-oqa.de"),
    ],
)
def test_an_international_domain_is_stored_in_its_ascii_form(send, settings, spellings, stored):
    settings.EMAILS_RATE_LIMIT_RECIPIENT = "2/600"
    statuses = [send(_to(to, f"70000{n}")).status_code for n, to in enumerate(spellings)]
    assert statuses == [200, 200, 429]
    assert set(Message.objects.values_list("to", flat=True)) == {stored}
    assert mail.outbox[0].to == [stored]
    assert send(_to("jane@strasse.de", "700009")).status_code == 200  # another domain


def _from(ip: str, number: int) -> dict:
    body = load_payload("register-en.json")
    body["to"], body["ip"] = f"user{number}@example.com", ip
    return body


@pytest.mark.parametrize(
    ("ips", "stored"),
    [
        # Spellings of one IPv6 address
        (["2001:db8::1", "2001:0DB8:0:0::1", "2001:db8:0:0:0:0:0:1"], "2001:db8::/64"),
        # Neighbours in one /64
        (["2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::abcd"], None),
        # IPv4-mapped IPv6 is the IPv4 address
        (["203.0.113.7", "::ffff:203.0.113.7", "::FFFF:cb00:7107"], "203.0.113.7"),
    ],
)
def test_spellings_and_neighbours_of_one_network_share_one_ip_limit(send, settings, ips, stored):
    settings.EMAILS_RATE_LIMIT_IP = "2/600"
    statuses = [send(_from(ip, number)).status_code for number, ip in enumerate(ips)]
    assert statuses == [200, 200, 429]
    assert set(Message.objects.values_list("ip", flat=True)) == {stored or "2001:db8:1:2::/64"}


def test_other_networks_keep_their_own_ip_limit(send, settings):
    settings.EMAILS_RATE_LIMIT_IP = "1/600"
    ips = ["2001:db8:1:2::1", "2001:db8:1:3::1", "203.0.113.7", "203.0.113.8", "::ffff:10.0.0.5"]
    assert [send(_from(ip, number)).status_code for number, ip in enumerate(ips)] == [200] * 5
    assert sorted(Message.objects.values_list("ip", flat=True)) == [
        "10.0.0.5",
        "2001:db8:1:2::/64",
        "2001:db8:1:3::/64",
        "203.0.113.7",
        "203.0.113.8",
    ]
