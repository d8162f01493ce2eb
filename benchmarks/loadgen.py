"""A small HTTP load generator (asyncio, new connection per request, as gunicorn's sync
workers close each one), for what wrk cannot do: a constant request rate with latency measured
from the scheduled send time (no coordinated omission), and recording each answer."""

from __future__ import annotations

import asyncio
import json
import time


async def _post(port: int, path: str, body: bytes, authorization: str) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Authorization: {authorization}\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        status_line = await reader.readline()
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        payload = await reader.readexactly(length) if length else await reader.read()
        return int(status_line.split()[1]), payload
    finally:
        writer.close()


def constant_rate(port, path, bodies, *, rate: float, authorization: str, connections=64):
    """Send ``bodies`` at ``rate`` per second; latency (s) of each from its scheduled time."""

    async def run():
        start = time.monotonic() + 0.2
        results = []
        semaphore = asyncio.Semaphore(connections)

        async def one(index, body):
            scheduled = start + index / rate
            await asyncio.sleep(max(0.0, scheduled - time.monotonic()))
            async with semaphore:
                status, _ = await _post(port, path, body, authorization)
            results.append((status, time.monotonic() - scheduled))

        await asyncio.gather(*(one(i, b) for i, b in enumerate(bodies)))
        return results

    return asyncio.run(run())


def constant_rate_answers(
    port,
    path,
    bodies,
    *,
    rate: float,
    authorization: str,
    connections: int = 512,
    timeout: float = 60.0,
):
    """Send ``bodies`` at ``rate`` per second, at most ``connections`` at a time; for each, in
    order, (scheduled, answered, status, body): monotonic times of its scheduled send and of
    its answer, the HTTP status and the response body. A connection error or no answer within
    ``timeout`` seconds of the send is status 0 (its body says what happened)."""

    async def run():
        start = time.monotonic() + 0.2
        results = [None] * len(bodies)
        semaphore = asyncio.Semaphore(connections)

        async def one(index, body):
            scheduled = start + index / rate
            await asyncio.sleep(max(0.0, scheduled - time.monotonic()))
            async with semaphore:
                try:
                    status, payload = await asyncio.wait_for(
                        _post(port, path, body, authorization), timeout
                    )
                except TimeoutError:
                    status, payload = 0, b"timeout"
                except (OSError, asyncio.IncompleteReadError, ValueError, IndexError) as exc:
                    status, payload = 0, f"{type(exc).__name__}: {exc}".encode()
            results[index] = (scheduled, time.monotonic(), status, payload)

        await asyncio.gather(*(one(i, b) for i, b in enumerate(bodies)))
        return results

    return asyncio.run(run())


def closed_loop(port, path, bodies, *, concurrency: int, authorization: str):
    """Send every body, ``concurrency`` at a time; [(sent, answered, status, json)] in order."""

    async def run():
        queue = list(enumerate(bodies))
        results = [None] * len(bodies)

        async def worker():
            while queue:
                index, body = queue.pop(0)
                sent = time.monotonic()
                status, payload = await _post(port, path, body, authorization)
                results[index] = (sent, time.monotonic(), status, json.loads(payload or b"{}"))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return results

    return asyncio.run(run())
