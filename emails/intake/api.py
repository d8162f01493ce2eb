"""Logto's "HTTP Email" connector endpoint.

Logto shows our error body to its end user, sets no timeout and never retries, so every answer
is short JSON, fast, and free of secrets: 200 only once the message is committed; 400/413/415
for bad input (naming the field); 401 for a wrong Authorization header; 422 when no template
can serve the message; 503 when the database cannot store it.
"""

from __future__ import annotations

import hmac
import json
import logging
import math
import time

from django.conf import settings
from django.db import InterfaceError, OperationalError
from rest_framework import exceptions, status
from rest_framework.authentication import BaseAuthentication
from rest_framework.parsers import BaseParser
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework.views import exception_handler as drf_exception_handler

from emails.intake.accept import NoTemplateError, RateLimitedError, message_accept
from emails.intake.addresses import AddressRefused, mailbox, network
from emails.intake.outage import database_answered, database_failed
from emails.metrics import count_message, observe_accept

logger = logging.getLogger(__name__)

MAX_ADDRESS_LENGTH = 254
MAX_TYPE_LENGTH = 64
MAX_IP_LENGTH = 64
MAX_PAYLOAD_DEPTH = 8
RATE_LIMIT_MESSAGES = {
    "recipient": "Too many emails to this address. Please wait a few minutes and try again.",
    "ip": "Too many emails requested from this network. Please try again later.",
}


# What each answer but 200 counts as in mailroom_messages_total (200: message_accept counts).
OUTCOMES = {
    400: "refused",
    413: "refused",
    415: "refused",
    422: "refused",
    429: "rate_limited",
    401: "unauthorized",
    503: "unavailable",
}


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "Request body is too large."
    default_code = "too_large"


SERVICE_UNAVAILABLE = "Email service is temporarily unavailable. Please try again."


class NotConfigured(exceptions.APIException):
    """LOGTO_AUTHORIZATION is unset in production. Logto shows the body to its end user, so
    it says only what any outage says; the log and system check emails.E001 name the cause."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = SERVICE_UNAVAILABLE
    default_code = "not_configured"


class LogtoJSONParser(BaseParser):
    """JSON with a size cap, and without the NaN/Infinity extensions Postgres cannot store.

    Raises PayloadTooLarge (413) or ParseError (400); never lets a decoder error escape.
    """

    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.EMAILS_MAX_BODY_BYTES
        request = (parser_context or {}).get("request")
        declared = request.META.get("CONTENT_LENGTH") if request is not None else None
        if declared and declared.isdigit() and int(declared) > limit:
            raise PayloadTooLarge()
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise PayloadTooLarge()
        try:
            return json.loads(raw, parse_constant=_refuse_constant, parse_float=_finite_float)
        except _OutOfRange:
            raise exceptions.ParseError("Request body has a number out of range.") from None
        except (ValueError, RecursionError):
            raise exceptions.ParseError("Request body is not valid JSON.") from None


class _OutOfRange(ValueError):
    pass


def _refuse_constant(name):
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _OutOfRange(text)
    return value


class LogtoAuthorization(BaseAuthentication):
    """Compares the Authorization header, as bytes and in constant time, with each configured
    LOGTO_AUTHORIZATION value (several during a rotation).

    Without a configured value the endpoint fails closed (503), except with DJANGO_DEBUG on,
    where it is open for local development.
    """

    def authenticate(self, request):
        expected = settings.LOGTO_AUTHORIZATION
        if not expected:
            if settings.DEBUG:
                return (None, None)
            logger.error("refused a Logto request: LOGTO_AUTHORIZATION is unset (emails.E001)")
            raise NotConfigured()
        header = request.META.get("HTTP_AUTHORIZATION")
        if header is None:
            raise exceptions.NotAuthenticated("Authorization header is missing.")
        given = _header_bytes(header)
        matched = False
        for value in expected:  # no early exit: every value is compared every time
            matched |= hmac.compare_digest(given, value.encode("utf-8"))
        if not matched:
            raise exceptions.AuthenticationFailed("Authorization header is not valid.")
        return (None, None)

    def authenticate_header(self, request):
        return "Bearer"


def _header_bytes(header: str) -> bytes:
    # WSGI hands headers over as latin-1-decoded text: encoding back gives the bytes sent.
    try:
        return header.encode("latin-1")
    except UnicodeEncodeError:
        return header.encode("utf-8", "surrogateescape")


class _Invalid(Exception):
    """A field of the request is not acceptable: answered 400 with "'field' text." """

    def __init__(self, field: str, text: str):
        super().__init__(field, text)
        self.field = field
        self.text = text


def _validated(data: dict) -> tuple[str, str, dict, str]:
    """(to, type, payload, ip) from Logto's request, or _Invalid for the first bad field.

    ``to`` and ``ip`` come back canonical (emails/addresses.py): the one spelling of the
    mailbox, and the IPv4 address or IPv6 /64 network, which is what is stored, sent to,
    deduplicated and rate-limited. So one mailbox or one network is one rate limit, however
    the request spells it.

    Plain checks rather than a DRF serializer: a serializer deep-copies its fields on every
    request, which cost a sixth of the whole accept. The rules and wording are the ones the
    API has always had (tests/test_api.py holds them)."""
    to = _text(data, "to", max_length=MAX_ADDRESS_LENGTH)
    # One bare, deliverable address: no list, display name, whitespace, invisible character,
    # encoded word, needed quotes, domain literal or special-use domain.
    try:
        to = mailbox(to, max_length=MAX_ADDRESS_LENGTH)
    except AddressRefused as exc:
        raise _Invalid("to", exc.reason) from None
    usage_type = _text(data, "type", max_length=MAX_TYPE_LENGTH)
    if "payload" not in data:
        raise _Invalid("payload", "is required")
    payload = data["payload"]
    if payload is None:
        raise _Invalid("payload", "must not be null")
    if not isinstance(payload, dict):
        raise _Invalid("payload", "must be a JSON object")
    try:
        _check_payload_value(payload, depth=0)
    except ValueError as exc:
        raise _Invalid("payload", str(exc)) from None
    ip = _text(data, "ip", max_length=MAX_IP_LENGTH, optional=True)
    if ip:
        try:
            ip = network(ip)
        except AddressRefused as exc:
            raise _Invalid("ip", exc.reason) from None
    return to, usage_type, payload, ip


def _text(data: dict, field: str, *, max_length: int, optional: bool = False) -> str:
    """A string as sent: no coercion from numbers, no trimming, no control characters."""
    value = data.get(field)
    if value is None or value == "":
        if optional:
            return ""
        if field not in data:
            raise _Invalid(field, "is required")
        raise _Invalid(field, "must not be null" if value is None else "must not be empty")
    if not isinstance(value, str):
        raise _Invalid(field, "must be a string")
    if _has_control_characters(value):
        raise _Invalid(field, "must not contain control characters")
    if not _is_encodable(value):
        raise _Invalid(field, "must be valid Unicode text")
    if len(value) > max_length:
        raise _Invalid(field, f"must have no more than {max_length} characters")
    return value


def _check_payload_value(value, *, depth: int) -> None:
    """ValueError naming what is wrong, for the payload's values and keys at any depth."""
    if depth > MAX_PAYLOAD_DEPTH:
        raise ValueError("is nested too deeply")
    if isinstance(value, dict):
        for key, item in value.items():
            _check_text(key)
            _check_payload_value(item, depth=depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_payload_value(item, depth=depth + 1)
    elif isinstance(value, str):
        _check_text(value)


def _check_text(text: str) -> None:
    limit = settings.EMAILS_MAX_VALUE_LENGTH
    if len(text) > limit:
        raise ValueError(f"has a value longer than {limit} characters")
    # Postgres can store neither NUL nor unpaired surrogates in JSON.
    if "\x00" in text or not _is_encodable(text):
        raise ValueError("has a value that is not valid text")


def _has_control_characters(text: str) -> bool:
    return any(ord(char) < 32 or ord(char) == 127 for char in text)


def _is_encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class LogtoEmailView(APIView):
    authentication_classes = [LogtoAuthorization]
    permission_classes = []
    parser_classes = [LogtoJSONParser]
    schema = None  # Logto's contract, not part of the management API's OpenAPI document

    def get_exception_handler(self):
        return exception_handler

    def dispatch(self, request, *args, **kwargs):
        started = time.perf_counter()
        self.usage_type = ""  # known once the request's fields are checked
        response = super().dispatch(request, *args, **kwargs)
        # Accepted and deduplicated emails are counted by message_accept; here the rest.
        if response.status_code in OUTCOMES:
            count_message(self.usage_type, OUTCOMES[response.status_code])
        observe_accept(time.perf_counter() - started)
        return response

    def post(self, request):
        if not isinstance(request.data, dict):
            return _error(status.HTTP_400_BAD_REQUEST, "Request body must be a JSON object.")
        try:
            to, usage_type, payload, ip = _validated(request.data)
        except _Invalid as exc:
            return _error(
                status.HTTP_400_BAD_REQUEST, _sentence(f"'{exc.field}' {exc.text}"), field=exc.field
            )
        self.usage_type = usage_type
        try:
            message = message_accept(to=to, usage_type=usage_type, payload=payload, ip=ip)
        except RateLimitedError as exc:
            return _error(status.HTTP_429_TOO_MANY_REQUESTS, RATE_LIMIT_MESSAGES[exc.scope])
        except NoTemplateError:
            return _error(
                status.HTTP_422_UNPROCESSABLE_ENTITY,
                "No email template is available for this message.",
            )
        except (OperationalError, InterfaceError) as exc:
            # Logto hears the generic text; the log hears the cause, once per outage.
            database_failed(exc)
            return _error(status.HTTP_503_SERVICE_UNAVAILABLE, SERVICE_UNAVAILABLE)
        database_answered()
        return Response({"id": str(message.pk), "status": message.status})


def _error(status_code: int, message: str, **extra) -> Response:
    return Response({"message": message, **extra}, status=status_code)


def exception_handler(exc, context):
    """DRF's errors (parse, size, authentication) as ``{"message": ...}``, one short sentence:
    Logto shows this body to its end user."""
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(exc, exceptions.APIException):
        response.data = {"message": _sentence(str(exc.detail))}
    return response


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith(".") else text + "."
