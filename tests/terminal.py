"""`clones ...` as an operator types it, for the CLI tests: a clones.toml for the test's lab,
its SQLite file, the password in CLONES_VCENTER_PASSWORD; in-process through bot.bootstrap.cli or
as the installed console script."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bot import bootstrap
from bot.adapters.lab.launcher import LabProcess
from storage import Repository
from tests.helpers import PASSWORD_ENV, lab_config, lab_environ, write_config


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def json(self) -> Any:
        return json.loads(self.out)


class Terminal:
    """Runs `clones ...` for one test: a config file, its database, and the environment."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
        self.tmp_path = tmp_path
        self.monkeypatch = monkeypatch
        self.capsys = capsys
        self.config = tmp_path / "clones.toml"
        self.database = tmp_path / "clones.db"
        self.env: dict[str, str] = {}
        for name in ("CLONES_DB", "CLONES_VCENTER_URL", "CLONES_VCENTER_USER", PASSWORD_ENV):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.chdir(tmp_path)

    def configure(
        self,
        lab: LabProcess | None,
        *,
        password: str | None = None,
        url: str | None = None,
        **overrides: Any,
    ) -> Path:
        write_config(self.config, lab_config(lab, self.database, url=url, **overrides))
        self.env = {
            "CLONES_CONFIG": str(self.config),
            "CLONES_USER": "trainer",
            **lab_environ(lab, password),
        }
        for name, value in self.env.items():
            self.monkeypatch.setenv(name, value)
        return self.config

    def __call__(self, *args: str) -> Result:
        self.capsys.readouterr()
        code = bootstrap.cli(list(args))
        captured = self.capsys.readouterr()
        return Result(code, captured.out, captured.err)

    def subprocess(self, *args: str) -> Result:
        """The installed `clones` console script, in a process of its own."""
        exe = shutil.which("clones")
        command = [exe] if exe else [sys.executable, "-c", "from bot.bootstrap import cli; cli()"]
        proc = subprocess.run(
            [*command, *args],
            env={**os.environ, **self.env},
            cwd=self.tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def recorded(self) -> tuple[int, int]:
        """(environments, clones) recorded in the SQLite file (0, 0 if there is none)."""
        if not self.database.exists():
            return 0, 0
        with Repository(self.database) as repo:
            return len(repo.list_environments()), len(repo.clones())

    def clones(self, environment: str) -> dict[str, Any]:
        with Repository(self.database) as repo:
            return {c.name: c for c in repo.clones(environment=environment)}


def assert_clean_failure(result: Result, *fragments: str) -> None:
    """One line on stderr naming the problem and the fix, a non-zero exit, no traceback."""
    assert result.code != 0, result
    assert "Traceback" not in result.err + result.out
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("clones: ")
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
