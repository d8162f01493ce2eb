"""Memory as the emails add up (issue 18 §3): the resident size (RSS) of each gunicorn worker
and of the Celery worker's processes while 100,000 emails go through them, sampled after every
10,000 once all of them have reached the provider stub. A leak shows as growth between 50,000
and 100,000. Run as ``python -m benchmarks.memory`` (MEMORY_COUNT changes the total); writes
docs/memory.json.

gunicorn runs with the shipped config (project/gunicorn.conf.py: no max_requests, so a worker
is never recycled and would keep whatever it leaked), the worker as the README starts it, with
``--concurrency 2``; the provider stub answers at once.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.loadgen import closed_loop
from benchmarks.run import (
    AUTH,
    DOCS,
    PG,
    PYTHON,
    body,
    celery_worker,
    env,
    free_port,
    fresh_database,
    machine,
    psql,
    start,
    stop,
    wait_port,
)

DB_NAME = "mailroom_memory"
COUNT = int(os.environ.get("MEMORY_COUNT", "100000"))
STEP = max(COUNT // 10, 1)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def pss_kib(pid: int) -> int:
    """The process's share of its memory (pages shared with its forked siblings divided
    among them): what each more process actually costs."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()] if path.exists() else []


def main() -> None:
    from tests.stubs import ProviderStub

    stub = ProviderStub().start()
    queue = f"bench-memory-{uuid.uuid4().hex[:8]}"
    environment = env(
        DATABASE_URL=PG + DB_NAME,
        ANYMAIL_POSTMARK_API_URL=stub.url,
        CELERY_TASK_DEFAULT_QUEUE=queue,
    )
    fresh_database(DB_NAME, environment)
    port = free_port()
    log = open(os.devnull, "w")
    web = start(
        [PYTHON, "-m", "gunicorn", "-c", "project/gunicorn.conf.py", "benchmarks.wsgi"],
        {**environment, "MAILROOM_BIND": f"127.0.0.1:{port}"},
        log,
    )
    worker = celery_worker(environment, log, queue=queue, name=f"memory-{uuid.uuid4().hex[:6]}@%h")
    samples = []
    try:
        wait_port(port)
        time.sleep(3)
        prefix = f"memory-{uuid.uuid4().hex[:6]}"
        for done in range(STEP, COUNT + 1, STEP):
            answers = closed_loop(
                port,
                "/api/logto/email",
                [body(i, prefix) for i in range(done - STEP, done)],
                concurrency=8,
                authorization=AUTH,
            )
            refused = sum(1 for answer in answers if answer[2] != 200)
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                with stub._lock:
                    arrived = sum(1 for r in stub.requests if r.status == 200)
                if arrived >= done - refused:
                    break
                time.sleep(1)
            samples.append(
                {
                    "emails": done,
                    "delivered": arrived,
                    "refused": refused,
                    "gunicorn_workers_kib": sorted(rss_kib(pid) for pid in children(web.pid)),
                    "celery_main_kib": rss_kib(worker.pid),
                    "celery_children_kib": sorted(rss_kib(pid) for pid in children(worker.pid)),
                    "celery_children_pss_kib": sorted(pss_kib(pid) for pid in children(worker.pid)),
                }
            )
            print(json.dumps(samples[-1]), flush=True)
    finally:
        stop(worker)
        stop(web)
        stub.stop()
    results = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "samples": samples,
        "duplicates": _duplicates(stub),
    }
    (DOCS / "memory.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    psql(f"DROP DATABASE IF EXISTS {DB_NAME}")


def _duplicates(stub) -> int:
    recipients = [r.json()["To"] for r in stub.requests if r.status == 200]
    return len(recipients) - len(set(recipients))


if __name__ == "__main__":
    main()
