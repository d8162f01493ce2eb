"""Where gunicorn's and the Celery worker's processes keep their Prometheus values
(emails/metrics.py, prometheus-client's multiprocess mode), set up before anything imports
prometheus-client: by gunicorn's arbiter (project/gunicorn.conf.py) and by `celery worker`
(project/celery.py). The folder is EMAILS_METRICS_DIR (project/settings.py).

Each gunicorn and each `celery worker` gets a folder of its own, ``<role>-<random>/``, and
holds a lock on its ``.owner`` file for as long as it (or a child) runs: liveness is that lock,
not a pid, so containers sharing the folder (each with its own pid 1) never take each other's
files. A folder whose lock is free belongs to a process that is gone: its values are added
to ``archive/`` and the folder removed, so a counter never goes down (which Prometheus would
read as a restart and count the rest as new increase).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import stat
import tempfile
import uuid
from collections import defaultdict
from pathlib import Path

DEFAULT_DIRECTORY = os.path.join(tempfile.gettempdir(), f"mailroom-{os.getuid()}", "metrics")
# prometheus-client writes file-backed values when this names a folder as it is imported.
MULTIPROCESS_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
ARCHIVE = "archive"
OWNER = ".owner"

_held: list[int] = []  # the lock's file descriptors: open for the life of the process


class UnsafeFolder(Exception):
    """EMAILS_METRICS_DIR cannot be used; the text says why, for one line on stderr."""


def start_role(role: str, directory: str) -> str:
    """Make this process's folder under ``directory``, lock it, archive the folders of
    processes that are gone, and point prometheus-client at it. Returns the folder; raises
    UnsafeFolder when the folder (or a folder above it) is a symlink, another user's, or one
    anyone may write to (another local user could plant or read values), or cannot be made."""
    root = Path(directory)
    try:
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        _check(root)
        mine = root / f"{role}-{uuid.uuid4().hex[:12]}"
        mine.mkdir(mode=0o700)
        owner = os.open(mine / OWNER, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(owner, fcntl.LOCK_EX)
        _held.append(owner)
        with _maintenance(root):
            for folder in root.iterdir():
                if folder.is_dir() and folder.name != ARCHIVE and _gone(folder):
                    _archive(folder, root / ARCHIVE)
    except OSError as exc:
        raise UnsafeFolder(f"EMAILS_METRICS_DIR={root}: {exc.strerror or exc}") from None
    os.environ[MULTIPROCESS_VARIABLE] = str(mine)
    return str(mine)


def _check(root: Path) -> None:
    status = os.lstat(root)
    if stat.S_ISLNK(status.st_mode) or not stat.S_ISDIR(status.st_mode):
        raise UnsafeFolder(f"EMAILS_METRICS_DIR={root} is not a folder")
    for folder in (root, *root.parents):
        status = os.stat(folder)
        mine = status.st_uid in (os.getuid(), 0)
        sticky = bool(status.st_mode & stat.S_ISVTX)  # /tmp: others may not replace ours
        if not mine or (status.st_mode & 0o022 and not sticky):
            raise UnsafeFolder(
                f"EMAILS_METRICS_DIR={root}: {folder} belongs to another user or others may "
                "write to it"
            )


class _maintenance:
    """One process at a time archives and removes folders."""

    def __init__(self, root: Path):
        self.path = root / ".lock"

    def __enter__(self):
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def __exit__(self, *exc):
        os.close(self.fd)  # releases the lock


def _gone(folder: Path) -> bool:
    try:
        fd = os.open(folder / OWNER, os.O_RDWR)
    except FileNotFoundError:
        return True  # never locked: a folder left half made
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False  # its process, or a child of it, still runs
    finally:
        os.close(fd)
    return True


def _archive(folder: Path, archive: Path) -> None:
    """Add the folder's counters and histograms to the archive's, then remove the folder."""
    from prometheus_client.mmap_dict import MmapedDict

    totals: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for path in folder.glob("*.db"):
        kind = path.name.split("_", 1)[0]
        if kind not in ("counter", "histogram"):
            continue  # Mailroom keeps no gauge in files
        try:
            values = MmapedDict.read_all_values_from_file(str(path))
        except Exception:  # noqa: S112  (an empty or torn file: nothing to keep)
            continue
        for key, value, _timestamp, _position in values:
            totals[kind][key] += value
    if totals:
        archive.mkdir(mode=0o700, exist_ok=True)
        for kind, values in totals.items():
            store = MmapedDict(str(archive / f"{kind}_archive.db"))
            try:
                for key, value in values.items():
                    store.write_value(key, store.read_value(key)[0] + value, 0.0)
            finally:
                store.close()
    shutil.rmtree(folder, ignore_errors=True)
