"""The connection and transaction core that every store runs on (sqlite_utils is used only in
migrations.py, to apply pending migrations: the stores' queries need nothing but `sqlite3`, and
importing sqlite_utils, which imports numpy, would cost every command about 0.1 s).

Threading: a `sqlite3` connection must not be shared by threads that use it at the same time, and
the service layer calls in from a worker pool plus Slack and scheduler threads. So every thread
gets its own connection (a `threading.local`), all of them on one WAL-mode file: readers never
block the single writer, and `busy_timeout` makes writers queue instead of failing. The same holds
across processes.

Transactions: connections run in driver autocommit mode (`isolation_level=None`) so nothing opens
a transaction behind our back; a single statement commits on its own, and multi-step work runs
in `transaction()`, which starts with `BEGIN IMMEDIATE`: it takes the write lock up front, so a
read-then-write (like picking free names) can neither interleave with another writer nor die with
SQLITE_BUSY while upgrading a read lock to a write lock.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final, Self

from storage.faults import ShmGuard, check_location, foreign_tables, refuse_foreign, translated
from storage.migrations import MIGRATIONS_TABLE, apply_migrations, migrations

BUSY_TIMEOUT_S: Final = 30.0


class Database:
    """One thread's connection: queries as dicts, statements as cursors. The connection runs in
    driver autocommit mode (see the module's docstring), so a statement is its own transaction
    unless `Core.transaction` opened one."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def query(self, sql: str, params: Sequence[object] = ()) -> Iterator[dict[str, Any]]:
        cursor = self.conn.execute(sql, params)
        keys = _unique([d[0] for d in cursor.description or ()])
        return (dict(zip(keys, row, strict=True)) for row in cursor)

    def execute(self, sql: str, params: Sequence[object] = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql, params)

    def enable_wal(self) -> None:
        if self.conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            self.conn.execute("PRAGMA journal_mode=wal")

    def close(self) -> None:
        self.conn.close()


def _unique(keys: list[str]) -> list[str]:
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


def _enable_wal(db: Database) -> None:
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
    """Per-thread connection and transaction nesting depth."""

    db: Database | None = None
    generation: int = -1
    savepoints: int = 0


class Core:
    """One SQLite file: per-thread connections, the write queue, transactions, migrations.

    Opening applies pending migrations, to a new file or one of ours only: a SQLite file of
    something else is refused, never migrated into. The stores (storage/*.py) add the queries;
    they reach SQLite only through `transaction()` and the `_rows`/`_row`/`_execute` helpers
    below, where a storage fault becomes a StorageError (storage/faults.py).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._local = _ThreadState()
        self._lock = threading.Lock()
        self._write_lock = threading.RLock()  # see _writing
        # Every connection opened, with its thread, so close() can close them all and
        # connections of finished threads can be closed instead of leaking.
        self._connections: list[tuple[threading.Thread, Database]] = []
        self._generation = 0  # bumped by close(): threads then reconnect on next use
        self._shm = ShmGuard(self.path)
        check_location(self.path)
        with self._faults():
            db = self._db()
            foreign = foreign_tables(db.conn, MIGRATIONS_TABLE, migrations.name)
        if foreign:
            self.close()
            raise refuse_foreign(self.path, foreign)
        with self._faults():
            _enable_wal(db)
        with self.transaction(), self._faults():
            apply_migrations(db)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close every connection this repository opened (in any thread).

        Call at shutdown, when no other thread is mid-query. Using the repository afterwards
        opens fresh connections.
        """
        with self._lock:
            for _, db in self._connections:
                db.close()
            self._connections.clear()
            self._generation += 1

    def _db(self) -> Database:
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
        db = Database(conn)
        with self._lock:
            alive = [(t, d) for t, d in self._connections if t.is_alive()]
            for thread, stale in self._connections:
                if not thread.is_alive():
                    stale.close()
            self._connections = [*alive, (threading.current_thread(), db)]
            local.db, local.generation, local.savepoints = db, self._generation, 0
        return db

    @contextmanager
    def _faults(self) -> Iterator[None]:
        """A statement's storage faults as StorageError; first, a WAL index that can no longer
        be written stops it before SQLite touches the file (see storage/faults.py)."""
        with translated(self.path):
            self._shm.check()
            yield

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Run a block atomically under the write lock (`BEGIN IMMEDIATE`).

        Nested use on one thread becomes a savepoint: an inner failure undoes only the inner
        block, and the outer transaction decides the commit. A rollback after a storage fault
        that failed too is left to SQLite (it rolls back a failed write itself) so that the
        first fault is the one reported.
        """
        with self._faults():
            conn = self._db().conn
        if conn.in_transaction:
            local = self._local
            local.savepoints += 1
            name = f"clones_sp{local.savepoints}"
            with self._faults():
                conn.execute(f"SAVEPOINT {name}")
            try:
                yield
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    if conn.in_transaction:  # some errors already rolled everything back
                        conn.execute(f"ROLLBACK TO {name}")
                        conn.execute(f"RELEASE {name}")
                raise
            else:
                with self._faults():
                    conn.execute(f"RELEASE {name}")
            finally:
                local.savepoints -= 1
            return
        with self._writing():
            with self._faults():
                conn.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                raise
            else:
                try:
                    with self._faults():
                        conn.execute("COMMIT")
                except BaseException:
                    with contextlib.suppress(sqlite3.Error):
                        if conn.in_transaction:
                            conn.execute("ROLLBACK")
                    raise

    @contextmanager
    def _writing(self) -> Iterator[None]:
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

    def _rows(self, sql: str, params: Sequence[object] = ()) -> list[dict[str, Any]]:
        with self._faults():
            return list(self._db().query(sql, params))

    def _row(self, sql: str, params: Sequence[object] = ()) -> dict[str, Any] | None:
        rows = self._rows(sql, params)
        return rows[0] if rows else None

    def _tuples(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        """Rows as plain tuples: for hot paths that would not use the column names."""
        with self._faults():
            return self._db().execute(sql, params).fetchall()

    def _execute(self, sql: str, params: Sequence[object] = ()) -> sqlite3.Cursor:
        with self._writing(), self._faults():
            return self._db().execute(sql, params)

    def _execute_many(self, sql: str, rows: Iterable[Sequence[object]]) -> None:
        with self._writing(), self._faults():
            self._db().conn.executemany(sql, rows)
