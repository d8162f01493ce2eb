"""gunicorn's threaded worker, with each request's head read by the worker's event loop.

gunicorn's gthread worker hands a connection to a thread as soon as its first byte arrives;
the thread then blocks reading the rest of the request. A client that sends its headers one
byte a second holds that thread for as long as it likes (gthread has no timeout for it), so
as many slow connections as there are threads stop every other request, Logto's included.

Here the worker's event loop reads the request head (and a small body) without blocking, and
a thread gets the connection only once they are complete:

- a connection whose head (and a body of at most ``BUFFERED_BODY_BYTES``, announced by
  ``Content-Length``) is not complete ``HEAD_TIMEOUT`` seconds after it was accepted, or
  after its next request began, is answered ``408`` and closed; one that sent nothing is just
  closed;
- a head over ``MAX_HEAD_BYTES`` is answered ``431`` and closed;
- everything else (bare LF, chunked or larger bodies, ``Expect: 100-continue``, malformed
  headers) is handed over as soon as the head is there, and gunicorn's parser answers it as
  it always does.

The answers are short JSON, like every other answer Logto can get. Larger bodies (admin
uploads) are still read by a thread: the reverse proxy in front buffers them (README,
"Production"). TLS served by gunicorn itself and HTTP/2 prior knowledge keep gthread's own
behaviour: their bytes cannot be read before the thread has set the connection up.
"""

from __future__ import annotations

import re
import selectors
import socket
import time
from functools import partial

from gunicorn.http2 import negotiation
from gunicorn.workers.gthread import ThreadWorker

HEAD_TIMEOUT = 10.0
MAX_HEAD_BYTES = 64 * 1024
# As large as the Logto endpoint's EMAILS_MAX_BODY_BYTES default: its whole request is read
# before a thread sees it.
BUFFERED_BODY_BYTES = 64 * 1024

_HEADER = re.compile(rb"\r\n([^:\r\n]+):[ \t]*([^\r\n]*)")


def _answer(status: str, message: str) -> bytes:
    body = b'{"message": "' + message.encode() + b'"}'
    return (
        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body


REQUEST_TIMEOUT = _answer("408 Request Timeout", "The request took too long to arrive.")
HEAD_TOO_LARGE = _answer("431 Request Header Fields Too Large", "Request headers are too large.")


class _Head:
    __slots__ = ("data", "deadline")

    def __init__(self, data: bytes, deadline: float):
        self.data = bytearray(data)
        self.deadline = deadline


def head_complete(data: bytes) -> bool:
    """Whether ``data`` holds what a thread needs to answer without waiting on the client: the
    whole head, and the whole body when it is small and announced by one Content-Length.
    Also True for what gunicorn's parser refuses at once (a bare LF before the head ends)."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return data.count(b"\n") != data.count(b"\r\n")
    headers = [(name.strip().lower(), value) for name, value in _HEADER.findall(data[: end + 2])]
    names = {name for name, _ in headers}
    if b"transfer-encoding" in names or b"expect" in names:
        return True
    lengths = [value.strip() for name, value in headers if name == b"content-length"]
    if len(lengths) != 1 or not lengths[0].isdigit() or int(lengths[0]) > BUFFERED_BODY_BYTES:
        return True
    return len(data) - (end + 4) >= int(lengths[0])


def head_too_large(data: bytes) -> bool:
    end = data.find(b"\r\n\r\n")
    return (end if end >= 0 else len(data)) > MAX_HEAD_BYTES


class HeadBufferingWorker(ThreadWorker):
    """project/gunicorn.conf.py's worker class (see the module's docstring)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Connections whose head is being read, oldest deadline first (one timeout for all,
        # so insertion order is deadline order).
        self.heads: dict = {}
        # Bytes read here for connections a thread has not set up yet (no parser until then).
        self.unread: dict = {}

    def enqueue_req(self, conn):
        """Every way to a thread (a new connection, a kept-alive one that became readable, a
        request pipelined behind the last) passes here: wait for the head first."""
        if self.cfg.is_ssl or negotiation.prior_knowledge_allowed(self.cfg, conn.client):
            super().enqueue_req(conn)
            return
        # A request pipelined behind the one just answered may already be in the parser.
        pending = conn.parser.unreader.take_buffered() if conn.parser is not None else b""
        head = _Head(pending, time.monotonic() + HEAD_TIMEOUT)
        conn.sock.setblocking(False)
        self.heads[conn] = head
        if head_too_large(pending):
            self._drop(conn, answer=HEAD_TOO_LARGE)
            return
        if pending and head_complete(pending):
            self._stop_reading(conn)
            self._hand_over(conn, head)
            return
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_readable, conn))

    def _on_readable(self, conn, _sock) -> None:
        # Runs in the event loop: it must never block and never raise.
        head = self.heads[conn]
        try:
            data = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop(conn)
            return
        head.data += data
        if head_too_large(head.data):
            self._drop(conn, answer=HEAD_TOO_LARGE)
        elif head_complete(head.data):
            self._stop_reading(conn)
            self._hand_over(conn, head)

    def _hand_over(self, conn, head: _Head) -> None:
        conn.data_ready = True
        if conn.parser is None:
            self.unread[conn] = bytes(head.data)
        else:
            conn.parser.unreader.unread(bytes(head.data))
        super().enqueue_req(conn)

    def handle(self, conn):
        # In the thread: a new connection gets its parser here, then the bytes read so far.
        data = self.unread.pop(conn, b"")
        if data:
            conn.sock.setblocking(True)
            conn.init()
            conn.parser.unreader.unread(data)
        return super().handle(conn)

    def _stop_reading(self, conn) -> None:
        del self.heads[conn]
        try:
            self.poller.unregister(conn.sock)
        except (KeyError, ValueError, OSError):
            pass  # not registered yet: a pipelined request that was already complete

    def _drop(self, conn, answer: bytes | None = None) -> None:
        self._stop_reading(conn)
        self.nr_conns -= 1
        if answer is not None:
            try:
                conn.sock.send(answer)  # a few hundred bytes into an empty send buffer
                conn.sock.shutdown(socket.SHUT_WR)
                # What the client sent meanwhile: closing with unread bytes would reset the
                # connection and could lose the answer (util.close_graceful, without waiting).
                for _ in range(16):
                    if not conn.sock.recv(65536):
                        break
            except OSError:  # BlockingIOError: nothing more to read now
                pass
        conn.close()

    def murder_pending(self):
        """Called by gthread's event loop at least once a second."""
        super().murder_pending()
        now = time.monotonic()
        while self.heads:
            conn, head = next(iter(self.heads.items()))
            if head.deadline > now:
                break
            self.log.debug("Request head not complete after %ss from %s", HEAD_TIMEOUT, conn.client)
            self._drop(conn, answer=REQUEST_TIMEOUT if head.data else None)
