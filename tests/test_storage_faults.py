"""Storage faults are errors, not bugs: a database that is a folder, a file that is not a SQLite
database or is a SQLite database of something else, a read-only database, a full disk, a database
made read-only or filled up mid-run. Each is one sentence saying what and where (exit 1 for a
command, exit 2 for the bot at start), no traceback, no crash file; a foreign database is never
written to; a run whose writes fail mid-way stays recorded as it was and `clones resume` finishes
it.

Faults a root shell can make are made for real: `chattr +i` (an immutable file: what a
filesystem remounted read-only after a disk error does to the files it holds) and a small tmpfs
that fills up. Where the machine does not allow them (not root, no mount), those tests skip.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.adapters.lab import LabProcess
from bot.domain.errors import StorageError
from bot.domain.models import CloneState, RunState
from storage import Repository
from tests.conftest import ROOT
from tests.faults import Clones, clone_vms, record, wait_while_running
from tests.helpers import lab_config, write_config
from tests.terminal import Terminal, assert_clean_failure

MakeLab = Callable[[dict[str, Any]], LabProcess]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _foreign(path: Path) -> Path:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute("INSERT INTO customers (name) VALUES ('Ada')")
        conn.commit()
    return path


def _made_folder(path: Path) -> Path:
    path.mkdir()
    return path


BAD_DATABASES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "a folder": (lambda p: _made_folder(p), "is a folder, not a file"),
    "a text file": (
        lambda p: (p.write_text("not a database\n" * 200), p)[1],
        "is not a SQLite database",
    ),
    "a damaged SQLite file": (
        lambda p: (p.write_bytes(b"SQLite format 3\x00" + b"\xff" * 8000), p)[1],
        "is not a SQLite database",
    ),
    "another program's SQLite database": (_foreign, "is a SQLite database of something else"),
    "a path under a file": (
        lambda p: ((p.parent / "notes").write_text("x"), p.parent / "notes" / "clones.db")[1],
        "is a file, not a folder",
    ),
}


@pytest.fixture
def crash_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where the terminal would write a crash file (none must appear)."""
    state = tmp_path / "state"
    monkeypatch.setenv("XDG_STATE_HOME", str(state))
    return state


@pytest.mark.parametrize("kind", list(BAD_DATABASES))
def test_a_database_that_cannot_be_ours_is_one_sentence_and_exit_1(
    kind: str, term: Terminal, crash_folder: Path
) -> None:
    make, words = BAD_DATABASES[kind]
    path = make(term.tmp_path / "clones.db")
    before = _digest(path) if path.is_file() else None
    term.configure(None)
    write_config(term.config, lab_config(None, path))
    for command in (["status"], ["check"], ["deploy", "capture", "2", "as", "x", "--yes"]):
        result = term(*command)
        assert_clean_failure(result, f"The database {path} ", words)
        assert result.code == 1
    assert not crash_folder.exists(), "no crash file"
    if before is not None:
        assert _digest(path) == before, "the file was not written to"
    if kind.startswith("another"):
        with contextlib.closing(sqlite3.connect(path)) as conn:
            tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master")]
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        assert tables == ["customers"] and mode == "delete"  # never migrated into, nor WAL


def test_a_foreign_database_is_refused_by_the_repository_itself(tmp_path: Path) -> None:
    path = _foreign(tmp_path / "shop.db")
    with pytest.raises(StorageError, match=r"shop\.db is a SQLite database of something else"):
        Repository(path)
    with Repository(tmp_path / "new.db") as repo:  # a new file is ours to make
        assert repo.list_environments() == []
    with Repository(tmp_path / "new.db") as repo:  # and ours to open again
        assert repo.runs() == []


def _bot(config: Path, db: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "CLONES_"))}
    env.update(
        CLONES_CONFIG=str(config),
        SLACK_BOT_TOKEN="xoxb-1",
        SLACK_APP_TOKEN="xapp-1",
        PYTHONPATH=str(ROOT),
    )
    if db is not None:
        env["CLONES_DB"] = db
    return subprocess.run(
        [sys.executable, "-m", "bot"],
        env=env,
        cwd=config.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("kind", ["a folder", "a text file", "another program's SQLite database"])
def test_the_bot_does_not_start_on_a_bad_database(kind: str, tmp_path: Path) -> None:
    make, words = BAD_DATABASES[kind]
    path = make(tmp_path / "clones.db")
    config = write_config(tmp_path / "clones.toml", lab_config(None, path))
    done = _bot(config)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"clones: The database {path} "), lines
    assert words in lines[0]


# ------------------------------------------------------------------------------------------------
# read-only and full, at start and mid-run


def _chattr(flag: str, *paths: Path) -> bool:
    exe = shutil.which("chattr")
    if exe is None:
        return False
    done = subprocess.run([exe, flag, *map(str, paths)], capture_output=True, text=True)
    return done.returncode == 0


@contextlib.contextmanager
def immutable(*paths: Path) -> Iterator[None]:
    """The files made immutable (`chattr +i`) for the block; skips where that is not allowed."""
    existing = [p for p in paths if p.exists()]
    if os.geteuid() != 0 or not _chattr("+i", *existing):
        pytest.skip("needs root and a filesystem with the immutable flag (chattr +i)")
    try:
        yield
    finally:
        _chattr("-i", *existing)


def _sidecars(db: Path) -> list[Path]:
    return [db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")]


def test_a_read_only_database_at_start_is_one_sentence(term: Terminal, crash_folder: Path) -> None:
    term.configure(None)
    with Repository(term.database) as repo:
        repo.list_environments()
        keep = Repository(term.database)  # keeps -wal and -shm in place, as a running bot does
    try:
        with immutable(*_sidecars(term.database)):
            result = term("status")
            assert_clean_failure(result, f"The database {term.database} ", "read-only")
            assert result.code == 1
    finally:
        keep.close()
    assert not crash_folder.exists()


@pytest.mark.lab
def test_a_database_made_read_only_mid_run_stops_with_one_sentence_and_resumes(
    make_lab: MakeLab, tmp_path: Path
) -> None:
    """The issue's SIGBUS: the CLI died without a word when the database turned read-only under
    a deployment. Now it stops with one sentence, and `clones resume` finishes the run."""
    lab = make_lab({"clone_latency_ms": 250})
    clones = Clones(tmp_path, lab)
    clones.env["XDG_STATE_HOME"] = str(tmp_path / "state")
    proc = clones.start("deploy", "capture", "24", "as", "ro")
    wait_while_running(proc, lambda: clones.count("ro", "ready") >= 4, timeout=90)
    with immutable(*_sidecars(clones.database)):
        out, err = proc.communicate(timeout=120)
        at_stop = len(clone_vms(lab, "TRN-CAP-"))
    assert proc.returncode != -signal.SIGBUS, "killed by SIGBUS"
    assert proc.returncode == 1, (proc.returncode, err)
    assert "Traceback" not in out + err
    lines = err.strip().splitlines()
    assert lines[-1].startswith(f"clones: The database {clones.database} has become read-only")
    assert not (tmp_path / "state").exists(), "no crash file"
    with clones.repo() as repo:
        [run] = repo.runs(environment="ro")
    assert run.state is RunState.RUNNING  # as recorded before the fault: resumable

    resumed = clones.run("resume", timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"Resumed deploy run {run.id} of ro" in resumed.stdout
    vms = clone_vms(lab, "TRN-CAP-")
    assert sorted(vm["name"] for vm in vms) == [f"TRN-CAP-{n:03}" for n in range(1, 25)]
    with clones.repo() as repo:
        rows = repo.clones(environment="ro")
    assert len(rows) == 24 and all(c.state is CloneState.READY for c in rows)
    via = "bus error" if "(SIGBUS)" in lines[-1] else "statement check"
    record("database made read-only mid-deploy", vms_at_stop=at_stop, exit_code=proc.returncode,
           stopped_by=via, vms_lost=0, duplicates=0, resumed_to=len(vms))  # fmt: skip


@contextlib.contextmanager
def small_disk(tmp_path: Path, size: str = "2m") -> Iterator[Path]:
    """A tmpfs of `size` at a fresh folder (skips where mounting is not allowed)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"needs permission to mount a tmpfs ({done.stderr.strip()})")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def _fill(folder: Path) -> Path:
    """Fill the disk of `folder` to the last byte; the file that did it."""
    filler = folder / "filler"
    with contextlib.suppress(OSError), open(filler, "wb", buffering=0) as f:
        for chunk in (65536, 1):
            with contextlib.suppress(OSError):
                while True:
                    f.write(b"\0" * chunk)
    return filler


@pytest.mark.lab
def test_a_disk_that_fills_up_mid_run_stops_with_one_sentence_and_resumes(
    make_lab: MakeLab, tmp_path: Path
) -> None:
    lab = make_lab({"clone_latency_ms": 250})
    with small_disk(tmp_path, "4m") as disk:
        clones = Clones(tmp_path, lab)
        clones.database = disk / "clones.db"
        write_config(clones.config, lab_config(lab, clones.database))
        clones.env["XDG_STATE_HOME"] = str(tmp_path / "state")
        proc = clones.start("deploy", "capture", "24", "as", "full")
        wait_while_running(proc, lambda: clones.count("full", "ready") >= 4, timeout=90)
        filler = _fill(disk)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 1, (proc.returncode, err)
        assert "Traceback" not in out + err
        last = err.strip().splitlines()[-1]
        assert last.startswith(f"clones: The database {clones.database} "), last
        assert "disk is full" in last or "disk I/O error" in last, last
        assert not (tmp_path / "state").exists(), "no crash file"

        filler.unlink()
        resumed = clones.run("resume", timeout=300)
        assert resumed.returncode == 0, resumed.stderr
        with clones.repo() as repo:
            rows = repo.clones(environment="full")
        assert len(rows) == 24 and all(c.state is CloneState.READY for c in rows)
    names = sorted(vm["name"] for vm in clone_vms(lab, "TRN-CAP-"))
    assert names == [f"TRN-CAP-{n:03}" for n in range(1, 25)]
    record("disk full mid-deploy", exit_code=1, vms_lost=0, duplicates=0, resumed_to=len(names))


def test_a_full_disk_at_start_is_one_sentence(term: Terminal, crash_folder: Path) -> None:
    with small_disk(term.tmp_path, "1m") as disk:
        term.configure(None)
        write_config(term.config, lab_config(None, disk / "clones.db"))
        _fill(disk)
        result = term("status")
        assert_clean_failure(result, f"The database {disk / 'clones.db'} ")
        assert "disk is full" in result.err or "disk I/O error" in result.err
    assert not crash_folder.exists()
