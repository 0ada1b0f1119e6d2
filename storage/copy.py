"""`clones db copy SOURCE TARGET`: a SQLite database copied into an empty PostgreSQL one.

Both are opened as the bot opens them (so both carry every migration of this version: the source
is brought up to date first, as a bot starting on it would), then every table of the source is
written into the target in one transaction under the target's write lock: all of it or, on any
fault, nothing. A target holding rows already is refused before anything is written.

Ids are kept (the identity columns are BY DEFAULT for this), then each table's sequence is moved
past the highest id the source ever gave (SQLite's `sqlite_sequence`, which remembers ids of
deleted rows too: audit details cite ids, so none is ever handed out twice). A column that refers
to its own table (`runs.superseded_by`, a run superseded by a later one) is written after its
table's rows, so no row refers to one not written yet. Rows go in with COPY, in the order of the
foreign keys between the tables (found in the source, so tables later migrations add come along).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from graphlib import CycleError, TopologicalSorter
from pathlib import Path
from typing import Any

from bot.domain.errors import StorageError
from bot.domain.results import DatabaseCopied
from storage.core import DEFAULT_PASSWORD_ENV, Core
from storage.migrations import MIGRATIONS_TABLE


class DatabaseCopier:
    """Implements `bot.ports.DatabaseCopier`; the target's password from `password_env`."""

    def __init__(
        self,
        *,
        password_env: str = DEFAULT_PASSWORD_ENV,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.password_env = password_env
        self.environ = os.environ if environ is None else environ

    def copy(self, source: Path, target: str) -> DatabaseCopied:
        with (
            Core(source) as src,
            Core(target, password_env=self.password_env, environ=self.environ) as dst,
        ):
            if src.dialect != "sqlite" or dst.dialect != "postgresql":
                raise StorageError("db copy copies a SQLite file into a PostgreSQL database.")
            tables = copy_tables(src, dst)
            return DatabaseCopied(source=str(source), target=dst.label, tables=tables)


def copy_tables(src: Core, dst: Core) -> tuple[tuple[str, int], ...]:
    """Every table of `src` into `dst` (see the module's docstring); (table, rows) in order."""
    tables = _in_order(src)
    copied: list[tuple[str, int]] = []
    with dst.transaction(), dst._using() as db:
        filled = [(t, n) for t in tables if (n := _count(db, t))]
        if filled:
            shown = ", ".join(f"{t} {n}" for t, n in filled[:4])
            raise StorageError(
                f"The database {dst.label} holds rows already ({shown}): nothing was copied. "
                "Copy into a new, empty database (createdb -O USER NAME)."
            )
        for table in tables:
            copied.append((table, _copy_table(src, db, table)))
        for table, rows in copied:
            if _count(db, table) != rows:  # pragma: no cover - COPY writes every row or fails
                raise StorageError(f"Copying {table} into {dst.label} lost rows; nothing copied.")
        _move_sequences(src, db, tables)
    with dst._using() as db:  # outside the transaction (VACUUM cannot run in one)
        for table in tables:
            # The planner's statistics and the visibility map now, not at autovacuum's next
            # visit: status counts clones with an index-only scan from the first read.
            db.script(f"VACUUM (ANALYZE) {table}")
    return tuple(copied)


def _in_order(src: Core) -> list[str]:
    """The source's tables, each after the tables its foreign keys refer to."""
    names = [
        str(row[0])
        for row in src._tuples(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            " AND name != ? ORDER BY name",
            (MIGRATIONS_TABLE,),
        )
    ]
    graph: dict[str, set[str]] = {name: set() for name in names}
    for name in names:
        for fk in src._rows(f"SELECT * FROM pragma_foreign_key_list('{name}')"):
            if fk["table"] != name and fk["table"] in graph:
                graph[name].add(fk["table"])
    try:
        return list(TopologicalSorter(graph).static_order())
    except CycleError as exc:  # pragma: no cover - the schema has none
        raise StorageError(f"The tables refer to each other in a cycle ({exc.args[1]}).") from exc


def _copy_table(src: Core, db: Any, table: str) -> int:
    """Write `table`'s rows into the target (connection `db`); how many."""
    columns = [
        str(row["name"]) for row in src._rows(f"SELECT name FROM pragma_table_info('{table}')")
    ]
    missing = set(columns) - _target_columns(db, table)
    if missing:
        raise StorageError(
            f"The target has no column {', '.join(sorted(missing))} in {table}: it was made by "
            "another version of clones. Copy with the version that made the source."
        )
    own = {
        str(fk["from"])
        for fk in src._rows(f"SELECT * FROM pragma_foreign_key_list('{table}')")
        if fk["table"] == table
    }
    later = [i for i, c in enumerate(columns) if c in own]  # refers to its own table
    listed = ", ".join(columns)
    deferred: list[tuple[object, ...]] = []
    rows = 0
    with (
        src._using() as sdb,
        db.conn.cursor() as cursor,
        cursor.copy(f"COPY {table} ({listed}) FROM STDIN") as copy,
    ):
        for row in sdb.execute(f"SELECT {listed} FROM {table}"):
            values = list(row)
            for i in later:
                if values[i] is not None:
                    deferred.append((columns[i], values[i], values[columns.index("id")]))
                    values[i] = None
            copy.write_row(values)
            rows += 1
    for column, value, row_id in deferred:
        db.execute(f"UPDATE {table} SET {column} = ? WHERE id = ?", (value, row_id))
    return rows


def _target_columns(db: Any, table: str) -> set[str]:
    return {
        str(row["column_name"])
        for row in db.query(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name = ?",
            (table,),
        )
    }


def _count(db: Any, table: str) -> int:
    (row,) = db.query(f"SELECT count(*) AS n FROM {table}")
    return int(row["n"])


def _move_sequences(src: Core, db: Any, tables: list[str]) -> None:
    """Each identity sequence past the highest id the source table ever gave."""
    given: dict[str, int] = {}
    if src._rows("SELECT 1 AS one FROM sqlite_master WHERE name = 'sqlite_sequence'"):
        given = {str(n): int(s) for n, s in src._tuples("SELECT name, seq FROM sqlite_sequence")}
    for table in tables:
        if "id" not in _target_columns(db, table):  # run_clones, run_messages, ...
            continue
        (found,) = db.query("SELECT pg_get_serial_sequence(?, 'id') AS seq", (table,))
        if found["seq"] is None:  # an id that is no identity column
            continue
        (top,) = db.query(f"SELECT coalesce(max(id), 0) AS n FROM {table}")
        last = max(int(top["n"]), given.get(table, 0))
        # setval(seq, 1, false): the next id is 1 (an empty table that never had a row)
        db.execute("SELECT setval(?, ?, ?)", (found["seq"], max(last, 1), last > 0))
