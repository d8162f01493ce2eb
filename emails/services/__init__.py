"""Writes and side effects, one module per concern; import from here."""

from emails.services.accept import (
    NoTemplateError,
    RateLimitedError,
    message_accept,
    message_publish,
    message_test_send,
    workers_wake,
)
from emails.services.delivery import (
    DeliveryOutcome,
    message_deliver,
    message_deliver_next,
    messages_resend,
)
from emails.services.previews import (
    PreviewLinkGone,
    PreviewLinkInvalid,
    preview_link_create,
    preview_link_resolve,
    preview_link_token,
    preview_links_revoke,
)
from emails.services.sweeper import SweepReport, messages_purge, messages_sweep
from emails.services.tracking import tracking_event_record

__all__ = [
    "DeliveryOutcome",
    "NoTemplateError",
    "RateLimitedError",
    "SweepReport",
    "message_accept",
    "message_deliver",
    "message_deliver_next",
    "messages_resend",
    "message_publish",
    "message_test_send",
    "PreviewLinkGone",
    "PreviewLinkInvalid",
    "preview_link_create",
    "preview_link_resolve",
    "preview_link_token",
    "preview_links_revoke",
    "messages_purge",
    "messages_sweep",
    "tracking_event_record",
    "workers_wake",
]
