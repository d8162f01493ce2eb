"""Scale-out on Celery itself (issue 18 §3; README, "Past one machine"): two web instances
(two gunicorns with the shipped config, each its own process group and port) and one or two
Celery worker nodes (separate process groups, their own node names), with Redis and then
RabbitMQ as the broker. A burst of 20,000 emails, half to each web instance, 8 at a time
each; then messages/s from the first POST to the last arrival at the provider stub (which
answers at once), lost and duplicates. Run as ``python -m benchmarks.scaleout``
(SCALEOUT_BURST changes the burst); writes docs/scaleout.json.

Everything shares this machine's 2 cores, so a second node adds processes, not CPU: the
figure shows that nodes coordinate (no loss, no duplicate, the claim shared), not what a
second host would add.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
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
    fetch,
    free_port,
    fresh_database,
    machine,
    provider_stub,
    psql,
    start,
    stop,
    wait_port,
)

DB_NAME = "mailroom_scaleout"
BURST = int(os.environ.get("SCALEOUT_BURST", "20000"))
WEB_WORKERS = "2"  # per gunicorn instance: 2 instances x 2 processes x 4 threads
BROKERS = {
    "redis": "redis://127.0.0.1:6379/14",
    "rabbitmq": "amqp://guest:guest@127.0.0.1:5672//",
}


def one_run(broker: str, nodes: int, urls: dict, logs: Path) -> dict:
    psql("TRUNCATE emails_message CASCADE", DB_NAME)
    queue = f"bench-scaleout-{uuid.uuid4().hex[:8]}"
    environment = env(
        DATABASE_URL=PG + DB_NAME,
        ANYMAIL_POSTMARK_API_URL=urls["api"],
        CELERY_BROKER_URL=BROKERS[broker],
        CELERY_TASK_DEFAULT_QUEUE=queue,
        WEB_CONCURRENCY=WEB_WORKERS,
    )
    ports = [free_port(), free_port()]
    webs = [
        start(
            [PYTHON, "-m", "gunicorn", "-c", "project/gunicorn.conf.py", "benchmarks.wsgi"],
            {**environment, "MAILROOM_BIND": f"127.0.0.1:{port}"},
            open(logs / f"web-{broker}-{nodes}-{port}.log", "w"),
        )
        for port in ports
    ]
    workers = [
        celery_worker(
            environment,
            open(logs / f"worker-{broker}-{nodes}-{index}.log", "w"),
            queue=queue,
            name=f"node{index}-{uuid.uuid4().hex[:4]}@%h",
        )
        for index in range(1, nodes + 1)
    ]
    prefix = f"scaleout-{broker}-{nodes}-{uuid.uuid4().hex[:6]}"
    try:
        for port in ports:
            wait_port(port)
        time.sleep(4)  # the workers' start-up and their relays' LISTEN
        halves: list = [None, None]

        def post(half: int) -> None:
            halves[half] = closed_loop(
                ports[half],
                "/api/logto/email",
                [body(i, prefix) for i in range(half, BURST, 2)],
                concurrency=8,
                authorization=AUTH,
            )

        threads = [threading.Thread(target=post, args=(half,)) for half in (0, 1)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        answers = [answer for half in halves for answer in half]
        accepted = sum(1 for answer in answers if answer[2] == 200)
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            arrivals = [(to, at) for to, at in fetch(urls["stats"]) if to.startswith(prefix)]
            if len({to for to, _ in arrivals}) >= accepted:
                break
            time.sleep(1)
    finally:
        for process in (*workers, *webs):
            stop(process)
    delivered = {to for to, _ in arrivals}
    first = min(answer[0] for answer in answers)
    last = max(at for _, at in arrivals)
    return {
        "broker": broker,
        "worker_nodes": nodes,
        "posted": len(answers),
        "accepted": accepted,
        "delivered": len(delivered),
        "lost": accepted - len(delivered),
        "duplicates": len(arrivals) - len(delivered),
        "seconds": last - first,
        "per_second": len(delivered) / (last - first),
        "accepts_per_second": accepted / (max(a[1] for a in answers) - first),
    }


def main() -> None:
    fresh_database(DB_NAME, env(DATABASE_URL=PG + DB_NAME))
    logs = Path(tempfile.mkdtemp(prefix="mailroom-scaleout-"))
    stub, urls = provider_stub(env(), logs)
    runs = []
    try:
        for broker in BROKERS:
            for nodes in (1, 2):
                runs.append(one_run(broker, nodes, urls, logs))
                print(json.dumps(runs[-1]), flush=True)
    finally:
        stop(stub)
    results = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "burst": BURST,
        "web": f"2 gunicorn instances x {WEB_WORKERS} processes x 4 threads",
        "worker": "celery worker --concurrency 2 per node",
        "runs": runs,
    }
    (DOCS / "scaleout.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    psql(f"DROP DATABASE IF EXISTS {DB_NAME}")


if __name__ == "__main__":
    main()
