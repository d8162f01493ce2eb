"""Mailroom side by side with the alternatives, in one run on one machine:
``python -m benchmarks.compare``. Writes docs/compare.json and docs/compare.png; markdown()
gives the section the report embeds.

Three systems answer Logto's HTTP email connector call, each with its processes alone on the
machine (one system after another), against the same provider stub (a Postmark stand-in that
answers each send after 100-200 ms, uniformly random, seeded):

- Mailroom: gunicorn with the shipped config (project/gunicorn.conf.py) and one
  `celery -A project worker`, whose relay thread LISTENs to PostgreSQL.
- The naive connector (benchmarks/views.py): the email rendered and sent through anymail's
  Postmark backend inside the request, served by the same gunicorn config (with
  benchmarks.settings_compare, which answers /bench/ over plain HTTP).
- django-post_office with its Celery integration (benchmarks/settings_compare.py): mail.send()
  in the request, post_office's send_queued_mail task on a Celery worker of the same
  concurrency as Mailroom's.

Each load is an open loop at a constant rate (benchmarks/loadgen.py constant_rate_answers):
latency counts from each request's scheduled send time, so queueing counts. For each system
and load: the Logto call's latency, the time from the call's scheduled send to the stub's
answer (the provider accepted the email), errors, emails answered 200 that had not reached
the stub COMPARE_DRAIN seconds after the last request (lost), and repeats. Each system has its
own PostgreSQL database (dropped and created) and each load a fresh Celery queue (Redis db 14)
and fresh processes.

COMPARE_SECONDS (30) and COMPARE_RATES ("20,100,200") shorten development runs, as does
COMPARE_SYSTEMS (all: "mailroom,naive,post_office"); COMPARE_DRAIN (120) is the drain
deadline in seconds; COMPARE_WORKER_CONCURRENCY (Mailroom's default, 8 per core) the worker
systems' concurrency.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import runpy
import subprocess
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from pathlib import Path

from benchmarks.loadgen import constant_rate_answers
from benchmarks.run import (
    AUTH,
    DOCS,
    PG,
    PYTHON,
    ROOT,
    env,
    free_port,
    machine,
    manage,
    percentile,
    psql,
    start,
    stop,
    wait_port,
)

SECONDS = float(os.environ.get("COMPARE_SECONDS", "30"))
RATES = [int(rate) for rate in os.environ.get("COMPARE_RATES", "20,100,200").split(",") if rate]
DRAIN = float(os.environ.get("COMPARE_DRAIN", "120"))
PROVIDER_LATENCY = (0.100, 0.200)  # seconds, uniform
SEED = 20261204
CONNECTIONS = 1024  # the load generator's in-flight requests at most
TIMEOUT = 60.0  # seconds one request may take before it counts as an error
# Mailroom's default for `celery worker` without --concurrency (README's command;
# CELERY_WORKER_CONCURRENCY in project/settings.py): 8 processes per core, at most 16. Both
# worker systems get it.
WORKER_CONCURRENCY = int(
    os.environ.get("COMPARE_WORKER_CONCURRENCY") or min(16, 8 * len(os.sched_getaffinity(0)))
)
# Before each measured load: this many requests at this rate (every gunicorn worker and
# thread has served some and holds its database connection), and their delivery.
WARMUP = (100, 100)

SYSTEMS = {
    "mailroom": {
        "label": "Mailroom",
        "path": "/api/logto/email",
        "database": "mailroom_cmp_mailroom",
        "settings": "benchmarks.settings",
        "worker": True,
    },
    "naive": {
        "label": "Naive connector",
        "path": "/bench/naive",
        "database": "mailroom_cmp_naive",
        "settings": "benchmarks.settings_compare",
        "worker": False,
    },
    "post_office": {
        "label": "django-post_office + Celery",
        "path": "/bench/post-office",
        "database": "mailroom_cmp_po",
        "settings": "benchmarks.settings_compare",
        "worker": True,
    },
}

# For development runs: some of the systems only ("mailroom,naive").
ONLY = [name for name in os.environ.get("COMPARE_SYSTEMS", ",".join(SYSTEMS)).split(",") if name]

# Rows still waiting to be sent, per system, after the drain deadline.
PENDING_SQL = {
    "mailroom": "SELECT \"to\" FROM emails_message WHERE status IN ('queued', 'sending')",
    "post_office": 'SELECT "to" FROM post_office_email WHERE status IN (2, 3)',  # queued
}
EMPTY_SQL = {
    "mailroom": "TRUNCATE emails_message CASCADE",
    "post_office": "TRUNCATE post_office_email CASCADE",
}
# The gunicorn settings the shipped config would change from the environment: left unset.
GUNICORN_VARIABLES = ("WEB_CONCURRENCY", "MAILROOM_THREADS", "MAILROOM_BIND", "GUNICORN_CMD_ARGS")


def request_body(index: int, prefix: str) -> bytes:
    return json.dumps(
        {
            "to": f"{prefix}-{index}@example.com",
            "type": "SignIn",
            "payload": {"code": "123456", "locale": "en"},
        }
    ).encode()


def shipped_gunicorn() -> dict:
    """Workers and threads project/gunicorn.conf.py gives without WEB_CONCURRENCY and
    MAILROOM_THREADS (read the way gunicorn reads it)."""
    saved = {name: os.environ.pop(name) for name in GUNICORN_VARIABLES if name in os.environ}
    try:
        config = runpy.run_path(str(ROOT / "project" / "gunicorn.conf.py"))
    finally:
        os.environ.update(saved)
    return {
        "workers": config["workers"],
        "threads": config["threads"],
        "worker_class": config["worker_class"],
    }


def stub_rows(stats_url: str, prefix: str) -> list[tuple[str, float]]:
    with urllib.request.urlopen(f"{stats_url}?prefix={prefix}", timeout=30) as response:
        return [tuple(row) for row in json.loads(response.read())]


def wait_delivered(stats_url: str, prefix: str, recipients: set, deadline: float) -> list:
    """The stub's [recipient, answered] rows for ``prefix`` (repeats included) once every one
    of ``recipients`` is among them, or at the deadline."""
    while True:
        rows = stub_rows(stats_url, prefix)
        if {to for to, _ in rows} >= recipients or time.monotonic() >= deadline:
            return rows
        time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))


class System:
    """One system's processes for one load: gunicorn (the shipped config) and, for the
    systems that have one, a Celery worker, on a fresh queue."""

    def __init__(self, name: str, stub_api: str, logs: Path, tag: str):
        self.name = name
        spec = SYSTEMS[name]
        self.port = free_port()
        self.queue = f"cmp-{name}-{uuid.uuid4().hex[:8]}"
        environment = {key: value for key, value in env().items() if key not in GUNICORN_VARIABLES}
        self.environment = environment | {
            "DJANGO_SETTINGS_MODULE": spec["settings"],
            "DATABASE_URL": PG + spec["database"],
            "CELERY_TASK_DEFAULT_QUEUE": self.queue,
            "ANYMAIL_POSTMARK_API_URL": stub_api,
            "EMAILS_METRICS_DIR": str(logs / "metrics"),
        }
        self.logs = logs
        self.tag = tag
        self.processes: list = []
        self.files: list = []

    def _log(self, role: str):
        self.files.append(open(self.logs / f"{self.tag}-{role}.log", "w"))
        return self.files[-1]

    def __enter__(self) -> System:
        spec = SYSTEMS[self.name]
        self.processes.append(
            start(
                [PYTHON, "-m", "gunicorn", "-c", "project/gunicorn.conf.py", "benchmarks.wsgi"],
                self.environment | {"MAILROOM_BIND": f"127.0.0.1:{self.port}"},
                self._log("gunicorn"),
            )
        )
        if spec["worker"]:
            self.processes.append(
                start(
                    [
                        PYTHON,
                        "-m",
                        "celery",
                        "-A",
                        "project",
                        "worker",
                        "--concurrency",
                        str(WORKER_CONCURRENCY),
                        "--loglevel",
                        "WARNING",
                        "--without-gossip",
                        "--without-mingle",
                        "--queues",
                        self.queue,
                    ],
                    self.environment,
                    self._log("worker"),
                )
            )
        try:
            wait_port(self.port, timeout=60)
        except Exception:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        for process in reversed(self.processes):
            stop(process)
        self.processes.clear()
        for handle in self.files:
            handle.close()
        self.files.clear()
        subprocess.run(
            ["redis-cli", "-n", "14", "del", self.queue, f"_kombu.binding.{self.queue}"],
            check=False,
            capture_output=True,
        )

    def log_problems(self) -> int:
        """Tracebacks and ERROR lines in this load's logs."""
        count = 0
        for path in self.logs.glob(f"{self.tag}-*.log"):
            for line in path.read_text(errors="replace").splitlines():
                count += "Traceback" in line or " ERROR" in line or "ERROR/" in line
        return count


def prepare(name: str, stub_api: str, logs: Path) -> None:
    """A fresh database for the system, migrated (post_office's too, and its template)."""
    spec = SYSTEMS[name]
    psql(f"DROP DATABASE IF EXISTS {spec['database']} WITH (FORCE)")
    psql(f"CREATE DATABASE {spec['database']}")
    environment = env(
        DJANGO_SETTINGS_MODULE=spec["settings"],
        DATABASE_URL=PG + spec["database"],
        ANYMAIL_POSTMARK_API_URL=stub_api,
        EMAILS_METRICS_DIR=str(logs / "metrics"),
    )
    manage("migrate", "--no-input", environment=environment)
    if name == "post_office":
        manage(
            "shell",
            "-c",
            "from benchmarks.views import post_office_template; post_office_template()",
            environment=environment,
        )


def empty(name: str) -> None:
    """Between loads: no email of the last load is left to be sent in this one."""
    if name in EMPTY_SQL:
        psql(EMPTY_SQL[name], SYSTEMS[name]["database"])
    if name == "post_office":
        remove_post_office_lock()


def remove_post_office_lock() -> None:
    """post_office's lock (a symlink to a "<pid>.lock" file), left by a worker stopped while
    it was sending."""
    lock = Path(tempfile.gettempdir()) / "mailroom-compare-post-office.lock"
    if lock.is_symlink():
        target = Path(os.readlink(lock))
        if target.parent == lock.parent and target.name.removesuffix(".lock").isdigit():
            target.unlink(missing_ok=True)
    lock.unlink(missing_ok=True)


def measure(name: str, rate: int, stub_api: str, stats_url: str, logs: Path) -> dict:
    """One system at one load, with processes of its own."""
    empty(name)
    tag = f"{name}-{rate}"
    spec = SYSTEMS[name]
    with System(name, stub_api, logs, tag) as system:
        # Warm up: every process started, connected, and (worker systems) delivering.
        warm = f"warm-{name}-{rate}-{uuid.uuid4().hex[:6]}"
        answers = constant_rate_answers(
            system.port,
            spec["path"],
            [request_body(i, warm) for i in range(WARMUP[0])],
            rate=WARMUP[1],
            authorization=AUTH,
            timeout=TIMEOUT,
        )
        accepted = {f"{warm}-{i}@example.com" for i, a in enumerate(answers) if a[2] == 200}
        wait_delivered(stats_url, warm, accepted, time.monotonic() + 60)

        prefix = f"cmp-{name}-{rate}-{uuid.uuid4().hex[:6]}"
        count = int(rate * SECONDS)
        answers = constant_rate_answers(
            system.port,
            spec["path"],
            [request_body(i, prefix) for i in range(count)],
            rate=rate,
            authorization=AUTH,
            connections=CONNECTIONS,
            timeout=TIMEOUT,
        )
        accepted = {
            f"{prefix}-{i}@example.com": answer[0]
            for i, answer in enumerate(answers)
            if answer[2] == 200
        }
        last_request = max(answer[0] for answer in answers)
        busy = machine_busy()
        wait_delivered(stats_url, prefix, set(accepted), last_request + DRAIN)
        problems = system.log_problems()  # before stopping (which kills tasks under way)
    # Stopped: nothing changes any more. Lost: accepted, not at the stub; of those, still
    # waiting in the database (not sent yet) or not.
    rows = stub_rows(stats_url, prefix)
    pending = set()
    if name in PENDING_SQL:
        pending = set(psql(PENDING_SQL[name], spec["database"]).split())
    if name == "post_office":
        remove_post_office_lock()
    return figures(answers, accepted, rows, prefix, pending, problems) | busy


def machine_busy() -> dict:
    """What else the shared machine was doing as a load ended: the 1-minute load average and
    PostgreSQL sessions of other databases than ours."""
    others = psql(
        "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
        "AND datname NOT LIKE 'mailroom\\_cmp\\_%' AND datname <> 'postgres'"
    )
    return {"load_average_1m": round(os.getloadavg()[0], 2), "other_active_sessions": int(others)}


def figures(answers, accepted: dict, rows, prefix: str, pending: set, log_problems: int) -> dict:
    """The figures of one load. Latencies in ms; an accepted email that never reached the stub
    counts as slower than any that did (a percentile it decides is None: "> the deadline")."""
    first = {}
    for to, at in rows:
        first[to] = min(at, first.get(to, math.inf))
    calls = [(answered - scheduled) * 1000 for scheduled, answered, _, _ in answers]
    to_provider = [
        (first[to] - scheduled) * 1000 if to in first else math.inf
        for to, scheduled in accepted.items()
    ]
    statuses = Counter(status for _, _, status, _ in answers)
    failures = Counter(
        (status, payload[:80].decode(errors="replace")) if status == 0 else (status, "")
        for _, _, status, payload in answers
        if status != 200
    )
    sent = [to for to, _ in rows]
    answered = sorted(first[to] for to in accepted if to in first)
    return {
        "requests": len(answers),
        "accepted": len(accepted),
        "call_p50_ms": percentile(calls, 50),
        "call_p99_ms": percentile(calls, 99),
        "call_max_ms": max(calls),
        # None: beyond the drain deadline (or no email accepted: see "accepted")
        "provider_p50_ms": _finite(percentile(to_provider, 50)) if to_provider else None,
        "provider_p99_ms": _finite(percentile(to_provider, 99)) if to_provider else None,
        "provider_max_ms": _finite(max(to_provider)) if to_provider else None,
        "errors": len(answers) - statuses.get(200, 0),
        "error_kinds": [
            {"status": status, "detail": detail, "count": n}
            for (status, detail), n in failures.most_common(5)
        ],
        "delivered": len(set(accepted) & set(first)),
        "lost": len(set(accepted) - set(first)),
        "still_queued": len((set(accepted) - set(first)) & pending),
        "duplicates": len(sent) - len(set(sent)),
        # emails the provider accepted per second, from the first to the last
        "provider_per_second": (
            (len(answered) - 1) / (answered[-1] - answered[0]) if len(answered) > 1 else None
        ),
        "sent_after_error": len(set(first) - set(accepted)),
        "log_problems": log_problems,
        "prefix": prefix,
    }


def _finite(value: float) -> float | None:
    return None if math.isinf(value) else value


def _value(figure) -> float:
    return math.inf if figure is None else figure


def goals(results: dict) -> list[dict]:
    """The three goals, each met or missed, from the figures."""
    loads = {name: system["loads"] for name, system in results["systems"].items()}
    drain = results.get("drain_seconds", DRAIN)
    found = []
    if "naive" in loads and "mailroom" in loads:
        common = [rate for rate in loads["mailroom"] if rate in loads["naive"]]
        details = [
            (
                rate,
                loads["mailroom"][rate]["call_p99_ms"],
                loads["naive"][rate]["call_p99_ms"],
            )
            for rate in common
        ]
        found.append(
            {
                "goal": "Mailroom's Logto-call p99 at most 1/10 of the naive connector's, "
                "at every load",
                "met": bool(details) and all(m <= n / 10 for _, m, n in details),
                "detail": "; ".join(
                    f"{rate} req/s: {_ms(m, drain)} vs {_ms(n, drain)} ({_ratio(m, n)})"
                    for rate, m, n in details
                ),
            }
        )
        slow = [rate for rate in common if int(rate) in (20, 100)]
        details = [
            (
                rate,
                loads["mailroom"][rate]["provider_p99_ms"],
                loads["naive"][rate]["provider_p99_ms"],
            )
            for rate in slow
        ]
        found.append(
            {
                "goal": "Mailroom's call → provider p99 within 1.5× the naive connector's "
                "at 20 and 100 req/s",
                # An accepted email not delivered by the deadline is slower than any delivered;
                # with no email accepted there is nothing to compare (missed).
                "met": bool(details)
                and all(
                    loads[name][rate]["accepted"] for rate in slow for name in ("mailroom", "naive")
                )
                and all(_value(m) <= 1.5 * _value(n) for _, m, n in details),
                "detail": "; ".join(
                    f"{rate} req/s: {_ms(m, drain)} vs {_ms(n, drain)} ({_ratio(m, n)})"
                    for rate, m, n in details
                ),
            }
        )
    if "post_office" in loads and "mailroom" in loads:
        behind = []
        common = [rate for rate in loads["mailroom"] if rate in loads["post_office"]]
        for rate in common:
            mine, theirs = loads["mailroom"][rate], loads["post_office"][rate]
            for key in (
                "call_p50_ms",
                "call_p99_ms",
                "provider_p50_ms",
                "provider_p99_ms",
                "errors",
                "lost",
            ):
                if _value(mine[key]) > _value(theirs[key]):
                    behind.append(
                        f"{rate} req/s {FIGURE_NAMES[key]}: {_figure(mine[key], key, drain)} "
                        f"vs {_figure(theirs[key], key, drain)}"
                    )
        found.append(
            {
                "goal": "Mailroom ahead of django-post_office on every figure (both latencies' "
                "p50 and p99 lower or equal, errors and lost not higher)",
                "met": bool(common) and not behind,
                "detail": ("behind on " + "; ".join(behind)) if behind else "ahead or equal on all",
            }
        )
    return found


FIGURE_NAMES = {
    "call_p50_ms": "call p50",
    "call_p99_ms": "call p99",
    "provider_p50_ms": "call → provider p50",
    "provider_p99_ms": "call → provider p99",
    "errors": "errors",
    "lost": "lost",
}


def _figure(value, key: str, drain: float) -> str:
    return _ms(value, drain) if key.endswith("_ms") else str(value)


def _ms(value, drain: float = DRAIN) -> str:
    """A latency for people; None: beyond the drain deadline."""
    if value is None:
        return f"> {drain:.0f} s"
    if value >= 10_000:
        return f"{value / 1000:.0f} s"
    if value >= 1000:
        return f"{value / 1000:.1f} s"
    return f"{value:.0f} ms" if value >= 10 else f"{value:.1f} ms"


def _rate(value) -> str:
    return "–" if value is None else f"{value:.0f}"


def _provider(load: dict, quantile: str, drain: float) -> str:
    return _ms(load[f"provider_{quantile}_ms"], drain) if load["accepted"] else "–"


def _ratio(mine, theirs) -> str:
    mine, theirs = _value(mine), _value(theirs)
    if math.isinf(mine) or math.isinf(theirs) or theirs == 0:
        return "ratio n/a"
    ratio = mine / theirs
    return f"{ratio:.0f}×" if ratio >= 10 else f"{ratio:.1f}×" if ratio >= 1 else f"{ratio:.2f}×"


def markdown(results: dict) -> str:
    """The section the report embeds: what was compared and how, the table, the goals."""
    drain = results.get("drain_seconds", DRAIN)
    gunicorn = results["gunicorn"]
    low, high = results["provider_latency_ms"]
    lines = [
        "## Side by side with the alternatives",
        "",
        f"Measured {results['date']} on {results['machine']}, one system at a time, by "
        "`python -m benchmarks.compare` (figures in `docs/compare.json`). Three ways to serve "
        "Logto's HTTP email connector:",
        "",
        "- **Mailroom**: gunicorn with the shipped config "
        f"({gunicorn['workers']} workers × {gunicorn['threads']} threads) stores the email and "
        "answers; one `celery -A project worker` "
        f"(concurrency {results['worker_concurrency']}, Mailroom's default) delivers it.",
        "- **Naive connector**: what one writes in an afternoon, a DRF view on the same "
        "gunicorn config that checks the same bearer token, renders the same email with "
        "Mailroom's code and sends it through anymail's Postmark backend inside the request "
        "(200 once the provider answered).",
        "- **django-post_office + Celery**: its documented asynchronous path: `mail.send()` "
        "renders one template (the layout with the body in place, its CSS inlined once "
        "beforehand, so that all three send the same bytes) and stores the email in the "
        "request; post_office's `send_queued_mail` task on a Celery worker "
        f"of the same concurrency ({results['worker_concurrency']}) sends the queue, with "
        "post_office's defaults (5 threads, batches of 100, one sending task at a time).",
        "",
        f"Each load is an open loop of unique sign-in requests at a constant rate for "
        f"{results['seconds']:.0f} s, latency counted from each request's scheduled send time "
        "(queueing counts). The provider is a local Postmark stand-in answering each send after "
        f"{low}-{high} ms (uniform, seeded), with a thread per connection. *Call* is Logto's "
        "call (every request, errors included); *call → provider* runs from the call's "
        "scheduled time to the moment the stub accepted that email. *Lost*: answered 200 but "
        f"not at the stub {drain:.0f} s after the last request (in brackets: of those, how "
        "many were still queued in the database then); "
        f"*> {drain:.0f} s*: the percentile falls among such emails. *Provider accepted/s*: "
        "emails the stub accepted per second, from the first to the last of the load's. Each "
        "load starts with fresh processes and an empty queue, after a warm-up of "
        f"{results.get('warmup_requests', WARMUP[0])} requests.",
        "",
        "| System | Load (req/s) | Call p50 | Call p99 | Call → provider p50 "
        "| Call → provider p99 | Errors | Lost (still queued) | Duplicates "
        "| Provider accepted/s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for system in results["systems"].values():
        for rate, load in system["loads"].items():
            lines.append(
                f"| {system['label']} | {rate} | {_ms(load['call_p50_ms'])} "
                f"| {_ms(load['call_p99_ms'])} | {_provider(load, 'p50', drain)} "
                f"| {_provider(load, 'p99', drain)} | {load['errors']} "
                f"| {load['lost']} ({load['still_queued']}) | {load['duplicates']} "
                f"| {_rate(load['provider_per_second'])} |"
            )
    lines += ["", "Goals, from this run:", ""]
    for goal in results["goals"]:
        lines.append(
            f"- **{'met' if goal['met'] else 'missed'}**: {goal['goal']}. {goal['detail']}."
        )
    lines += [
        "",
        "![Logto-call and call → provider latency by load, p99 solid, p50 dashed, log scale]"
        "(compare.png)",
        "",
    ]
    return "\n".join(lines)


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    drain_ms = results.get("drain_seconds", DRAIN) * 1000
    figure, axes = pyplot.subplots(1, 2, figsize=(11, 4.2))
    panels = (("call", "Logto's call"), ("provider", "Logto's call → provider accepted"))
    for axis, (key, title) in zip(axes, panels, strict=True):
        for index, system in enumerate(results["systems"].values()):
            rates = [int(rate) for rate in system["loads"]]
            color = f"C{index}"
            for quantile, style in (("p99", "-"), ("p50", "--")):
                values = [load[f"{key}_{quantile}_ms"] for load in system["loads"].values()]
                if key == "provider":  # no email accepted: nothing to show
                    values = [
                        value if load["accepted"] else math.nan
                        for value, load in zip(values, system["loads"].values(), strict=True)
                    ]
                shown = [drain_ms if value is None else value for value in values]
                axis.plot(
                    rates,
                    shown,
                    style,
                    color=color,
                    marker="o",
                    label=f"{system['label']} {quantile}",
                )
                for rate, value in zip(rates, values, strict=True):
                    if value is None:  # beyond the drain deadline
                        axis.plot([rate], [drain_ms], "^", color=color, markersize=10)
        axis.set_yscale("log")
        axis.set_xlabel("load (requests/s)")
        axis.set_ylabel("latency (ms)")
        axis.set_title(title)
        axis.set_xticks([int(rate) for rate in results["rates"]])
        axis.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=7)
    figure.suptitle(
        f"{results['machine']} · provider answers in "
        f"{results['provider_latency_ms'][0]}-{results['provider_latency_ms'][1]} ms"
        f" · ▲: beyond the {drain_ms / 1000:.0f} s drain deadline",
        fontsize=8,
    )
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    pyplot.close(figure)


def start_stub(logs: Path):
    port_file = logs / "stub.json"
    stub = start(
        [
            PYTHON,
            "-m",
            "benchmarks.stub_server",
            str(port_file),
            "--latency",
            str(PROVIDER_LATENCY[0]),
            str(PROVIDER_LATENCY[1]),
            "--seed",
            str(SEED),
        ],
        env(),
        open(logs / "stub.log", "w"),
    )
    for _ in range(100):
        if port_file.exists() and port_file.read_text().endswith("}"):
            return stub, json.loads(port_file.read_text())
        time.sleep(0.1)
    stop(stub)
    raise RuntimeError("the provider stub did not start")


def main() -> dict:
    began = time.monotonic()
    gunicorn = shipped_gunicorn()
    print(
        f"gunicorn: {gunicorn['workers']} workers x {gunicorn['threads']} threads "
        f"({gunicorn['worker_class']}); celery worker concurrency {WORKER_CONCURRENCY}; "
        f"loads {RATES} req/s for {SECONDS:g} s; drain {DRAIN:g} s",
        flush=True,
    )
    results: dict = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "seconds": SECONDS,
        "rates": RATES,
        "drain_seconds": DRAIN,
        "provider_latency_ms": [
            round(PROVIDER_LATENCY[0] * 1000),
            round(PROVIDER_LATENCY[1] * 1000),
        ],
        "provider_seed": SEED,
        "gunicorn": gunicorn,
        "worker_concurrency": WORKER_CONCURRENCY,
        "load_generator": {"connections": CONNECTIONS, "timeout_s": TIMEOUT},
        "warmup_requests": WARMUP[0],
        "systems": {},
    }
    logs = Path(tempfile.mkdtemp(prefix="mailroom-compare-"))
    print(f"logs: {logs}", flush=True)
    stub, urls = start_stub(logs)
    try:
        for name in ONLY:
            spec = SYSTEMS[name]
            prepare(name, urls["api"], logs)
            loads = {}
            for rate in RATES:
                started = time.monotonic()
                loads[str(rate)] = load = measure(name, rate, urls["api"], urls["stats"], logs)
                print(
                    f"{spec['label']} @ {rate}/s: call p50 {_ms(load['call_p50_ms'])} "
                    f"p99 {_ms(load['call_p99_ms'])}; call->provider p50 "
                    f"{_ms(load['provider_p50_ms'])} p99 {_ms(load['provider_p99_ms'])}; "
                    f"errors {load['errors']} lost {load['lost']} "
                    f"provider {load['provider_per_second'] or 0:.1f}/s "
                    f"(queued {load['still_queued']}) dup {load['duplicates']} "
                    f"log problems {load['log_problems']} [{time.monotonic() - started:.0f} s]",
                    flush=True,
                )
            results["systems"][name] = {"label": spec["label"], "loads": loads}
    finally:
        stop(stub)
    results["goals"] = goals(results)
    results["elapsed_s"] = round(time.monotonic() - began)
    DOCS.mkdir(exist_ok=True)
    (DOCS / "compare.json").write_text(json.dumps(results, indent=2) + "\n")
    plot(results, DOCS / "compare.png")
    print(markdown(results))
    return results


if __name__ == "__main__":
    main()
