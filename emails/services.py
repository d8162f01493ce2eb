"""Writes and side effects: accepting Logto's request and delivering the message."""

from __future__ import annotations

import logging
import smtplib
from email.utils import make_msgid

from anymail.exceptions import AnymailAPIError, AnymailError, AnymailRecipientsRefused
from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from emails.locales import requested_locales
from emails.models import Message, MessageStatus
from emails.rendering import TemplateRenderError, render_email
from emails.selectors import template_select

logger = logging.getLogger(__name__)

MAX_ERROR_LENGTH = 1000


class NoTemplateError(Exception):
    """No enabled template, in any candidate locale, for the type or for Generic."""


class TransientDeliveryError(Exception):
    """The provider could not take the message now (network, 5xx, 429); try again later."""


def message_accept(*, to: str, usage_type: str, payload: dict, ip: str = "") -> Message:
    """Store Logto's request as a queued message and hand it to the worker after commit.

    Returns the committed Message. Raises NoTemplateError (nothing stored) when no template
    can serve it; database errors propagate (nothing is claimed as stored). Publishing to the
    broker can never fail this call: a message that was not published stays ``queued``.
    """
    locales = requested_locales(payload, default=settings.EMAILS_DEFAULT_LOCALE)
    choice = template_select(usage_type=usage_type, locales=locales)
    if choice is None:
        raise NoTemplateError(usage_type)
    with transaction.atomic():
        message = Message.objects.create(
            to=to,
            usage_type=usage_type,
            payload=payload,
            ip=ip or "",
            template=choice.template,
            template_usage_type=choice.template.usage_type,
            template_locale=choice.template.locale,
            requested_locale=locales[0] if locales else "",
            used_fallback=choice.used_fallback,
        )
        transaction.on_commit(lambda: message_publish(message_id=message.pk))
    return message


def message_publish(*, message_id) -> bool:
    """Queue delivery of a stored message. Never raises: True if the broker took it."""
    from emails.tasks import deliver_message

    try:
        # retry=False: on the request path a broker outage must cost milliseconds, not the
        # publish-retry policy's seconds; the message is already stored.
        deliver_message.apply_async(args=[str(message_id)], retry=False)
    except Exception as exc:
        # The message is stored and stays queued. The broker error text carries host and
        # port, never credentials (kombu strips them), but log only its class and text.
        logger.warning(
            "message %s stored but not queued (%s: %s)", message_id, type(exc).__name__, exc
        )
        return False
    return True


def message_deliver(*, message_id, final_attempt: bool = True) -> Message | None:
    """Render and send one message, recording the outcome on it.

    Claims the message (queued -> sending) with a conditional update first, so a task that
    is delivered twice sends once; returns None when there was nothing to claim.
    On a transient provider error the message goes back to ``queued`` and
    TransientDeliveryError is raised, unless ``final_attempt``, when it is marked ``failed``.
    Every other error marks it ``failed`` with the reason.
    """
    claimed = Message.objects.filter(pk=message_id, status=MessageStatus.QUEUED).update(
        status=MessageStatus.SENDING, attempts=F("attempts") + 1, updated_at=timezone.now()
    )
    if not claimed:
        return None
    message = Message.objects.select_related("template").get(pk=message_id)
    template = message.template
    if template is None:
        return _finish(message, MessageStatus.FAILED, error="its template was deleted")
    try:
        rendered = render_email(
            subject=template.subject,
            html=template.html_body,
            text=template.text_body,
            payload=message.payload,
        )
    except TemplateRenderError as exc:
        return _finish(message, MessageStatus.FAILED, error=f"template error: {exc}")

    email = EmailMultiAlternatives(
        subject=rendered.subject,
        body=rendered.text,
        from_email=template.from_email or settings.DEFAULT_FROM_EMAIL,
        to=[message.to],
        reply_to=[template.reply_to] if template.reply_to else None,
    )
    email.attach_alternative(rendered.html, "text/html")
    own_message_id = None
    if not settings.EMAIL_BACKEND.startswith("anymail."):
        # Django's own backends report no id: give the email a Message-ID we can record.
        own_message_id = make_msgid(domain=_sender_domain(email.from_email))
        email.extra_headers["Message-ID"] = own_message_id

    try:
        email.send(fail_silently=False)
    except Exception as exc:
        transient = _is_transient(exc)
        reason = _describe(exc)
        if transient and not final_attempt:
            _finish(message, MessageStatus.QUEUED, error=reason)
            raise TransientDeliveryError(reason) from exc
        logger.warning("message %s failed: %s", message.pk, reason)
        return _finish(message, MessageStatus.FAILED, error=reason)

    status = getattr(email, "anymail_status", None)
    provider_id = (status.message_id if status else None) or own_message_id or ""
    return _finish(message, MessageStatus.SENT, provider_message_id=str(provider_id))


def _finish(message: Message, status: str, *, error: str = "", provider_message_id: str = ""):
    message.status = status
    message.error = error[:MAX_ERROR_LENGTH]
    fields = ["status", "error", "updated_at"]
    if status == MessageStatus.SENT:
        message.provider_message_id = provider_message_id[:255]
        message.sent_at = timezone.now()
        fields += ["provider_message_id", "sent_at"]
    message.save(update_fields=fields)
    return message


def _is_transient(exc: Exception) -> bool:
    """Failure contract of the providers: worth retrying are network errors, HTTP 5xx and 429,
    and SMTP 4xx replies or dropped connections. Refused recipients, other 4xx and anything
    unexpected are final."""
    if isinstance(exc, AnymailRecipientsRefused):
        return False
    if isinstance(exc, AnymailAPIError):
        status_code = getattr(exc, "status_code", None)
        return status_code is None or status_code >= 500 or status_code == 429
    if isinstance(exc, smtplib.SMTPRecipientsRefused | smtplib.SMTPSenderRefused):
        return False
    if isinstance(exc, smtplib.SMTPResponseException):
        return 400 <= exc.smtp_code < 500
    return isinstance(exc, smtplib.SMTPServerDisconnected | ConnectionError | TimeoutError)


def _describe(exc: Exception) -> str:
    if isinstance(exc, AnymailRecipientsRefused):
        # Name each refused recipient and the provider's words, not just "all rejected".
        status = getattr(exc.email_message, "anymail_status", None)
        recipients = (
            ", ".join(
                f"{address}: {recipient.status}" for address, recipient in status.recipients.items()
            )
            if status is not None
            else ""
        )
        response = getattr(exc.response, "text", "") if exc.response is not None else ""
        parts = [str(exc).strip(), f"({recipients})" if recipients else "", response.strip()]
        return " ".join(part for part in parts if part)[:MAX_ERROR_LENGTH]
    if isinstance(exc, AnymailError):
        # anymail's text includes the provider's response, which is what an operator needs.
        return str(exc).strip()[:MAX_ERROR_LENGTH]
    return f"{type(exc).__name__}: {exc}"[:MAX_ERROR_LENGTH]


def _sender_domain(from_email: str) -> str:
    return from_email.rsplit("@", 1)[-1].strip(" >") or "localhost"
