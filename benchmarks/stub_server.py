"""The provider stand-in for the end-to-end benchmark, in its own process: tests.stubs'
Postmark stub, plus GET /stats answering every accepted recipient with its arrival time."""

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.stubs import ProviderStub


def main(port_file: str) -> None:
    stub = ProviderStub().start()

    class Stats(BaseHTTPRequestHandler):
        def do_GET(self):
            with stub._lock:
                rows = [(r.json()["To"], r.at) for r in stub.requests if r.status == 200]
            data = json.dumps(rows).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    stats = ThreadingHTTPServer(("127.0.0.1", 0), Stats)
    threading.Thread(target=stats.serve_forever, daemon=True).start()
    with open(port_file, "w") as handle:
        json.dump(
            {"api": stub.url, "stats": f"http://127.0.0.1:{stats.server_address[1]}/"}, handle
        )
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main(sys.argv[1])
