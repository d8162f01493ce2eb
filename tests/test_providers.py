"""Provider settings as anymail and Django read them: every ANYMAIL_<NAME> variable converted
to the type anymail expects, a configuration error during sending retried and reported, and
SMTP through a private CA (EMAIL_SSL_CAFILE).

The table of non-string anymail settings is checked against anymail's installed source, so an
anymail upgrade that adds a boolean or numeric setting fails here until it is in the table.
"""

from __future__ import annotations

import ast
import datetime
import functools
import importlib
import ipaddress
import logging
import socket
import socketserver
import ssl
import threading
from pathlib import Path

import anymail
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone
from django.utils.module_loading import import_string

from emails.delivery.deliver import message_deliver, provider_connection
from emails.models import MessageStatus
from project.providers import (
    ANYMAIL_PROVIDERS,
    ANYMAIL_SETTING_TYPES,
    anymail_settings_from_env,
    email_backend_for,
)
from tests.factories import MessageFactory
from tests.helpers import use_providers

ANYMAIL_SOURCE = Path(anymail.__file__).parent

# --- the table against anymail's source -----------------------------------------------------

# Calls whose setting name is a variable: what the variable holds (read in anymail's source).
DYNAMIC_SETTING_NAMES = {
    ("webhooks/mailersend.py", "_secret_name"): ("signing_secret", "inbound_secret"),
    ("webhooks/mailtrap.py", "_secret_name"): ("tracking_secret", "inbound_secret"),
    ("webhooks/resend.py", "self._secret_setting_name"): ("signing_secret", "inbound_secret"),
    ("webhooks/sendgrid.py", "self.key_setting_name"): ("tracking_webhook_verification_key",),
}

# Settings anymail reads as strings (their default is a string, None or required): reviewed
# against anymail 15.2's docs and code. IDs that are numbers in the provider's API
# (MAILTRAP_SANDBOX_ID, SPARKPOST_SUBACCOUNT) are used as text: a URL part, an HTTP header.
STRING_SETTINGS = {
    "IDNA_ENCODER",
    *(f"{provider.upper()}_IDNA_ENCODER" for provider in ANYMAIL_PROVIDERS),
    "AMAZON_SES_CONFIGURATION_SET_NAME",
    "AMAZON_SES_INBOUND_KMS_KEY_ID",
    "AMAZON_SES_MESSAGE_TAG_NAME",
    "BREVO_API_KEY",
    "BREVO_API_URL",
    "MAILERSEND_API_TOKEN",
    "MAILERSEND_API_URL",
    "MAILERSEND_BATCH_SEND_MODE",
    "MAILERSEND_INBOUND_SECRET",
    "MAILERSEND_SIGNING_SECRET",
    "MAILGUN_API_KEY",
    "MAILGUN_API_URL",
    "MAILGUN_SENDER_DOMAIN",
    "MAILGUN_WEBHOOK_SIGNING_KEY",
    "MAILJET_API_KEY",
    "MAILJET_API_URL",
    "MAILJET_SECRET_KEY",
    "MAILTRAP_API_TOKEN",
    "MAILTRAP_API_URL",
    "MAILTRAP_INBOUND_SECRET",
    "MAILTRAP_SANDBOX_ID",
    "MAILTRAP_TRACKING_SECRET",
    "MANDRILL_API_KEY",
    "MANDRILL_API_URL",
    "MANDRILL_WEBHOOK_KEY",
    "MANDRILL_WEBHOOK_URL",
    "POSTAL_API_KEY",
    "POSTAL_API_URL",
    "POSTAL_WEBHOOK_KEY",
    "POSTMARK_API_URL",
    "POSTMARK_MESSAGE_STREAM",
    "POSTMARK_SERVER_TOKEN",
    "RESEND_API_KEY",
    "RESEND_API_URL",
    "RESEND_INBOUND_SECRET",
    "RESEND_SIGNING_SECRET",
    "SCALEWAY_API_URL",
    "SCALEWAY_PROJECT_ID",
    "SCALEWAY_REGION",
    "SCALEWAY_SECRET_KEY",
    "SENDGRID_API_KEY",
    "SENDGRID_API_URL",
    "SENDGRID_MERGE_FIELD_FORMAT",
    "SENDGRID_PASSWORD",
    "SENDGRID_TRACKING_WEBHOOK_VERIFICATION_KEY",
    "SENDGRID_USERNAME",
    "SPARKPOST_API_KEY",
    "SPARKPOST_API_URL",
    "SPARKPOST_SUBACCOUNT",
    "UNISENDER_GO_API_KEY",
    "UNISENDER_GO_API_URL",
}

_NO_DEFAULT = "no default"  # required, or None: the type is in the docs, not the code


@functools.cache
def anymail_settings_read() -> dict[str, set[str]]:
    """Every setting anymail's installed source reads with get_anymail_setting(), with the
    type name(s) of its default: "bool", "dict", ..., "no default", or "computed: <expr>"."""
    found: dict[str, set[str]] = {}
    for path in sorted(ANYMAIL_SOURCE.rglob("*.py")):
        relative = path.relative_to(ANYMAIL_SOURCE).as_posix()
        tree = ast.parse(path.read_text())
        esp_names = [
            node.value.value
            for node in ast.walk(tree)
            if isinstance(node, ast.Assign)
            and any(getattr(target, "id", None) == "esp_name" for target in node.targets)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ]
        # A module that names no ESP (backends/base.py) reads the setting for every one.
        prefixes = [name.upper().replace(" ", "_") for name in esp_names] or [
            provider.upper() for provider in ANYMAIL_PROVIDERS
        ]
        for node in ast.walk(tree):
            function = getattr(node, "func", None)
            name_of_function = getattr(function, "id", getattr(function, "attr", None))
            if not isinstance(node, ast.Call) or name_of_function != "get_anymail_setting":
                continue
            keywords = {keyword.arg: keyword.value for keyword in node.keywords}
            name = node.args[0]
            names = (
                (name.value,)
                if isinstance(name, ast.Constant)
                else DYNAMIC_SETTING_NAMES[(relative, ast.unparse(name))]
            )
            default = keywords.get("default", node.args[1] if len(node.args) > 1 else None)
            kind = _default_kind(default, relative)
            esp = keywords.get("esp_name")
            per_esp = esp is not None and not (isinstance(esp, ast.Constant) and esp.value is None)
            for setting in names:
                keys = (
                    [f"{p}_{setting.upper()}" for p in prefixes] if per_esp else [setting.upper()]
                )
                for key in keys:
                    found.setdefault(key, set()).add(kind)
    return found


def _default_kind(default: ast.expr | None, relative: str) -> str:
    if default is None:
        return _NO_DEFAULT
    try:
        value = ast.literal_eval(default)
    except ValueError:
        if not isinstance(default, ast.Name):
            return f"computed: {ast.unparse(default)}"
        if default.id == "UNSET":
            return _NO_DEFAULT
        module = importlib.import_module(
            "anymail." + relative.removesuffix(".py").replace("/", ".")
        )
        value = getattr(module, default.id)
    return _NO_DEFAULT if value is None else type(value).__name__


def test_every_setting_anymail_reads_is_typed_or_a_reviewed_string():
    """A new anymail setting fails this test until it is in ANYMAIL_SETTING_TYPES (converted
    from the environment's text) or, read as a string, in STRING_SETTINGS."""
    read = anymail_settings_read()
    assert "REQUESTS_TIMEOUT" in read and "POSTMARK_SERVER_TOKEN" in read  # the scan works

    # A computed default (POSTMARK_GENERATE_MESSAGE_ID's is another setting) is not known
    # here: such a setting must be reviewed into one list or the other, below.
    not_strings = {
        key: kinds
        for key, kinds in read.items()
        if {kind for kind in kinds if not kind.startswith("computed")} - {"str", _NO_DEFAULT}
    }
    missing_from_table = {
        key: kinds for key, kinds in not_strings.items() if key not in ANYMAIL_SETTING_TYPES
    }
    assert missing_from_table == {}, "add these to project/providers.py ANYMAIL_SETTING_TYPES"
    unreviewed = sorted(set(read) - set(ANYMAIL_SETTING_TYPES) - STRING_SETTINGS)
    assert unreviewed == [], "new anymail settings: add each to the table or to STRING_SETTINGS"
    assert sorted(set(ANYMAIL_SETTING_TYPES) - set(read)) == [], "anymail no longer reads these"
    assert sorted(STRING_SETTINGS & set(ANYMAIL_SETTING_TYPES)) == []


@pytest.mark.parametrize("provider", ANYMAIL_PROVIDERS)
def test_an_esp_settings_prefix_is_its_provider_name(provider):
    # <PREFIX>_SEND_DEFAULTS in the table is spelled from the provider name; anymail spells it
    # from the backend's esp_name.
    backend = import_string(email_backend_for(provider))
    assert backend.esp_name.upper().replace(" ", "_") == provider.upper()


# What an operator writes, and what anymail must get. One row per table entry.
EXAMPLES = {
    "IGNORE_UNSUPPORTED_FEATURES": ("true", True),
    "IGNORE_RECIPIENT_STATUS": ("False", False),
    "DEBUG_API_REQUESTS": ("0", False),
    "SEND_DEFAULTS": ('{"tags": ["logto"]}', {"tags": ["logto"]}),
    **{
        f"{provider.upper()}_SEND_DEFAULTS": (
            '{"metadata": {"app": "mailroom"}}',
            {"metadata": {"app": "mailroom"}},
        )
        for provider in ANYMAIL_PROVIDERS
    },
    "REQUESTS_TIMEOUT": ("10", 10.0),
    "WEBHOOK_SECRET": ("user:secret", "user:secret"),
    "AMAZON_SES_SESSION_PARAMS": ('{"profile_name": "mail"}', {"profile_name": "mail"}),
    "AMAZON_SES_CLIENT_PARAMS": (
        '{"region_name": "eu-west-1", "config": {"connect_timeout": 5}}',
        {"region_name": "eu-west-1", "config": {"connect_timeout": 5}},
    ),
    "AMAZON_SES_AUTO_CONFIRM_SNS_SUBSCRIPTIONS": ("no", False),
    "AMAZON_SES_DOWNLOAD_CHUNK_SIZE": ("65536", 65536),
    "BREVO_WORKAROUND_DISPLAY_NAME_BUGS": ("off", False),
    "BREVO_PREVENT_HEADER_ENCODING_BUGS": ("false", False),
    "MAILTRAP_DOWNLOAD_CHUNK_SIZE": ("8192", 8192),
    "POSTMARK_USE_BULK_API": ("yes", True),
    "POSTMARK_GENERATE_MESSAGE_ID": ("TRUE", True),
    "RESEND_VERIFY_ATTACHMENT_EXTENSIONS": ("false", False),
    "RESEND_DOWNLOAD_CHUNK_SIZE": ("1024", 1024),
    "SENDGRID_GENERATE_MESSAGE_ID": ("false", False),
    "SPARKPOST_TRACK_INITIAL_OPEN_AS_OPENED": ("on", True),
    "UNISENDER_GO_GENERATE_MESSAGE_ID": ("1", True),
    "UNISENDER_GO_WORKAROUND_DISPLAY_NAME_BUGS": ("false", False),
}


def test_every_table_entry_has_an_example():
    assert sorted(EXAMPLES) == sorted(ANYMAIL_SETTING_TYPES)


@pytest.mark.parametrize(("name", "example"), sorted(EXAMPLES.items()))
def test_each_typed_setting_gets_the_type_anymail_expects(name, example):
    raw, expected = example
    value = anymail_settings_from_env({f"ANYMAIL_{name}": raw})[name]
    assert value == expected
    assert type(value) is type(expected)
    # ... which is the type of anymail's own default, where it has one
    kinds = anymail_settings_read()[name] - {_NO_DEFAULT}
    defaults = {kind for kind in kinds if not kind.startswith("computed")}
    if name == "REQUESTS_TIMEOUT":
        assert defaults == {"int"}  # anymail's 30; requests takes any number of seconds
    elif name == "WEBHOOK_SECRET":
        assert defaults == {"list"}  # anymail takes one "user:pass" string for a list of one
    elif defaults:
        assert defaults == {type(expected).__name__}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("10", 10.0), ("2.5", 2.5), ("[3, 30]", (3.0, 30.0)), (" [3.5, 27] ", (3.5, 27.0))],
)
def test_requests_timeout_is_seconds_or_a_connect_read_pair(raw, expected):
    # requests takes a (connect, read) tuple; a list would fail every send.
    assert anymail_settings_from_env({"ANYMAIL_REQUESTS_TIMEOUT": raw}) == {
        "REQUESTS_TIMEOUT": expected
    }


@pytest.mark.parametrize(
    ("variable", "raw", "message"),
    [
        (
            "ANYMAIL_REQUESTS_TIMEOUT",
            "ten",
            "ANYMAIL_REQUESTS_TIMEOUT='ten' must be a number of seconds above 0, "
            "or [connect, read] seconds in JSON",
        ),
        ("ANYMAIL_REQUESTS_TIMEOUT", "0", "ANYMAIL_REQUESTS_TIMEOUT='0' must be a number"),
        ("ANYMAIL_REQUESTS_TIMEOUT", "[3]", "ANYMAIL_REQUESTS_TIMEOUT='[3]' must be a number"),
        ("ANYMAIL_REQUESTS_TIMEOUT", "nan", "ANYMAIL_REQUESTS_TIMEOUT='nan' must be a number"),
        (
            "ANYMAIL_IGNORE_RECIPIENT_STATUS",
            "maybe",
            "ANYMAIL_IGNORE_RECIPIENT_STATUS='maybe' must be true or false",
        ),
        (
            "ANYMAIL_RESEND_DOWNLOAD_CHUNK_SIZE",
            "64k",
            "ANYMAIL_RESEND_DOWNLOAD_CHUNK_SIZE='64k' must be a whole number above 0",
        ),
        ("ANYMAIL_SEND_DEFAULTS", '["tags"]', "ANYMAIL_SEND_DEFAULTS must be a JSON object"),
        (
            "ANYMAIL_WEBHOOK_SECRET",
            '["a:b", 3]',
            'ANYMAIL_WEBHOOK_SECRET must be "user:password" or a JSON list of such strings',
        ),
        (
            "ANYMAIL_MAILGUN_FUTURE_OPTION",
            "{nope",
            "ANYMAIL_MAILGUN_FUTURE_OPTION is not valid JSON",
        ),
    ],
)
def test_a_value_that_does_not_convert_stops_start_up_naming_the_variable(variable, raw, message):
    with pytest.raises(ImproperlyConfigured) as caught:
        anymail_settings_from_env({variable: raw})
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_broken_json_is_located_but_never_quoted():
    # AMAZON_SES_CLIENT_PARAMS may carry aws_secret_access_key: the message must not.
    raw = '{"aws_access_key_id": "AKIAEXAMPLE", "aws_secret_access_key": "s3cr3t-value",}'
    with pytest.raises(ImproperlyConfigured) as caught:
        anymail_settings_from_env({"ANYMAIL_AMAZON_SES_CLIENT_PARAMS": raw})
    assert str(caught.value).startswith("ANYMAIL_AMAZON_SES_CLIENT_PARAMS is not valid JSON: ")
    assert "line 1 column" in str(caught.value)
    assert "s3cr3t" not in str(caught.value) and "AKIA" not in str(caught.value)


def test_strings_stay_as_written_and_unknown_json_is_parsed():
    assert anymail_settings_from_env(
        {
            "ANYMAIL_POSTMARK_SERVER_TOKEN": "true",  # a string setting is never a boolean
            "ANYMAIL_MAILGUN_SENDER_DOMAIN": " mg.example.com",
            "ANYMAIL_WEBHOOK_SECRET": '["old:pw1", "new:pw2"]',
            "ANYMAIL_MAILGUN_FUTURE_OPTION": '{"a": 1}',  # a setting a newer anymail may add
        }
    ) == {
        "POSTMARK_SERVER_TOKEN": "true",
        "MAILGUN_SENDER_DOMAIN": " mg.example.com",
        "WEBHOOK_SECRET": ["old:pw1", "new:pw2"],
        "MAILGUN_FUTURE_OPTION": {"a": 1},
    }


@pytest.mark.django_db
def test_converted_settings_reach_the_provider_through_anymail(settings, provider_stub):
    # Given a timeout pair and per-provider send defaults, written as an operator would
    use_providers(settings, "postmark")
    settings.ANYMAIL = anymail_settings_from_env(
        {
            "ANYMAIL_POSTMARK_SERVER_TOKEN": "stub-token",
            "ANYMAIL_POSTMARK_API_URL": provider_stub.url,
            "ANYMAIL_REQUESTS_TIMEOUT": "[3, 10]",
            "ANYMAIL_POSTMARK_SEND_DEFAULTS": '{"tags": ["logto"]}',
            "ANYMAIL_IGNORE_UNSUPPORTED_FEATURES": "false",
        }
    )

    # When a message is delivered through anymail's real Postmark backend
    message = MessageFactory(to="jane@example.com")
    outcome = message_deliver(message_id=message.pk)

    # Then it is sent (a string timeout made every send a ValueError), with the tag
    assert outcome.status == MessageStatus.SENT
    [request] = provider_stub.requests
    assert request.json()["Tag"] == "logto"


# --- a configuration error while sending ----------------------------------------------------


@pytest.fixture
def isolated_aws(monkeypatch, tmp_path):
    """No AWS credentials, region or profile from this machine reaches boto3."""
    import os

    for key in list(os.environ):
        if key.startswith("AWS_"):
            monkeypatch.delenv(key)
    empty = tmp_path / "aws-empty"
    empty.write_text("")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return monkeypatch


def _errors(caplog):
    return [
        record.getMessage()
        for record in caplog.records
        if record.levelno >= logging.ERROR and record.name == "emails.delivery.deliver"
    ]


@pytest.mark.django_db
@pytest.mark.filterwarnings("ignore::anymail.exceptions.AnymailNotSupportedWarning")
def test_a_missing_setting_while_sending_is_retried_and_reported(settings, provider_stub, caplog):
    # Given a worker whose SendGrid key is missing (it started before the check existed, or
    # the setting was removed under it)
    use_providers(settings, "sendgrid")
    settings.ANYMAIL = {"SENDGRID_API_URL": provider_stub.url}
    message = MessageFactory(to="jane@example.com", payload={"code": "482913", "locale": "en"})

    # When it tries to send
    with caplog.at_level(logging.INFO):
        outcome = message_deliver(message_id=message.pk)

    # Then the email waits for a retry, with the reason on the message and at ERROR in the log
    message.refresh_from_db()
    assert outcome.status == MessageStatus.QUEUED and outcome.retry_in is not None
    assert message.status == MessageStatus.QUEUED
    assert message.error == "configuration error: ANYMAIL_SENDGRID_API_KEY is not set"
    assert _errors(caplog) == [
        f"message {message.pk} not sent, fix the email provider's settings: "
        "configuration error: ANYMAIL_SENDGRID_API_KEY is not set"
    ]

    # When an operator sets the key (and restarts), the retry sends it while the code lives
    settings.ANYMAIL = {"SENDGRID_API_KEY": "sg-key", "SENDGRID_API_URL": provider_stub.url}
    message.next_attempt_at = timezone.now()
    message.save(update_fields=["next_attempt_at"])
    assert message_deliver(message_id=message.pk).status == MessageStatus.SENT
    [request] = provider_stub.requests
    assert request.headers["Authorization"] == "Bearer sg-key"
    assert "482913" in request.body.decode()


@pytest.mark.django_db
def test_a_configuration_error_is_logged_once_per_attempt_and_never_names_a_value(settings, caplog):
    # Given Postal's key but not its URL
    use_providers(settings, "postal")
    settings.ANYMAIL = {"POSTAL_API_KEY": "postal-secret-key-123"}
    message = MessageFactory()

    # When the worker tries until it gives up (retries run at once in the tests)
    from emails.tasks import deliver_message

    with caplog.at_level(logging.INFO):
        deliver_message.apply(args=[str(message.pk)])

    # Then each attempt logged the reason once at ERROR, the message failed after the last
    # attempt (as for a provider outage), and the key is in no log and no error
    message.refresh_from_db()
    assert message.status == MessageStatus.FAILED
    assert message.attempts == settings.EMAILS_MAX_ATTEMPTS
    assert (
        message.error == "gave up retrying: configuration error: ANYMAIL_POSTAL_API_URL is not set"
    )
    assert len(_errors(caplog)) == settings.EMAILS_MAX_ATTEMPTS
    assert "postal-secret-key-123" not in caplog.text + message.error


@pytest.mark.django_db
def test_amazon_ses_without_credentials_is_retried_as_a_configuration_error(
    settings, isolated_aws, caplog
):
    # Given Amazon SES with a region but no credentials anywhere
    isolated_aws.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    use_providers(settings, "amazon_ses")
    settings.ANYMAIL = {}
    message = MessageFactory()

    # When it sends (boto3 refuses to sign the request: nothing leaves the machine)
    with caplog.at_level(logging.INFO):
        outcome = message_deliver(message_id=message.pk)

    # Then the message waits for a retry, and the log says why at ERROR
    message.refresh_from_db()
    assert outcome.status == MessageStatus.QUEUED
    assert "Unable to locate credentials" in message.error
    [error] = _errors(caplog)
    assert "Unable to locate credentials" in error


# --- SMTP through a private CA --------------------------------------------------------------


def make_private_ca(folder: Path) -> tuple[Path, Path, Path]:
    """A CA and a certificate it signed for 127.0.0.1: (ca.pem, server.pem, server.key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Mailroom test private CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file, cert_file, key_file = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(server.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca_file, cert_file, key_file


class SMTPServer(socketserver.ThreadingTCPServer):
    """Just enough SMTP for Django's backend: STARTTLS (or TLS from the first byte), then
    MAIL, RCPT, DATA. Each accepted message is kept as (recipients, data, was it over TLS)."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, context: ssl.SSLContext, *, implicit_tls: bool):
        super().__init__(("127.0.0.1", 0), _SMTPSession)
        self.context = context
        self.implicit_tls = implicit_tls
        self.messages: list[tuple[list[str], bytes, bool]] = []
        self.tls_failures: list[str] = []
        self.sessions: list[socket.socket] = []
        self.mail_replies: list[bytes] = []  # answers to the next MAIL commands, then 250

    def drop_sessions(self) -> None:
        """Close every open session, as a server does with idle ones."""
        for session in self.sessions:
            try:
                session.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            session.close()

    @property
    def port(self) -> int:
        return self.server_address[1]


class _SMTPSession(socketserver.BaseRequestHandler):
    server: SMTPServer

    def handle(self):
        connection = self.request
        self.server.sessions.append(connection)
        tls = False
        if self.server.implicit_tls:
            connection = self._wrap(connection)
            if connection is None:
                return
            tls = True
        lines = connection.makefile("rb")
        connection.sendall(b"220 mail.test ESMTP\r\n")
        recipients: list[str] = []
        while line := lines.readline():
            command = line.decode().strip()
            verb = command[:4].upper()
            if verb == "EHLO":
                extensions = [] if tls else ["STARTTLS"]
                reply = "\r\n".join(
                    f"250{'-' if index < len(extensions) else ' '}{text}"
                    for index, text in enumerate(["mail.test", *extensions])
                )
                connection.sendall(reply.encode() + b"\r\n")
            elif verb == "STAR" and not tls:
                connection.sendall(b"220 go ahead\r\n")
                connection = self._wrap(connection)
                if connection is None:
                    return
                lines, tls = connection.makefile("rb"), True
            elif verb == "RCPT":
                recipients.append(command.split(":", 1)[1].strip(" <>"))
                connection.sendall(b"250 ok\r\n")
            elif verb == "DATA":
                connection.sendall(b"354 end with .\r\n")
                data = b""
                while (chunk := lines.readline()) not in (b".\r\n", b""):
                    data += chunk
                self.server.messages.append((recipients, data, tls))
                recipients = []
                connection.sendall(b"250 queued\r\n")
            elif verb == "QUIT":
                connection.sendall(b"221 bye\r\n")
                return
            elif verb == "MAIL" and self.server.mail_replies:
                reply = self.server.mail_replies.pop(0)
                connection.sendall(reply + b"\r\n")
                if reply.startswith(b"421"):
                    return  # 421: the server closes the session
            else:  # HELO, MAIL, RSET, NOOP
                connection.sendall(b"250 ok\r\n")

    def _wrap(self, connection):
        try:
            wrapped = self.server.context.wrap_socket(connection, server_side=True)
            self.server.sessions.append(wrapped)  # (the plain socket is detached now)
            return wrapped
        except (ssl.SSLError, OSError) as exc:  # the client refused our certificate
            self.server.tls_failures.append(str(exc))
            return None


@pytest.fixture(params=["starttls", "implicit"])
def private_smtp(request, tmp_path, settings):
    """An SMTP server on 127.0.0.1 whose certificate a private CA signed, and Mailroom's
    settings pointing at it (EMAIL_USE_TLS for STARTTLS, EMAIL_USE_SSL for TLS at once)."""
    ca_file, cert_file, key_file = make_private_ca(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    server = SMTPServer(context, implicit_tls=request.param == "implicit")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    use_providers(settings, "smtp")
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = server.port
    settings.EMAIL_USE_TLS = request.param == "starttls"
    settings.EMAIL_USE_SSL = request.param == "implicit"
    settings.EMAIL_TIMEOUT = 5
    server.ca_file = ca_file
    # The worker's open connection is kept across messages, and only the backend and ANYMAIL
    # settings tell it to reconnect: start each test on a connection of its own.
    provider_connection.reset()
    yield server
    provider_connection.reset()
    server.shutdown()
    server.server_close()


@pytest.mark.django_db
def test_smtp_delivers_through_a_private_ca_named_by_email_ssl_cafile(settings, private_smtp):
    settings.EMAIL_SSL_CAFILE = str(private_smtp.ca_file)
    message = MessageFactory(to="jane@example.com", payload={"code": "482913", "locale": "en"})

    outcome = message_deliver(message_id=message.pk)

    assert outcome.status == MessageStatus.SENT
    [(recipients, data, over_tls)] = private_smtp.messages
    assert recipients == ["jane@example.com"] and over_tls
    assert b"482913" in data
    # Only the SMTP backend trusts it: the process's default context does not.
    assert not any(
        "Mailroom test private CA" in str(cert.get("subject"))
        for cert in ssl.create_default_context().get_ca_certs()
    )


@pytest.mark.django_db
def test_smtp_without_the_private_ca_is_retried_as_a_configuration_error(
    settings, private_smtp, caplog
):
    # Given the same server, but EMAIL_SSL_CAFILE unset: the system's CAs do not know it
    settings.EMAIL_SSL_CAFILE = ""
    message = MessageFactory(to="jane@example.com")

    with caplog.at_level(logging.INFO):
        outcome = message_deliver(message_id=message.pk)

    # Then nothing was sent, and the message waits for a retry (transient, not final): the
    # email is fine, an operator's fix sends it while the code lives
    message.refresh_from_db()
    assert private_smtp.messages == []
    assert outcome.status == MessageStatus.QUEUED
    assert "certificate verify failed" in message.error
    [error] = _errors(caplog)
    assert "certificate verify failed" in error


@pytest.mark.django_db
def test_an_smtp_session_the_server_dropped_while_idle_is_reopened_not_failed(
    settings, private_smtp
):
    from emails.delivery.deliver import SMTP_IDLE_CHECK

    settings.EMAIL_SSL_CAFILE = str(private_smtp.ca_file)
    assert message_deliver(message_id=MessageFactory().pk).status == MessageStatus.SENT
    # Given the server closed the session while it was idle
    private_smtp.drop_sessions()
    provider_connection._used["smtp"] -= SMTP_IDLE_CHECK + 1
    message = MessageFactory()
    outcome = message_deliver(message_id=message.pk)
    message.refresh_from_db()
    # the next email goes out on a new session, with no failed try and no possible duplicate
    assert outcome.status == MessageStatus.SENT
    assert (message.attempts, message.possible_duplicates) == (1, 0)
    assert len(private_smtp.messages) == 2


@pytest.mark.django_db
def test_after_a_421_the_next_email_gets_a_new_session_not_a_false_duplicate(
    settings, private_smtp
):
    settings.EMAIL_SSL_CAFILE = str(private_smtp.ca_file)
    private_smtp.mail_replies.append(b"421 4.3.2 service shutting down")
    first = MessageFactory()
    assert message_deliver(message_id=first.pk).status == MessageStatus.QUEUED  # retried
    second = MessageFactory()
    outcome = message_deliver(message_id=second.pk)
    second.refresh_from_db()
    assert outcome.status == MessageStatus.SENT
    assert (second.attempts, second.possible_duplicates) == (1, 0)
