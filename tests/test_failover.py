"""Failover between providers (EMAIL_PROVIDER=postmark,amazon_ses), in-process: anymail's real
Postmark and Amazon SES (boto3) backends, each to its own local stub, and the circuits in the real
database. The fault suite with real processes is tests/test_failover_faults.py."""

from __future__ import annotations

import logging
import smtplib
from datetime import timedelta

import pytest
from anymail.exceptions import AnymailConfigurationError
from celery.exceptions import SoftTimeLimitExceeded
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

from emails.delivery import circuits
from emails.delivery.deliver import message_deliver, message_deliver_next
from emails.delivery.failures import send_failure
from emails.models import CircuitState, Message, MessageStatus, ProviderCircuit
from emails.tasks import deliver_message
from project.providers import amazon_ses_client_params, email_providers_from
from tests.factories import MessageFactory
from tests.helpers import staff, use_providers
from tests.stubs import ProviderStub

pytestmark = pytest.mark.django_db

SERVER_ERROR = (500, {"ErrorCode": 500, "Message": "Internal Server Error"}, None)


@pytest.fixture
def stubs():
    primary, secondary = ProviderStub().start(), ProviderStub().start()
    yield primary, secondary
    primary.stop()
    secondary.stop()


@pytest.fixture
def failover(settings, stubs):
    """postmark first, amazon_ses second, each to its stub; one-second timeouts."""
    use_providers(settings, "postmark", "amazon_ses")
    primary, secondary = stubs
    settings.ANYMAIL = {
        "POSTMARK_SERVER_TOKEN": "primary-token",
        "POSTMARK_API_URL": primary.url,
        "AMAZON_SES_CLIENT_PARAMS": ses_params(secondary),
        "REQUESTS_TIMEOUT": 1,
    }
    settings.EMAIL_TIMEOUT = 1
    settings.EMAILS_FAILOVER_AFTER = 3
    settings.EMAILS_FAILOVER_COOLDOWN = 30
    settings.EMAILS_FAILOVER_ON_TIMEOUT = "codes"
    return primary, secondary


def ses_params(stub: ProviderStub) -> dict:
    """boto3's SES v2 client to the stub, with the settings' timeouts (settings.py adds them)."""
    return amazon_ses_client_params(
        {
            "endpoint_url": stub.url,
            "region_name": "eu-west-1",
            "aws_access_key_id": "AKIDEXAMPLE",
            "aws_secret_access_key": "stub-secret",
        },
        1,
    )


@pytest.fixture
def ses_first(settings, stubs):
    """amazon_ses first, postmark second: the (SES stub, Postmark stub)."""
    ses, postmark = stubs
    use_providers(settings, "amazon_ses", "postmark")
    settings.ANYMAIL = {
        "AMAZON_SES_CLIENT_PARAMS": ses_params(ses),
        "POSTMARK_SERVER_TOKEN": "t",
        "POSTMARK_API_URL": postmark.url,
    }
    return ses, postmark


def ses_error(status: int, code: str) -> tuple:
    return (status, {"message": f"{code} (stub)"}, {"x-amzn-ErrorType": code})


def code_message(**fields) -> Message:
    fields.setdefault("expires_at", timezone.now() + timedelta(minutes=10))
    return MessageFactory(**fields)


def link_message(**fields) -> Message:
    return MessageFactory(payload={"link": "https://auth.example/x", "locale": "en"}, **fields)


def circuit(name: str) -> ProviderCircuit:
    return ProviderCircuit.objects.get(provider=name)


def deliver_once(message: Message) -> Message:
    message_deliver(message_id=message.pk)
    message.refresh_from_db()
    return message


# --- configuration ------------------------------------------------------------------------


def test_email_provider_is_an_ordered_list_of_backends():
    assert email_providers_from(" Postmark , amazon_ses,smtp") == {
        "postmark": "anymail.backends.postmark.EmailBackend",
        "amazon_ses": "anymail.backends.amazon_ses.EmailBackend",
        "smtp": "emails.delivery.smtp.EmailBackend",
    }
    assert list(email_providers_from("amazon_ses")) == ["amazon_ses"]


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("postmark,,smtp", "has an empty name"),
        ("postmark,postmark", "names postmark more than once"),
        ("postmark,console", "console cannot be part of a failover list"),
        ("postmark,sendgird", "'sendgird' is not a known provider"),
    ],
)
def test_a_bad_list_stops_start_up_with_one_line(value, says):
    with pytest.raises(ImproperlyConfigured) as raised:
        email_providers_from(value)
    assert says in str(raised.value) and "\n" not in str(raised.value)


def test_the_start_up_check_names_each_provider_of_the_list_that_cannot_send(settings):
    from emails.delivery.provider_check import provider_problem

    use_providers(settings, "postmark", "resend", "mailgun")
    settings.ANYMAIL = {"POSTMARK_SERVER_TOKEN": "t"}
    assert provider_problem() == (
        "EMAIL_PROVIDER=postmark,resend,mailgun: resend: ANYMAIL_RESEND_API_KEY is not "
        "set; mailgun: ANYMAIL_MAILGUN_API_KEY is not set"
    )
    settings.ANYMAIL = {"POSTMARK_SERVER_TOKEN": "t", "RESEND_API_KEY": "k", "MAILGUN_API_KEY": "k"}
    assert provider_problem() is None


def test_amazon_ses_tries_are_bounded_by_email_timeout_and_not_retried_by_boto3():
    params = amazon_ses_client_params({"region_name": "eu-west-1"}, 7)
    config = params["config"]
    assert (config.connect_timeout, config.read_timeout) == (7, 7)
    assert config.retries == {"total_max_attempts": 1}
    assert params["region_name"] == "eu-west-1"
    given = amazon_ses_client_params({"config": {"read_timeout": 20}}, 7)["config"]
    assert (given.connect_timeout, given.read_timeout) == (7, 20)
    with pytest.raises(ImproperlyConfigured, match="config must be a JSON object"):
        amazon_ses_client_params({"config": "fast"}, 7)


def test_a_list_whose_timeouts_do_not_fit_in_one_task_is_warned_about(settings):
    from django.core.checks import run_checks

    use_providers(settings, "postmark", "amazon_ses", "smtp")
    settings.CELERY_TASK_SOFT_TIME_LIMIT = 45

    def timeouts(seconds):
        # as settings.py sets them from EMAIL_TIMEOUT
        settings.EMAIL_TIMEOUT = seconds
        settings.ANYMAIL = {
            "POSTMARK_SERVER_TOKEN": "t",
            "REQUESTS_TIMEOUT": seconds,
            "AMAZON_SES_CLIENT_PARAMS": amazon_ses_client_params(
                {"region_name": "eu-west-1"}, seconds
            ),
        }

    timeouts(10)
    assert "emails.W006" not in [check.id for check in run_checks()]
    timeouts(20)
    assert "emails.W006" in [check.id for check in run_checks()]


# --- which failures fail over -------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "fails_over"),
    [
        ((500, {"ErrorCode": 500, "Message": "Internal Server Error"}, None), True),
        ((503, None, None), True),
        ((401, {"ErrorCode": 10, "Message": "Bad or missing Server API token."}, None), True),
        ((403, {"Message": "Forbidden"}, None), True),
        ((422, {"ErrorCode": 405, "Message": "Not allowed to send: out of credits."}, None), True),
        ((422, {"ErrorCode": 412, "Message": "Account pending approval."}, None), True),
        ((422, {"ErrorCode": 300, "Message": "Invalid 'To' address: 'a@b.c'."}, None), False),
        (
            (
                422,
                {
                    "ErrorCode": 406,
                    "Message": "Found inactive addresses: a@b.c. Inactive recipients are ones",
                },
                None,
            ),
            False,
        ),
        ((422, {"ErrorCode": 300, "Message": "Invalid 'From' address: 'nope'."}, None), False),
        ((400, {"ErrorCode": 402, "Message": "Invalid JSON"}, None), False),
    ],
)
def test_what_postmark_answers_decides_whether_amazon_ses_is_tried(failover, answer, fails_over):
    primary, secondary = failover
    primary.fail_next(1, *answer)
    message = deliver_once(code_message(to="a@b.c"))
    assert len(primary.requests) == 1
    assert len(secondary.requests) == (1 if fails_over else 0)
    if fails_over:
        assert (message.status, message.provider) == (MessageStatus.SENT, "amazon_ses")
        [event] = message.events.filter(event_type="failover")
        assert event.provider == "postmark" and f"{answer[0]}" in event.description
    else:
        assert (message.status, message.provider) == (MessageStatus.FAILED, "postmark")
        assert message.error.startswith("postmark: ")


@pytest.mark.parametrize(
    ("answer", "fails_over"),
    [
        (ses_error(400, "AccountSuspendedException"), True),
        (ses_error(400, "SendingPausedException"), True),
        (ses_error(400, "MailFromDomainNotVerifiedException"), True),
        (ses_error(403, "AccessDeniedException"), True),
        (ses_error(500, "InternalFailure"), True),
        (ses_error(400, "MessageRejected"), False),
        (ses_error(400, "BadRequestException"), False),
    ],
)
def test_what_amazon_ses_answers_decides_whether_postmark_is_tried(ses_first, answer, fails_over):
    ses, postmark = ses_first
    ses.fail_next(1, *answer)
    message = deliver_once(code_message())
    assert len(ses.requests) == 1 and len(postmark.requests) == (1 if fails_over else 0)
    expected = (
        (MessageStatus.SENT, "postmark") if fails_over else (MessageStatus.FAILED, "amazon_ses")
    )
    assert (message.status, message.provider) == expected


def test_amazon_ses_delivers_through_boto3_and_records_its_message_id(failover):
    primary, secondary = failover
    primary.outage = SERVER_ERROR
    message = deliver_once(code_message(to="jane@example.com"))
    assert secondary.accepted_recipients() == ["jane@example.com"]
    assert message.provider_message_id == secondary.responses[0]["MessageId"]


def test_a_connection_refused_fails_over_and_was_not_delivered(failover, settings):
    _, secondary = failover
    settings.ANYMAIL = {**settings.ANYMAIL, "POSTMARK_API_URL": "http://127.0.0.1:1/"}
    message = deliver_once(code_message())
    assert (message.status, message.provider) == (MessageStatus.SENT, "amazon_ses")
    assert message.possible_duplicates == 0
    assert not message.events.filter(event_type="duplicate").exists()


def test_a_hung_provider_fails_over_for_a_code_and_counts_a_possible_duplicate(failover):
    primary, secondary = failover
    primary.hang = True
    message = deliver_once(code_message())
    assert (message.status, message.provider) == (MessageStatus.SENT, "amazon_ses")
    assert message.possible_duplicates == 1
    [failover_event] = message.events.filter(event_type="failover")
    assert "it may have been delivered" in failover_event.description
    [duplicate] = message.events.filter(event_type="duplicate")
    assert duplicate.provider == "amazon_ses"
    assert "may get it 2 times" in duplicate.description


def test_a_hung_provider_keeps_a_link_email_unless_the_operator_accepts_duplicates(
    failover, settings
):
    primary, secondary = failover
    primary.hang = True
    # EMAILS_FAILOVER_ON_TIMEOUT=codes (the default): a link email is not sent twice
    message = deliver_once(link_message())
    assert message.status == MessageStatus.QUEUED and secondary.requests == []
    assert (message.pinned_provider, message.possible_duplicates) == ("postmark", 1)
    # postmark's circuit opens meanwhile: the message waits for it, using up no try...
    primary.hang = False
    ProviderCircuit.objects.filter(provider="postmark").update(
        state=CircuitState.OPEN, opened_at=timezone.now()
    )
    Message.objects.filter(pk=message.pk).update(next_attempt_at=timezone.now())
    message = deliver_once(message)
    assert (message.status, message.attempts) == (MessageStatus.QUEUED, 1)
    assert secondary.requests == [] and len(primary.requests) == 1
    # (and does not come due again at once: it waits for postmark's probe, not amazon_ses)
    assert message.next_attempt_at > timezone.now() + timedelta(seconds=20)
    # ...and is the probe once the cooldown is over: postmark sends it, amazon_ses never does
    ProviderCircuit.objects.filter(provider="postmark").update(
        opened_at=timezone.now() - timedelta(seconds=31)
    )
    Message.objects.filter(pk=message.pk).update(next_attempt_at=timezone.now())
    message = deliver_once(message)
    assert (message.status, message.provider) == (MessageStatus.SENT, "postmark")
    assert secondary.requests == [] and circuit("postmark").state == CircuitState.CLOSED
    # with EMAILS_FAILOVER_ON_TIMEOUT=true it goes to amazon_ses at once
    settings.EMAILS_FAILOVER_ON_TIMEOUT = "true"
    primary.hang = True
    other = deliver_once(link_message())
    assert (other.status, other.provider) == (MessageStatus.SENT, "amazon_ses")


def test_an_operators_resend_may_go_to_any_provider(
    failover, settings, django_capture_on_commit_callbacks
):
    from emails.delivery.deliver import messages_resend

    primary, secondary = failover
    settings.EMAILS_FAILOVER_ON_TIMEOUT = "false"
    message = code_message(
        status=MessageStatus.FAILED,
        provider="postmark",
        pinned_provider="postmark",
        possible_duplicates=1,
        attempts=6,
    )
    primary.outage = SERVER_ERROR
    secondary.fail_next(1, *ses_error(503, "ServiceUnavailable"))
    with django_capture_on_commit_callbacks(execute=True):
        messages_resend(Message.objects.filter(pk=message.pk))
    message.refresh_from_db()
    # free again: the 503 on the resend's first try pinned it nowhere, and its (eager) retry
    # went through the list again
    assert message.pinned_provider == ""
    assert message.events.filter(event_type="retry", provider="amazon_ses").exists()
    assert (message.status, message.provider) == (MessageStatus.SENT, "amazon_ses")


def test_no_failover_after_a_timeout_when_the_operator_says_false(failover, settings):
    primary, secondary = failover
    settings.EMAILS_FAILOVER_ON_TIMEOUT = "false"
    primary.hang = True
    message = deliver_once(code_message())
    assert message.status == MessageStatus.QUEUED and secondary.requests == []


def test_a_429_the_code_can_wait_out_stays_with_the_provider(failover):
    primary, secondary = failover
    primary.fail_next(1, 429, {"ErrorCode": 429, "Message": "Rate limit"}, {"Retry-After": "2"})
    message = deliver_once(code_message())
    assert message.status == MessageStatus.QUEUED and secondary.requests == []
    assert message.next_attempt_at >= timezone.now() + timedelta(seconds=1.5)
    # (it counts toward the circuit: a provider that throttles everything is failed over)
    assert circuit("postmark").state == CircuitState.CLOSED


def test_a_429_that_would_outlive_the_code_fails_over(failover):
    primary, secondary = failover
    primary.fail_next(1, 429, {"ErrorCode": 429, "Message": "Rate limit"}, {"Retry-After": "120"})
    message = code_message(expires_at=timezone.now() + timedelta(seconds=60))
    message = deliver_once(message)
    assert (message.status, message.provider) == (MessageStatus.SENT, "amazon_ses")
    assert circuit("postmark").consecutive_failures == 1


def test_a_recipient_refused_by_the_first_provider_fails_without_trying_the_second(failover):
    primary, secondary = failover
    primary.refused.add("bad@example.com")
    message = deliver_once(code_message(to="bad@example.com"))
    assert message.status == MessageStatus.FAILED and secondary.requests == []
    assert "Invalid 'To' address" in message.error
    assert (circuit("postmark").refusals, circuit("postmark").failures) == (1, 0)


def test_both_down_is_retried_with_backoff_and_each_try_is_on_the_timeline(failover):
    primary, secondary = failover
    primary.fail_next(1, *SERVER_ERROR)
    secondary.fail_next(1, 502, None)
    message = deliver_once(code_message())
    assert message.status == MessageStatus.QUEUED and message.attempts == 1
    events = {event.event_type: event for event in message.events.all()}
    assert events["failover"].provider == "postmark" and "500" in events["failover"].description
    assert events["retry"].provider == "amazon_ses" and "502" in events["retry"].description
    assert message.error.startswith("amazon_ses: ")


def test_a_revoked_key_on_the_second_keeps_the_email_for_when_the_first_is_back(failover):
    primary, secondary = failover
    primary.fail_next(1, *SERVER_ERROR)
    secondary.fail_next(
        1, 401, {"errors": [{"message": "The provided authorization grant is invalid"}]}
    )
    message = deliver_once(code_message())
    assert message.status == MessageStatus.QUEUED  # postmark's 500 may pass


def test_a_configuration_error_on_the_first_fails_over(failover, settings, monkeypatch, caplog):
    from anymail.backends.postmark import EmailBackend

    def broken(self, *args, **kwargs):
        raise AnymailConfigurationError("ANYMAIL_POSTMARK_SERVER_TOKEN is not set")

    monkeypatch.setattr(EmailBackend, "send_messages", broken)
    with caplog.at_level(logging.ERROR, logger="emails.delivery.deliver"):
        message = deliver_once(code_message())
    assert (message.status, message.provider) == (MessageStatus.SENT, "amazon_ses")
    # (no ERROR: the email went out; with amazon_ses down too, each try says so)
    primary_error = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert primary_error == []
    failover[1].outage = (503, {"message": "down"}, {"x-amzn-ErrorType": "ServiceUnavailable"})
    with caplog.at_level(logging.ERROR, logger="emails.delivery.deliver"):
        waiting = deliver_once(code_message())
    assert waiting.status == MessageStatus.QUEUED
    [line] = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert "fix the email provider's settings: postmark: configuration error: " in line
    assert "ANYMAIL_POSTMARK_SERVER_TOKEN is not set" in line


# --- the circuit ----------------------------------------------------------------------------


def test_three_failures_open_the_circuit_once_and_later_emails_skip_the_provider(failover, caplog):
    primary, secondary = failover
    primary.outage = SERVER_ERROR
    with caplog.at_level(logging.INFO, logger="emails.delivery.circuits"):
        for _ in range(6):
            assert deliver_once(code_message()).provider == "amazon_ses"
    assert len(primary.requests) == 3 and len(secondary.requests) == 6
    state = circuit("postmark")
    assert (state.state, state.failures, state.times_opened) == (CircuitState.OPEN, 3, 1)
    assert "500" in state.last_error
    assert circuit("amazon_ses").sent == 6
    opened = [r for r in caplog.records if "circuit open" in r.getMessage()]
    assert len(opened) == 1 and opened[0].levelno == logging.ERROR
    assert "its emails go to amazon_ses" in opened[0].getMessage()


def test_after_the_cooldown_one_email_probes_and_its_success_closes_the_circuit(failover, caplog):
    primary, secondary = failover
    opened_at = timezone.now() - timedelta(seconds=31)
    ProviderCircuit.objects.create(
        provider="postmark", state=CircuitState.OPEN, opened_at=opened_at, consecutive_failures=3
    )
    with caplog.at_level(logging.INFO, logger="emails.delivery.circuits"):
        message = deliver_once(code_message())
    assert (message.status, message.provider) == (MessageStatus.SENT, "postmark")
    state = circuit("postmark")
    assert (state.state, state.consecutive_failures, state.opened_at) == (
        CircuitState.CLOSED,
        0,
        None,
    )
    assert [r.getMessage() for r in caplog.records if "closed" in r.getMessage()] == [
        "provider postmark answers again: circuit closed"
    ]


def test_a_failed_probe_opens_the_circuit_for_another_cooldown(failover):
    primary, secondary = failover
    primary.outage = SERVER_ERROR
    ProviderCircuit.objects.create(
        provider="postmark",
        state=CircuitState.OPEN,
        opened_at=timezone.now() - timedelta(seconds=31),
    )
    message = deliver_once(code_message())
    assert message.provider == "amazon_ses"
    state = circuit("postmark")
    assert state.state == CircuitState.OPEN
    assert timezone.now() - state.opened_at < timedelta(seconds=5)
    deliver_once(code_message())
    assert len(primary.requests) == 1  # the next email does not probe again


def test_only_one_email_wins_the_probe(failover):
    ProviderCircuit.objects.create(
        provider="postmark",
        state=CircuitState.OPEN,
        opened_at=timezone.now() - timedelta(seconds=31),
    )
    now = timezone.now()
    first = [candidate.provider for candidate in circuits.candidates(now)]
    second = [candidate.provider for candidate in circuits.candidates(now)]
    assert first == ["postmark", "amazon_ses"]
    assert second == ["amazon_ses"]  # postmark is half-open: its probe is taken
    assert circuit("postmark").state == CircuitState.HALF_OPEN


def test_a_probe_whose_worker_died_is_given_to_another_email(failover, settings):
    ProviderCircuit.objects.create(
        provider="postmark",
        state=CircuitState.HALF_OPEN,
        opened_at=timezone.now() - timedelta(minutes=10),
        probe_started_at=timezone.now() - timedelta(seconds=settings.EMAILS_SENDING_TIMEOUT + 1),
    )
    assert deliver_once(code_message()).provider == "postmark"
    assert circuit("postmark").state == CircuitState.CLOSED


def test_with_every_circuit_open_nothing_is_claimed_and_no_try_is_counted(failover):
    now = timezone.now()
    for name in ("postmark", "amazon_ses"):
        ProviderCircuit.objects.create(provider=name, state=CircuitState.OPEN, opened_at=now)
    message = code_message()
    assert message_deliver(message_id=message.pk) is None
    assert message_deliver_next() is None
    message.refresh_from_db()
    assert (message.status, message.attempts) == (MessageStatus.QUEUED, 0)


def test_a_message_that_finds_the_probe_taken_waits_without_counting_a_try(failover):
    # postmark's probe is due, amazon_ses is open: the message is claimed, but another worker
    # wins postmark's probe first
    now = timezone.now()
    ProviderCircuit.objects.create(
        provider="postmark", state=CircuitState.OPEN, opened_at=now - timedelta(seconds=31)
    )
    ProviderCircuit.objects.create(provider="amazon_ses", state=CircuitState.OPEN, opened_at=now)
    message = code_message()
    assert next(circuits.candidates(now)).probe  # the other worker
    Message.objects.filter(pk=message.pk).update(status=MessageStatus.SENDING, attempts=1)
    from emails.delivery.deliver import _deliver_claimed

    outcome = _deliver_claimed(Message.objects.get(pk=message.pk), now=now)
    message.refresh_from_db()
    assert (message.status, message.attempts) == (MessageStatus.QUEUED, 0)
    assert 0.5 <= outcome.retry_in <= 30


def test_the_circuit_is_shared_through_the_database(failover):
    # Another worker process (or host) opened it: this process skips postmark at once
    ProviderCircuit.objects.create(
        provider="postmark", state=CircuitState.OPEN, opened_at=timezone.now()
    )
    primary, secondary = failover
    assert deliver_once(code_message()).provider == "amazon_ses"
    assert primary.requests == []


def test_one_provider_has_no_circuit_and_is_retried_with_backoff(postmark, settings):
    postmark.fail_next(10, *SERVER_ERROR)
    settings.EMAILS_FAILOVER_AFTER = 1
    message = code_message()
    message = deliver_once(message)
    assert message.status == MessageStatus.QUEUED and message.provider == "postmark"
    assert ProviderCircuit.objects.count() == 0
    assert message.error.startswith("Postmark API response 500")  # no provider prefix


def test_a_retry_delivered_by_the_task_ends_on_the_second_provider(failover):
    primary, secondary = failover
    primary.outage = SERVER_ERROR
    message = code_message()
    deliver_message.apply(args=[str(message.pk)])
    message.refresh_from_db()
    assert (message.status, message.provider, message.attempts) == ("sent", "amazon_ses", 1)


# --- classification of errors that need no stub ---------------------------------------------


@pytest.mark.parametrize(
    ("exc", "blames", "maybe_delivered"),
    [
        (smtplib.SMTPRecipientsRefused({"a@b.c": (550, b"no such user")}), False, False),
        (smtplib.SMTPSenderRefused(553, b"not allowed", "x@y"), False, False),
        (smtplib.SMTPDataError(554, b"content rejected"), False, False),
        (smtplib.SMTPAuthenticationError(535, b"bad credentials"), True, False),
        (smtplib.SMTPDataError(451, b"try again later"), True, False),
        (smtplib.SMTPServerDisconnected("Connection unexpectedly closed"), True, True),
        (TimeoutError("timed out"), True, True),
        (SoftTimeLimitExceeded(), True, True),
        (ValueError("something unexpected"), False, False),
    ],
)
def test_smtp_and_other_failures_are_classified(exc, blames, maybe_delivered):
    failure = send_failure(exc, provider="smtp")
    assert (failure.blames_provider, failure.maybe_delivered) == (blames, maybe_delivered)


def test_smtp_failures_while_connecting_were_not_delivered():
    failure = send_failure(ConnectionRefusedError(111, "refused"), provider="smtp", connecting=True)
    assert failure.blames_provider and not failure.maybe_delivered


# --- what an operator sees ----------------------------------------------------------------


def open_postmark(error="Postmark API response 500 (Internal Server Error)"):
    ProviderCircuit.objects.create(
        provider="postmark",
        state=CircuitState.OPEN,
        opened_at=timezone.now(),
        consecutive_failures=3,
        failures=3,
        times_opened=1,
        last_error=error,
    )


def test_the_providers_page_shows_each_state_last_error_and_counts_in_list_order(failover):
    open_postmark()
    page = staff("view_providercircuit").get("/admin/emails/providercircuit/")
    assert page.status_code == 200
    html = page.content.decode()
    assert html.index(">postmark<") < html.index(">amazon_ses<")
    assert "Open: skipped, the next provider sends" in html
    assert "Closed: sending" in html
    assert "Postmark API response 500 (Internal Server Error)" in html
    # a viewer cannot close a circuit
    assert "Close the selected circuits" not in html


def test_closing_a_circuit_needs_the_change_permission(failover):
    open_postmark()
    action = {"action": "close", "_selected_action": ["postmark"]}
    viewer = staff("view_providercircuit")
    viewer.post("/admin/emails/providercircuit/", action)
    assert circuit("postmark").state == CircuitState.OPEN
    operator = staff("view_providercircuit", "change_providercircuit")
    operator.post("/admin/emails/providercircuit/", action)
    assert circuit("postmark").state == CircuitState.CLOSED


def test_staff_without_the_view_permission_do_not_see_providers(failover):
    assert staff("view_message").get("/admin/emails/providercircuit/").status_code == 403


def test_the_message_log_says_which_provider_is_failing_over(failover):
    open_postmark()
    page = staff("view_message").get("/admin/emails/message/")
    assert "Provider postmark is failing over since" in page.content.decode()
    assert "its emails go to amazon_ses" in page.content.decode()
    circuits.circuits_close(["postmark"])
    page = staff("view_message").get("/admin/emails/message/")
    assert "failing over" not in page.content.decode()


def test_with_one_provider_the_providers_page_says_there_is_no_failover(postmark):
    page = staff("view_providercircuit").get("/admin/emails/providercircuit/", follow=True)
    assert "One provider is configured (EMAIL_PROVIDER=postmark): no failover" in (
        page.content.decode()
    )


def test_the_message_page_shows_the_provider_of_each_try(failover):
    primary, _ = failover
    primary.fail_next(1, *SERVER_ERROR)
    message = deliver_once(code_message())
    from django.contrib.auth.models import User
    from django.test import Client

    admin = User.objects.create_superuser("root", "root@example.com", "pw")
    client = Client()
    client.force_login(admin)
    html = client.get(f"/admin/emails/message/{message.pk}/change/").content.decode()
    assert "failover" in html and "attempt 1 on postmark failed" in html
    assert ">amazon_ses<" in html or "amazon_ses</div>" in html


def ses_delivery_notification(message_id: str) -> dict:
    """What SNS posts for an SES delivery event (anymail's amazon_ses tracking webhook)."""
    import json

    event = {
        "eventType": "Delivery",
        "mail": {
            "timestamp": "2026-12-02T10:00:00.000Z",
            "messageId": message_id,
            "destination": ["jane@example.com"],
            "headers": [],
        },
        "delivery": {
            "timestamp": "2026-12-02T10:00:02.000Z",
            "recipients": ["jane@example.com"],
            "smtpResponse": "250 2.0.0 OK",
        },
    }
    return {
        "Type": "Notification",
        "MessageId": "sns-0001",
        "TopicArn": "arn:aws:sns:eu-west-1:123456789012:mailroom",
        "Message": json.dumps(event),
        "Timestamp": "2026-12-02T10:00:02.500Z",
    }


def test_tracking_webhooks_of_every_provider_of_the_list_update_their_messages(
    failover, settings, client
):
    import base64

    from tests.test_tracking import delivery

    primary, _ = failover
    settings.ANYMAIL = {**settings.ANYMAIL, "WEBHOOK_SECRET": "hook:s3cret"}
    auth = "Basic " + base64.b64encode(b"hook:s3cret").decode()
    by_postmark = deliver_once(code_message(to="jane@example.com"))
    primary.outage = SERVER_ERROR
    by_ses = deliver_once(code_message(to="jane@example.com"))
    assert (by_postmark.provider, by_ses.provider) == ("postmark", "amazon_ses")

    client.post(
        "/anymail/postmark/tracking/",
        delivery(by_postmark.provider_message_id),
        content_type="application/json",
        HTTP_AUTHORIZATION=auth,
    )
    notification = ses_delivery_notification(by_ses.provider_message_id)
    answer = client.post(
        "/anymail/amazon_ses/tracking/",
        notification,
        content_type="application/json",
        HTTP_AUTHORIZATION=auth,
        HTTP_X_AMZ_SNS_MESSAGE_TYPE="Notification",
        HTTP_X_AMZ_SNS_MESSAGE_ID=notification["MessageId"],
    )
    assert answer.status_code == 200
    for message, provider in ((by_postmark, "postmark"), (by_ses, "amazon_ses")):
        message.refresh_from_db()
        assert message.delivery_status == "delivered"
        assert message.events.get(event_type="delivered").provider == provider


def test_a_new_worker_process_builds_each_http_providers_client_before_the_first_email(
    failover, settings
):
    from emails.delivery.deliver import provider_connection

    use_providers(settings, "postmark", "amazon_ses", "smtp")
    settings.EMAIL_PORT = 1  # nothing listens: SMTP must not connect ahead
    provider_connection.reset()
    provider_connection.warm()
    built = provider_connection._connections
    assert sorted(built) == ["amazon_ses", "postmark"]
    assert built["amazon_ses"].client is not None  # boto3's client, the slow part
    provider_connection.reset()


# --- found in review ------------------------------------------------------------------------


def test_a_code_that_dies_while_the_first_provider_hangs_is_not_sent_by_the_second(failover):
    primary, secondary = failover
    primary.hang = True
    message = code_message(expires_at=timezone.now() + timedelta(seconds=0.5))
    message = deliver_once(message)
    assert message.status == MessageStatus.EXPIRED and secondary.requests == []
    assert "the code expired while failing over" in message.error


def test_a_provider_that_throttles_everything_opens_its_circuit(failover):
    primary, secondary = failover
    primary.outage = (429, {"ErrorCode": 429, "Message": "Rate limit"}, None)  # no Retry-After
    for _ in range(AFTER_DEFAULT):
        assert deliver_once(code_message()).status == MessageStatus.QUEUED
    assert circuit("postmark").state == CircuitState.OPEN
    assert deliver_once(code_message()).provider == "amazon_ses"


AFTER_DEFAULT = 3


def test_a_429_fails_over_when_the_backoff_would_outlive_the_code(failover, settings):
    primary, secondary = failover
    settings.EMAILS_RETRY_BASE_DELAY = 5
    primary.fail_next(1, 429, {"ErrorCode": 429, "Message": "Rate limit"}, {"Retry-After": "1"})
    # the 5th try backs off up to 5 × 2^4 = 80 s; the code has 30 s left
    message = code_message(expires_at=timezone.now() + timedelta(seconds=30), attempts=4)
    message = deliver_once(message)
    assert (message.status, message.provider) == (MessageStatus.SENT, "amazon_ses")


def test_a_skipped_providers_retry_after_does_not_delay_the_retry(failover):
    primary, secondary = failover
    primary.fail_next(1, 429, {"ErrorCode": 429, "Message": "Rate limit"}, {"Retry-After": "300"})
    secondary.fail_next(1, *ses_error(503, "ServiceUnavailable"))
    message = deliver_once(code_message(expires_at=timezone.now() + timedelta(seconds=240)))
    assert message.status == MessageStatus.QUEUED
    assert message.next_attempt_at < timezone.now() + timedelta(seconds=30)


def test_a_revoked_key_is_kept_for_the_others_while_their_circuits_are_open(failover):
    primary, secondary = failover
    ProviderCircuit.objects.create(
        provider="amazon_ses", state=CircuitState.OPEN, opened_at=timezone.now()
    )
    primary.fail_next(1, 401, {"ErrorCode": 10, "Message": "Bad or missing Server API token."})
    message = deliver_once(code_message())
    assert message.status == MessageStatus.QUEUED


def test_the_soft_time_limit_inside_boto3_is_out_of_time_and_maybe_delivered():
    from anymail.exceptions import AnymailAPIError
    from botocore.exceptions import HTTPClientError

    def raised():
        try:
            try:
                raise SoftTimeLimitExceeded()
            except Exception as inner:
                raise HTTPClientError(error=inner) from None
        except HTTPClientError as boto:
            raise AnymailAPIError("SES failed") from boto

    with pytest.raises(AnymailAPIError) as caught:
        raised()
    failure = send_failure(caught.value, provider="amazon_ses")
    assert failure.out_of_time and failure.blames_provider and failure.maybe_delivered


@pytest.mark.parametrize(
    ("exc", "blames", "transient"),
    [
        (smtplib.SMTPSenderRefused(451, b"local error", "x@y"), True, True),
        (smtplib.SMTPSenderRefused(421, b"closing", "x@y"), True, True),
        # a 4xx to RCPT is about that recipient (greylisting): retried, on the same provider
        (smtplib.SMTPRecipientsRefused({"a@b.c": (452, b"insufficient storage")}), False, True),
        (smtplib.SMTPRecipientsRefused({"a@b.c": (450, b"greylisted")}), False, True),
        (smtplib.SMTPRecipientsRefused({"a@b.c": (550, b"no such user")}), False, False),
    ],
)
def test_smtp_4xx_to_mail_from_is_the_servers_problem_and_to_rcpt_waits(exc, blames, transient):
    failure = send_failure(exc, provider="smtp")
    assert (failure.blames_provider, failure.transient) == (blames, transient)


@pytest.mark.parametrize(
    ("answer", "fails_over"),
    [
        (ses_error(404, "NotFoundException"), True),
        (
            (
                400,
                {"message": "Email address is not verified: jane@example.com"},
                {"x-amzn-ErrorType": "MessageRejected"},
            ),
            True,
        ),
        (
            (
                400,
                {"message": "Message rejected: the content contains a virus"},
                {"x-amzn-ErrorType": "MessageRejected"},
            ),
            False,
        ),
    ],
)
def test_amazon_ses_account_refusals_fail_over(ses_first, answer, fails_over):
    ses, postmark = ses_first
    ses.fail_next(1, *answer)
    assert deliver_once(code_message()).provider == ("postmark" if fails_over else "amazon_ses")


def test_a_504_may_have_been_delivered(failover):
    primary, secondary = failover
    primary.fail_next(1, 504, {"Message": "Gateway Timeout"})
    message = deliver_once(code_message())
    assert (message.provider, message.possible_duplicates) == ("amazon_ses", 1)


def test_a_send_that_worked_stays_sent_if_its_bookkeeping_fails(failover, monkeypatch):
    from emails.delivery import deliver as deliver_module

    def broken(candidate):
        raise RuntimeError("database hiccup")

    monkeypatch.setattr(deliver_module, "record_sent", broken)
    message = deliver_once(code_message())
    assert message.status == MessageStatus.SENT


def test_an_answer_keeps_the_connection_a_dropped_one_does_not(failover):
    primary, secondary = failover
    primary.refused.add("bad@example.com")
    deliver_once(code_message(to="bad@example.com"))
    deliver_once(code_message())
    assert len({request.client_port for request in primary.requests}) == 1  # one connection
    primary.hang = True
    deliver_once(code_message())  # times out: that connection is dropped
    primary.hang = False
    deliver_once(code_message())
    assert len({request.client_port for request in primary.requests}) == 2


def test_each_try_of_a_resent_message_keeps_its_own_events(
    failover, django_capture_on_commit_callbacks
):
    from emails.delivery.deliver import messages_resend

    primary, secondary = failover
    primary.outage = SERVER_ERROR
    secondary.fail_next(1, *ses_error(400, "MessageRejected"))
    message = deliver_once(code_message())
    assert message.status == MessageStatus.FAILED  # after a failover, with its code kept
    with django_capture_on_commit_callbacks(execute=True):
        messages_resend(Message.objects.filter(pk=message.pk))
    message.refresh_from_db()
    assert message.status == MessageStatus.SENT
    assert message.events.filter(event_type="failover").count() == 2


def test_a_code_that_dies_on_the_first_provider_claims_no_probe_of_the_next(failover):
    primary, secondary = failover
    primary.hang = True
    ProviderCircuit.objects.create(
        provider="amazon_ses",
        state=CircuitState.OPEN,
        opened_at=timezone.now() - timedelta(seconds=31),
    )
    message = deliver_once(code_message(expires_at=timezone.now() + timedelta(seconds=0.5)))
    assert message.status == MessageStatus.EXPIRED
    assert circuit("amazon_ses").state == CircuitState.OPEN  # its probe is still there to take


def test_a_429_on_the_last_try_fails_over_instead_of_failing(failover, settings):
    primary, secondary = failover
    primary.fail_next(1, 429, {"ErrorCode": 429, "Message": "Rate limit"}, {"Retry-After": "1"})
    message = code_message(attempts=settings.EMAILS_MAX_ATTEMPTS - 1)
    message = deliver_once(message)
    assert (message.status, message.provider) == (MessageStatus.SENT, "amazon_ses")


def test_a_pinned_email_whose_provider_refuses_its_key_fails(failover, settings):
    # it may go nowhere else, so a 401 ends it, as with one provider
    primary, secondary = failover
    settings.EMAILS_FAILOVER_ON_TIMEOUT = "false"
    message = code_message(pinned_provider="postmark", possible_duplicates=1)
    primary.fail_next(1, 401, {"ErrorCode": 10, "Message": "Bad or missing Server API token."})
    message = deliver_once(message)
    assert message.status == MessageStatus.FAILED and secondary.requests == []


def test_a_failed_probe_costs_the_email_no_try(failover):
    primary, secondary = failover
    primary.outage = SERVER_ERROR
    long_ago = timezone.now() - timedelta(seconds=31)
    ProviderCircuit.objects.create(provider="postmark", state=CircuitState.OPEN, opened_at=long_ago)
    ProviderCircuit.objects.create(
        provider="amazon_ses", state=CircuitState.OPEN, opened_at=timezone.now()
    )
    message = deliver_once(code_message(attempts=3))
    assert (message.status, message.attempts) == (MessageStatus.QUEUED, 3)
    assert len(primary.requests) == 1 and circuit("postmark").state == CircuitState.OPEN
