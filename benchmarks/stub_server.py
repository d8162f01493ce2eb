"""The provider stand-in for the benchmarks, in its own process.

``python -m benchmarks.stub_server PORT_FILE``: tests.stubs' Postmark stub (answers at once),
plus GET /stats answering every accepted recipient with its arrival time (benchmarks/run.py).

``python -m benchmarks.stub_server PORT_FILE --latency 0.1 0.2 [--seed N]``: a Postmark API
stand-in that answers each send after a uniformly random delay in [0.1, 0.2] s (seeded), on
as many concurrent connections as clients open (a thread each), and records, for each
accepted email, its recipient and the time.monotonic() at which it answered: the moment the
provider accepted it (benchmarks/compare.py). GET /stats?prefix=P lists those
[recipient, answered] whose recipient starts with P, repeats included.
"""

import argparse
import json
import random
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.stubs import ProviderStub


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # the listen backlog: socketserver's 5 drops bursts of connects


class SlowPostmark:
    """Postmark's send API (POST .../email) answering after a random delay."""

    def __init__(self, low: float, high: float, seed: int = 1):
        self._random = random.Random(seed)  # noqa: S311  (a benchmark's delays)
        self._random_lock = threading.Lock()
        self._lock = threading.Lock()
        self.accepted: list[tuple[str, float]] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as Postmark's API does
            disable_nagle_algorithm = True

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with stub._random_lock:
                    delay = stub._random.uniform(low, high)
                time.sleep(delay)
                try:
                    to = json.loads(body).get("To", "")
                except ValueError:
                    to = ""
                if not self.path.endswith("/email") or not to:
                    self._answer(422, {"ErrorCode": 300, "Message": "Invalid 'To' address."})
                    return
                self._answer(
                    200,
                    {
                        "To": to,
                        "SubmittedAt": "2026-11-22T10:00:00.0000000-05:00",
                        "MessageID": str(uuid.uuid4()),
                        "ErrorCode": 0,
                        "Message": "OK",
                    },
                )
                with stub._lock:
                    stub.accepted.append((to, time.monotonic()))

            def _answer(self, status: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                self.wfile.flush()

            def log_message(self, *args):
                pass

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/"

    def start(self) -> "SlowPostmark":
        self.thread.start()
        return self

    def rows(self, prefix: str = "") -> list[tuple[str, float]]:
        with self._lock:
            return [row for row in self.accepted if row[0].startswith(prefix)]


def main(port_file: str, latency: tuple[float, float] | None = None, seed: int = 1) -> None:
    if latency is None:
        stub = ProviderStub().start()

        def rows(prefix: str) -> list:
            with stub._lock:
                found = [(r.json()["To"], r.at) for r in stub.requests if r.status == 200]
            return [row for row in found if row[0].startswith(prefix)]
    else:
        stub = SlowPostmark(*latency, seed=seed).start()
        rows = stub.rows

    class Stats(BaseHTTPRequestHandler):
        def do_GET(self):
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
            data = json.dumps(rows(query.get("prefix", [""])[0])).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    stats = _Server(("127.0.0.1", 0), Stats)
    threading.Thread(target=stats.serve_forever, daemon=True).start()
    with open(port_file, "w") as handle:
        json.dump(
            {"api": stub.url, "stats": f"http://127.0.0.1:{stats.server_address[1]}/"}, handle
        )
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("port_file")
    parser.add_argument("--latency", nargs=2, type=float, metavar=("LOW", "HIGH"))
    parser.add_argument("--seed", type=int, default=1)
    arguments = parser.parse_args()
    main(
        arguments.port_file,
        tuple(arguments.latency) if arguments.latency else None,
        arguments.seed,
    )
