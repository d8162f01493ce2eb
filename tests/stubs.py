"""A local HTTP server that speaks just enough of the providers' send APIs for anymail's real
backends: Postmark (POST .../email), SendGrid (POST .../mail/send), Mailgun (POST
.../<domain>/messages), Amazon SES v2 through boto3 (POST .../v2/email/outbound-emails). It is
the only stand-in in the tests, at the network edge.

``fail_next(n, status, body, headers)`` makes the next ``n`` requests fail that way, so tests
can play provider outages, rate limits and refusals; ``outage`` (a status, body, headers) fails
every request while it is set; ``hang`` keeps every request unanswered until it is cleared.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class StubRequest:
    path: str
    headers: dict
    body: bytes
    at: float = 0.0  # time.monotonic() when it arrived
    status: int = 0  # what the stub answered
    client_port: int = 0  # tells connections apart (keep-alive)

    def json(self):
        return json.loads(self.body)


@dataclass
class ProviderStub:
    requests: list[StubRequest] = field(default_factory=list)
    responses: list = field(default_factory=list)
    failures: deque = field(default_factory=deque)
    refused: set = field(default_factory=set)  # recipients Postmark refuses (ErrorCode 300)
    delay: float = 0.0  # seconds before answering, to keep sends in flight
    outage: tuple | None = None  # (status, payload, headers) for every request while set

    def __post_init__(self):
        self._lock = threading.Lock()
        self._answering = threading.Event()  # cleared: requests hang (no answer)
        self._answering.set()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the providers' APIs do
            # Headers and body go out in two writes: without this, Nagle's algorithm and the
            # client's delayed ACK stall every kept-alive response by ~40 ms.
            disable_nagle_algorithm = True

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                request = StubRequest(
                    self.path,
                    dict(self.headers),
                    body,
                    time.monotonic(),
                    client_port=self.client_address[1],
                )
                if stub.delay:
                    time.sleep(stub.delay)
                if not stub._answering.is_set():
                    with stub._lock:
                        stub.requests.append(request)  # status 0: never answered
                    stub._answering.wait(120)
                    self.close_connection = True
                    return
                with stub._lock:
                    stub.requests.append(request)
                    failure = stub.failures.popleft() if stub.failures else stub.outage
                    status, payload, headers = (
                        failure or stub._refusal(self.path, body) or stub._success(self.path, body)
                    )
                    request.status = status
                    stub.responses.append(payload)
                data = json.dumps(payload).encode() if payload is not None else b""
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/"

    def start(self) -> ProviderStub:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.hang = False
        self.server.shutdown()
        self.server.server_close()

    @property
    def hang(self) -> bool:
        return not self._answering.is_set()

    @hang.setter
    def hang(self, value: bool) -> None:
        if value:
            self._answering.clear()
        else:
            self._answering.set()

    def fail_next(self, count: int, status: int, payload=None, headers=None) -> None:
        with self._lock:
            self.failures.extend([(status, payload, headers)] * count)

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.responses.clear()
            self.failures.clear()
            self.refused.clear()
            self.delay = 0.0
            self.outage = None
        self.hang = False

    def accepted_recipients(self) -> list[str]:
        """The "To" of every email the stub accepted (2xx), repeats included."""
        with self._lock:
            requests = [request for request in self.requests if 200 <= request.status < 300]
        return [to for request in requests if (to := recipient(request.path, request.body))]

    def _refusal(self, path: str, body: bytes):
        to = recipient(path, body)
        if not self.refused or to not in self.refused:
            return None
        if path.endswith("/email"):  # Postmark
            return 422, {"ErrorCode": 300, "Message": f"Invalid 'To' address: '{to}'."}, None
        if path.endswith("/mail/send"):  # SendGrid
            return 400, {"errors": [{"message": "Invalid email", "field": "to"}]}, None
        return None

    @staticmethod
    def _success(path: str, body: bytes):
        if path.endswith("/email"):  # Postmark
            to = json.loads(body).get("To", "")
            return (
                200,
                {
                    "To": to,
                    "SubmittedAt": "2026-11-22T10:00:00.0000000-05:00",
                    "MessageID": str(uuid.uuid4()),
                    "ErrorCode": 0,
                    "Message": "OK",
                },
                None,
            )
        if path.endswith("/mail/send"):  # SendGrid
            return 202, None, None
        if path.endswith("/messages"):  # Mailgun
            return 200, {"id": f"<{uuid.uuid4()}@mg.example>", "message": "Queued."}, None
        if path.endswith("/v2/email/outbound-emails"):  # Amazon SES (API v2, boto3)
            return 200, {"MessageId": f"0100{uuid.uuid4().hex}-000000"}, None
        return 404, {"message": f"stub does not serve {path}"}, None


def recipient(path: str, body: bytes) -> str:
    """The first "To" address of a send request, in each provider's format."""
    try:
        if path.endswith("/email"):  # Postmark
            return json.loads(body).get("To", "")
        if path.endswith("/mail/send"):  # SendGrid
            return json.loads(body)["personalizations"][0]["to"][0]["email"]
        if path.endswith("/v2/email/outbound-emails"):  # Amazon SES
            destination = json.loads(body).get("Destination", {})
            if destination:
                return destination["ToAddresses"][0]
            raw = json.loads(body)["Content"]["Raw"]["Data"]
            return _raw_to(base64.b64decode(raw))
        if path.endswith("/messages"):  # Mailgun (multipart form)
            found = re.search(rb'name="to"\r\n\r\n([^\r]+)', body)
            return found.group(1).decode() if found else ""
    except (ValueError, KeyError, IndexError, TypeError):
        return ""
    return ""


def _raw_to(data: bytes) -> str:
    from email import message_from_bytes
    from email.utils import parseaddr

    return parseaddr(message_from_bytes(data).get("To", ""))[1]
