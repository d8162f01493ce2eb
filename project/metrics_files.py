"""Where gunicorn's and the Celery worker's processes keep their Prometheus values
(emails/metrics.py, prometheus-client's multiprocess mode), set up before anything imports
prometheus-client: by gunicorn's arbiter (project/gunicorn.conf.py) and by `celery worker`
(project/celery.py). The folder is EMAILS_METRICS_DIR (project/settings.py)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

DEFAULT_DIRECTORY = os.path.join(tempfile.gettempdir(), "mailroom-metrics")
# prometheus-client writes file-backed values when this names a folder as it is imported.
MULTIPROCESS_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


def start_role(role: str, directory: str) -> str:
    """This process and its children write under ``<directory>/<role>-<pid>/``. The folders of
    processes that are gone (an earlier run, a worker stopped) are removed first: Prometheus
    reads their counters' drop as a restart. Returns the folder."""
    root = Path(directory)
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    for folder in root.glob("*-*"):
        pid = folder.name.rsplit("-", 1)[1]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
    mine = root / f"{role}-{os.getpid()}"
    shutil.rmtree(mine, ignore_errors=True)  # a pid used again: not the old process's values
    mine.mkdir(mode=0o700)
    os.environ[MULTIPROCESS_VARIABLE] = str(mine)
    return str(mine)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True
