"""Run the benchmarks and write docs/benchmarks.md and docs/benchmarks.png:
``python -m benchmarks.run [classic] [compare] [scale] [memory] [scaleout] [ceiling]`` (all by
default).

Ratios against baselines measured in the same run on the same server are the results; the
absolute numbers drift on a shared 2-core machine. Needs PostgreSQL and Redis on loopback and
wrk (`apt-get install wrk`); uses the database mailroom_bench and Redis db 14.
"""

from __future__ import annotations

import datetime
import importlib
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

from benchmarks.loadgen import closed_loop, constant_rate

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PG = "postgres://postgres@127.0.0.1:5432/"
DB_NAME = "mailroom_bench"
AUTH = "Bearer bench-token"
PYTHON = sys.executable
WRK_SECONDS = int(os.environ.get("BENCH_WRK_SECONDS", "10"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
E2E_COUNT = int(os.environ.get("BENCH_E2E_COUNT", "5000"))
E2E_WEB_WORKERS = int(os.environ.get("BENCH_E2E_WEB_WORKERS", "1"))

WRK_SCRIPT = """
counter = 0
math.randomseed(os.time())
local prefix = tostring(math.random(1, 1000000000))
request = function()
  counter = counter + 1
  local body = string.format(
    '{"to":"bench-%s-%d@example.com","type":"SignIn","payload":{"code":"%06d","locale":"en"}}',
    prefix, counter, counter % 1000000)
  return wrk.format("POST", nil, {["Content-Type"]="application/json",
                                  ["Authorization"]="AUTH"}, body)
end
""".replace("AUTH", AUTH)


def env(**extra) -> dict:
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(
            ("ANYMAIL_", "EMAIL_", "LOGTO_", "DJANGO_", "CELERY_", "CACHE_", "DATABASE_", "EMAILS_")
        )
    }
    base.update(
        {
            "DJANGO_SETTINGS_MODULE": "benchmarks.settings",
            "DATABASE_URL": PG + DB_NAME,
            "DATABASE_CONN_MAX_AGE": "600",
            "CELERY_BROKER_URL": "redis://127.0.0.1:6379/14",
            "CELERY_TASK_DEFAULT_QUEUE": f"bench-{uuid.uuid4().hex[:8]}",
            "LOGTO_AUTHORIZATION": AUTH,
            "EMAIL_PROVIDER": "postmark",
            "ANYMAIL_POSTMARK_SERVER_TOKEN": "bench",
            "ANYMAIL_POSTMARK_API_URL": "http://127.0.0.1:9/",
            "EMAILS_RATE_LIMIT_IP": "0",
            "PYTHONUNBUFFERED": "1",
        }
    )
    base.update(extra)
    return base


def psql(sql: str, database: str = "postgres") -> str:
    return subprocess.run(
        ["psql", PG + database, "-tAc", sql], check=True, capture_output=True, text=True
    ).stdout.strip()


def manage(*args, environment):
    subprocess.run(
        [PYTHON, "manage.py", *args],
        cwd=ROOT,
        env=environment,
        check=True,
        stdout=subprocess.DEVNULL,
    )


def fresh_database(name: str, environment) -> None:
    """Drop and create the database ``name`` and migrate it (``environment`` points at it)."""
    psql(f"DROP DATABASE IF EXISTS {name}")
    psql(f"CREATE DATABASE {name}")
    manage("migrate", "--no-input", environment=environment)


def provider_stub(environment, logs: Path):
    """benchmarks.stub_server in its own process: (the process, its {"api", "stats"} URLs)."""
    port_file = logs / "stub.json"
    stub = start(
        [PYTHON, "-m", "benchmarks.stub_server", str(port_file)],
        environment,
        open(logs / "stub.log", "w"),
    )
    for _ in range(100):
        if port_file.exists() and port_file.read_text():
            break
        time.sleep(0.1)
    return stub, json.loads(port_file.read_text())


def start(args, environment, log):
    return subprocess.Popen(
        args,
        cwd=ROOT,
        env=environment,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop(process):
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def gunicorn(port: int, environment, log, workers: int = 1):
    """Mailroom (and the baselines) under gunicorn: one sync worker for the accept path, as
    its target says."""
    return start(
        [
            PYTHON,
            "-m",
            "gunicorn",
            "benchmarks.wsgi",
            "--workers",
            str(workers),
            "--bind",
            f"127.0.0.1:{port}",
        ],
        environment,
        log,
    )


def celery_worker(environment, log, *, queue: str, concurrency: int = 2, name=None, extra=()):
    """`celery -A project worker` on ``queue``, in its own process group."""
    command = [PYTHON, "-m", "celery", "-A", "project", "worker", "--concurrency", str(concurrency)]
    command += ["--loglevel", "WARNING", "--queues", queue, *extra]
    if name:
        command += ["-n", name]
    return start(command, environment, log)


def wait_port(port: int, timeout=30):
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wrk(port: int, path: str, script: Path, seconds: int) -> dict:
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            "-c8",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}{path}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    latency = dict(re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+\w+)", out, re.M))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_ms": _ms(latency["50"]),
        "p99_ms": _ms(latency["99"]),
        "errors": int(errors.group(1)) if errors else 0,
    }


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def body(index: int, prefix: str) -> bytes:
    return json.dumps(
        {
            "to": f"{prefix}-{index}@example.com",
            "type": "SignIn",
            "payload": {"code": f"{index % 1000000:06d}", "locale": "en"},
        }
    ).encode()


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


PARTS = ("classic", "compare", "scale", "memory", "scaleout", "ceiling")


def main(parts: list[str]) -> None:
    """Run the named parts (all by default), then write docs/benchmarks.md from every part's
    latest results in docs/."""
    for part in parts or PARTS:
        if part not in PARTS:
            raise SystemExit(f"unknown part {part!r}: choose from {', '.join(PARTS)}")
    for part in parts or PARTS:
        if part == "classic":
            classic()
        else:  # each of the others is a module of its own: benchmarks/<part>.py
            importlib.import_module(f"benchmarks.{part}").main()
    write(json.loads((DOCS / "benchmarks.json").read_text(encoding="utf-8")))


def classic():
    """Sections 1 to 4: accept, rendering, end to end, cost per email."""
    results: dict = {"date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")}
    results["machine"] = machine()
    environment = env()
    fresh_database(DB_NAME, environment)
    from benchmarks.views import CREATE_TABLE

    psql(CREATE_TABLE, DB_NAME)
    subprocess.run(["redis-cli", "-n", "14", "flushdb"], check=True, capture_output=True)
    logs = Path(tempfile.mkdtemp(prefix="mailroom-bench-"))
    script = logs / "post.lua"
    script.write_text(WRK_SCRIPT)

    # 1. Accept path ------------------------------------------------------------------------
    port = free_port()
    web = gunicorn(port, environment, open(logs / "gunicorn.log", "w"))
    try:
        wait_port(port)
        endpoints = {
            "mailroom": "/api/logto/email",
            "insert": "/bench/insert",
            "nodb": "/bench/nodb",
        }
        for path in endpoints.values():
            wrk(port, path, script, 3)  # warm up
        rounds = {name: [] for name in endpoints}
        for _ in range(ROUNDS):
            for name, path in endpoints.items():
                rounds[name].append(wrk(port, path, script, WRK_SECONDS))
        accept = {
            name: max(runs, key=lambda run: run["rps"])
            | {"rps_median": statistics.median(run["rps"] for run in runs)}
            for name, runs in rounds.items()
        }
        results["accept"] = accept
        # Each round runs the endpoints back to back: the ratio within a round compares like
        # with like on a machine whose speed drifts; the median of the rounds is the result.
        results["accept_ratios"] = [
            mailroom["rps"] / insert["rps"]
            for mailroom, insert in zip(rounds["mailroom"], rounds["insert"], strict=True)
        ]
        rate = {}
        for name in ("mailroom", "insert"):
            answers = constant_rate(
                port,
                endpoints[name],
                [body(i, f"rate-{name}-{uuid.uuid4().hex[:6]}") for i in range(300 * 15)],
                rate=300,
                authorization=AUTH,
            )
            latencies = [latency * 1000 for status, latency in answers]
            rate[name] = {
                "p50_ms": percentile(latencies, 50),
                "p99_ms": percentile(latencies, 99),
                "errors": sum(1 for status, _ in answers if status != 200),
            }
        results["rate300"] = rate
    finally:
        stop(web)
    results["storage"] = {
        "message_bytes_per_row": float(
            psql(
                "SELECT pg_total_relation_size('emails_message')::float / greatest(count(*), 1) "
                "FROM emails_message",
                DB_NAME,
            )
        ),
        "baseline_bytes_per_row": float(
            psql(
                "SELECT pg_total_relation_size('bench_insert')::float / greatest(count(*), 1) "
                "FROM bench_insert",
                DB_NAME,
            )
        ),
        "message_rows": int(psql("SELECT count(*) FROM emails_message", DB_NAME)),
    }
    results["cost"] = json.loads(
        subprocess.run(
            [PYTHON, "-m", "benchmarks.cost"],
            cwd=ROOT,
            env=environment,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )

    # 2. Rendering ---------------------------------------------------------------------------
    results["render"] = json.loads(
        subprocess.run(
            [PYTHON, "-m", "benchmarks.render"],
            cwd=ROOT,
            env={**environment, "DJANGO_SETTINGS_MODULE": "benchmarks.settings_post_office"},
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )

    # 3. End to end ----------------------------------------------------------------------------
    # The accept runs left thousands of queued messages; workers drain every due message, so
    # without this the end-to-end run would deliver those first.
    psql("TRUNCATE emails_message CASCADE", DB_NAME)
    results["e2e"] = end_to_end(environment, logs)

    (DOCS / "benchmarks.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(results, indent=2))


def end_to_end(environment, logs) -> dict:
    stub, urls = provider_stub(environment, logs)
    try:
        flow_env = {
            **environment,
            "ANYMAIL_POSTMARK_API_URL": urls["api"],
            "CELERY_TASK_DEFAULT_QUEUE": f"bench-e2e-{uuid.uuid4().hex[:8]}",
        }
        port = free_port()
        web = gunicorn(
            port, flow_env, open(logs / "gunicorn-e2e.log", "w"), workers=E2E_WEB_WORKERS
        )
        worker = celery_worker(
            flow_env,
            open(logs / "worker.log", "w"),
            queue=flow_env["CELERY_TASK_DEFAULT_QUEUE"],
            extra=["--without-gossip", "--without-mingle"],
        )
        try:
            wait_port(port)
            time.sleep(3)  # the worker's start-up
            prefix = f"e2e-{uuid.uuid4().hex[:6]}"
            answers = closed_loop(
                port,
                "/api/logto/email",
                [body(i, prefix) for i in range(E2E_COUNT)],
                concurrency=8,
                authorization=AUTH,
            )
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                arrivals = {to: at for to, at in fetch(urls["stats"]) if to.startswith(prefix)}
                if len(arrivals) >= E2E_COUNT:
                    break
                time.sleep(0.5)
        finally:
            stop(worker)
            stop(web)
        deliveries = [to for to, at in fetch(urls["stats"]) if to.startswith(prefix)]
        accepted = {
            f"{prefix}-{i}@example.com": answer[1]
            for i, answer in enumerate(answers)
            if answer[2] == 200
        }
        latencies = [
            (arrivals[to] - done) * 1000 for to, done in accepted.items() if to in arrivals
        ]
        first_post = min(answer[0] for answer in answers)
        elapsed = max(arrivals.values()) - first_post
        result = {
            "posted": len(answers),
            "accepted": len(accepted),
            "delivered": len(set(deliveries)),
            "duplicates": len(deliveries) - len(set(deliveries)),
            "lost": len(set(accepted) - set(arrivals)),
            "per_second": len(arrivals) / elapsed,
            "latency_p50_ms": percentile(latencies, 50),
            "latency_p99_ms": percentile(latencies, 99),
        }
        limit = subprocess.run(
            [PYTHON, "-m", "benchmarks.limit", str(E2E_COUNT), "2"],
            cwd=ROOT,
            env={**environment, "ANYMAIL_POSTMARK_API_URL": urls["api"]},
            check=True,
            capture_output=True,
            text=True,
        )
        result["limit_per_second"] = json.loads(limit.stdout)["per_second"]
        return result
    finally:
        stop(stub)


def fetch(url):
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    postgres = psql("SHOW server_version")
    return (
        f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, PostgreSQL {postgres}"
    )


def write(results: dict) -> None:
    from benchmarks.report import write_report

    write_report(results, DOCS)


if __name__ == "__main__":
    main(sys.argv[1:])
