"""One scheduler per database: an exclusive `flock` on `<database>.scheduler.lock`.

The kernel drops the lock when its process dies (no stale lease to wait out after a crash). Every
started bot also holds a shared `flock` on `<lock>.bots`, so a process without a scheduler (the
CLI) can tell "a bot stands by" from "no bot at all". flock locks belong to the open file, so two
SchedulerLocks conflict even inside one process (which is how the tests show two schedulers cannot
both run). Linux/macOS only; a database on a network file system is unsafe for SQLite anyway.
"""

from __future__ import annotations

import fcntl
import os
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import IO


def lock_path_for(database: Path | str) -> Path:
    """The lock file of a SQLite database (beside it), or of a PostgreSQL database named by its
    URL (in this user's state folder, one per URL). With PostgreSQL the flock elects one
    scheduler among the bots of one machine only: bots on several machines need leadership
    through the database itself (issue 25)."""
    if isinstance(database, Path):
        return database.with_name(database.name + ".scheduler.lock")
    import hashlib

    state = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    digest = hashlib.sha256(database.encode("utf-8")).hexdigest()[:16]
    return state / "clones" / f"postgresql-{digest}.scheduler.lock"


class SchedulerLock:
    """An exclusive, non-blocking `flock` on a file next to the database; beside it, `<lock>.bots`
    carries a shared lock of every started bot (holder or standing by)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.bots_path = path.with_name(path.name + ".bots")
        self._file: IO[str] | None = None
        self._bot_mark: IO[str] | None = None

    @property
    def held(self) -> bool:
        return self._file is not None

    def acquire(self) -> bool:
        if self._file is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        handle.seek(0)
        handle.truncate()
        started = datetime.now(UTC).isoformat(timespec="seconds")
        handle.write(f"pid {os.getpid()} on {socket.gethostname()} since {started}\n")
        handle.flush()
        self._file = handle
        return True

    def holder(self) -> str:
        """Who holds the lock, as its holder wrote it ("" when unknown)."""
        try:
            return self.path.read_text(encoding="utf-8").strip()
        except OSError:
            return ""

    def is_held_elsewhere(self) -> bool:
        """True while another open file (process or SchedulerLock) holds the lock."""
        if self._file is not None:
            return False
        return _locked(self.path)

    def mark_bot(self) -> None:
        """Say that a bot runs here (holding the scheduler or standing by to take it over)."""
        if self._bot_mark is not None:
            return
        self.bots_path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.bots_path.open("a+", encoding="utf-8")
        fcntl.flock(handle.fileno(), fcntl.LOCK_SH)  # shared: never waits for another bot
        self._bot_mark = handle

    def bots_elsewhere(self) -> bool:
        """True while a bot (other than this SchedulerLock's) is running on this database."""
        return self._bot_mark is None and _locked(self.bots_path)

    def release(self) -> None:
        for handle in (self._file, self._bot_mark):
            if handle is not None:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
                handle.close()
        self._file = None
        self._bot_mark = None


def _locked(path: Path) -> bool:
    """True while some open file holds a lock on `path` (an exclusive try fails)."""
    if not path.exists():
        return False
    with path.open("a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        return False
