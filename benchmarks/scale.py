"""Cost as the work grows: the same figures with 0, 10 thousand, 1 million and 10 million
messages in ``emails_message`` (issue 18 §2), run as ``python -m benchmarks.scale``.

Each size is a fresh table filled with ``COPY``: 30 days of messages in arrival order, with
statuses, types, locales, fallbacks and providers in the proportions below and recipients that
repeat (a few people sign in every day, most once a month). Then, on that table:

- accept p99 at 100 requests/s (gunicorn with the shipped config, open loop);
- one sweeper pass, and one retention purge of a day's messages while accepts go on;
- the admin pages an operator opens (each timed as the median of three, after one warm-up);
- bytes per message (table + indexes);
- at the largest size: how long each wave-2 migration takes, and the longest any statement
  on ``emails_message`` waited meanwhile (a probe writing every 50 ms);
- django-post_office's ``Email`` admin list, with the same number of rows.

Writes docs/scale.json; benchmarks/report.py turns it into a section of docs/benchmarks.md.
Sizes come from SCALE_SIZES (default "0,10000,1000000,10000000"); SCALE_REUSE=1 measures
again on the tables a previous run left, without refilling them.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta

from benchmarks.run import (
    AUTH,
    DOCS,
    PG,
    PYTHON,
    ROOT,
    body,
    env,
    free_port,
    machine,
    percentile,
    psql,
    start,
    stop,
    wait_port,
)

DB_NAME = "mailroom_scale"
SIZES = [int(s) for s in os.environ.get("SCALE_SIZES", "0,10000,1000000,10000000").split(",")]
# SCALE_REUSE=1: keep the database, refill a table only if its row count is not the size (less
# what earlier purges deleted), and update docs/scale.json's figures for the sizes measured.
REUSE = os.environ.get("SCALE_REUSE") == "1"
KEPT_ON_REUSE = ("sizes", "migrations", "migrations_rows")
DAY = 86400
WAVE_1_LAST = "0005_heartbeat"

# Proportions: a sign-in-heavy product with a few dozen languages asked for.
USAGE = [
    ("SignIn", 55),
    ("Register", 14),
    ("ForgotPassword", 9),
    ("MfaVerification", 8),
    ("Generic", 4),
    ("OrganizationInvitation", 4),
    ("BindNewIdentifier", 3),
    ("UserPermissionValidation", 2),
    ("BindMfa", 1),
]
LOCALES = [
    ("en", 50),
    ("zh-CN", 9),
    ("de", 6),
    ("fr", 6),
    ("es", 5),
    ("ja", 4),
    ("pt-BR", 4),
    ("ko", 2),
    ("ar", 2),
    ("it", 2),
    ("ru", 2),
    ("en-GB", 2),  # no template of its own: served by en, a fallback
    ("nl", 2),  # no template: the default locale serves it
    ("sv", 1),
    ("de-AT", 1),
    ("", 2),  # no locale in the payload
]
# Nothing left waiting: in a healthy system the workers have sent all but the last second's.
STATUS = [("sent", 9750), ("failed", 150), ("expired", 50)]
DELIVERY = [("delivered", 85), ("", 12), ("bounced", 2), ("deferred", 1)]
DOMAINS = ["gmail.com", "outlook.com", "yahoo.com", "icloud.com", "example.com", "corp.example"]
COLUMNS = (
    'id, "to", usage_type, payload, ip, status, template_usage_type, template_locale, '
    "template_version, requested_locale, used_fallback, attempts, next_attempt_at, claimed_at, "
    "expires_at, dedup_key, provider_message_id, error, delivery_status, delivery_status_at, "
    "is_test, test_content, created_at, updated_at, sent_at, requested_by_id, template_id, "
    "pinned_provider, possible_duplicates, provider, locale_distance, locale_matched, "
    "template_scope"
)


def _picker(weighted, rng):
    values = [v for v, _ in weighted]
    weights = [w for _, w in weighted]
    return lambda: rng.choices(values, weights)[0]


def rows(count: int, templates: dict, seed: int = 18):
    """``count`` COPY lines, oldest first, over the 30 days before now."""
    rng = random.Random(seed)  # noqa: S311  (test data, not secrets)
    usage, locale, status, delivery = (
        _picker(USAGE, rng),
        _picker(LOCALES, rng),
        _picker(STATUS, rng),
        _picker(DELIVERY, rng),
    )
    people = max(1, count // 6)  # each person gets six emails a month on average
    now = datetime.now(UTC)
    start_at = now - timedelta(days=30)
    step = 30 * DAY / max(count, 1)
    shipped = {loc for _, loc in templates}
    for index in range(count):
        created = start_at + timedelta(seconds=index * step)
        kind = usage()
        asked = locale()
        served = asked if asked in shipped else ("en" if asked.startswith("en") else "en")
        fallback = asked not in shipped
        if kind == "BindMfa" and rng.random() < 0.5:
            kind_served, fallback = "Generic", True
        else:
            kind_served = kind
        state = status()
        person = int(rng.random() ** 3 * people)  # a few people get many emails
        to = f"user{person}@{DOMAINS[person % len(DOMAINS)]}"
        payload = {"locale": asked} if asked else {}
        if rng.random() < 0.2:
            payload["application"] = {"id": f"app{person % 7}"}
        # A code stays only while it can still be used: the sweeper wipes the rest.
        if state == "queued" or (state == "failed" and created > now - timedelta(hours=1)):
            payload["code"] = f"{rng.randrange(1000000):06d}"
        sent = state == "sent"
        provider = ("postmark" if rng.random() < 0.92 else "sendgrid") if state != "expired" else ""
        delivered = delivery() if sent else ""
        yield (
            "\t".join(
                (
                    str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                    to,
                    kind,
                    json.dumps(payload),
                    f"198.51.{person % 250}.{person % 199}",
                    state,
                    kind_served,
                    served,
                    "1",
                    asked,
                    "t" if fallback else "f",
                    "0" if state == "queued" else "1" if sent else str(rng.randint(1, 8)),
                    created.isoformat(),
                    r"\N" if state == "queued" else (created + timedelta(seconds=0.05)).isoformat(),
                    (created + timedelta(minutes=10)).isoformat(),
                    r"\N",
                    uuid.UUID(int=rng.getrandbits(128)).hex if sent else "",
                    "Postmark API response 422: Invalid 'To' address" if state == "failed" else "",
                    delivered,
                    (created + timedelta(seconds=20)).isoformat() if delivered else r"\N",
                    "f",
                    r"\N",
                    created.isoformat(),
                    (created + timedelta(seconds=0.3)).isoformat(),
                    (created + timedelta(seconds=0.3)).isoformat() if sent else r"\N",
                    r"\N",
                    str(templates[(kind_served, served)]),
                    "",
                    "0",
                    provider,
                    "0" if not fallback else "1" if asked.startswith("en") else "9",
                    asked if asked in shipped else "en",
                    "application" if "application" in payload and rng.random() < 0.5 else "",
                )
            )
            + "\n"
        )


def _close(rows: int, size: int) -> bool:
    """The table an earlier run left: its size, less at most the days its purges deleted."""
    return size * 0.9 <= rows <= size


def _rows(table: str) -> int:
    return int(psql(f"SELECT count(*) FROM {table}", DB_NAME))  # noqa: S608


def fill(count: int) -> float:
    """Empty the table and COPY ``count`` messages in; returns seconds taken."""
    import psycopg

    began = time.monotonic()
    with psycopg.connect(PG + DB_NAME, autocommit=True) as conn:
        conn.execute("TRUNCATE emails_message CASCADE")
        templates = {
            (usage_type, locale): pk
            for pk, usage_type, locale in conn.execute(
                "SELECT id, usage_type, locale FROM emails_template "
                "WHERE application_id = '' AND organization_id = ''"
            )
        }
        conn.execute("ALTER TABLE emails_message DISABLE TRIGGER emails_message_notify")
        with conn.cursor() as cursor:
            with cursor.copy(f"COPY emails_message ({COLUMNS}) FROM STDIN") as copy:
                batch = []
                for line in rows(count, templates):
                    batch.append(line)
                    if len(batch) == 10000:
                        copy.write("".join(batch))
                        batch = []
                copy.write("".join(batch))
        conn.execute("ALTER TABLE emails_message ENABLE TRIGGER emails_message_notify")
        conn.execute("VACUUM (ANALYZE) emails_message")
        # Write the load's dirty pages out now: the checkpoint that would otherwise follow a
        # bulk load stalls every commit for a while, which is the load, not the table size.
        conn.execute("CHECKPOINT")
    return time.monotonic() - began


def accept_p99(environment, seconds: int = 20, rate: int = 100) -> dict:
    """Accept latency at a constant rate against gunicorn with the shipped config."""
    return _with_gunicorn(environment, lambda port: _load(port, rate, seconds))


def _with_gunicorn(environment, action):
    port = free_port()
    web = start(
        [PYTHON, "-m", "gunicorn", "-c", "project/gunicorn.conf.py", "benchmarks.wsgi"],
        {**environment, "MAILROOM_BIND": f"127.0.0.1:{port}"},
        open(os.devnull, "w"),
    )
    try:
        wait_port(port)
        # Warm up every thread of every worker: each opens its database connection and
        # prepares the accepting INSERT on its first request.
        _load(port, 100, 5)
        return action(port)
    finally:
        stop(web)


def _load(port: int, rate: int, seconds: float) -> dict:
    """The load generator in its own process, so that it keeps time whatever this one does."""
    out = subprocess.run(
        [PYTHON, "-m", "benchmarks.scale", "load", str(port), str(rate), str(seconds)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out)


def load_main(port: int, rate: int, seconds: float) -> None:
    from benchmarks.loadgen import constant_rate

    prefix = f"scale-{uuid.uuid4().hex[:8]}"
    answers = constant_rate(
        port,
        "/api/logto/email",
        [body(i, prefix) for i in range(int(rate * seconds))],
        rate=rate,
        authorization=AUTH,
    )
    latencies = [latency * 1000 for status, latency in answers]
    print(
        json.dumps(
            {
                "requests": len(answers),
                "p50_ms": percentile(latencies, 50),
                "p99_ms": percentile(latencies, 99),
                "errors": sum(1 for status, _ in answers if status != 200),
                "latencies_ms": latencies,
            }
        )
    )


def purge_during_accepts(environment) -> dict:
    """The retention purge of one day's messages (EMAILS_RETENTION_DAYS=29 on a 30-day table),
    in its own process, while accepts arrive at 100/s in 10 s rounds until it is done."""

    def action(port):
        purge = subprocess.Popen(
            [PYTHON, "-m", "benchmarks.scale", "call", "purge"],
            cwd=ROOT,
            env={**environment, "EMAILS_RETENTION_DAYS": "29"},
            stdout=subprocess.PIPE,
            text=True,
        )
        rounds = []
        while purge.poll() is None or not rounds:
            rounds.append(_load(port, 100, 10))
        out, _ = purge.communicate()
        result = json.loads(out.strip().splitlines()[-1])
        latencies = [ms for r in rounds for ms in r["latencies_ms"]]
        result["accept_p99_ms"] = percentile(latencies, 99)
        result["accept_errors"] = sum(r["errors"] for r in rounds)
        return result

    return _with_gunicorn(environment, action)


def purge() -> dict:
    import django

    django.setup()
    from emails.delivery.sweeper import messages_purge

    began = time.monotonic()
    deleted = messages_purge()
    return {"deleted": deleted, "seconds": time.monotonic() - began}


PAGES = {
    "message list, first page": "/admin/emails/message/",
    "filter status = failed": "/admin/emails/message/?status__exact=failed",
    "filter status = queued": "/admin/emails/message/?status__exact=queued",
    "filter delivery = bounced": "/admin/emails/message/?delivery_status__exact=bounced",
    "filter type = Register": "/admin/emails/message/?usage_type=Register",
    "filter fallback = yes": "/admin/emails/message/?used_fallback__exact=1",
    "filter provider = sendgrid": "/admin/emails/message/?provider=sendgrid",
    "filter test send = yes": "/admin/emails/message/?is_test__exact=1",
    "filter created: past 7 days": "/admin/emails/message/?created_at__gte={week_ago}",
    "search a recipient": "/admin/emails/message/?q={recipient}",
    "page 50": "/admin/emails/message/?p=50",
    "coverage": "/admin/emails/template/coverage/",
    "coverage of an application": "/admin/emails/template/coverage/?application=app3",
    "delivery dashboard": "/admin/emails/message/delivery/",
    "template list": "/admin/emails/template/",
}
POST_OFFICE_PAGES = {
    "message list, first page": "/admin/post_office/email/",
    "filter status = failed": "/admin/post_office/email/?status__exact=1",
    "search a recipient": "/admin/post_office/email/?q={recipient}",
}


def pages(pages: dict) -> dict:
    """Each admin page's time (median of three after a warm-up), as a superuser."""
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.test import Client

    from emails.models import Message

    user, _ = get_user_model().objects.get_or_create(
        username="bench-admin", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)
    recipient = (
        Message.objects.order_by().values_list("to", flat=True).first() or "nobody@example.com"
    )
    week_ago = (datetime.now(UTC) - timedelta(days=7)).date().isoformat()
    times = {}
    for name, url in pages.items():
        url = url.format(recipient=recipient, week_ago=week_ago)
        answers = []
        for _ in range(4):
            began = time.monotonic()
            response = client.get(url, HTTP_HOST="localhost", secure=True)
            answers.append((time.monotonic() - began) * 1000)
            if response.status_code != 200:
                raise RuntimeError(f"{url}: {response.status_code}")
        times[name] = statistics.median(answers[1:])
    return times


def sweep_ms() -> float:
    """One sweeper pass in a steady state: after a first pass, and with the benchmark's own
    accepts (which no worker delivers here) marked sent, as workers would have sent them."""
    import django

    django.setup()
    from emails.delivery.sweeper import messages_sweep
    from emails.models import Message

    Message.objects.filter(status__in=("queued", "sending")).update(status="sent")
    messages_sweep()
    began = time.monotonic()
    messages_sweep()
    return (time.monotonic() - began) * 1000


def in_django(function: str, environment, *args) -> object:
    """Run one of this module's functions in a fresh process with the benchmark settings."""
    out = subprocess.run(
        [PYTHON, "-m", "benchmarks.scale", "call", function, *args],
        cwd=ROOT,
        env=environment,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def bytes_per_message() -> float:
    return float(
        psql(
            "SELECT pg_total_relation_size('emails_message')::float / greatest(count(*), 1) "
            "FROM emails_message",
            DB_NAME,
        )
    )


def migrations(environment) -> list[dict]:
    """Back to the end of wave 1, then forward one migration at a time, each timed while a
    probe writes and reads a message every 50 ms; the probe's longest wait is how long the
    migration held up the table."""
    subprocess.run(
        [PYTHON, "manage.py", "migrate", "emails", WAVE_1_LAST, "--no-input"],
        cwd=ROOT,
        env=environment,
        check=True,
        capture_output=True,
    )
    names = sorted(
        p.stem for p in (ROOT / "emails" / "migrations").glob("0*.py") if p.stem > WAVE_1_LAST
    )
    results = []
    for name in names:
        probe = subprocess.Popen(
            [PYTHON, "-m", "benchmarks.scale", "probe"],
            cwd=ROOT,
            env=environment,
            stdout=subprocess.PIPE,
            text=True,
        )
        time.sleep(1)
        began = time.monotonic()
        subprocess.run(
            [PYTHON, "manage.py", "migrate", "emails", name, "--no-input"],
            cwd=ROOT,
            env=environment,
            check=True,
            capture_output=True,
        )
        seconds = time.monotonic() - began
        time.sleep(0.5)
        probe.terminate()
        out, _ = probe.communicate(30)
        results.append({"migration": name, "seconds": seconds, "longest_wait_ms": float(out)})
    return results


def probe_main() -> None:
    """Every 50 ms: update the newest message and read it; on SIGTERM print the longest."""
    import signal

    import psycopg

    longest = 0.0
    stopping = False

    def on_term(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_term)
    with psycopg.connect(PG + DB_NAME, autocommit=True) as conn:
        while not stopping:
            began = time.monotonic()
            # A write and a read: a lock that blocks either (ACCESS EXCLUSIVE for ALTER
            # TABLE, SHARE for a plain CREATE INDEX) shows as a long wait here.
            conn.execute(
                "UPDATE emails_message SET updated_at = now() WHERE id = "
                "(SELECT id FROM emails_message ORDER BY created_at DESC LIMIT 1)"
            )
            conn.execute("SELECT id FROM emails_message ORDER BY created_at DESC LIMIT 1")
            longest = max(longest, (time.monotonic() - began) * 1000)
            time.sleep(0.05)
    print(f"{longest:.1f}")


def post_office_fill(count: int) -> float:
    """post_office's Email table with ``count`` rows of the same shape (template-rendered at
    delivery, as its Celery path stores them): recipients, statuses and times as above."""
    import psycopg

    began = time.monotonic()
    rng = random.Random(18)  # noqa: S311
    people = max(1, count // 6)
    now = datetime.now(UTC)
    step = 30 * DAY / max(count, 1)
    with psycopg.connect(PG + DB_NAME, autocommit=True) as conn:
        conn.execute("TRUNCATE post_office_email CASCADE")
        template = conn.execute(
            "INSERT INTO post_office_emailtemplate (name, description, subject, content, "
            "html_content, created, last_updated, default_template_id, language) VALUES "
            "('signin', '', 'Your code', '{{ code }}', '<p>{{ code }}</p>', now(), now(), "
            "NULL, '') ON CONFLICT DO NOTHING RETURNING id"
        ).fetchone()
        template_id = (
            template[0]
            if template
            else conn.execute(
                "SELECT id FROM post_office_emailtemplate WHERE name = 'signin'"
            ).fetchone()[0]
        )
        columns = (
            'from_email, "to", cc, bcc, subject, message, html_message, status, priority, '
            "created, last_updated, scheduled_time, expires_at, number_of_retries, headers, "
            "template_id, context, backend_alias, message_id"
        )
        with conn.cursor() as cursor:
            with cursor.copy(f"COPY post_office_email ({columns}) FROM STDIN") as copy:
                batch = []
                for index in range(count):
                    created = now - timedelta(days=30) + timedelta(seconds=index * step)
                    person = int(rng.random() ** 3 * people)
                    to = f"user{person}@{DOMAINS[person % len(DOMAINS)]}"
                    status = "0" if rng.random() < 0.98 else "1"
                    stamp = created.isoformat()
                    batch.append(
                        "\t".join(
                            (
                                "Mailroom <no-reply@example.com>",
                                to,
                                "",
                                "",
                                "",
                                "",
                                "",
                                status,
                                "2",
                                stamp,
                                stamp,
                                r"\N",
                                r"\N",
                                "0",
                                r"\N",
                                str(template_id),
                                json.dumps({"code": "123456", "locale": "en"}),
                                "",
                                f"<{uuid.UUID(int=rng.getrandbits(128)).hex}@example.com>",
                            )
                        )
                        + "\n"
                    )
                    if len(batch) == 10000:
                        copy.write("".join(batch))
                        batch = []
                copy.write("".join(batch))
        conn.execute("VACUUM (ANALYZE) post_office_email")
    return time.monotonic() - began


def main() -> None:
    results: dict = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "sizes": {},
    }
    if REUSE:  # measure again on the tables an earlier run filled (after a code change)
        previous = DOCS / "scale.json"
        if previous.exists():
            kept = json.loads(previous.read_text())
            results.update({k: v for k, v in kept.items() if k in KEPT_ON_REUSE})
    else:
        psql(f"DROP DATABASE IF EXISTS {DB_NAME}")
        psql(f"CREATE DATABASE {DB_NAME}")
    environment = env(
        DATABASE_URL=PG + DB_NAME,
        DJANGO_SETTINGS_MODULE="benchmarks.settings_post_office",
        DJANGO_ALLOWED_HOSTS="localhost,127.0.0.1",
        DJANGO_STATIC_ROOT=tempfile.mkdtemp(prefix="mailroom-scale-static-"),
    )
    for command in (["migrate", "--no-input"], ["collectstatic", "--no-input"]):
        subprocess.run(
            [PYTHON, "manage.py", *command],
            cwd=ROOT,
            env=environment,
            check=True,
            capture_output=True,
        )
    for size in SIZES:
        print(f"{size:,} messages ...", file=sys.stderr, flush=True)
        kept = REUSE and _close(_rows("emails_message"), size)
        figures: dict = {"fill_seconds": None if kept else fill(size)}
        figures["bytes_per_message"] = bytes_per_message() if size else None
        figures["pages_ms"] = in_django("pages", environment, "mailroom")
        figures["sweep_ms"] = in_django("sweep_ms", environment)
        figures["accept"] = {
            k: v for k, v in accept_p99(environment).items() if k != "latencies_ms"
        }
        if size:
            figures["purge"] = purge_during_accepts(environment)
            kept = REUSE and _close(_rows("post_office_email"), size)
            figures["post_office_fill_seconds"] = None if kept else post_office_fill(size)
            figures["post_office_pages_ms"] = in_django("pages", environment, "post_office")
        results["sizes"][str(size)] = figures
        print(json.dumps(figures), file=sys.stderr, flush=True)
    if SIZES[-1] and SIZES[-1] >= max(int(size) for size in results["sizes"]):
        results["migrations"] = migrations(environment)
        results["migrations_rows"] = SIZES[-1]
    (DOCS / "scale.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


def call_main(function: str, *args) -> None:
    if function == "pages":
        result = pages(POST_OFFICE_PAGES if args[0] == "post_office" else PAGES)
    elif function == "sweep_ms":
        result = sweep_ms()
    elif function == "purge":
        result = purge()
    else:
        raise SystemExit(f"unknown function {function}")
    print(json.dumps(result))


if __name__ == "__main__":
    command, *arguments = sys.argv[1:] or ["main"]
    if command == "load":
        load_main(int(arguments[0]), int(arguments[1]), float(arguments[2]))
    elif command == "probe":
        probe_main()
    elif command == "call":
        call_main(*arguments)
    else:
        main()
