"""The PostgreSQL backend: psycopg 3 and a small connection pool (psycopg-pool).

Threading: the service layer calls in from a worker pool plus Slack and scheduler threads. A
statement outside a transaction borrows a pooled connection for just that statement; a
transaction holds one connection (in a `threading.local`) from BEGIN to COMMIT, so its statements
and savepoints all run on it. Connections run in autocommit mode, as SQLite's do: nothing opens a
transaction behind our back.

Transactions: SQLite's `BEGIN IMMEDIATE` makes every write transaction the only writer until it
ends, and the stores rely on that: a read-then-write (picking free names, "is a run of this
environment running?" then inserting one) can never interleave with another writer. Here each
write transaction takes one transaction-level advisory lock (`pg_advisory_xact_lock`, released
by COMMIT or ROLLBACK, scoped to the database) right after BEGIN: writers take turns in the order
they asked, across threads, processes and machines, while readers never wait (MVCC). A single
write outside a transaction runs in one of these too, as SQLite's autocommit write takes its
write lock. The write transactions are short (well under a millisecond of the server's time),
so one lock costs little throughput at the bot's scale (benchmarks/storage.py prints figures).

Durability: the bot's sessions commit with `synchronous_commit = off`, the same promise as its
SQLite files (WAL, synchronous=NORMAL): a crash of the database server's machine may lose the last
commits (well under a second), never corrupts, and reconciliation against vCenter recovers what
they recorded; a crash of a bot loses nothing. Without it every write would wait for the
server's disk flush while holding the write lock (about 10 ms here, so writes would queue).
A write that must survive the server's crash too (a leadership lease or its fencing epoch) asks
for it: `Core.transaction(durable=True)` (`SET LOCAL synchronous_commit = on`).

psycopg is imported only when a PostgreSQL database is opened: a SQLite user never loads it.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from typing import TYPE_CHECKING, Any, Final, TypeVar
from urllib.parse import urlsplit, urlunsplit

from bot.domain.errors import StorageError
from storage.dialect import Dialect, to_postgres
from storage.faults import IntegrityViolation, committed
from storage.migrations import MIGRATIONS_TABLE, migrations

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import ConnectionPool

T = TypeVar("T")
# A session idle inside a transaction this long is ended by the server, its transaction rolled
# back: a bot stopped inside a write (SIGSTOP, a frozen VM, a debugger) would otherwise hold the
# write lock, and so every other bot's writes, until it is continued (docs/operations.md). The
# bot's own transactions never idle: their statements run back to back, database work only.
IDLE_IN_TRANSACTION_S = 30.0
POOL_SIZE: Final = 10  # connections at most, per bot; idle ones beyond 1 are closed after 10 min
TIMEOUT_S: Final = 30.0  # waiting for a pooled connection, or for the server to answer a connect
# The advisory lock every write transaction takes ("clones" in ASCII): see the module docstring.
WRITE_LOCK: Final = 0x636C6F6E6573
MIN_SERVER: Final = 110000  # PostgreSQL 11: EXECUTE FUNCTION in triggers
_RESUME = "then run the command again (`clones resume` finishes a run that stopped)"


def is_postgres_url(location: object) -> bool:
    return isinstance(location, str) and bool(re.match(r"postgres(ql)?://", location, re.I))


def redacted(url: str) -> str:
    """The URL with any password (user:PASSWORD@, password=, sslpassword=) shown as ***, for
    messages and logs (the settings refuse such a URL; a caller of Repository may not)."""
    parts = urlsplit(url)
    if parts.password is not None:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
        url = urlunsplit(parts._replace(netloc=netloc))
    return re.sub(r"(?i)\b((?:ssl)?password)=[^&]*", r"\1=***", url)


class PostgresDatabase:
    """One connection (borrowed from the pool) as the stores use it: `?` placeholders as
    psycopg's `%s` (storage/dialect.py), rows as dicts."""

    dialect: Dialect = "postgresql"

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Sequence[object] = ()) -> psycopg.Cursor[Any]:
        if not params:
            return self.conn.execute(sql.replace("%", "%%") if "%" in sql else sql, ())
        return self.conn.execute(to_postgres(sql), params)

    def query(self, sql: str, params: Sequence[object] = ()) -> Iterator[dict[str, Any]]:
        return iter(self.rows(self.execute(sql, params)))

    @staticmethod
    def rows(cursor: psycopg.Cursor[Any]) -> list[dict[str, Any]]:
        """A cursor's rows as dicts (none for a statement that returns no rows)."""
        if cursor.description is None:
            return []
        keys = _unique([d.name for d in cursor.description])
        return [dict(zip(keys, row, strict=True)) for row in cursor.fetchall()]

    def executemany(self, sql: str, rows: Iterable[Sequence[object]]) -> None:
        with self.conn.cursor() as cursor:
            cursor.executemany(to_postgres(sql), list(rows))

    def insert(self, sql: str, params: Sequence[object] = ()) -> int:
        row = self.execute(sql + " RETURNING id", params).fetchone()
        assert row is not None
        return int(row[0])

    def insert_many(self, sql: str, rows: Sequence[Sequence[object]]) -> list[int]:
        if not rows:
            return []
        ids: list[int] = []
        with self.conn.cursor() as cursor:
            cursor.executemany(to_postgres(sql + " RETURNING id"), rows, returning=True)
            while True:
                row = cursor.fetchone()
                assert row is not None
                ids.append(int(row[0]))
                if not cursor.nextset():
                    return ids

    def script(self, sql: str) -> None:
        """A statement as written (DDL, BEGIN, SAVEPOINT ...): no parameters, no `%` rewriting."""
        self.conn.execute(sql)

    @property
    def in_transaction(self) -> bool:
        from psycopg.pq import TransactionStatus

        return self.conn.info.transaction_status != TransactionStatus.IDLE

    def close(self) -> None:
        self.conn.close()


def _unique(keys: list[str]) -> list[str]:
    from storage.sqlite import unique_keys

    return unique_keys(keys)


class _ThreadState(threading.local):
    held: PostgresDatabase | None = None  # the connection of this thread's open transaction


class PostgresBackend:
    """One PostgreSQL database: a pool, transactions holding a connection, the write lock."""

    dialect: Dialect = "postgresql"

    def __init__(self, url: str, *, password_env: str, environ: Mapping[str, str]) -> None:
        import psycopg  # only here: see the module's docstring

        self.driver_error: type[Exception] = psycopg.Error
        self.url = url
        self.label = redacted(url)
        self.password_env = password_env
        password = environ.get(password_env, "")
        self._kwargs: dict[str, Any] = {
            "autocommit": True,
            "application_name": "clones",
            "connect_timeout": int(TIMEOUT_S),
            # No server-side prepared statements: a plan the server cached for `SELECT *` fails
            # ("cached plan must not change result type") once another bot's migration adds a
            # column, and bots are upgraded one at a time. Planning these small queries costs
            # far less than a round trip.
            "prepare_threshold": None,
        }
        if password:
            self._kwargs["password"] = password
        self._local = _ThreadState()
        self._lock = threading.Lock()
        self._pool: ConnectionPool | None = None

    # -- opening -----------------------------------------------------------------------------

    def open(self, migrate: Any) -> None:
        """Connect once directly (a refused connection or password is one clear sentence, where
        a pool would only time out), check the server and that the database is ours or empty,
        then `migrate()` in a transaction of the core."""
        import psycopg

        with self.faults(), psycopg.connect(self.url, **self._kwargs) as conn:
            version = conn.info.server_version
            foreign = _foreign_tables(PostgresDatabase(conn))
        if version < MIN_SERVER:
            raise StorageError(
                f"The database {self.label} is on PostgreSQL {version // 10000}; clones needs "
                "PostgreSQL 11 or later."
            )
        if foreign:
            shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
            raise StorageError(
                f"The database {self.label} holds tables of something else ({shown}), not those "
                "of clones: nothing was written to it. Create an empty database for clones "
                "(createdb -O USER clones) and point [clones] database at it."
            )
        migrate()

    def pool(self) -> ConnectionPool:
        with self._lock:
            if self._pool is None:
                from psycopg_pool import ConnectionPool

                self._pool = ConnectionPool(
                    self.url,
                    kwargs=self._kwargs,
                    min_size=1,
                    max_size=POOL_SIZE,
                    timeout=TIMEOUT_S,
                    configure=_configure,
                    name="clones",
                    open=True,
                )
            return self._pool

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    # -- connections and transactions ---------------------------------------------------------

    @contextmanager
    def using(self) -> Iterator[PostgresDatabase]:
        """The connection of this thread's transaction, or one borrowed for a statement."""
        held = self._local.held
        if held is not None:
            yield held
            return
        with self.pool().connection() as conn:
            yield PostgresDatabase(conn)

    def read(self, fn: Callable[[PostgresDatabase], T]) -> T:
        """`fn` (a read) on this thread's transaction's connection, or on a pooled one.

        A pooled connection the server has closed meanwhile (a restart, an idle timeout, a
        failover) is only found out by using it: a read that meets one has the pool test its
        idle connections (a restart closes them all) and runs again, once, on a sound one
        (reads change nothing, so running one twice is safe). This replaces the pool's check
        before each borrow, a round trip that would double every read."""
        held = self._local.held
        if held is not None:
            return fn(held)
        import psycopg

        pool = self.pool()
        for attempt in (1, 2):
            with pool.connection() as conn:
                try:
                    return fn(PostgresDatabase(conn))
                except psycopg.OperationalError:
                    if attempt == 2:
                        raise
            pool.check()  # the others went with it: each idle connection tested, replaced
        raise AssertionError("unreachable")  # pragma: no cover

    def current(self) -> PostgresDatabase | None:
        return self._local.held

    @contextmanager
    def begin(self, *, durable: bool = False) -> Iterator[PostgresDatabase]:
        """An outermost transaction on a connection held until it ends: BEGIN and the write lock
        (one round trip), ... COMMIT, or ROLLBACK on an exception (a failed ROLLBACK, on a
        connection that broke, is left to the pool, which discards it). `durable`: its COMMIT
        waits for the server's disk (see the module's docstring)."""
        with self.faults():
            conn = self._begun(durable)
        db = PostgresDatabase(conn)
        pool = self.pool()
        try:
            self._local.held = db
            try:
                with committed(db, self.faults, self.rollback_quietly):
                    yield db
            finally:
                self._local.held = None
        finally:
            self.rollback_quietly(db, "ROLLBACK")  # back to the pool idle, whatever happened
            pool.putconn(conn)

    def _begun(self, durable: bool) -> psycopg.Connection[Any]:
        """A pooled connection with a write transaction begun on it (the write lock taken). A
        connection the server closed meanwhile fails at BEGIN, before anything was done: it is
        dropped and BEGIN runs again, once, on a fresh one (see `read`)."""
        import psycopg

        pool = self.pool()
        begin = f"BEGIN; SELECT pg_advisory_xact_lock({WRITE_LOCK})"
        begin += "; SET LOCAL synchronous_commit = on" if durable else ""
        for attempt in (1, 2):
            conn = pool.getconn()
            try:
                conn.execute(begin)
                return conn
            except BaseException as exc:
                # The server's "terminating connection" or a lost socket: nothing was done.
                broken = isinstance(exc, psycopg.OperationalError)
                with contextlib.suppress(psycopg.Error):
                    if not conn.closed and PostgresDatabase(conn).in_transaction:
                        conn.execute("ROLLBACK")
                pool.putconn(conn)
                if attempt == 2 or not broken:
                    raise
                pool.check()  # see `read`
        raise AssertionError("unreachable")  # pragma: no cover

    def write_alone(self, sql: str, params: Sequence[object]) -> tuple[list[dict[str, Any]], int]:
        """One write statement as its own write transaction, the rows it returns (a RETURNING
        clause's) and its row count. BEGIN, the write lock and the statement go in one round
        trip (a pipeline), then COMMIT: every other writer waits for one round trip of this
        one's instead of three (a deployment writes each clone this way, several times, from
        every worker at once). A connection the server closed meanwhile fails before COMMIT,
        so nothing was written: the write runs again, once, on a fresh one (see `read`)."""
        import psycopg

        pool = self.pool()
        for attempt in (1, 2):
            conn = pool.getconn()
            db = PostgresDatabase(conn)
            try:
                with conn.pipeline():
                    conn.execute("BEGIN")
                    conn.execute(f"SELECT pg_advisory_xact_lock({WRITE_LOCK})")
                    cursor = db.execute(sql, params)
                rows = db.rows(cursor)
            except psycopg.OperationalError:
                self.rollback_quietly(db, "ROLLBACK")
                pool.putconn(conn)
                if attempt == 2:
                    raise
                pool.check()  # the others went with it: each idle connection tested, replaced
                continue
            except BaseException:
                self.rollback_quietly(db, "ROLLBACK")
                pool.putconn(conn)
                raise
            try:
                with committed(db, self.faults, self.rollback_quietly):
                    pass
                return rows, cursor.rowcount
            finally:
                pool.putconn(conn)
        raise AssertionError("unreachable")  # pragma: no cover

    def rollback_quietly(self, db: PostgresDatabase, *statements: str) -> None:
        with contextlib.suppress(self.driver_error):
            if not db.conn.closed and db.in_transaction:
                for statement in statements:
                    db.script(statement)

    def writing(self) -> nullcontext[None]:
        return nullcontext()  # writes queue on the advisory lock (see begin)

    # -- faults ------------------------------------------------------------------------------

    @contextmanager
    def faults(self) -> Iterator[None]:
        """The driver's faults as one sentence each (StorageError); a constraint refused as
        IntegrityViolation; a misuse of SQL (a bug) unchanged."""
        import psycopg
        from psycopg import errors
        from psycopg_pool import PoolTimeout

        try:
            yield
        except psycopg.IntegrityError as exc:
            raise IntegrityViolation(
                str(exc), unique=isinstance(exc, errors.UniqueViolation)
            ) from exc
        except PoolTimeout as exc:
            raise StorageError(
                f"The database {self.label} could not be reached within {TIMEOUT_S:.0f} s (no "
                "connection could be made or freed): check that PostgreSQL runs and accepts "
                f"connections from this machine, {_RESUME}."
            ) from exc
        except (errors.InsufficientPrivilege, errors.ReadOnlySqlTransaction) as exc:
            raise self.explain(exc) from exc
        except psycopg.ProgrammingError:
            raise
        except psycopg.Error as exc:
            raise self.explain(exc) from exc

    def explain(self, exc: Exception) -> StorageError:
        """`exc` on this database, as one sentence saying what to do."""
        from psycopg import errors

        text = " ".join(str(exc).split()) or type(exc).__name__
        first = _first(str(exc)) or text
        lowered = text.lower()
        if isinstance(exc, errors.InsufficientPrivilege):
            what = (
                f"refused this user ({text}): grant the user clones connects as the rights on "
                "the database (it owns its tables: createdb -O USER)"
            )
        elif isinstance(exc, errors.ReadOnlySqlTransaction):
            what = (
                "is read-only (a standby, or default_transaction_read_only): point [clones] "
                f"database at the primary server, {_RESUME}"
            )
        elif isinstance(exc, errors.DiskFull):
            what = f"cannot be written: the server's disk is full. Free space there, {_RESUME}"
        elif "password" in lowered:
            what = (
                f"refused the login ({first}): set the user's password in the environment "
                f"variable {self.password_env} ([clones] database_password_env names it)"
            )
        elif "does not exist" in lowered and "database" in lowered:
            what = (
                "does not exist on that server: create it (createdb -O USER NAME), or fix the "
                "name in [clones] database"
            )
        elif "does not exist" in lowered and "role" in lowered:
            what = f"has no such user ({first}): fix the user in [clones] database"
        elif "ssl" in lowered or "certificate" in lowered:
            what = (
                f"refused the TLS connection ({first}): check the sslmode, sslrootcert, "
                "sslcert and sslkey parameters of [clones] database"
            )
        elif _unreachable(lowered):
            what = (
                f"cannot be reached ({first}): check that PostgreSQL runs there and "
                f"accepts connections from this machine, {_RESUME}"
            )
        else:
            what = f"failed ({text}); {_RESUME}"
        return StorageError(f"The database {self.label} {what}.")


def _configure(conn: psycopg.Connection[Any]) -> None:
    """Each pooled connection's session (see the module's docstring on durability, and
    IDLE_IN_TRANSACTION_S)."""
    conn.execute("SET synchronous_commit = off")
    conn.execute(f"SET idle_in_transaction_session_timeout = {int(IDLE_IN_TRANSACTION_S * 1000)}")


def _first(text: str) -> str:
    """The part of a libpq message that says what happened: its first line, less the address
    it repeats first ('connection to server at "h", port 5432 failed: Connection refused')."""
    line = next((line for line in text.splitlines() if line.strip()), "")
    return " ".join(line.rsplit(" failed: ", 1)[-1].split()).rstrip(".")


def _unreachable(lowered: str) -> bool:
    return any(
        phrase in lowered
        for phrase in (
            "connection refused",
            "could not translate host name",
            "timeout expired",
            "no route to host",
            "server closed the connection",
            "terminating connection",
            "connection is closed",
            "the connection is lost",
            "consuming input failed",
            "network is unreachable",
            "no such file or directory",  # a Unix socket that is not there
        )
    )


def _foreign_tables(db: PostgresDatabase) -> list[str]:
    """The tables of a database that is not a clones database (no record of our migrations);
    [] for ours, and for a database with no tables yet (in the schema clones uses)."""
    names = [
        row["table_name"]
        for row in db.query(
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
        )
    ]
    if not names:
        return []
    if MIGRATIONS_TABLE in names:
        ours = list(
            db.query(
                f"SELECT 1 AS one FROM {MIGRATIONS_TABLE} WHERE migration_set = ? LIMIT 1",
                (migrations.name,),
            )
        )
        if ours:
            return []
    return sorted(names)
