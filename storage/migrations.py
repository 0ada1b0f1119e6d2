"""Schema migrations, the same on SQLite and PostgreSQL, applied in order.

To change the schema, append a new function decorated with `@migrations()` at the end of this file
(`m012_...`, `m013_...`). Never edit, rename or reorder one that has shipped: its name is the record
in `_sqlite_migrations` that it ran, so an edited migration would never run on existing databases.

A migration is written once, in SQLite's DDL, and gets a `Schema`: `db.execute(sql)` runs the text
as is on SQLite and carried over by the dialect table of storage/dialect.py on PostgreSQL
(AUTOINCREMENT as an identity column, INTEGER as BIGINT, REAL as DOUBLE PRECISION, TEXT in byte
order, no WITHOUT ROWID, INSERT OR IGNORE as ON CONFLICT DO NOTHING). Where the dialects differ
beyond that table (a trigger, a function, a time), give both texts: `db.either(sqlite=...,
postgresql=...)`; `db.dialect` says which backend runs it.

Both backends record what ran in one table of one shape, `_sqlite_migrations` (id, migration_set,
name, applied_at: the name sqlite_utils gives it, kept on PostgreSQL so one query reads either).
SQLite's migrations run through `sqlite_utils.Migrations`, as they always have, so an existing file
sees exactly what it saw before; PostgreSQL's through `_Registry.apply_postgres`, the same steps.
Each migration runs in its own savepoint inside the core's write transaction (`BEGIN IMMEDIATE` on
SQLite, the advisory write lock on PostgreSQL), so it is all-or-nothing and two processes opening
one database cannot both apply it.

sqlite_utils (which imports numpy, about 0.1 s) is imported only when a migration is pending:
opening an up-to-date database reads the names applied with one query (`_Registry.pending`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, cast

from storage.dialect import Dialect, postgres_ddl

if TYPE_CHECKING:
    from sqlite_utils import Database

MIGRATIONS_TABLE = "_sqlite_migrations"  # sqlite_utils.Migrations' table, on both backends


class Connected(Protocol):
    """A backend's connection as migrations use it (storage/sqlite.py, storage/postgres.py)."""

    dialect: Dialect

    def query(self, sql: str, params: Sequence[object] = ()) -> Iterator[dict[str, Any]]: ...

    def execute(self, sql: str, params: Sequence[object] = ()) -> object: ...

    def script(self, sql: str) -> None: ...


class Schema:
    """What a migration function is given: runs its statements in the backend's dialect."""

    def __init__(self, dialect: Dialect, run: Callable[[str], object]) -> None:
        self.dialect = dialect
        self._run = run

    def execute(self, sql: str) -> None:
        """A statement in SQLite's DDL; on PostgreSQL, carried over by the dialect table."""
        self._run(sql if self.dialect == "sqlite" else postgres_ddl(sql))

    def either(self, *, sqlite: str | Sequence[str], postgresql: str | Sequence[str]) -> None:
        """Where the dialects differ: each backend runs its own statements, as written."""
        chosen = sqlite if self.dialect == "sqlite" else postgresql
        for statement in [chosen] if isinstance(chosen, str) else chosen:
            self._run(statement)


Migration = Callable[[Schema], None]


class _Registry:
    """The migrations in order, as `sqlite_utils.Migrations` records them (same set name, same
    table), handed to it when one is pending on SQLite; applied the same way on PostgreSQL."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._migrations: list[tuple[str, Migration]] = []

    def __call__(self) -> Callable[[Migration], Migration]:
        def register(fn: Migration) -> Migration:
            if any(name == fn.__name__ for name, _ in self._migrations):
                raise ValueError(f"migration {fn.__name__} is registered twice")
            self._migrations.append((fn.__name__, fn))
            return fn

        return register

    def pending(self, db: Connected) -> list[str]:
        """The names not applied yet to `db` (read-only; one query)."""
        if db.dialect == "sqlite":
            exists = list(
                db.query(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                    (MIGRATIONS_TABLE,),
                )
            )
        else:
            exists = list(db.query("SELECT to_regclass(?) AS t", (MIGRATIONS_TABLE,)))
            exists = [row for row in exists if row["t"] is not None]
        applied: set[str] = set()
        if exists:
            rows = db.query(
                f"SELECT name FROM {MIGRATIONS_TABLE} WHERE migration_set = ?", (self.name,)
            )
            applied = {row["name"] for row in rows}
        return [name for name, _ in self._migrations if name not in applied]

    def apply(self, db: Connected) -> None:
        """Apply the pending migrations. Call inside the core's write transaction."""
        if db.dialect == "postgresql":
            self.apply_postgres(db)
            return
        if not self.pending(db):
            return
        from sqlite_utils import Database, Migrations

        real = Migrations(self.name)
        for name, fn in self._migrations:
            real(name=name)(_on_sqlite(fn))
        real.apply(Database(cast("Any", db).conn))

    def apply_postgres(self, db: Connected) -> None:
        """What `sqlite_utils.Migrations.apply` does, on PostgreSQL: the table, then each pending
        migration with its record in one savepoint."""
        db.script(
            f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} ("
            "id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, "
            'migration_set TEXT COLLATE "C", name TEXT COLLATE "C", applied_at TEXT, '
            "UNIQUE (migration_set, name))"
        )
        pending = set(self.pending(db))
        schema = Schema("postgresql", db.script)
        for name, fn in self._migrations:
            if name not in pending:
                continue
            db.script("SAVEPOINT clones_migration")
            fn(schema)
            db.execute(
                f"INSERT INTO {MIGRATIONS_TABLE} (migration_set, name, applied_at)"
                " VALUES (?, ?, ?)",
                (self.name, name, str(datetime.now(UTC))),
            )
            db.script("RELEASE clones_migration")


def _on_sqlite(fn: Migration) -> Callable[[Database], None]:
    def run(db: Database) -> None:
        fn(Schema("sqlite", db.execute))

    run.__name__ = fn.__name__
    return run


migrations = _Registry("clones")

# Frozen copy of the "not live" clone states (CloneState.FAILED / DESTROYED) as of migration 1: a
# migration's SQL must not change when Python enums change later.
_SCHEMA_V1 = (
    """
    CREATE TABLE environments (
        name TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        channel TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL,
        starts_at TEXT,
        ends_at TEXT
    )
    """,
    # AUTOINCREMENT so ids of deleted runs and clones are never reused: audit details cite them.
    """
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        environment TEXT NOT NULL REFERENCES environments(name) ON DELETE CASCADE,
        kind TEXT NOT NULL,
        requested_by TEXT NOT NULL,
        state TEXT NOT NULL,
        requested INTEGER NOT NULL DEFAULT 0,
        succeeded INTEGER NOT NULL DEFAULT 0,
        failed INTEGER NOT NULL DEFAULT 0,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        message TEXT NOT NULL DEFAULT ''
    )
    """,
    """
    CREATE TABLE clones (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        environment TEXT NOT NULL REFERENCES environments(name) ON DELETE CASCADE,
        type TEXT NOT NULL,
        parent TEXT NOT NULL,
        state TEXT NOT NULL,
        run_id INTEGER REFERENCES runs(id) ON DELETE SET NULL,
        moref TEXT,
        instance_uuid TEXT,
        error TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        delta_bytes INTEGER,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    )
    """,
    """
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        source TEXT NOT NULL,
        channel TEXT NOT NULL DEFAULT '',
        command TEXT NOT NULL,
        result TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT ''
    )
    """,
    # Leading `environment` serves lookups by environment; the whole index covers the
    # environment/type/state GROUP BY of clone_counts, so it never reads the table.
    "CREATE INDEX clones_environment ON clones(environment, type, state)",
    "CREATE INDEX clones_state ON clones(state)",
    "CREATE INDEX clones_run_id ON clones(run_id)",
    # vCenter VM names are unique across the inventory: two live clones may never share a name,
    # while failed/destroyed rows keep their (reusable) name as history.
    """
    CREATE UNIQUE INDEX clones_live_name ON clones(name)
    WHERE state NOT IN ('failed', 'destroyed')
    """,
    "CREATE INDEX runs_environment ON runs(environment)",
    "CREATE INDEX audit_at ON audit(at)",
)


@migrations()
def m001_initial_schema(db: Schema) -> None:
    # Statement by statement, not executescript(): sqlite3's executescript() commits first.
    for statement in _SCHEMA_V1:
        db.execute(statement)


@migrations()
def m002_parent_facts(db: Schema) -> None:
    # What vCenter said of each parent at its last deployment: savings and plans can then be
    # shown without a vCenter round trip (and while vCenter is down).
    db.execute(
        """
        CREATE TABLE parents (
            name TEXT PRIMARY KEY,
            provisioned_bytes INTEGER NOT NULL,
            used_bytes INTEGER NOT NULL,
            memory_mb INTEGER NOT NULL DEFAULT 0,
            updated_at TEXT NOT NULL
        )
        """
    )


@migrations()
def m003_schedules(db: Schema) -> None:
    # Bookkeeping for schedules; the times themselves are environments.starts_at/ends_at.
    # deploy_command: the grammar text a scheduled deploy runs ("deploy capture 25 as x");
    # lease_from: when the environment's lease began (the cap on extensions counts from it);
    # reminded_for_end: the end a reminder was sent for (one reminder per scheduled end);
    # stripping_for_end: a scheduled strip back claimed for this end and not finished yet.
    db.execute(
        """
        CREATE TABLE schedules (
            environment TEXT PRIMARY KEY REFERENCES environments(name) ON DELETE CASCADE,
            deploy_command TEXT,
            requested_by TEXT NOT NULL DEFAULT '',
            lease_from TEXT,
            reminded_for_end TEXT,
            stripping_for_end TEXT,
            updated_at TEXT NOT NULL
        )
        """
    )


@migrations()
def m004_clone_runtime(db: Schema) -> None:
    # Where a clone runs, its last known power state and its guest customization outcome
    # ("", "pending", "succeeded", "failed"): shown by status without a vCenter round trip.
    db.execute("ALTER TABLE clones ADD COLUMN host TEXT")
    db.execute("ALTER TABLE clones ADD COLUMN power_state TEXT")
    db.execute("ALTER TABLE clones ADD COLUMN customization TEXT NOT NULL DEFAULT ''")


@migrations()
def m005_run_owner(db: Schema) -> None:
    # Which process runs a run ("host:pid") and when it last said it was alive: a run whose
    # process died (SIGKILL, power cut) is found and resumed at the next start.
    db.execute("ALTER TABLE runs ADD COLUMN owner TEXT NOT NULL DEFAULT ''")
    db.execute("ALTER TABLE runs ADD COLUMN heartbeat_at TEXT")
    db.execute("CREATE INDEX runs_state ON runs(state)")
    db.execute("CREATE INDEX clones_instance_uuid ON clones(instance_uuid)")


@migrations()
def m006_seen_requests(db: Schema) -> None:
    # Slack request keys (signature, trigger_id, event_id) seen in the replay window, so a request
    # replayed or retried after a restart of the bot is still recognised; expires_at is Unix time.
    db.execute("CREATE TABLE seen_requests (key TEXT PRIMARY KEY, expires_at REAL NOT NULL)")
    db.execute("CREATE INDEX seen_requests_expires ON seen_requests(expires_at)")


@migrations()
def m007_run_members(db: Schema) -> None:
    # Which clones each run owns (acts on): recorded when the run starts, copied to the run that
    # supersedes it, so a strip back and its recovery act only on the clones it started with,
    # never on clones deployed later under the same environment name. clones.run_id stays the
    # run that created the clone.
    db.execute(
        """
        CREATE TABLE run_clones (
            run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            clone_id INTEGER NOT NULL REFERENCES clones(id) ON DELETE CASCADE,
            PRIMARY KEY (run_id, clone_id)
        ) WITHOUT ROWID
        """
    )
    db.execute("CREATE INDEX run_clones_clone ON run_clones(clone_id)")
    # A deployment owns the clones it reserved.
    db.execute(
        "INSERT INTO run_clones (run_id, clone_id) SELECT run_id, id FROM clones"
        " WHERE run_id IS NOT NULL"
    )
    # An unfinished strip back (or refresh) of an older version recorded no set: it owns what
    # it had started to destroy, nothing more.
    db.execute(
        """
        INSERT OR IGNORE INTO run_clones (run_id, clone_id)
        SELECT r.id, c.id FROM runs r JOIN clones c ON c.environment = r.environment
        WHERE r.kind IN ('teardown', 'refresh') AND r.state IN ('running', 'interrupted')
          AND c.state = 'destroying'
        """
    )
    # The run that took this one over (recovery), so history reads as a chain.
    db.execute("ALTER TABLE runs ADD COLUMN superseded_by INTEGER REFERENCES runs(id)")
    # Strip backs interrupted by an older version were resumed as new runs but left
    # "interrupted", so every later resume stripped the environment back again: they are over.
    db.execute(
        """
        UPDATE runs SET state = 'superseded'
        WHERE kind = 'teardown' AND state = 'interrupted'
          AND message = 'resumed as a new strip back'
        """
    )
    # A clone whose VM vanished from vCenter without the bot destroying it ("missing") frees
    # its name like failed and destroyed ones.
    db.execute("DROP INDEX clones_live_name")
    db.execute(
        """
        CREATE UNIQUE INDEX clones_live_name ON clones(name)
        WHERE state NOT IN ('failed', 'destroyed', 'missing')
        """
    )


@migrations()
def m008_run_messages(db: Schema) -> None:
    # The Slack message that shows a run (channel and message ts), recorded when it is first
    # posted or taken over, so that after a crash the recovered run edits that same message
    # (and threads its chart under it) instead of leaving it at "6/30" forever.
    db.execute(
        """
        CREATE TABLE run_messages (
            run_id INTEGER PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,
            channel TEXT NOT NULL,
            ts TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )
        """
    )


# m009's trigger, in each dialect (the SQLite text as it shipped, so new files match old ones):
# a clone destroyed ends its active assignment in the same statement.
_END_WITH_CLONE_SQLITE = """
        CREATE TRIGGER assignments_end_with_clone
        AFTER UPDATE OF state ON clones
        WHEN NEW.state = 'destroyed' AND OLD.state != 'destroyed'
        BEGIN
            UPDATE assignments
            SET ended_at = strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000+00:00',
                ended_reason = 'removed'
            WHERE clone_id = NEW.id AND ended_at IS NULL;
        END
        """
_END_WITH_CLONE_POSTGRESQL = (
    """
    CREATE FUNCTION assignments_end_with_clone() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE assignments
        SET ended_at = to_char(statement_timestamp() AT TIME ZONE 'UTC',
                               'YYYY-MM-DD"T"HH24:MI:SS.US') || '+00:00',
            ended_reason = 'removed'
        WHERE clone_id = NEW.id AND ended_at IS NULL;
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE TRIGGER assignments_end_with_clone
    AFTER UPDATE OF state ON clones
    FOR EACH ROW
    WHEN (NEW.state = 'destroyed' AND OLD.state <> 'destroyed')
    EXECUTE FUNCTION assignments_end_with_clone()
    """,
)


@migrations()
def m009_assignments(db: Schema) -> None:
    # Which trainee (a Slack user ID) holds which clone. Active while ended_at is NULL: one
    # active assignment per clone and per trainee in an environment. ended_reason: unassigned,
    # replaced or removed; told_at: when the trainee was told their VM was removed (once).
    db.execute(
        """
        CREATE TABLE assignments (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            environment TEXT NOT NULL REFERENCES environments(name) ON DELETE CASCADE,
            trainee TEXT NOT NULL,
            clone_id INTEGER NOT NULL REFERENCES clones(id) ON DELETE CASCADE,
            assigned_by TEXT NOT NULL,
            assigned_at TEXT NOT NULL,
            handed_out_at TEXT,
            ended_at TEXT,
            ended_reason TEXT NOT NULL DEFAULT '',
            told_at TEXT
        )
        """
    )
    db.execute(
        "CREATE UNIQUE INDEX assignments_active_clone ON assignments(clone_id)"
        " WHERE ended_at IS NULL"
    )
    db.execute(
        "CREATE UNIQUE INDEX assignments_active_trainee ON assignments(environment, trainee)"
        " WHERE ended_at IS NULL"
    )
    db.execute("CREATE INDEX assignments_trainee ON assignments(trainee)")
    # A clone destroyed (a strip back, its recovery, ...) ends its assignment in the same
    # statement, whatever destroyed it; the trainee is told afterwards (told_at). The time is
    # written as storage.sql.to_text writes it (UTC, microseconds, +00:00).
    db.either(sqlite=_END_WITH_CLONE_SQLITE, postgresql=_END_WITH_CLONE_POSTGRESQL)


@migrations()
def m010_run_power_on(db: Schema) -> None:
    # A deployment asked to power its clones on ("deploy ... and power on"): the run that
    # recovery starts in its place powers them on too.
    db.execute("ALTER TABLE runs ADD COLUMN power_on INTEGER NOT NULL DEFAULT 0")


@migrations()
def m011_clone_kept_attributes(db: Schema) -> None:
    # The custom attributes of the VM a refresh destroys (JSON object; '' for none), written
    # with the destroy so the successor made after a crash carries them too.
    db.execute("ALTER TABLE clones ADD COLUMN kept_attributes TEXT NOT NULL DEFAULT ''")


# m012's trigger, in each dialect: an assignment ends when its clone is destroyed, missing
# or failed (each frees the clone's name for another clone).
_END_WITH_VM_SQLITE = """
        CREATE TRIGGER assignments_end_with_clone
        AFTER UPDATE OF state ON clones
        WHEN NEW.state IN ('destroyed', 'missing', 'failed') AND OLD.state != NEW.state
        BEGIN
            UPDATE assignments
            SET ended_at = strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000+00:00',
                ended_reason = CASE NEW.state WHEN 'destroyed' THEN 'removed' ELSE NEW.state END
            WHERE clone_id = NEW.id AND ended_at IS NULL;
        END
        """
_PG_NOW = (
    "to_char(statement_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US') || '+00:00'"
)
_END_WITH_VM_POSTGRESQL = (
    f"""
    CREATE FUNCTION assignments_end_with_clone() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE assignments
        SET ended_at = {_PG_NOW},
            ended_reason = CASE NEW.state WHEN 'destroyed' THEN 'removed' ELSE NEW.state END
        WHERE clone_id = NEW.id AND ended_at IS NULL;
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE TRIGGER assignments_end_with_clone
    AFTER UPDATE OF state ON clones
    FOR EACH ROW
    WHEN (NEW.state IN ('destroyed', 'missing', 'failed') AND OLD.state <> NEW.state)
    EXECUTE FUNCTION assignments_end_with_clone()
    """,
)
_END_LEFT_OVER = """
    UPDATE assignments
    SET ended_at = {now},
        ended_reason = (SELECT CASE c.state WHEN 'destroyed' THEN 'removed' ELSE c.state END
                        FROM clones c WHERE c.id = assignments.clone_id)
    WHERE ended_at IS NULL AND clone_id IN
        (SELECT id FROM clones WHERE state IN ('destroyed', 'missing', 'failed'))
    """


@migrations()
def m012_assignments_end_when_the_vm_does(db: Schema) -> None:
    # A right follows the VM, not its name: an assignment ends in the same statement in which
    # its clone leaves `ready` for good (destroyed, missing from vCenter, or failed: a rebuild
    # that could not make it again), because those states free the name for another clone.
    # ended_reason: 'removed' (destroyed, as m009 wrote it), 'missing' or 'failed'; the
    # trainee is told afterwards (told_at). A clone mid-rebuild (destroying, cloning, planned)
    # keeps its assignment: the rebuild's successor is the same record.
    db.either(
        sqlite=["DROP TRIGGER assignments_end_with_clone", _END_WITH_VM_SQLITE],
        postgresql=[
            "DROP TRIGGER assignments_end_with_clone ON clones",
            "DROP FUNCTION assignments_end_with_clone()",
            *_END_WITH_VM_POSTGRESQL,
        ],
    )
    # Assignments an older version left on clones already gone or failed end now (told next).
    db.either(
        sqlite=_END_LEFT_OVER.format(now="strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000+00:00'"),
        postgresql=_END_LEFT_OVER.format(now=_PG_NOW),
    )


@migrations()
def m013_clone_peak_size(db: Schema) -> None:
    # The largest committed size vCenter showed for a clone (bytes) and when, and when its size
    # was last read: the capacity estimate (bot/domain/capacity.py) takes a high percentile of
    # the peaks of clones that lived at least a day. Columns updated in place, not a history
    # table: every read of an estate (status, inventory, strip back, refresh) would add a row
    # per clone, while only the peak and the clone's age at its last reading are ever used.
    db.execute("ALTER TABLE clones ADD COLUMN peak_bytes INTEGER")
    db.execute("ALTER TABLE clones ADD COLUMN peak_at TEXT")
    db.execute("ALTER TABLE clones ADD COLUMN sized_at TEXT")


@migrations()
def m014_history_indexes(db: Schema) -> None:
    # Everyday reads read what is live, not a year of history (issue 26). Each partial index
    # holds only the rows those reads want, and a query uses it only when its WHERE clause
    # repeats the index's word for word (storage.sql.CURRENT, the queries in storage/*.py):
    # clones not destroyed (live, failed, missing), by environment, type and state: status,
    # App Home and the live environments; environments with a start or an end to keep and
    # claimed strip backs: the schedules' re-sync and next events; removals not told yet: the
    # re-sync's messages to trainees.
    db.execute(
        "CREATE INDEX clones_current ON clones(environment, type, state) WHERE state != 'destroyed'"
    )
    db.execute(
        "CREATE INDEX environments_starts ON environments(starts_at) WHERE starts_at IS NOT NULL"
    )
    db.execute("CREATE INDEX environments_ends ON environments(ends_at) WHERE ends_at IS NOT NULL")
    db.execute(
        "CREATE INDEX schedules_stripping ON schedules(stripping_for_end)"
        " WHERE stripping_for_end IS NOT NULL"
    )
    db.execute(
        "CREATE INDEX assignments_untold ON assignments(id)"
        " WHERE ended_reason = 'removed' AND told_at IS NULL"
    )


@migrations()
def m015_untold_losses_index(db: Schema) -> None:
    # Since m012 a trainee is told when their VM is removed, missing or failed: the untold
    # index holds all three, as the re-sync's query reads them (its WHERE word for word).
    db.execute("DROP INDEX assignments_untold")
    db.execute(
        "CREATE INDEX assignments_untold ON assignments(id)"
        " WHERE ended_reason IN ('removed', 'missing', 'failed') AND told_at IS NULL"
    )


@migrations()
def m019_leases(db: Schema) -> None:
    # Leadership that survives machines (docs/operations.md): the lease row of the bot that
    # runs the schedules ("scheduler"): its holder (host:pid:token), an epoch raised by every
    # takeover (the fence every leader's write is checked against), and when it expires (Unix
    # seconds; REAL is DOUBLE PRECISION on PostgreSQL, storage/dialect.py: its own REAL holds
    # ~7 digits, far too few for a Unix time). Portable: no `db.either` needed.
    db.execute(
        """
        CREATE TABLE leases (
            name TEXT PRIMARY KEY,
            holder TEXT NOT NULL,
            epoch INTEGER NOT NULL,
            expires_at REAL NOT NULL,
            renewed_at REAL NOT NULL
        )
        """
    )
    # Every bot up (leading or standing by) and when it last said so, for "a bot stands by".
    db.execute("CREATE TABLE bots (owner TEXT PRIMARY KEY, seen_at REAL NOT NULL)")


@migrations()
def m020_confirmations(db: Schema) -> None:
    # The one-time tokens of Confirm / Cancel buttons, shared by every bot on this database (a
    # click may reach any of them); issued_at is Unix time, items a JSON list ('' for none).
    db.execute(
        """
        CREATE TABLE confirmations (
            token TEXT PRIMARY KEY,
            environment TEXT NOT NULL,
            requester TEXT NOT NULL,
            channel TEXT NOT NULL,
            issued_at REAL NOT NULL,
            action TEXT NOT NULL,
            items TEXT NOT NULL DEFAULT ''
        )
        """
    )


def apply_migrations(db: Connected) -> None:
    """Apply pending migrations. Call inside the core's write transaction (see module doc)."""
    migrations.apply(db)
