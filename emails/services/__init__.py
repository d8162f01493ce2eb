"""Writes and side effects, one module per concern; import from here."""

from emails.services.accept import (
    NoTemplateError,
    RateLimitedError,
    message_accept,
    message_publish,
)
from emails.services.delivery import DeliveryOutcome, message_deliver
from emails.services.sweeper import SweepReport, messages_purge, messages_sweep
from emails.services.tracking import tracking_event_record

__all__ = [
    "DeliveryOutcome",
    "NoTemplateError",
    "RateLimitedError",
    "SweepReport",
    "message_accept",
    "message_deliver",
    "message_publish",
    "messages_purge",
    "messages_sweep",
    "tracking_event_record",
]
