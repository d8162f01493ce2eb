"""anymail's real Postmark tracking webhook, posted the way Postmark posts it."""

import base64

import pytest

from emails.models import DeliveryStatus
from tests.factories import MessageFactory

pytestmark = pytest.mark.django_db

URL = "/anymail/postmark/tracking/"


@pytest.fixture
def webhook(client, settings):
    settings.ANYMAIL = {"WEBHOOK_SECRET": "hook:s3cret"}
    auth = "Basic " + base64.b64encode(b"hook:s3cret").decode()

    def post(event, authorization=auth):
        return client.post(
            URL, event, content_type="application/json", HTTP_AUTHORIZATION=authorization
        )

    return post


def delivery(message_id):
    return {
        "RecordType": "Delivery",
        "MessageID": message_id,
        "Recipient": "jane@example.com",
        "DeliveredAt": "2026-11-22T10:00:05Z",
        "Details": "Test delivery webhook details",
        "ServerID": 23,
        "MessageStream": "outbound",
        "Tag": "",
        "Metadata": {},
    }


def bounce(message_id, bounce_id=42):
    return {
        "RecordType": "Bounce",
        "ID": bounce_id,
        "Type": "HardBounce",
        "TypeCode": 1,
        "MessageID": message_id,
        "Email": "jane@example.com",
        "BouncedAt": "2026-11-22T10:00:09Z",
        "Description": "The server was unable to deliver your message (ex: unknown user).",
        "Details": "smtp;550 5.1.1 unknown user",
        "Inactive": True,
        "CanActivate": True,
        "MessageStream": "outbound",
        "Tag": "",
        "Metadata": {},
        "Subject": "x",
        "ServerID": 23,
        "Name": "Hard bounce",
        "DumpAvailable": False,
    }


def test_delivery_event_marks_the_message_delivered(webhook):
    message = MessageFactory(status="sent", provider_message_id="pm-1")
    assert webhook(delivery("pm-1")).status_code == 200
    message.refresh_from_db()
    assert message.delivery_status == DeliveryStatus.DELIVERED
    assert [event.event_type for event in message.events.all()] == ["delivered"]


def test_the_same_event_twice_is_stored_once(webhook):
    message = MessageFactory(status="sent", provider_message_id="pm-2")
    webhook(bounce("pm-2"))
    webhook(bounce("pm-2"))
    message.refresh_from_db()
    assert message.events.count() == 1
    assert message.delivery_status == DeliveryStatus.BOUNCED
    assert "unknown user" in message.events.get().description


def test_timeline_keeps_every_event_and_a_late_deferral_does_not_hide_a_bounce(webhook):
    message = MessageFactory(status="sent", provider_message_id="pm-3")
    webhook(bounce("pm-3", bounce_id=1))
    transient = bounce("pm-3", bounce_id=2) | {"Type": "Transient", "TypeCode": 2}
    webhook(transient)
    message.refresh_from_db()
    assert [event.event_type for event in message.events.all()] == ["bounced", "deferred"]
    assert message.delivery_status == DeliveryStatus.BOUNCED


def test_webhook_without_the_secret_is_refused(webhook):
    message = MessageFactory(status="sent", provider_message_id="pm-4")
    assert webhook(
        delivery("pm-4"), authorization="Basic " + base64.b64encode(b"x:y").decode()
    ).status_code in (400, 401, 403)
    assert message.events.count() == 0


def test_event_for_an_unknown_message_is_ignored(webhook):
    assert webhook(delivery("not-ours")).status_code == 200
