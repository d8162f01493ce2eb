"""The relay's ceiling (README, "Past one machine"): how many accepting INSERTs per second
PostgreSQL commits when each one NOTIFYs, against the same INSERTs without the trigger.

PostgreSQL holds the notification queue's lock from just before a notifying transaction's
commit until after it, so such commits happen one at a time, however many clients there are.
pgbench (PostgreSQL's own load tool) runs one autocommitted INSERT of a message-sized row per
transaction with 32 clients, 15 s each way. Run as ``python -m benchmarks.ceiling``; prints
JSON, and docs/ceiling.json keeps it.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.run import DOCS, PG, machine, psql

DB_NAME = "mailroom_ceiling"
SECONDS = 15
CLIENTS = 32
INSERT = (
    'INSERT INTO accept (id, "to", payload) VALUES (gen_random_uuid(), '
    "'user' || (random() * 1e9)::bigint || '@example.com', "
    '\'{"code": "123456", "locale": "en"}\');\n'
)


def pgbench() -> str:
    found = shutil.which("pgbench") or next(
        (str(p) for p in sorted(Path("/usr/lib/postgresql").glob("*/bin/pgbench"))), None
    )
    if not found:
        raise SystemExit("pgbench not found (Debian: postgresql-client or postgresql)")
    return found


def run(script: Path) -> float:
    out = subprocess.run(
        [
            pgbench(),
            "-n",
            "-c",
            str(CLIENTS),
            "-j",
            "2",
            "-T",
            str(SECONDS),
            "-f",
            str(script),
            PG + DB_NAME,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return float(re.search(r"tps = ([\d.]+)", out).group(1))


def main() -> None:
    psql(f"DROP DATABASE IF EXISTS {DB_NAME}")
    psql(f"CREATE DATABASE {DB_NAME}")
    psql(
        'CREATE TABLE accept (id uuid PRIMARY KEY, "to" varchar(254) NOT NULL, '
        "payload jsonb NOT NULL, created_at timestamptz NOT NULL DEFAULT now())",
        DB_NAME,
    )
    # The same trigger as migration 0003's, on this table.
    psql(
        "CREATE FUNCTION accept_notify() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "PERFORM pg_notify('mailroom_queued', ''); RETURN NULL; END $$",
        DB_NAME,
    )
    script = Path(tempfile.mkdtemp(prefix="mailroom-ceiling-")) / "insert.sql"
    script.write_text(INSERT)
    results = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "clients": CLIENTS,
        "seconds": SECONDS,
    }
    results["without_notify_per_second"] = run(script)
    psql(
        "CREATE TRIGGER accept_notify AFTER INSERT ON accept FOR EACH ROW "
        "EXECUTE FUNCTION accept_notify()",
        DB_NAME,
    )
    results["with_notify_per_second"] = run(script)
    psql(f"DROP DATABASE IF EXISTS {DB_NAME}")
    (DOCS / "ceiling.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
