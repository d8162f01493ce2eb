"""Provider tracking events (anymail's normalised webhooks) onto messages.

Idempotent: an event id is stored once, so a provider re-sending a webhook changes nothing.
Events may arrive out of order; a later "deferred" never hides an earlier final outcome.
"""

from __future__ import annotations

import hashlib
import logging

from django.db import IntegrityError, transaction
from django.utils import timezone

from emails.models import DeliveryStatus, Message, MessageEvent

logger = logging.getLogger(__name__)

# anymail event type -> the delivery status it sets on the message.
EVENT_STATUS = {
    "deferred": DeliveryStatus.DEFERRED,
    "delivered": DeliveryStatus.DELIVERED,
    "bounced": DeliveryStatus.BOUNCED,
    "rejected": DeliveryStatus.REJECTED,
    "complained": DeliveryStatus.COMPLAINED,
}
# A status only gives way to one of at least its rank.
RANK = {"": 0, "deferred": 1, "delivered": 2, "bounced": 3, "rejected": 3, "complained": 4}


def tracking_event_record(event, *, esp_name: str = "") -> MessageEvent | None:
    """Store one ``anymail.signals.AnymailTrackingEvent`` and update its message.

    Returns the stored event; None when it matches no message or was stored before.
    """
    if not event.message_id:
        return None
    message = Message.objects.filter(provider_message_id=event.message_id).first()
    if message is None:
        logger.info("tracking event for unknown message id %s ignored", event.message_id)
        return None
    occurred_at = event.timestamp or timezone.now()
    event_id = event.event_id or _derived_event_id(event, esp_name, occurred_at)
    try:
        with transaction.atomic():
            stored = MessageEvent.objects.create(
                message=message,
                event_id=f"{esp_name}:{event_id}"[:255],
                event_type=event.event_type or "unknown",
                provider=provider_name(esp_name),
                occurred_at=occurred_at,
                description=(event.description or event.reject_reason or "")[:1000],
                provider_response=(event.mta_response or "")[:2000],
            )
    except IntegrityError:
        return None  # seen before
    status = EVENT_STATUS.get(event.event_type)
    if status is not None and RANK[status] >= RANK[message.delivery_status]:
        Message.objects.filter(pk=message.pk).update(
            delivery_status=status, delivery_status_at=occurred_at
        )
    return stored


def provider_name(esp_name: str) -> str:
    """anymail's name for a provider ("Amazon SES") as EMAIL_PROVIDER spells it (amazon_ses)."""
    return esp_name.strip().lower().replace(" ", "_")[:32]


def _derived_event_id(event, esp_name: str, occurred_at) -> str:
    """Some providers give no event id: the same message, type and time is the same event."""
    material = f"{esp_name}|{event.message_id}|{event.event_type}|{occurred_at.isoformat()}"
    return hashlib.sha256(material.encode()).hexdigest()
