"""Tests' own access to a database, beside the bot's (SQLite's sqlite3, PostgreSQL's psycopg):
what is stored is what the next process sees. `location` is a SQLite path or a postgresql://
URL (the password from the environment, as the bot reads it)."""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from storage.dialect import to_postgres
from storage.faults import IntegrityViolation
from tests.postgres import PASSWORD_ENV

# A test module runs on both backends with `pytestmark = BOTH_BACKENDS` (see tests/conftest.py).
BOTH_BACKENDS = pytest.mark.backends("sqlite", "postgresql")


def is_postgres(location: str | Path) -> bool:
    return str(location).startswith("postgresql://")


@contextmanager
def connect(location: str | Path) -> Iterator[Any]:
    """A driver connection in autocommit mode."""
    if is_postgres(location):
        import psycopg

        with psycopg.connect(
            str(location), password=os.environ.get(PASSWORD_ENV), autocommit=True
        ) as conn:
            yield conn
        return
    lite = sqlite3.connect(location, isolation_level=None)  # autocommit, as PostgreSQL's
    try:
        yield lite
    finally:
        lite.close()


def run(conn: Any, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    """Run `sql` (with `?` placeholders) on a connection of `connect`; its rows."""
    if isinstance(conn, sqlite3.Connection):
        return conn.execute(sql, params).fetchall()
    cursor = conn.execute(to_postgres(sql) if params else sql, params or None)
    return cursor.fetchall() if cursor.description else []


def raw(
    location: str | Path, sql: str, params: tuple[object, ...] = ()
) -> list[tuple[object, ...]]:
    with connect(location) as conn:
        return run(conn, sql, params)


def count(location: str | Path, table: str) -> object:
    return raw(location, f"SELECT count(*) FROM {table}")[0][0]


def tables(location: str | Path) -> set[str]:
    if is_postgres(location):
        sql = "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
    else:
        sql = "SELECT name FROM sqlite_master WHERE type = 'table'"
    return {str(row[0]) for row in raw(location, sql)}


def indexes(location: str | Path) -> dict[str, str]:
    """Index name -> its definition (whitespace collapsed)."""
    if is_postgres(location):
        sql = "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema()"
    else:
        sql = "SELECT name, coalesce(sql, '') FROM sqlite_master WHERE type = 'index'"
    return {str(name): " ".join(str(text).split()) for name, text in raw(location, sql)}


@contextmanager
def fault(location: str | Path, event: str, when: str = "TRUE") -> Iterator[None]:
    """Make the database refuse one step of a write (a trigger that raises, as a full disk or
    an I/O error would): whatever the method wrote before that step must be undone with it.
    `event` as "INSERT ON run_clones" or "UPDATE OF state ON runs"; `when` a condition on NEW
    and OLD (a subquery is fine)."""
    with connect(location) as conn:
        if is_postgres(location):
            run(
                conn,
                "CREATE FUNCTION injected_fault() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
                f" IF {when} THEN RAISE EXCEPTION 'injected fault' USING ERRCODE = '23000';"
                " END IF; RETURN NEW; END $$",
            )
            run(
                conn,
                f"CREATE TRIGGER injected_fault BEFORE {event} FOR EACH ROW"
                " EXECUTE FUNCTION injected_fault()",
            )
            drop = ["DROP TRIGGER IF EXISTS injected_fault ON " + event.split(" ON ")[-1]]
            drop.append("DROP FUNCTION IF EXISTS injected_fault()")
        else:
            when = "1" if when == "TRUE" else when
            run(
                conn,
                f"CREATE TRIGGER injected_fault BEFORE {event} FOR EACH ROW WHEN {when}"
                " BEGIN SELECT RAISE(ABORT, 'injected fault'); END",
            )
            drop = ["DROP TRIGGER IF EXISTS injected_fault"]
        try:
            with pytest.raises(IntegrityViolation, match="injected fault"):
                yield
        finally:
            for statement in drop:
                run(conn, statement)


def unique_violation() -> str:
    """What either driver says when a unique index refuses a row (a pytest `match`)."""
    return r"(?i)unique|duplicate key"


def driver_errors() -> tuple[type[Exception], ...]:
    import psycopg

    return (sqlite3.IntegrityError, psycopg.IntegrityError)


def normalized(sql: str) -> str:
    return re.sub(r"\s+", " ", sql).strip()
