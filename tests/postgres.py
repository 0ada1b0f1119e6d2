"""A real PostgreSQL server for tests and benchmarks, from the machine's own binaries (Debian's
`postgresql` package: /usr/lib/postgresql/*/bin), as the lab vCenter is a real SOAP server.

One server per test session (initdb and start take a few seconds), a fresh empty database per
test: CREATE DATABASE costs about 2 s on a busy machine, so a database a test is done with is
emptied (its clients ended, its schema dropped and made anew, about 0.1 s) and handed to the next
test instead of being dropped. PostgreSQL refuses to run as root: as root the
server runs as the `postgres` user the package creates (`runuser -u postgres --`), in a folder of
its own under /tmp; as anyone else, as that user. It listens on 127.0.0.1 on a free port (and a
Unix socket in its folder, for the superuser), and the bot's user logs in over TCP with a
password (scram-sha-256), as in production. Stopped, and its folder removed, afterwards.
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Final

USER: Final = "clones"
PASSWORD: Final = "clones-test-password"  # a test server's own, never a real secret
PASSWORD_ENV: Final = "CLONES_DATABASE_PASSWORD"


def binaries() -> Path | None:
    """The newest PostgreSQL's bin folder on this machine, if one is installed."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4])
    )
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    """One PostgreSQL cluster in a temporary folder: `start()`, `new_database()`, `stop()`.

    `durable=False` (tests) turns fsync off: a test never survives a power cut, and fsync would
    only make the suite slower. Benchmarks keep PostgreSQL's defaults (durable commits).
    """

    def __init__(self, *, durable: bool = False) -> None:
        bin_dir = binaries()
        if bin_dir is None:
            raise RuntimeError(
                "PostgreSQL is not installed (apt-get install postgresql; scripts/install.sh "
                "does it)"
            )
        self.bin = bin_dir
        self.durable = durable
        self.port = 0
        self.folder = Path(tempfile.mkdtemp(prefix="clones-pg-"))
        self.data = self.folder / "data"
        self._names = itertools.count(1)
        self._free: list[str] = []  # emptied databases, ready for the next test
        self._lock = threading.Lock()
        self._as_root = os.geteuid() == 0
        self._options = ""

    def _run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        prefix = ["runuser", "-u", "postgres", "--"] if self._as_root else []
        return subprocess.run(
            [*prefix, *argv], check=check, capture_output=True, text=True, timeout=120
        )

    def start(self) -> PostgresServer:
        if self._as_root:
            shutil.chown(self.folder, "postgres", "postgres")
        self.folder.chmod(0o700)
        pwfile = self.folder / "pw"
        pwfile.write_text(PASSWORD + "\n", encoding="utf-8")
        if self._as_root:
            shutil.chown(pwfile, "postgres", "postgres")
        self._run(
            str(self.bin / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            f"--pwfile={pwfile}",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
        )
        options = [
            "-c listen_addresses=127.0.0.1",
            f"-c unix_socket_directories={self.folder}",
            "-c max_connections=200",
            "-c shared_buffers=64MB",
        ]
        if not self.durable:
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        for _ in range(5):  # a free port may be taken between choosing and binding it
            self.port = _free_port()
            started = self._run(
                str(self.bin / "pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.folder / "log"),
                "-w",
                "-o",
                " ".join([*options, f"-p {self.port}"]),
                "start",
                check=False,
            )
            if started.returncode == 0:
                self._options = " ".join([*options, f"-p {self.port}"])
                break
        else:
            log = (self.folder / "log").read_text(encoding="utf-8", errors="replace")
            raise RuntimeError(f"PostgreSQL did not start: {started.stderr}\n{log[-2000:]}")
        self.admin(f"CREATE ROLE {USER} LOGIN PASSWORD '{PASSWORD}'")
        return self

    def admin(self, sql: str, database: str = "postgres") -> str:
        """Run SQL as the superuser over the server's Unix socket; its output."""
        done = self._run(
            str(self.bin / "psql"),
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            str(self.folder),
            "-p",
            str(self.port),
            "-U",
            "postgres",
            "-d",
            database,
            "-c",
            sql,
        )
        return done.stdout.strip()

    def url(self, database: str) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    def new_database(self, prefix: str = "t") -> str:
        """An empty database owned by the bot's user, no client connected; its URL."""
        with self._lock:
            if self._free:
                return self.url(self._free.pop())
            name = f"{prefix}{next(self._names)}"
        self.admin(f"CREATE DATABASE {name} OWNER {USER} TEMPLATE template0")
        return self.url(name)

    def drop_database(self, url: str) -> None:
        """Done with this database: its clients are ended and it is emptied for the next test
        (the same as a new one: no table, function, sequence or lock is left)."""
        name = self.empty_database(url)
        with self._lock:
            self._free.append(name)

    def empty_database(self, url: str) -> str:
        """Its clients ended and everything in it dropped (a lost database: the same as a new
        one); its name."""
        name = url.rsplit("/", 1)[-1].split("?")[0]
        self.admin(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            f" WHERE datname = '{name}' AND pid <> pg_backend_pid()"
        )
        self.admin(
            f"DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public AUTHORIZATION {USER}",
            database=name,
        )
        return name

    def pg_ctl(self, action: str) -> None:
        """`pg_ctl stop` (fast: clients are disconnected) or `start` again on the same port."""
        argv = [str(self.bin / "pg_ctl"), "-D", str(self.data), "-w"]
        if action == "start":
            argv += ["-l", str(self.folder / "log"), "-o", self._options, "start"]
        else:
            argv += ["-m", "fast", action]
        self._run(*argv)

    def stop(self) -> None:
        if self.port:
            self._run(
                str(self.bin / "pg_ctl"),
                "-D",
                str(self.data),
                "-m",
                "immediate",
                "stop",
                check=False,
            )
            self.port = 0
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
