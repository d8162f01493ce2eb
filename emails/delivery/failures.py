"""What a failed send says: whose problem it is, whether a later try can work, and whether the
email may have gone out anyway. deliver.py decides from this whether to try the next provider
of EMAIL_PROVIDER's list at once, to retry later, or to give up (README, "Failover").

The provider's problem (the next provider is tried at once):
- no answer: connection refused or dropped, DNS, TLS, a timeout (``EMAIL_TIMEOUT``), the
  task's soft time limit;
- HTTP 5xx; 401 and 403 (a revoked key, a suspended account, a sender the account may not
  use); a 429 whose Retry-After would outlive the code (deliver.py decides, it knows the code);
- a configuration error (a missing setting or credential, a certificate that does not verify);
- the account-level refusals some providers give with another status (``ACCOUNT_REFUSALS``);
- SMTP: a refused or dropped connection, a failed login, a 4xx reply other than to a recipient.

The message's problem (no failover: every provider would say the same): the recipients refused
(invalid, suppressed, inactive), any other 4xx (422-class content errors), SMTP refusals of the
recipient or sender and 5xx replies, anything unexpected.
"""

from __future__ import annotations

import smtplib
from dataclasses import dataclass

import requests
from anymail.exceptions import AnymailAPIError, AnymailError, AnymailRecipientsRefused
from botocore.exceptions import ClientError, ConnectionClosedError, ReadTimeoutError
from celery.exceptions import SoftTimeLimitExceeded
from urllib3.exceptions import MaxRetryError

from emails.delivery.provider_check import configuration_message, is_configuration_error

MAX_ERROR_LENGTH = 1000
MAX_RETRY_AFTER = 300.0

# Refusals that are about the account at that provider, not about the email, though the
# status says otherwise: another provider's account may well send it.
ACCOUNT_REFUSALS: dict[str, frozenset] = {
    # Postmark answers 422 with an ErrorCode: 400 sender signature not found, 401 sender
    # signature not confirmed, 405 not allowed to send (out of credits), 412 account pending.
    "postmark": frozenset({400, 401, 405, 412}),
    # Amazon SES (v2 API) names the error: the account or its sending is stopped, or the
    # MAIL FROM domain is not verified in that account and region, or the configuration set
    # it names does not exist there. (A MessageRejected saying an address is "not verified":
    # the account is in the sandbox, or the sender is not verified in that region.)
    "amazon_ses": frozenset(
        {
            "AccountSuspendedException",
            "SendingPausedException",
            "MailFromDomainNotVerifiedException",
            "NotFoundException",
        }
    ),
}
_SES_THROTTLING = frozenset({"Throttling", "ThrottlingException", "TooManyRequestsException"})


@dataclass(frozen=True)
class SendFailure:
    provider: str
    reason: str  # one paragraph for the message's record; the log takes its first line
    blames_provider: bool  # the next provider may take the email
    transient: bool  # a later try, on any provider, may work
    maybe_delivered: bool  # the request left: the provider may have taken the email
    throttled: bool = False  # 429: the provider asked us to slow down
    retry_after: float = 0.0  # seconds it asked for, capped at MAX_RETRY_AFTER
    configuration: bool = False  # an operator must fix a setting
    answered: bool = False  # an HTTP status or an SMTP reply: the connection still works
    out_of_time: bool = False  # the task's soft time limit: no time left for another try


def send_failure(exc: BaseException, *, provider: str, connecting: bool = False) -> SendFailure:
    """Classify what one provider raised. ``connecting``: raised while opening the connection
    (SMTP connects there), so nothing was sent."""
    status = status_code(exc)
    throttled = status == 429 or _ses_error_code(exc) in _SES_THROTTLING
    account = _account_refusal(exc, provider)
    out_of_time = caused_by(exc, SoftTimeLimitExceeded)
    return SendFailure(
        provider=provider,
        reason=describe(exc),
        blames_provider=out_of_time or account or _blames_provider(exc, status, throttled),
        # An account the operator can put right (credits, a paused account) is worth a retry,
        # as a missing setting is.
        transient=out_of_time or account or is_transient(exc),
        maybe_delivered=not connecting and (out_of_time or _maybe_delivered(exc, status)),
        throttled=throttled,
        retry_after=retry_after(exc),
        configuration=is_configuration_error(exc),
        answered=status is not None
        or isinstance(
            exc,
            AnymailRecipientsRefused
            | smtplib.SMTPResponseException
            | smtplib.SMTPRecipientsRefused,
        ),
        out_of_time=out_of_time,
    )


def caused_by(exc: BaseException, kind: type[BaseException] | tuple) -> bool:
    """Whether ``exc``, what it was raised from or while handling, or what botocore wrapped
    in it (``HTTPClientError(error=...)``: whatever interrupts its request, the task's soft
    time limit included) is of ``kind``."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, kind):
            return True
        kwargs = getattr(current, "kwargs", None)
        wrapped = kwargs.get("error") if isinstance(kwargs, dict) else None
        pending += [current.__cause__, current.__context__]
        if isinstance(wrapped, BaseException):
            pending.append(wrapped)
    return False


def status_code(exc: BaseException) -> int | None:
    """The HTTP status the provider answered, or None when it did not answer (or is SMTP)."""
    if not isinstance(exc, AnymailAPIError):
        return None
    if exc.status_code is not None:
        return exc.status_code
    cause = exc.__cause__
    if isinstance(cause, ClientError):  # Amazon SES through boto3: the status is in there
        return cause.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return None


def _ses_error(exc: BaseException) -> dict:
    cause = exc.__cause__
    if isinstance(exc, AnymailAPIError) and isinstance(cause, ClientError):
        return cause.response.get("Error", {})
    return {}


def _ses_error_code(exc: BaseException) -> str:
    return str(_ses_error(exc).get("Code", ""))


def _postmark_error_code(exc: AnymailAPIError) -> int | None:
    try:
        return int(exc.response.json().get("ErrorCode"))
    except (AttributeError, TypeError, ValueError):
        return None


def _account_refusal(exc: BaseException, provider: str) -> bool:
    """A refusal about the account at this provider (ACCOUNT_REFUSALS), whatever its status."""
    if not isinstance(exc, AnymailAPIError) or isinstance(exc, AnymailRecipientsRefused):
        return False
    refusals = ACCOUNT_REFUSALS.get(provider, frozenset())
    if provider == "postmark":
        return _postmark_error_code(exc) in refusals
    if provider == "amazon_ses":
        error = _ses_error(exc)
        # SES's sandbox (or an identity not verified in this region) says MessageRejected.
        unverified = error.get("Code") == "MessageRejected" and "not verified" in str(
            error.get("Message", "")
        )
        return unverified or _ses_error_code(exc) in refusals
    return False


def _blames_provider(exc, status: int | None, throttled: bool) -> bool:
    if is_configuration_error(exc):
        return True
    if isinstance(exc, AnymailRecipientsRefused):
        return False
    if isinstance(exc, AnymailAPIError):
        return status is None or status >= 500 or status in (401, 403) or throttled
    if isinstance(exc, smtplib.SMTPSenderRefused):
        return 400 <= exc.smtp_code < 500  # 421, 451, 452: the server, not the sender
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return False  # per recipient (a 4xx, greylisting, is retried later: is_transient)
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return True
    if isinstance(exc, smtplib.SMTPResponseException):
        return 400 <= exc.smtp_code < 500
    return isinstance(exc, smtplib.SMTPException | OSError)


def _smtp_recipients_deferred(exc: smtplib.SMTPRecipientsRefused) -> bool:
    """Every recipient got a 4xx (try again later: greylisting, a full queue), none a 5xx."""
    codes = [code for code, _ in exc.recipients.values()]
    return bool(codes) and all(400 <= code < 500 for code in codes)


def is_transient(exc: BaseException) -> bool:
    """Worth retrying later: network errors, HTTP 5xx and 429, SMTP 4xx replies or dropped
    connections, a provider that hung past the soft time limit, a configuration error (a
    missing setting or credential, a certificate that does not verify: the email is fine, and
    an operator's fix and restart sends it while the code lives). Everything else is final."""
    if is_configuration_error(exc):
        return True
    if isinstance(exc, AnymailRecipientsRefused):
        return False
    if isinstance(exc, AnymailAPIError):
        status = status_code(exc)
        throttled = status == 429 or _ses_error_code(exc) in _SES_THROTTLING
        return status is None or status >= 500 or throttled
    if isinstance(exc, smtplib.SMTPSenderRefused):
        return 400 <= exc.smtp_code < 500
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return _smtp_recipients_deferred(exc)
    if isinstance(exc, smtplib.SMTPResponseException):
        return 400 <= exc.smtp_code < 500
    # (OSError: a refused or dropped connection, DNS, a TLS failure; requests' and boto3's
    # errors arrive as AnymailAPIError, above.)
    return isinstance(exc, smtplib.SMTPServerDisconnected | OSError | SoftTimeLimitExceeded)


def _maybe_delivered(exc: BaseException, status: int | None) -> bool:
    """Whether the request may have reached the provider, which may have taken the email: a
    timeout waiting for its answer, a connection dropped after the request was written, a
    gateway that gave up waiting for the provider (504). A refused connection, a failed TLS
    handshake or any other answer mean it was not taken."""
    if status == 504:
        return True
    if isinstance(exc, AnymailAPIError) and exc.__cause__ is not None:
        exc = exc.__cause__  # what requests or boto3 raised
    if isinstance(exc, requests.ReadTimeout | requests.exceptions.ChunkedEncodingError):
        return True
    if isinstance(exc, requests.ConnectTimeout | requests.exceptions.SSLError):
        return False
    if isinstance(exc, requests.ConnectionError):
        # A connection that was never made arrives as MaxRetryError (no retries are set);
        # one dropped mid-request as the ProtocolError or OSError itself.
        return not (exc.args and isinstance(exc.args[0], MaxRetryError))
    if isinstance(exc, ReadTimeoutError | ConnectionClosedError):  # boto3
        return True
    # SMTP after the connection was made: a drop or timeout may come after the server took
    # the message (before its reply to the final dot reached us).
    return isinstance(exc, smtplib.SMTPServerDisconnected | TimeoutError | ConnectionResetError)


def retry_after(exc: BaseException) -> float:
    """Seconds the provider asked us to wait (Retry-After, in seconds form), capped."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    value = headers.get("Retry-After") if headers is not None else None
    try:
        return min(float(value), MAX_RETRY_AFTER) if value else 0.0
    except ValueError:
        return 0.0


def describe(exc: BaseException) -> str:
    if is_configuration_error(exc) and not isinstance(exc, AnymailError):
        # A missing setting (anymail's text names it, never its value), no AWS credentials or
        # region, an SMTP certificate that does not verify.
        return f"configuration error: {configuration_message(exc)}"[:MAX_ERROR_LENGTH]
    if isinstance(exc, AnymailRecipientsRefused):
        # Name each refused recipient and the provider's words, not just "all rejected".
        status = getattr(exc.email_message, "anymail_status", None)
        recipients = (
            ", ".join(f"{address}: {item.status}" for address, item in status.recipients.items())
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
