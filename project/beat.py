"""Celery beat's scheduler for Mailroom: Celery's own file-backed schedule, kept where
CELERY_BEAT_SCHEDULE_FILENAME says (a private folder in the system's temporary directory unless
set), in a folder it creates. The file holds only when each job last ran: losing it costs one
early sweep, never an email.

The file is a pickle (shelve): whoever can write it can run code in beat. So its folder must
belong to this user (or root) and be writable by nobody else; /tmp itself is refused.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from celery.beat import PersistentScheduler


class Scheduler(PersistentScheduler):
    def setup_schedule(self):
        folder = Path(self.schedule_filename).parent
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            # lstat: a symlink (one another user made in /tmp and may re-point) is refused,
            # not followed; the folder itself must be ours and closed to others.
            status = os.lstat(folder)
        except OSError as exc:
            _refuse(f"celery beat cannot keep its schedule in {folder}: {exc.strerror}.")
        if stat.S_ISLNK(status.st_mode) or not stat.S_ISDIR(status.st_mode):
            _refuse(f"celery beat will not keep its schedule in {folder}: it is not a folder.")
        if status.st_uid not in (os.getuid(), 0) or status.st_mode & 0o022:
            _refuse(
                f"celery beat will not keep its schedule in {folder}: the folder belongs to "
                "another user or others may write to it."
            )
        super().setup_schedule()


def _refuse(reason: str):
    raise SystemExit(
        f"{reason} Set CELERY_BEAT_SCHEDULE_FILENAME to a file in a folder of this user's."
    )
