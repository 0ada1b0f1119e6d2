"""The SQLite backend: one file, a connection per thread, WAL, one writer at a time.

Threading: a `sqlite3` connection must not be shared by threads that use it at the same time, and
the service layer calls in from a worker pool plus Slack and scheduler threads. So every thread
gets its own connection (a `threading.local` of the core), all of them on one WAL-mode file:
readers never block the single writer, and `busy_timeout` makes writers queue instead of failing.
The same holds across processes.

Transactions: connections run in driver autocommit mode (`isolation_level=None`) so nothing opens
a transaction behind our back; a single statement commits on its own, and multi-step work runs
in `Core.transaction()`, which here starts with `BEGIN IMMEDIATE`: it takes the write lock up
front, so a read-then-write (like picking free names) can neither interleave with another writer
nor die with SQLITE_BUSY while upgrading a read lock to a write lock.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final, TypeVar

from storage.dialect import Dialect
from storage.faults import (
    IntegrityViolation,
    ShmGuard,
    check_location,
    committed,
    foreign_tables,
    refuse_foreign,
    translated,
)
from storage.migrations import MIGRATIONS_TABLE, migrations

T = TypeVar("T")
BUSY_TIMEOUT_S: Final = 30.0


class SqliteDatabase:
    """One thread's connection: queries as dicts, statements as cursors. The connection runs in
    driver autocommit mode (see the module's docstring), so a statement is its own transaction
    unless `Core.transaction` opened one."""

    dialect: Dialect = "sqlite"

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def query(self, sql: str, params: Sequence[object] = ()) -> Iterator[dict[str, Any]]:
        cursor = self.conn.execute(sql, params)
        keys = unique_keys([d[0] for d in cursor.description or ()])
        return (dict(zip(keys, row, strict=True)) for row in cursor)

    def execute(self, sql: str, params: Sequence[object] = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql, params)

    def executemany(self, sql: str, rows: Iterable[Sequence[object]]) -> None:
        self.conn.executemany(sql, rows)

    def insert(self, sql: str, params: Sequence[object] = ()) -> int:
        rowid = self.conn.execute(sql, params).lastrowid
        assert rowid is not None
        return rowid

    def insert_many(self, sql: str, rows: Sequence[Sequence[object]]) -> list[int]:
        return [self.insert(sql, row) for row in rows]

    def script(self, sql: str) -> None:
        """A statement of the core's own (BEGIN, SAVEPOINT ...): no parameters."""
        self.conn.execute(sql)

    @property
    def in_transaction(self) -> bool:
        return self.conn.in_transaction

    def enable_wal(self) -> None:
        if self.conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            self.conn.execute("PRAGMA journal_mode=wal")

    def close(self) -> None:
        self.conn.close()


def unique_keys(keys: list[str]) -> list[str]:
    """Column names made unique as sqlite_utils does (a repeated name gets _2, _3...)."""
    if len(set(keys)) == len(keys):
        return keys
    taken, seen, out = set(keys), set(), []
    for key in keys:
        new, n = key, 2
        while key in seen and (new in seen or new in taken):
            new, n = f"{key}_{n}", n + 1
        seen.add(new)
        out.append(new)
    return out


def _enable_wal(db: SqliteDatabase) -> None:
    """Switch the file to WAL (persistent in the file; must run outside a transaction).

    While several connections open a new file at once, the switch can fail with SQLITE_BUSY
    without SQLite consulting the busy handler, so wait and retry here instead.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            db.enable_wal()
            return
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorname != "SQLITE_BUSY" or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class _ThreadState(threading.local):
    """Per-thread connection."""

    db: SqliteDatabase | None = None
    generation: int = -1


class SqliteBackend:
    """One SQLite file: per-thread connections and the in-process write queue."""

    dialect: Dialect = "sqlite"
    driver_error: type[Exception] = sqlite3.Error

    def __init__(self, path: Path) -> None:
        self.path = path
        self.label = str(path)
        self._local = _ThreadState()
        self._lock = threading.Lock()
        self._write_lock = threading.RLock()  # see writing()
        # Every connection opened, with its thread, so close() can close them all and
        # connections of finished threads can be closed instead of leaking.
        self._connections: list[tuple[threading.Thread, SqliteDatabase]] = []
        self._generation = 0  # bumped by close(): threads then reconnect on next use
        self._shm = ShmGuard(path)

    def open(self, migrate: Any) -> None:
        """Check the file is ours (or new), switch it to WAL, then `migrate()` (in a transaction
        of the core)."""
        check_location(self.path)
        with self.faults():
            db = self.db()
            foreign = foreign_tables(db.conn, MIGRATIONS_TABLE, migrations.name)
        if foreign:
            self.close()
            raise refuse_foreign(self.path, foreign)
        with self.faults():
            _enable_wal(db)
        migrate()

    def close(self) -> None:
        with self._lock:
            for _, db in self._connections:
                db.close()
            self._connections.clear()
            self._generation += 1

    def db(self) -> SqliteDatabase:
        """This thread's connection (opened on first use)."""
        local = self._local
        if local.db is not None and local.generation == self._generation:
            return local.db
        # check_same_thread=False only so close() may close it from another thread; in use,
        # each connection stays on the thread that opened it.
        conn = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
        conn.execute("PRAGMA foreign_keys = ON")  # per connection, off by default in SQLite
        # In WAL mode NORMAL is corruption-safe and skips an fsync per commit; a power cut may
        # lose the last commits, which reconciliation against vCenter recovers.
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA recursive_triggers = on")  # as sqlite_utils' Database sets it
        db = SqliteDatabase(conn)
        with self._lock:
            alive = [(t, d) for t, d in self._connections if t.is_alive()]
            for thread, stale in self._connections:
                if not thread.is_alive():
                    stale.close()
            self._connections = [*alive, (threading.current_thread(), db)]
            local.db, local.generation = db, self._generation
        return db

    @contextmanager
    def using(self) -> Iterator[SqliteDatabase]:
        yield self.db()

    def read(self, fn: Callable[[SqliteDatabase], T]) -> T:
        return fn(self.db())

    def current(self) -> SqliteDatabase | None:
        """This thread's connection when a transaction is open on it."""
        db = self.db()
        return db if db.in_transaction else None

    @contextmanager
    def faults(self) -> Iterator[None]:
        """A statement's storage faults as StorageError (a failed constraint as
        IntegrityViolation); first, a WAL index that can no longer be written stops it before
        SQLite touches the file (see storage/faults.py)."""
        with translated(self.path):
            self._shm.check()
            try:
                yield
            except sqlite3.IntegrityError as exc:
                raise IntegrityViolation(str(exc), unique="UNIQUE" in str(exc)) from exc

    @contextmanager
    def begin(self, *, durable: bool = False) -> Iterator[SqliteDatabase]:
        """An outermost transaction: `BEGIN IMMEDIATE` (the write lock, up front) ... COMMIT,
        ROLLBACK on an exception. A rollback after a storage fault that failed too is left to
        SQLite (it rolls back a failed write itself) so that the first fault is the one
        reported. `durable` changes nothing here: a SQLite file's durability is its connection's
        (synchronous=NORMAL), and a bot on SQLite shares one machine with its database."""
        with self.faults():
            db = self.db()
        with self.writing():
            with self.faults():
                db.script("BEGIN IMMEDIATE")
            with committed(db, self.faults, self.rollback_quietly):
                yield db

    def rollback_quietly(self, db: SqliteDatabase, *statements: str) -> None:
        with contextlib.suppress(sqlite3.Error):
            if db.in_transaction:  # some errors already rolled everything back
                for statement in statements:
                    db.script(statement)

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Writers in this process take turns on a lock before asking SQLite for its write lock.

        SQLite's busy handler waits for a held write lock by sleeping in growing steps (up to
        100 ms each), so many threads writing at once (a deployment's clone updates and a burst
        of Slack requests, each recording its replay key) made each other wait hundreds of ms
        more than the writes took; a lock queue wakes the next writer at once. Other processes
        still meet SQLite's lock and busy timeout. Past that timeout the write goes ahead
        without the lock, so a misuse can only ever be slow, never hang.
        """
        acquired = self._write_lock.acquire(timeout=BUSY_TIMEOUT_S)
        try:
            yield
        finally:
            if acquired:
                self._write_lock.release()
