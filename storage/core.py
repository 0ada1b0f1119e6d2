"""The connection and transaction core that every store runs on, over one of two backends:

- a SQLite file (storage/sqlite.py): a connection per thread, WAL, `BEGIN IMMEDIATE`;
- a PostgreSQL database (storage/postgres.py): psycopg 3 and a small pool, each write
  transaction under one advisory lock.

Both give the stores the same guarantees: a statement outside a transaction commits on its own;
`transaction()` makes a block atomic and the only writer until it ends (so a read-then-write can
never interleave with another writer, in this process or another); nested, it is a savepoint.
The stores write one SQL text for both (storage/dialect.py says where the dialects differ) and
reach the database only through `transaction()` and the `_rows`/`_row`/`_tuples`/`_execute`/
`_insert` helpers below, where a storage fault becomes a StorageError and a refused constraint an
IntegrityViolation (storage/faults.py).

sqlite_utils is used only in migrations.py, to apply pending migrations to a SQLite file: the
stores' queries need nothing but the drivers, and importing sqlite_utils, which imports numpy,
would cost every command about 0.1 s. psycopg is imported only for a PostgreSQL database.

On PostgreSQL a statement that fails inside a transaction aborts the whole transaction (SQLite
fails only the statement): a store that expects a statement may fail and wants to go on must run
it in a nested `transaction()` (a savepoint). None does today: the two that catch a refused
constraint (`update_clone`, `assign`) end their transaction with an error.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final, Protocol, Self

from storage.migrations import apply_migrations
from storage.postgres import PostgresBackend, is_postgres_url
from storage.sqlite import SqliteBackend, SqliteDatabase

DEFAULT_PASSWORD_ENV: Final = "CLONES_DATABASE_PASSWORD"


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...


class _Savepoints:
    """Per-core nesting depth of this thread's transaction (savepoint names)."""

    def __init__(self) -> None:
        self._local = threading.local()

    @property
    def depth(self) -> int:
        return int(getattr(self._local, "depth", 0))

    @depth.setter
    def depth(self, value: int) -> None:
        self._local.depth = value


class Core:
    """One database, SQLite or PostgreSQL: connections, transactions, migrations.

    `location` is a SQLite file's path, or a `postgresql://USER@HOST:PORT/DB` URL whose password
    is read from the environment variable `password_env`. Opening applies pending migrations, to
    a new database or one of ours only: a database of something else is refused, never migrated
    into.
    """

    def __init__(
        self,
        location: str | Path,
        *,
        password_env: str = DEFAULT_PASSWORD_ENV,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self._savepoints = _Savepoints()
        self._backend: SqliteBackend | PostgresBackend
        if is_postgres_url(location):
            self._backend = PostgresBackend(
                str(location),
                password_env=password_env,
                environ=os.environ if environ is None else environ,
            )
        else:
            self._backend = SqliteBackend(Path(location))
        self.location: str | Path = location if is_postgres_url(location) else Path(location)
        self._backend.open(self._migrate)

    def _migrate(self) -> None:
        with self.transaction(), self._using() as db:
            apply_migrations(db)

    @property
    def dialect(self) -> str:
        """ "sqlite" or "postgresql"."""
        return self._backend.dialect

    @property
    def label(self) -> str:
        """How messages name this database: its path, or its URL without a password."""
        return self._backend.label

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close every connection this repository opened (in any thread).

        Call at shutdown, when no other thread is mid-query. Using the repository afterwards
        opens fresh connections.
        """
        self._backend.close()

    def _db(self) -> SqliteDatabase:
        """This thread's SQLite connection (tests and SQLite-only tools)."""
        assert isinstance(self._backend, SqliteBackend), "a SQLite database only"
        with self._backend.faults():
            return self._backend.db()

    @contextmanager
    def _using(self) -> Iterator[Any]:
        """The connection for a statement, inside the backend's fault translation."""
        with self._backend.faults(), self._backend.using() as db:
            yield db

    @contextmanager
    def transaction(self, *, durable: bool = False) -> Iterator[None]:
        """Run a block atomically, as the only writer until it ends.

        Nested use on one thread becomes a savepoint: an inner failure undoes only the inner
        block, and the outer transaction decides the commit. `durable`: on PostgreSQL the commit
        survives a crash of the database server's machine too (for a lease, a fencing epoch;
        storage/postgres.py says why the others need not); nested, it makes the outer one so.
        """
        backend = self._backend
        with backend.faults():
            held = backend.current()
        if held is None:
            with backend.begin(durable=durable):
                yield
            return
        if durable and held.dialect == "postgresql":
            with backend.faults():
                held.script("SET LOCAL synchronous_commit = on")
        savepoints = self._savepoints
        savepoints.depth += 1
        name = f"clones_sp{savepoints.depth}"
        try:
            with backend.faults():
                held.script(f"SAVEPOINT {name}")
            try:
                yield
            except BaseException:
                backend.rollback_quietly(held, f"ROLLBACK TO {name}", f"RELEASE {name}")  # type: ignore[arg-type]
                raise
            else:
                with backend.faults():
                    held.script(f"RELEASE {name}")
        finally:
            savepoints.depth -= 1

    @contextmanager
    def _writer(self) -> Iterator[Any]:
        """The connection for a write: on SQLite, after this process's earlier writers; on
        PostgreSQL, inside a write transaction (its own when none is open)."""
        backend = self._backend
        if isinstance(backend, PostgresBackend) and backend.current() is None:
            with self.transaction(), self._using() as db:
                yield db
            return
        with backend.writing(), self._using() as db:
            yield db

    def _rows(self, sql: str, params: Sequence[object] = ()) -> list[dict[str, Any]]:
        with self._backend.faults():
            return self._backend.read(lambda db: list(db.query(sql, params)))

    def _row(self, sql: str, params: Sequence[object] = ()) -> dict[str, Any] | None:
        rows = self._rows(sql, params)
        return rows[0] if rows else None

    def _tuples(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        """Rows as plain tuples: for hot paths that would not use the column names."""
        with self._backend.faults():
            return self._backend.read(lambda db: list(db.execute(sql, params).fetchall()))

    def _execute(self, sql: str, params: Sequence[object] = ()) -> Cursor:
        with self._writer() as db:
            cursor: Cursor = db.execute(sql, params)
            return cursor

    def _in_transaction(self) -> bool:
        """True inside a transaction this thread opened (`transaction`)."""
        with self._backend.faults():
            return self._backend.current() is not None

    def _write_alone(
        self, sql: str, params: Sequence[object] = ()
    ) -> tuple[list[dict[str, Any]], int]:
        """One write statement (a RETURNING clause's rows and the row count back): on
        PostgreSQL outside a transaction, its own write transaction in as few round trips as
        the write lock allows (`PostgresBackend.write_alone`); otherwise as `_execute`."""
        backend = self._backend
        if isinstance(backend, PostgresBackend) and backend.current() is None:
            with backend.faults():
                return backend.write_alone(sql, params)
        with self._writer() as db:
            cursor = db.execute(sql, params)
            keys = [d[0] for d in cursor.description or ()]
            rows = [dict(zip(keys, row, strict=True)) for row in cursor.fetchall()] if keys else []
            return rows, cursor.rowcount

    def _insert(self, sql: str, params: Sequence[object] = ()) -> int:
        """An INSERT into a table with an `id` key; the new row's id."""
        with self._writer() as db:
            return int(db.insert(sql, params))

    def _insert_many(self, sql: str, rows: Sequence[Sequence[object]]) -> list[int]:
        """Many INSERTs of one statement into a table with an `id` key; the new rows' ids, in
        order (PostgreSQL sends them in one round trip, a pipeline)."""
        with self._writer() as db:
            return list(db.insert_many(sql, rows))

    def _execute_many(self, sql: str, rows: Iterable[Sequence[object]]) -> None:
        with self._writer() as db:
            db.executemany(sql, rows)
