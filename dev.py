#!/usr/bin/env python3
"""Mailroom's two commands, needing nothing but Python 3.11+:

    python3 dev.py run     install into .venv, migrate, create an admin, serve on :8000
    python3 dev.py test    install into .venv, run the test suite (extra args go to pytest)
    python3 dev.py bench   run the benchmarks (or some of: classic compare scale memory
                           scaleout ceiling) and write docs/benchmarks.md (not part of the tests)

The run command uses the embedded defaults: SQLite (db.sqlite3), console email (printed in
this terminal) and no Redis (tasks run in-process right after commit).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PYTHON = VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
STAMP = VENV / ".mailroom-installed"
ADMIN_PASSWORD_FILE = ROOT / ".admin-password"


def install() -> None:
    """Create .venv and install the project with its test tools; skipped when pyproject.toml
    has not changed since the last install."""
    if sys.version_info < (3, 11):  # noqa: UP036  (dev.py may be run by an older python3)
        sys.exit("Mailroom needs Python 3.11 or newer.")
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == wanted:
        return
    if not PYTHON.exists():
        print("Creating .venv ...", flush=True)
        venv.create(VENV, with_pip=True)
    print("Installing Mailroom and its dependencies into .venv ...", flush=True)
    pip = [str(PYTHON), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "-e", f"{ROOT}[dev]"], check=True)
    STAMP.write_text(wanted)


def manage(*args: str, env: dict) -> None:
    subprocess.run([str(PYTHON), "manage.py", *args], cwd=ROOT, env=env, check=True)


def run(args: list[str]) -> int:
    install()
    env = {**os.environ, "DJANGO_DEBUG": os.environ.get("DJANGO_DEBUG", "true")}
    manage("migrate", "--no-input", env=env)
    ensure_admin(env)
    address = args[0] if args else "127.0.0.1:8000"
    print(f"\nMailroom is at http://{address}/admin/ (user 'admin', password in .admin-password)")
    print(f"Logto endpoint: http://{address}/api/logto/email\n", flush=True)
    return subprocess.call([str(PYTHON), "manage.py", "runserver", address], cwd=ROOT, env=env)


def ensure_admin(env: dict) -> None:
    """Create the 'admin' superuser once, with a random password kept in .admin-password."""
    if not ADMIN_PASSWORD_FILE.exists():
        ADMIN_PASSWORD_FILE.write_text(secrets.token_urlsafe(12) + "\n")
        ADMIN_PASSWORD_FILE.chmod(0o600)
    code = (
        "from django.contrib.auth import get_user_model\n"
        "User = get_user_model()\n"
        "if not User.objects.filter(username='admin').exists():\n"
        "    User.objects.create_superuser('admin', 'admin@localhost', "
        f"{ADMIN_PASSWORD_FILE.read_text().strip()!r})\n"
        "    print('Created superuser admin')\n"
    )
    manage("shell", "-v", "0", "-c", code, env=env)


def test(args: list[str]) -> int:
    install()
    return subprocess.call([str(PYTHON), "-m", "pytest", *args], cwd=ROOT)


def bench(args: list[str]) -> int:
    """Benchmarks (not tests): needs PostgreSQL and Redis on loopback, and wrk."""
    install()
    pip = [str(PYTHON), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "-r", str(ROOT / "benchmarks" / "requirements.txt")], check=True)
    if not shutil.which("wrk"):
        print("Installing wrk (Debian package) ...", flush=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True)
    return subprocess.call([str(PYTHON), "-m", "benchmarks.run", *args], cwd=ROOT)


def main() -> int:
    commands = {"run": run, "test": test, "bench": bench}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        print(__doc__)
        return 2
    return commands[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
