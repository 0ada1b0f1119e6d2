"""SQLite repository: the source of truth for environments, clones, runs and the audit log.

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

import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from sqlite_utils import Database

from bot.domain.errors import ConfigError, ConflictError, NotFoundError
from bot.domain.models import (
    KEEP,
    AuditEntry,
    Clone,
    CloneState,
    Environment,
    Keep,
    ParentFacts,
    Run,
    RunKind,
    RunMessage,
    RunState,
    ScheduleRecord,
    clone_transition,
    run_transition,
)
from storage.migrations import apply_migrations

BUSY_TIMEOUT_S: Final = 30.0

# Must match the partial unique index `clones_live_name` word for word, or SQLite will not use
# that index for the name lookups of `reserve_clones` and `find_clone`.
_LIVE: Final = "state NOT IN ('failed', 'destroyed', 'missing')"

# How many candidate names `reserve_clones` checks per query (kept under SQLite's 999 host
# parameters limit of older builds).
_NAME_BATCH: Final = 500

_CLONE_CHANGES: Final = frozenset(
    {
        "state",
        "run_id",
        "moref",
        "instance_uuid",
        "error",
        "attempts",
        "delta_bytes",
        "host",
        "power_state",
        "customization",
    }
)
_RUN_CHANGES: Final = frozenset(
    {"state", "requested", "succeeded", "failed", "message", "finished_at"}
)


def _now() -> datetime:
    return datetime.now(UTC)


def _to_text(moment: datetime | None) -> str | None:
    """ISO-8601 in UTC with fixed precision, so text order is time order."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        raise ValueError(f"{moment!r} has no time zone; pass an aware datetime")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _from_text(text: str | None) -> datetime | None:
    if text is None:
        return None
    moment = datetime.fromisoformat(text)
    # Rows written by hand (sqlite3 CLI) may lack an offset; everything here is UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _environment(row: dict[str, Any]) -> Environment:
    return Environment(
        name=row["name"],
        owner=row["owner"],
        channel=row["channel"],
        created_at=_from_text(row["created_at"]),
        starts_at=_from_text(row["starts_at"]),
        ends_at=_from_text(row["ends_at"]),
    )


def _clone(row: dict[str, Any]) -> Clone:
    return Clone(
        id=row["id"],
        name=row["name"],
        environment=row["environment"],
        type=row["type"],
        parent=row["parent"],
        state=CloneState(row["state"]),
        run_id=row["run_id"],
        moref=row["moref"],
        instance_uuid=row["instance_uuid"],
        error=row["error"],
        attempts=row["attempts"],
        delta_bytes=row["delta_bytes"],
        host=row.get("host"),
        power_state=row.get("power_state"),
        customization=row.get("customization") or "",
        created_at=_from_text(row["created_at"]),
        updated_at=_from_text(row["updated_at"]),
    )


def _run(row: dict[str, Any]) -> Run:
    return Run(
        id=row["id"],
        environment=row["environment"],
        kind=RunKind(row["kind"]),
        requested_by=row["requested_by"],
        state=RunState(row["state"]),
        requested=row["requested"],
        succeeded=row["succeeded"],
        failed=row["failed"],
        started_at=_from_text(row["started_at"]),
        finished_at=_from_text(row["finished_at"]),
        message=row["message"],
        owner=row.get("owner") or "",
        heartbeat_at=_from_text(row.get("heartbeat_at")),
        superseded_by=row.get("superseded_by"),
    )


def _audit_entry(row: dict[str, Any]) -> AuditEntry:
    at = _from_text(row["at"])
    assert at is not None  # NOT NULL column
    return AuditEntry(
        id=row["id"],
        at=at,
        actor=row["actor"],
        source=row["source"],
        channel=row["channel"],
        command=row["command"],
        result=row["result"],
        detail=row["detail"],
    )


def _placeholders(values: Sequence[object]) -> str:
    return ", ".join("?" for _ in values)


def _check_pattern(pattern: str) -> None:
    """A clone name pattern must be a str.format pattern whose only field is {n}."""
    hint = "use {n} for the clone number, e.g. 'TRN-CAP-{n:03}'"
    try:
        first, second = pattern.format(n=1), pattern.format(n=2)
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(f"Clone name pattern {pattern!r} is not valid ({exc}): {hint}") from exc
    if first == second:
        raise ConfigError(f"Clone name pattern {pattern!r} has no {{n}}: {hint}")


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


class Repository:
    """All reads and writes of the bot's state. Safe to share between threads."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._local = _ThreadState()
        self._lock = threading.Lock()
        self._write_lock = threading.RLock()  # see _writing
        # Every connection opened, with its thread, so close() can close them all and
        # connections of finished threads can be closed instead of leaking.
        self._connections: list[tuple[threading.Thread, Database]] = []
        self._generation = 0  # bumped by close(): threads then reconnect on next use
        db = self._db()
        _enable_wal(db)
        with self.transaction():
            apply_migrations(db)

    def __enter__(self) -> Repository:
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

    # -- connections and transactions ------------------------------------------------------

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
    def transaction(self) -> Iterator[None]:
        """Run a block atomically under the write lock (`BEGIN IMMEDIATE`).

        Nested use on one thread becomes a savepoint: an inner failure undoes only the inner
        block, and the outer transaction decides the commit.
        """
        conn = self._db().conn
        if conn.in_transaction:
            local = self._local
            local.savepoints += 1
            name = f"clones_sp{local.savepoints}"
            conn.execute(f"SAVEPOINT {name}")
            try:
                yield
            except BaseException:
                if conn.in_transaction:  # some errors already rolled everything back
                    conn.execute(f"ROLLBACK TO {name}")
                    conn.execute(f"RELEASE {name}")
                raise
            else:
                conn.execute(f"RELEASE {name}")
            finally:
                local.savepoints -= 1
            return
        with self._writing():
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            else:
                try:
                    conn.execute("COMMIT")
                except BaseException:
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
        return list(self._db().query(sql, params))

    def _row(self, sql: str, params: Sequence[object] = ()) -> dict[str, Any] | None:
        rows = self._rows(sql, params)
        return rows[0] if rows else None

    def _execute(self, sql: str, params: Sequence[object] = ()) -> sqlite3.Cursor:
        with self._writing():
            return self._db().execute(sql, params)

    # -- parents ---------------------------------------------------------------------------

    def save_parent_facts(self, facts: ParentFacts) -> None:
        """Remember a parent's sizes (from vCenter) for savings reports."""
        with self.transaction():
            self._execute(
                "INSERT INTO parents (name, provisioned_bytes, used_bytes, memory_mb, updated_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET"
                " provisioned_bytes = excluded.provisioned_bytes,"
                " used_bytes = excluded.used_bytes, memory_mb = excluded.memory_mb,"
                " updated_at = excluded.updated_at",
                (
                    facts.name,
                    facts.provisioned_bytes,
                    facts.used_bytes,
                    facts.memory_mb,
                    _to_text(_now()),
                ),
            )

    def parent_facts(self) -> dict[str, ParentFacts]:
        return {
            row["name"]: ParentFacts(
                name=row["name"],
                provisioned_bytes=row["provisioned_bytes"],
                used_bytes=row["used_bytes"],
                memory_mb=row["memory_mb"],
            )
            for row in self._rows("SELECT * FROM parents ORDER BY name")
        }

    # -- environments ----------------------------------------------------------------------

    def ensure_environment(self, name: str, owner: str, channel: str = "") -> Environment:
        """Create the environment if missing; an existing one is returned unchanged."""
        with self.transaction():
            self._execute(
                "INSERT OR IGNORE INTO environments (name, owner, channel, created_at)"
                " VALUES (?, ?, ?, ?)",
                (name, owner, channel, _to_text(_now())),
            )
            return self._require_environment(name)

    def get_environment(self, name: str) -> Environment | None:
        row = self._row("SELECT * FROM environments WHERE name = ?", (name,))
        return _environment(row) if row else None

    def _require_environment(self, name: str) -> Environment:
        environment = self.get_environment(name)
        if environment is None:
            raise NotFoundError(
                f"There is no environment named {name!r}; check the name in the environment list."
            )
        return environment

    def list_environments(self) -> list[Environment]:
        return [_environment(row) for row in self._rows("SELECT * FROM environments ORDER BY name")]

    def update_environment(
        self,
        name: str,
        *,
        channel: str | None = None,
        owner: str | None = None,
        starts_at: datetime | Keep | None = KEEP,
        ends_at: datetime | Keep | None = KEEP,
    ) -> Environment:
        """Change the given fields; `starts_at`/`ends_at` accept None to clear the schedule."""
        changes: dict[str, object] = {}
        if channel is not None:
            changes["channel"] = channel
        if owner is not None:
            changes["owner"] = owner
        if not isinstance(starts_at, Keep):
            changes["starts_at"] = _to_text(starts_at)
        if not isinstance(ends_at, Keep):
            changes["ends_at"] = _to_text(ends_at)
        with self.transaction():
            self._require_environment(name)
            if changes:
                assignments = ", ".join(f"{column} = ?" for column in changes)
                self._execute(
                    f"UPDATE environments SET {assignments} WHERE name = ?",
                    [*changes.values(), name],
                )
            return self._require_environment(name)

    def delete_environment(self, name: str) -> None:
        """Delete an environment with its clone history and runs; refused while it has live clones
        or a running run."""
        with self.transaction():
            self._require_environment(name)
            live = self._row(
                f"SELECT count(*) AS n FROM clones WHERE environment = ? AND {_LIVE}", (name,)
            )
            if live and live["n"]:
                raise ConflictError(
                    f"Environment {name!r} still has {live['n']} clone(s) that may exist in"
                    " vCenter; strip it back first."
                )
            running = self._row(
                "SELECT id FROM runs WHERE environment = ? AND state = ? LIMIT 1",
                (name, RunState.RUNNING.value),
            )
            if running:
                raise ConflictError(
                    f"Environment {name!r} has run {running['id']} in progress; wait for it to"
                    " finish."
                )
            self._execute("DELETE FROM environments WHERE name = ?", (name,))

    # -- clones ----------------------------------------------------------------------------

    def reserve_clones(
        self,
        *,
        environment: str,
        type: str,
        parent: str,
        pattern: str,
        count: int,
        run_id: int | None,
    ) -> list[Clone]:
        """Reserve `count` names (the smallest free numbers) as PLANNED clones, atomically.

        A name is free when no live clone has it, so names of failed and destroyed clones are
        reused. The write lock is held from choosing to inserting, so concurrent callers, in
        this process or another, never get the same name.
        """
        if count < 0:
            raise ValueError(f"count must be 0 or more, not {count}")
        _check_pattern(pattern)
        with self.transaction():
            self._require_environment(environment)
            if run_id is not None:
                self.get_run(run_id)
            names: list[str] = []
            start = 1
            while len(names) < count:
                batch = [pattern.format(n=n) for n in range(start, start + _NAME_BATCH)]
                taken = {
                    row["name"]
                    for row in self._rows(
                        f"SELECT name FROM clones WHERE {_LIVE}"
                        f" AND name IN ({_placeholders(batch)})",
                        batch,
                    )
                }
                names += [name for name in batch if name not in taken][: count - len(names)]
                start += _NAME_BATCH
            now = _now()
            clones = []
            for name in names:
                cursor = self._execute(
                    "INSERT INTO clones (name, environment, type, parent, state, run_id,"
                    " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        name,
                        environment,
                        type,
                        parent,
                        CloneState.PLANNED.value,
                        run_id,
                        _to_text(now),
                        _to_text(now),
                    ),
                )
                assert cursor.lastrowid is not None
                if run_id is not None:
                    self._execute(
                        "INSERT INTO run_clones (run_id, clone_id) VALUES (?, ?)",
                        (run_id, cursor.lastrowid),
                    )
                clones.append(
                    Clone(
                        id=cursor.lastrowid,
                        name=name,
                        environment=environment,
                        type=type,
                        parent=parent,
                        state=CloneState.PLANNED,
                        run_id=run_id,
                        created_at=now,
                        updated_at=now,
                    )
                )
            return clones

    def update_clone(self, clone_id: int, **changes: Any) -> Clone:
        """Change a clone's recorded fields (state, moref, instance_uuid, error, host, ...)."""
        unknown = set(changes) - _CLONE_CHANGES
        if unknown:
            raise TypeError(f"update_clone() cannot change {sorted(unknown)}")
        values = dict(changes)
        if "state" in values:
            values["state"] = CloneState(values["state"]).value
        values["updated_at"] = _to_text(_now())
        assignments = ", ".join(f"{column} = ?" for column in values)
        with self.transaction():
            current = self.get_clone(clone_id)
            if "state" in changes:
                clone_transition(current.state, CloneState(changes["state"]))
            try:
                self._execute(
                    f"UPDATE clones SET {assignments} WHERE id = ?", [*values.values(), clone_id]
                )
            except sqlite3.IntegrityError as exc:
                if "UNIQUE" in str(exc):
                    raise ConflictError(
                        f"Clone {current.name!r} cannot become live again: another live clone"
                        " already has that name."
                    ) from exc
                raise ConflictError(
                    f"Clone {current.name!r} cannot refer to run {values.get('run_id')}:"
                    " there is no such run."
                ) from exc
            return self.get_clone(clone_id)

    def get_clone(self, clone_id: int) -> Clone:
        row = self._row("SELECT * FROM clones WHERE id = ?", (clone_id,))
        if row is None:
            raise NotFoundError(f"There is no clone with id {clone_id}.")
        return _clone(row)

    def find_clone(self, name: str) -> Clone | None:
        """The live clone with this name, if any."""
        row = self._row(f"SELECT * FROM clones WHERE name = ? AND {_LIVE}", (name,))
        return _clone(row) if row else None

    def clones(
        self,
        *,
        environment: str | None = None,
        states: Iterable[CloneState] | None = None,
        type: str | None = None,
        run_id: int | None = None,
    ) -> list[Clone]:
        """Clones matching every given filter, ordered by environment, type and name."""
        where: list[str] = []
        params: list[object] = []
        if environment is not None:
            where.append("environment = ?")
            params.append(environment)
        if states is not None:
            wanted = [CloneState(state).value for state in states]
            if not wanted:
                return []
            where.append(f"state IN ({_placeholders(wanted)})")
            params += wanted
        if type is not None:
            where.append("type = ?")
            params.append(type)
        if run_id is not None:
            where.append("id IN (SELECT clone_id FROM run_clones WHERE run_id = ?)")
            params.append(run_id)
        sql = "SELECT * FROM clones"
        if where:
            sql += " WHERE " + " AND ".join(where)
        return [
            _clone(row) for row in self._rows(sql + " ORDER BY environment, type, name", params)
        ]

    def clone_deltas(
        self, *, environment: str | None = None, states: Iterable[CloneState] = (CloneState.READY,)
    ) -> list[tuple[str, int | None]]:
        """(parent, delta_bytes) of each clone: all the savings math needs, without building
        a Clone object per row (20,000 of them took most of a savings report's time)."""
        wanted = [CloneState(s).value for s in states]
        sql = f"SELECT parent, delta_bytes FROM clones WHERE state IN ({_placeholders(wanted)})"
        params: list[object] = list(wanted)
        if environment is not None:
            sql += " AND environment = ?"
            params.append(environment)
        return [(row[0], row[1]) for row in self._db().execute(sql, params).fetchall()]

    def clone_counts(self) -> dict[str, dict[str, dict[CloneState, int]]]:
        """environment -> type -> state -> number of clones (states with none are absent)."""
        counts: dict[str, dict[str, dict[CloneState, int]]] = {}
        for row in self._rows(
            "SELECT environment, type, state, count(*) AS n FROM clones"
            " GROUP BY environment, type, state"
        ):
            by_type = counts.setdefault(row["environment"], {})
            by_type.setdefault(row["type"], {})[CloneState(row["state"])] = row["n"]
        return counts

    # -- runs ------------------------------------------------------------------------------

    def start_run(
        self,
        *,
        environment: str,
        kind: RunKind,
        requested_by: str,
        requested: int,
        owner: str = "",
        clone_ids: Iterable[int] = (),
    ) -> Run:
        """Record a new run that owns `clone_ids` (the clones it will act on).

        Refused while another run of the environment is running. An interrupted run (vCenter
        went away, or its process died and recovery could not finish it) blocks a deployment or
        refresh, which would otherwise leave it to re-create clones later; a strip back takes
        it over instead: it ends superseded in this same transaction, and the strip back's own
        set (the environment's live clones) includes the clones it left unfinished.
        """
        kind = RunKind(kind)
        with self.transaction():
            self._require_environment(environment)
            # One run per environment at a time, across processes: the check and the insert
            # share one BEGIN IMMEDIATE transaction, so two bots cannot both pass the check.
            busy = self._row(
                "SELECT id, kind, requested_by FROM runs WHERE environment = ? AND state = ?",
                (environment, RunState.RUNNING.value),
            )
            if busy is not None:
                raise ConflictError(
                    f"{environment} is busy: {busy['kind']} run {busy['id']} (by "
                    f"{busy['requested_by']}) is still running. Wait for it to finish; if the "
                    'process running it died, "resume" finishes it.'
                )
            stopped = self._rows(
                "SELECT id, kind FROM runs WHERE environment = ? AND state = ? ORDER BY id",
                (environment, RunState.INTERRUPTED.value),
            )
            if stopped and kind is not RunKind.TEARDOWN:
                first = stopped[0]
                raise ConflictError(
                    f"{environment} has an unfinished {first['kind']} (run {first['id']}, "
                    'interrupted). Type "resume" to finish it first, or strip the environment '
                    f'back ("teardown {environment}").'
                )
            run = self._insert_run(environment, kind, requested_by, requested, owner, clone_ids)
            for row in stopped:
                self._supersede(row["id"], run.id, f"superseded by {kind} run {run.id}")
            return run

    def _insert_run(
        self,
        environment: str,
        kind: RunKind,
        requested_by: str,
        requested: int,
        owner: str,
        clone_ids: Iterable[int],
    ) -> Run:
        now = _to_text(_now())
        cursor = self._execute(
            "INSERT INTO runs (environment, kind, requested_by, state, requested, started_at,"
            " owner, heartbeat_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                environment,
                RunKind(kind).value,
                requested_by,
                RunState.RUNNING.value,
                requested,
                now,
                owner,
                now,
            ),
        )
        run_id = cursor.lastrowid
        assert run_id is not None
        with self._writing():
            self._db().conn.executemany(
                "INSERT INTO run_clones (run_id, clone_id) VALUES (?, ?)",
                [(run_id, clone_id) for clone_id in clone_ids],
            )
        return self.get_run(run_id)

    def _supersede(self, run_id: int, by: int, message: str) -> None:
        run = self.get_run(run_id)
        run_transition(run.state, RunState.SUPERSEDED)
        self._execute(
            "UPDATE runs SET state = ?, superseded_by = ?, message = ?, finished_at = ?"
            " WHERE id = ?",
            (RunState.SUPERSEDED.value, by, message, _to_text(_now()), run_id),
        )

    def supersede_run(self, run_id: int, *, owner: str, expected_owner: str) -> Run | None:
        """Take an abandoned run over: in one transaction, end it as superseded and start a new
        run of the same kind, owned by `owner`, over the same clones. The old run can then never
        be picked up again.

        None when the run has ended meanwhile or another process took it over first (its owner
        is no longer `expected_owner`).
        """
        with self.transaction():
            old = self.get_run(run_id)
            if old.state.terminal or old.owner != expected_owner:
                return None
            new = self._insert_run(
                old.environment, old.kind, old.requested_by, old.requested, owner, ()
            )
            self._execute(
                "INSERT INTO run_clones (run_id, clone_id)"
                " SELECT ?, clone_id FROM run_clones WHERE run_id = ?",
                (new.id, old.id),
            )
            # The successor is shown where the run was (its Slack message, if any).
            self._execute(
                "INSERT INTO run_messages (run_id, channel, ts, updated_at)"
                " SELECT ?, channel, ts, updated_at FROM run_messages WHERE run_id = ?",
                (new.id, old.id),
            )
            self._supersede(old.id, new.id, f"resumed as run {new.id}")
            return new

    def finish_run(
        self, run_id: int, *, state: RunState, succeeded: int, failed: int, message: str = ""
    ) -> Run:
        """Record a run's outcome; a run finishes once (running runs only)."""
        state = RunState(state)
        if state is RunState.RUNNING:
            raise ValueError("finish_run() needs a final state, not 'running'")
        with self.transaction():
            run = self.get_run(run_id)
            if run.state.terminal:
                raise ConflictError(f"Run {run_id} has already finished ({run.state}).")
            run_transition(run.state, state)
            self._execute(
                "UPDATE runs SET state = ?, succeeded = ?, failed = ?, message = ?,"
                " finished_at = ? WHERE id = ?",
                (state.value, succeeded, failed, message, _to_text(_now()), run_id),
            )
            return self.get_run(run_id)

    def update_run(self, run_id: int, **changes: Any) -> Run:
        """Change a run's state, requested, succeeded, failed, message or finished_at."""
        unknown = set(changes) - _RUN_CHANGES
        if unknown:
            raise TypeError(f"update_run() cannot change {sorted(unknown)}")
        values = dict(changes)
        if "state" in values:
            values["state"] = RunState(values["state"]).value
        if "finished_at" in values:
            values["finished_at"] = _to_text(values["finished_at"])
        with self.transaction():
            current = self.get_run(run_id)
            if "state" in changes:
                run_transition(current.state, RunState(changes["state"]))
            if values:
                assignments = ", ".join(f"{column} = ?" for column in values)
                self._execute(
                    f"UPDATE runs SET {assignments} WHERE id = ?", [*values.values(), run_id]
                )
            return self.get_run(run_id)

    def get_run(self, run_id: int) -> Run:
        row = self._row("SELECT * FROM runs WHERE id = ?", (run_id,))
        if row is None:
            raise NotFoundError(f"There is no run with id {run_id}.")
        return _run(row)

    def runs(
        self,
        *,
        environment: str | None = None,
        states: Iterable[RunState] | None = None,
        limit: int = 100,
    ) -> list[Run]:
        """Runs matching the filters, newest first."""
        where: list[str] = []
        params: list[object] = []
        if environment is not None:
            where.append("environment = ?")
            params.append(environment)
        if states is not None:
            wanted = [RunState(state).value for state in states]
            if not wanted:
                return []
            where.append(f"state IN ({_placeholders(wanted)})")
            params += wanted
        sql = "SELECT * FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = self._rows(sql + " ORDER BY id DESC LIMIT ?", [*params, limit])
        return [_run(row) for row in rows]

    # -- audit -----------------------------------------------------------------------------

    def audit(
        self,
        *,
        actor: str,
        source: str,
        command: str,
        result: str,
        channel: str = "",
        detail: str = "",
    ) -> AuditEntry:
        at = _now()
        cursor = self._execute(
            "INSERT INTO audit (at, actor, source, channel, command, result, detail)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (_to_text(at), actor, source, channel, command, result, detail),
        )
        return AuditEntry(
            id=cursor.lastrowid,
            at=at,
            actor=actor,
            source=source,
            channel=channel,
            command=command,
            result=result,
            detail=detail,
        )

    def audit_entries(self, *, limit: int = 100, actor: str | None = None) -> list[AuditEntry]:
        """Audit entries, newest first."""
        where, params = ("WHERE actor = ?", [actor]) if actor is not None else ("", [])
        rows = self._rows(f"SELECT * FROM audit {where} ORDER BY id DESC LIMIT ?", [*params, limit])
        return [_audit_entry(row) for row in rows]

    # -- schedules -------------------------------------------------------------------------
    # The times live on the environment (starts_at, ends_at); the `schedules` row holds the
    # bookkeeping. "Claims" are compare-and-set updates: of two schedulers (or two threads)
    # racing for one job, exactly one sees its update change a row and runs it.

    def get_schedule(self, name: str) -> ScheduleRecord | None:
        row = self._row("SELECT * FROM schedules WHERE environment = ?", (name,))
        return _schedule_record(row) if row else None

    def save_schedule(
        self,
        name: str,
        *,
        deploy_command: str | Keep | None = KEEP,
        requested_by: str | Keep = KEEP,
        lease_from: datetime | Keep | None = KEEP,
        reminded_for_end: datetime | Keep | None = KEEP,
        stripping_for_end: datetime | Keep | None = KEEP,
    ) -> ScheduleRecord:
        """Create or change an environment's schedule bookkeeping (None clears a field)."""
        changes: dict[str, object] = {}
        if not isinstance(deploy_command, Keep):
            changes["deploy_command"] = deploy_command
        if not isinstance(requested_by, Keep):
            changes["requested_by"] = requested_by
        for column, value in (
            ("lease_from", lease_from),
            ("reminded_for_end", reminded_for_end),
            ("stripping_for_end", stripping_for_end),
        ):
            if not isinstance(value, Keep):
                changes[column] = _to_text(value)
        changes["updated_at"] = _to_text(_now())
        with self.transaction():
            self._require_environment(name)
            self._execute(
                "INSERT OR IGNORE INTO schedules (environment, updated_at) VALUES (?, ?)",
                (name, changes["updated_at"]),
            )
            assignments = ", ".join(f"{column} = ?" for column in changes)
            self._execute(
                f"UPDATE schedules SET {assignments} WHERE environment = ?",
                [*changes.values(), name],
            )
            record = self.get_schedule(name)
            assert record is not None
            return record

    def delete_schedule(self, name: str) -> None:
        self._execute("DELETE FROM schedules WHERE environment = ?", (name,))

    def scheduled_environments(self) -> list[tuple[Environment, ScheduleRecord | None]]:
        """Environments with a pending start or end, or a strip back claimed but not finished."""
        rows = self._rows(
            "SELECT e.*, s.environment AS s_environment, s.deploy_command AS s_deploy_command,"
            " s.requested_by AS s_requested_by, s.lease_from AS s_lease_from,"
            " s.reminded_for_end AS s_reminded_for_end,"
            " s.stripping_for_end AS s_stripping_for_end, s.updated_at AS s_updated_at"
            " FROM environments e LEFT JOIN schedules s ON s.environment = e.name"
            " WHERE e.starts_at IS NOT NULL OR e.ends_at IS NOT NULL"
            " OR s.stripping_for_end IS NOT NULL ORDER BY e.name"
        )
        out: list[tuple[Environment, ScheduleRecord | None]] = []
        for row in rows:
            schedule = None
            if row["s_environment"] is not None:
                schedule = _schedule_record(
                    {k[2:]: v for k, v in row.items() if k.startswith("s_")}
                )
            out.append((_environment(row), schedule))
        return out

    def claim_start(self, name: str, expected: datetime) -> bool:
        """Clear starts_at if it is still `expected`; True when this call cleared it."""
        cursor = self._execute(
            "UPDATE environments SET starts_at = NULL WHERE name = ? AND starts_at = ?",
            (name, _to_text(expected)),
        )
        return cursor.rowcount == 1

    def claim_end(self, name: str, expected: datetime) -> bool:
        """Move ends_at (if still `expected`) to schedules.stripping_for_end; True when claimed."""
        with self.transaction():
            cursor = self._execute(
                "UPDATE environments SET ends_at = NULL WHERE name = ? AND ends_at = ?",
                (name, _to_text(expected)),
            )
            if cursor.rowcount != 1:
                return False
            self.save_schedule(name, stripping_for_end=expected)
            return True

    def mark_reminded(self, name: str, end: datetime) -> bool:
        """Record that the reminder for `end` was sent; False when it already was, or when the
        environment no longer ends then (so a reminder fires once per scheduled end)."""
        with self.transaction():
            env = self.get_environment(name)
            if env is None or env.ends_at is None or env.ends_at != end:
                return False
            record = self.get_schedule(name)
            if record is not None and record.reminded_for_end == end:
                return False
            self.save_schedule(name, reminded_for_end=end)
            return True

    # -- replay protection -----------------------------------------------------------------

    def first_sighting(
        self, keys: Sequence[str], window_s: float, now: float | None = None
    ) -> bool:
        """True, and remember `keys` for `window_s` seconds, unless one of them was seen within
        its window (then False). Atomic across threads and processes."""
        if not keys:
            return True
        moment = time.time() if now is None else now
        with self.transaction():
            self._execute("DELETE FROM seen_requests WHERE expires_at <= ?", (moment,))
            seen = self._row(
                f"SELECT key FROM seen_requests WHERE key IN ({_placeholders(keys)}) LIMIT 1",
                list(keys),
            )
            if seen is not None:
                return False
            self._db().conn.executemany(
                "INSERT INTO seen_requests (key, expires_at) VALUES (?, ?)",
                [(k, moment + window_s) for k in dict.fromkeys(keys)],
            )
            return True

    # -- run ownership (crash recovery) -------------------------------------------------------

    def heartbeat(self, run_id: int) -> None:
        """Say that the process running this run is alive."""
        with self.transaction():
            self._execute(
                "UPDATE runs SET heartbeat_at = ? WHERE id = ? AND state = ?",
                (_to_text(_now()), run_id, RunState.RUNNING.value),
            )

    def mark_missing(self, clone_ids: Iterable[int], *, unchanged_since: datetime) -> list[Clone]:
        """Record ready clones whose VM vCenter no longer has as missing, unless a row changed
        after `unchanged_since` (the moment before vCenter was read): a clone made or changed
        meanwhile is not judged by an older read."""
        out: list[Clone] = []
        with self.transaction():
            for clone_id in clone_ids:
                cursor = self._execute(
                    "UPDATE clones SET state = ?, error = ?, updated_at = ?"
                    " WHERE id = ? AND state = ? AND updated_at <= ?",
                    (
                        CloneState.MISSING.value,
                        "gone from vCenter, not destroyed by the bot",
                        _to_text(_now()),
                        clone_id,
                        CloneState.READY.value,
                        _to_text(unchanged_since),
                    ),
                )
                if cursor.rowcount == 1:
                    out.append(self.get_clone(clone_id))
        return out

    def clones_by_instance_uuid(self, uuids: Iterable[str]) -> dict[str, Clone]:
        """The newest clone row for each instance UUID (live or not)."""
        wanted = list(dict.fromkeys(uuids))
        out: dict[str, Clone] = {}
        for i in range(0, len(wanted), _NAME_BATCH):
            batch = wanted[i : i + _NAME_BATCH]
            rows = self._rows(
                f"SELECT * FROM clones WHERE instance_uuid IN ({_placeholders(batch)}) ORDER BY id",
                batch,
            )
            for row in rows:
                out[row["instance_uuid"]] = _clone(row)
        return out

    # -- the Slack message of each run (see migration m008_run_messages) ---------------------

    def save_run_message(self, run_id: int, *, channel: str, ts: str) -> RunMessage:
        """Record (or move) the message that shows run `run_id`."""
        now = _to_text(_now())
        with self.transaction():
            self.get_run(run_id)
            self._execute(
                "INSERT INTO run_messages (run_id, channel, ts, updated_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT(run_id) DO UPDATE SET channel = excluded.channel,"
                " ts = excluded.ts, updated_at = excluded.updated_at",
                (run_id, channel, ts, now),
            )
        message = self.run_message(run_id)
        assert message is not None
        return message

    def run_message(self, run_id: int) -> RunMessage | None:
        row = self._row("SELECT * FROM run_messages WHERE run_id = ?", (run_id,))
        if row is None:
            return None
        return RunMessage(row["run_id"], row["channel"], row["ts"])


def _schedule_record(row: dict[str, Any]) -> ScheduleRecord:
    return ScheduleRecord(
        environment=row["environment"],
        deploy_command=row["deploy_command"],
        requested_by=row["requested_by"] or "",
        lease_from=_from_text(row["lease_from"]),
        reminded_for_end=_from_text(row["reminded_for_end"]),
        stripping_for_end=_from_text(row["stripping_for_end"]),
        updated_at=_from_text(row["updated_at"]),
    )
