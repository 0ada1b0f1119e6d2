"""Helpers for the fault campaign (tests/test_faults_*.py): a `clones` process to kill, lab
snapshots to compare, and the figures each test records for docs/reliability.md.

Set CLONES_FIGURES=/path/figures.jsonl to collect one JSON line of figures per test.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.adapters.lab import LabProcess
from storage import Repository
from tests.helpers import lab_config, lab_environ, write_config

FIGURES_ENV = "CLONES_FIGURES"


def record(test: str, **figures: Any) -> None:
    """Append this test's figures (faults injected, VMs lost, duplicates) to $CLONES_FIGURES."""
    path = os.environ.get(FIGURES_ENV)
    if not path:
        return
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps({"test": test, **figures}, sort_keys=True) + "\n")


def wait_until(predicate: Callable[[], object], timeout: float = 60.0, every: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s: {predicate}")
        time.sleep(every)


def wait_while_running(
    proc: subprocess.Popen[str], predicate: Callable[[], object], timeout: float = 60.0
) -> Any:
    """`wait_until`, failing at once with the process's output if it ends first (a kill point
    the process never reached says why, instead of a timeout)."""

    def reached() -> object:
        value = predicate()
        if value or proc.poll() is None:
            return value
        out, err = proc.communicate(timeout=30)
        raise AssertionError(f"the process ended (exit {proc.returncode}) first:\n{out}\n{err}")

    return wait_until(reached, timeout)


class Clones:
    """The `clones` command as an operator runs it: a config file, its database (a SQLite file,
    or the PostgreSQL URL `database`), a process."""

    def __init__(
        self, tmp_path: Path, lab: LabProcess, *, database: str | None = None, **overrides: Any
    ) -> None:
        self.tmp_path = tmp_path
        self.database: Any = database or tmp_path / "clones.db"
        self.config = write_config(
            tmp_path / "clones.toml", lab_config(lab, self.database, **overrides)
        )
        self.env = {
            **os.environ,
            "CLONES_CONFIG": str(self.config),
            "CLONES_USER": "trainer",
            **lab_environ(lab),
        }
        # Hermetic: no database or vCenter of the caller's, and no Slack (a bot token would
        # have the terminal message trainees in a real workspace).
        for name in ("CLONES_DB", "CLONES_VCENTER_URL", "CLONES_VCENTER_USER", "SLACK_BOT_TOKEN"):
            self.env.pop(name, None)

    def _argv(self, args: tuple[str, ...]) -> list[str]:
        exe = shutil.which("clones")
        command = [exe] if exe else [sys.executable, "-c", "from bot.bootstrap import cli; cli()"]
        return [*command, *args]

    def start(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self._argv(args),
            env=self.env,
            cwd=self.tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self._argv(args),
            env=self.env,
            cwd=self.tmp_path,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def repo(self) -> Repository:
        return Repository(self.database)

    def has_database(self) -> bool:
        """False while no command has made the SQLite file yet (a PostgreSQL database exists)."""
        return not isinstance(self.database, Path) or self.database.exists()

    def count(self, environment: str, state: str) -> int:
        if not self.has_database():
            return 0
        try:
            with Repository(self.database) as repo:
                return sum(c.state.value == state for c in repo.clones(environment=environment))
        except Exception:  # the schema may still be being created by the other process
            return 0


def kill(proc: subprocess.Popen[str]) -> None:
    """SIGKILL: no clean-up of any kind runs in the process."""
    proc.kill()
    proc.communicate(timeout=30)


@dataclass(frozen=True)
class Stopped:
    """How a `clones` process ended after Ctrl-C (or SIGTERM): its exit code, what it printed,
    and the seconds from the last signal to its exit."""

    code: int
    out: str
    err: str
    exit_s: float


STOPPING = "stopping"  # what the terminal says on the first Ctrl-C (bot/cli/stopping.py)


def interrupt(
    proc: subprocess.Popen[str],
    sig: signal.Signals = signal.SIGINT,
    *,
    twice: bool = False,
    timeout: float = 120.0,
) -> Stopped:
    """Ctrl-C as a terminal sends it (SIGINT; or `sig`, e.g. SIGTERM), then wait for the
    process to end. With `twice`, the second signal follows once the process said it is
    stopping (or ended). A process still running after `timeout` is killed (and the test
    fails on its exit code)."""
    watchdog = threading.Timer(timeout, proc.kill)
    watchdog.start()
    try:
        proc.send_signal(sig)
        said: list[str] = []
        if twice:
            assert proc.stderr is not None
            while line := proc.stderr.readline():
                said.append(line)
                if STOPPING in line:
                    break
            if proc.poll() is None:
                proc.send_signal(sig)
        sent = time.monotonic()
        out, err = proc.communicate()
        exit_s = time.monotonic() - sent
    finally:
        watchdog.cancel()
    return Stopped(proc.returncode, out, "".join(said) + err, exit_s)


def clone_vms(lab: LabProcess, prefix: str = "TRN-") -> list[dict[str, Any]]:
    return [vm for vm in lab.control.vms() if vm["name"].startswith(prefix)]


def duplicates(names: list[str]) -> int:
    return len(names) - len(set(names))


def others(lab: LabProcess, ours: set[str]) -> dict[str, Any]:
    """Every VM in the lab except the morefs in `ours`, keyed by moref, as /lab/vms shows it."""
    return {vm["moref"]: vm for vm in lab.control.vms() if vm["moref"] not in ours}


def snapshot_count(lab: LabProcess) -> int:
    return sum(int(vm.get("snapshots") or 0) for vm in lab.control.vms())
