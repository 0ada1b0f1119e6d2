"""Storage faults as the operator meets them: one sentence saying what is wrong with which file and
what to do (`StorageError`), never a traceback. A full disk, a read-only or damaged database, a
path that is a folder, and a SQLite file that is not the bot's database each have their own.

A database made read-only while the bot has it open is the one fault SQLite cannot report: in
WAL mode every connection maps the `-shm` file (the WAL index) into memory, and when the file
turns immutable (`chattr +i`) or its filesystem is remounted read-only after an error, the
kernel answers SQLite's next write into that mapping with SIGBUS (ext4 refuses page faults on an
immutable file since Linux 5.3), which kills the process without a word. So before each
statement the core checks that the `-shm` file can still be written (`ShmGuard`, one `access()`
call) and raises a StorageError instead; the run stays recorded as it was, for `clones resume`.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from bot.domain.errors import StorageError


class IntegrityViolation(Exception):
    """A constraint refused a write, on either backend (the stores turn it into their own
    errors); `unique`: it was a unique index or key."""

    def __init__(self, message: str, *, unique: bool) -> None:
        super().__init__(message)
        self.unique = unique


_RESUME = "then run the command again (`clones resume` finishes a run that stopped)"


def explain(exc: sqlite3.DatabaseError, path: Path) -> StorageError:
    """The sqlite3 error `exc` on the database `path`, as one sentence."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    if name == "SQLITE_FULL":
        what = f"cannot be written: the disk is full. Free space on its disk, {_RESUME}"
    elif name.startswith("SQLITE_READONLY"):
        what = (
            "is read-only: this user must be able to write the file and its folder (SQLite "
            f"keeps {path.name}-wal and {path.name}-shm beside it). Make them writable, {_RESUME}"
        )
    elif name.startswith("SQLITE_CANTOPEN"):
        what = (
            "cannot be opened: check that its folder exists and that this user may read and "
            "write there"
        )
    elif name == "SQLITE_NOTADB":
        what = (
            "is not a SQLite database (the file holds something else). Point [clones] database "
            "at the bot's own database, or move this file away to start a new one"
        )
    elif name.startswith("SQLITE_CORRUPT"):
        what = (
            f"is damaged ({exc}). Restore it from a backup, or move it away to start a new one "
            "(`clones orphans` then finds the clones the bot made)"
        )
    elif name.startswith("SQLITE_IOERR"):
        what = (
            f"could not be read or written (disk I/O error, {name}): check the disk (dmesg), "
            f"its free space and the file's permissions, {_RESUME}"
        )
    elif name in ("SQLITE_BUSY", "SQLITE_LOCKED") or name.startswith("SQLITE_BUSY"):
        what = (
            "stayed locked by another process longer than the bot waits; try again when the "
            "other work (a deployment, a backup) is done"
        )
    elif name in ("SQLITE_PERM", "SQLITE_AUTH"):
        what = f"may not be written by this user ({exc}); check the file's permissions"
    else:
        what = f"failed ({exc})"
    return StorageError(f"The database {path} {what}.")


@contextmanager
def committed(
    db: Any,
    faults: Callable[[], AbstractContextManager[object]],
    rollback: Callable[[Any, str], None],
) -> Iterator[None]:
    """The end of a transaction on `db`, either backend: COMMIT after the block, or ROLLBACK
    when it raised or when COMMIT itself failed (`rollback` stays quiet about a connection that
    already rolled back or broke, so the first fault is the one reported)."""
    try:
        yield
    except BaseException:
        rollback(db, "ROLLBACK")
        raise
    else:
        try:
            with faults():
                db.script("COMMIT")
        except BaseException:
            rollback(db, "ROLLBACK")
            raise


@contextmanager
def translated(path: Path) -> Iterator[None]:
    """Storage faults in the block become StorageError. A constraint that failed
    (IntegrityError, which the stores turn into their own errors) and a misuse of the driver
    (ProgrammingError: a bug) pass unchanged."""
    try:
        yield
    except (sqlite3.IntegrityError, sqlite3.ProgrammingError):
        raise
    except sqlite3.DatabaseError as exc:
        raise explain(exc, path) from exc
    except OSError as exc:  # the file or its folder, before SQLite opened it
        raise StorageError(
            f"The database {path} cannot be used ({exc.strerror or exc}): check the path and "
            "its folder's permissions."
        ) from exc


class ShmGuard:
    """Refuses a statement once the WAL index (`-shm`) can no longer be written (see the
    module's docstring): a StorageError instead of SIGBUS."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.shm = str(path.with_name(path.name + "-shm"))

    def check(self) -> None:
        if os.access(self.shm, os.W_OK) or not os.path.lexists(self.shm):
            return
        raise StorageError(
            f"The database {self.path} has become read-only ({self.path.name}-shm can no longer be "
            "written: the file was made immutable, or its filesystem was remounted read-only, "
            "often after a disk error); nothing more was written. Make it writable again, "
            f"{_RESUME}."
        )


def check_location(path: Path) -> None:
    """A database path that cannot be a database file; its folder, made if missing."""
    try:
        _check_location(path)
    except (OSError, ValueError) as exc:  # a name too long, a NUL, a folder we may not read
        raise StorageError(
            f"The database {path} cannot be used ({getattr(exc, 'strerror', None) or exc}): "
            "check the path and its folder's permissions."
        ) from None


def _check_location(path: Path) -> None:
    if "\0" in str(path):
        raise ValueError("the path holds a NUL character")
    if path.is_dir():
        raise StorageError(
            f"The database {path} is a folder, not a file: set [clones] database to a file in "
            f"it, e.g. {path / 'clones.db'}."
        )
    blocking = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise StorageError(
            f"The database {path} cannot be made: {blocking} is a file, not a folder; set "
            "[clones] database to a file in a folder."
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(
            f"The folder {path.parent} for the database cannot be made ({exc.strerror or exc}); "
            "create it, or set [clones] database to a file in a folder this user may write."
        ) from None


def foreign_tables(conn: sqlite3.Connection, migrations_table: str, ours: str) -> list[str]:
    """The tables of a SQLite file that is not a clones database (no record of our migrations in
    `migrations_table`); [] for ours, and for a file with no tables yet."""
    names = [
        str(row[0])
        for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    ]
    if not names:
        return []
    if migrations_table in names:
        try:
            recorded = conn.execute(
                f"SELECT 1 FROM {migrations_table} WHERE migration_set = ? LIMIT 1", (ours,)
            ).fetchone()
        except sqlite3.OperationalError:  # another tool's table of that name
            recorded = None
        if recorded:
            return []
    return sorted(names)


def refuse_foreign(path: Path, tables: list[str]) -> StorageError:
    shown = ", ".join(tables[:5]) + (", ..." if len(tables) > 5 else "")
    return StorageError(
        f"The database {path} is a SQLite database of something else (tables {shown}), not one "
        "of clones: nothing was written to it. Set [clones] database to a new file (e.g. "
        "clones.db) or to the bot's own database."
    )
