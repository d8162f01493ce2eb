"""Where gunicorn's and the Celery worker's processes keep their Prometheus values
(emails/metrics.py, prometheus-client's multiprocess mode), set up before anything imports
prometheus-client: by gunicorn's arbiter (project/gunicorn.conf.py) and by `celery worker`
(project/celery.py). The folder is EMAILS_METRICS_DIR (project/settings.py)."""

from __future__ import annotations

import os
import shutil
import stat
import sys
import tempfile
from pathlib import Path

DEFAULT_DIRECTORY = os.path.join(tempfile.gettempdir(), f"mailroom-{os.getuid()}", "metrics")
# prometheus-client writes file-backed values when this names a folder as it is imported.
MULTIPROCESS_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


def start_role(role: str, directory: str) -> str | None:
    """This process and its children write under ``<directory>/<role>-<pid>/``. The folders of
    processes that are gone (an earlier run, a worker stopped) are removed first: Prometheus
    reads their counters' drop as a restart. Returns the folder.

    Metrics never stop Mailroom: a folder that cannot be made, is a symlink, belongs to
    another user or that anyone may write to (another local user could plant or read values)
    is refused with one line on stderr, and each process keeps its own values (None)."""
    root = Path(directory)
    try:
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        status = os.lstat(root)
        if stat.S_ISLNK(status.st_mode) or not stat.S_ISDIR(status.st_mode):
            return _refuse(root, "it is not a folder")
        if status.st_uid not in (os.getuid(), 0) or status.st_mode & 0o002:
            return _refuse(root, "it belongs to another user or anyone may write to it")
        for folder in root.glob("*-*"):
            pid = folder.name.rsplit("-", 1)[1]
            if pid.isdigit() and not _alive(int(pid)):
                shutil.rmtree(folder, ignore_errors=True)
        mine = root / f"{role}-{os.getpid()}"
        shutil.rmtree(mine, ignore_errors=True)  # a pid used again: not the old one's values
        mine.mkdir(mode=0o700)
    except OSError as exc:
        return _refuse(root, exc.strerror or str(exc))
    os.environ[MULTIPROCESS_VARIABLE] = str(mine)
    return str(mine)


def _refuse(root: Path, reason: str) -> None:
    print(
        f"Mailroom keeps metrics per process, not in EMAILS_METRICS_DIR={root}: {reason}.",
        file=sys.stderr,
        flush=True,
    )
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True
