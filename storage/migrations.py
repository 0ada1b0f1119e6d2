"""Schema migrations, applied in order by `sqlite_utils.Migrations`.

To change the schema, append a new function decorated with `@migrations()` at the end of this file
(`m002_...`, `m003_...`). Never edit, rename or reorder one that has shipped: its name is the record
in `_sqlite_migrations` that it ran, so an edited migration would never run on existing databases.
Each migration runs in its own savepoint inside the repository's `BEGIN IMMEDIATE` transaction, so
it is all-or-nothing and two processes opening one file cannot both apply it.

sqlite_utils (which imports numpy, about 0.1 s) is imported only when a migration is pending:
opening an up-to-date database reads the names applied with one query (`_Registry.pending`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from sqlite_utils import Database

MIGRATIONS_TABLE = "_sqlite_migrations"  # sqlite_utils.Migrations' table


class _HasConnection(Protocol):
    @property
    def conn(self) -> sqlite3.Connection: ...


class _Registry:
    """The migrations in order, as `sqlite_utils.Migrations` records them (same set name, same
    table), handed to it when one is pending."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._migrations: list[tuple[str, Callable[[Database], None]]] = []

    def __call__(self) -> Callable[[Callable[[Database], None]], Callable[[Database], None]]:
        def register(fn: Callable[[Database], None]) -> Callable[[Database], None]:
            if any(name == fn.__name__ for name, _ in self._migrations):
                raise ValueError(f"migration {fn.__name__} is registered twice")
            self._migrations.append((fn.__name__, fn))
            return fn

        return register

    def pending(self, db: _HasConnection) -> list[str]:
        """The names not applied yet to `db` (read-only; one query)."""
        conn = db.conn
        exists = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (MIGRATIONS_TABLE,)
        ).fetchone()
        applied: set[str] = set()
        if exists:
            rows = conn.execute(
                f"SELECT name FROM {MIGRATIONS_TABLE} WHERE migration_set = ?", (self.name,)
            )
            applied = {row[0] for row in rows}
        return [name for name, _ in self._migrations if name not in applied]

    def apply(self, db: _HasConnection) -> None:
        """Apply the pending migrations with `sqlite_utils.Migrations` (imported only then)."""
        if not self.pending(db):
            return
        from sqlite_utils import Database, Migrations

        real = Migrations(self.name)
        for name, fn in self._migrations:
            real(name=name)(fn)
        real.apply(Database(db.conn))


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
def m001_initial_schema(db: Database) -> None:
    # Statement by statement, not executescript(): sqlite3's executescript() commits first.
    for statement in _SCHEMA_V1:
        db.execute(statement)


@migrations()
def m002_parent_facts(db: Database) -> None:
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
def m003_schedules(db: Database) -> None:
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
def m004_clone_runtime(db: Database) -> None:
    # Where a clone runs, its last known power state and its guest customization outcome
    # ("", "pending", "succeeded", "failed"): shown by status without a vCenter round trip.
    db.execute("ALTER TABLE clones ADD COLUMN host TEXT")
    db.execute("ALTER TABLE clones ADD COLUMN power_state TEXT")
    db.execute("ALTER TABLE clones ADD COLUMN customization TEXT NOT NULL DEFAULT ''")


@migrations()
def m005_run_owner(db: Database) -> None:
    # Which process runs a run ("host:pid") and when it last said it was alive: a run whose
    # process died (SIGKILL, power cut) is found and resumed at the next start.
    db.execute("ALTER TABLE runs ADD COLUMN owner TEXT NOT NULL DEFAULT ''")
    db.execute("ALTER TABLE runs ADD COLUMN heartbeat_at TEXT")
    db.execute("CREATE INDEX runs_state ON runs(state)")
    db.execute("CREATE INDEX clones_instance_uuid ON clones(instance_uuid)")


@migrations()
def m006_seen_requests(db: Database) -> None:
    # Slack request keys (signature, trigger_id, event_id) seen in the replay window, so a request
    # replayed or retried after a restart of the bot is still recognised; expires_at is Unix time.
    db.execute("CREATE TABLE seen_requests (key TEXT PRIMARY KEY, expires_at REAL NOT NULL)")
    db.execute("CREATE INDEX seen_requests_expires ON seen_requests(expires_at)")


@migrations()
def m007_run_members(db: Database) -> None:
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
def m008_run_messages(db: Database) -> None:
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


@migrations()
def m009_assignments(db: Database) -> None:
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
    db.execute(
        """
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
    )


@migrations()
def m010_run_power_on(db: Database) -> None:
    # A deployment asked to power its clones on ("deploy ... and power on"): the run that
    # recovery starts in its place powers them on too.
    db.execute("ALTER TABLE runs ADD COLUMN power_on INTEGER NOT NULL DEFAULT 0")


@migrations()
def m011_clone_kept_attributes(db: Database) -> None:
    # The custom attributes of the VM a refresh destroys (JSON object; '' for none), written
    # with the destroy so the successor made after a crash carries them too.
    db.execute("ALTER TABLE clones ADD COLUMN kept_attributes TEXT NOT NULL DEFAULT ''")


@migrations()
def m013_clone_peak_size(db: Database) -> None:
    # The largest committed size vCenter showed for a clone (bytes) and when, and when its size
    # was last read: the capacity estimate (bot/domain/capacity.py) takes a high percentile of
    # the peaks of clones that lived at least a day. Columns updated in place, not a history
    # table: every read of an estate (status, inventory, strip back, refresh) would add a row
    # per clone, while only the peak and the clone's age at its last reading are ever used.
    db.execute("ALTER TABLE clones ADD COLUMN peak_bytes INTEGER")
    db.execute("ALTER TABLE clones ADD COLUMN peak_at TEXT")
    db.execute("ALTER TABLE clones ADD COLUMN sized_at TEXT")


@migrations()
def m019_leases(db: Database) -> None:
    # Leadership that survives machines (docs/operations.md): the lease row of the bot that
    # runs the schedules ("scheduler"): its holder (host:pid:token), an epoch raised by every
    # takeover (the fence every leader's write is checked against), and when it expires (Unix
    # seconds). DOUBLE PRECISION, not REAL: PostgreSQL's REAL holds ~7 digits, far too few
    # for a Unix time. Portable SQL: both engines take these statements as they are.
    db.execute(
        """
        CREATE TABLE leases (
            name TEXT PRIMARY KEY,
            holder TEXT NOT NULL,
            epoch INTEGER NOT NULL,
            expires_at DOUBLE PRECISION NOT NULL,
            renewed_at DOUBLE PRECISION NOT NULL
        )
        """
    )
    # Every bot up (leading or standing by) and when it last said so, for "a bot stands by".
    db.execute("CREATE TABLE bots (owner TEXT PRIMARY KEY, seen_at DOUBLE PRECISION NOT NULL)")


@migrations()
def m020_confirmations(db: Database) -> None:
    # The one-time tokens of Confirm / Cancel buttons, shared by every bot on this database (a
    # click may reach any of them); issued_at is Unix time, items a JSON list ('' for none).
    db.execute(
        """
        CREATE TABLE confirmations (
            token TEXT PRIMARY KEY,
            environment TEXT NOT NULL,
            requester TEXT NOT NULL,
            channel TEXT NOT NULL,
            issued_at DOUBLE PRECISION NOT NULL,
            action TEXT NOT NULL,
            items TEXT NOT NULL DEFAULT ''
        )
        """
    )


def apply_migrations(db: _HasConnection) -> None:
    """Apply pending migrations. Call inside a `BEGIN IMMEDIATE` transaction (see module doc)."""
    migrations.apply(db)
