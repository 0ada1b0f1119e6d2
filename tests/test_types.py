"""The type claims, as mypy sees them (docs/architecture.md, "What mypy checks").

A copy of the code is changed the way a careless change would change it, and `mypy` (configured
in pyproject.toml, as CI runs it) must refuse each change where it matters:

- a new kind of run that recovery does not know how to resume: recovery's `match` on the run's
  kind ends in `assert_never`, so the new kind is never resumed as a clone run by default;
- the vCenter adapter missing a method of the `VCenter` port (bot/bootstrap.py hands the adapter
  on as the port, with no cast);
- the in-memory fake missing a method of the port (tests/fakes.py proves it implements it).

One mypy run over one copy holding the three changes (each is reported where it is made); the
code as it is passes the same configuration (CI's `mypy`).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHECKED = ("bot", "handlers", "storage", "benchmarks", "tests")


def _without_method(source: str, name: str) -> str:
    """`source` without the method `name` (its `def` line up to the next member's)."""
    start = re.search(rf"^    def {name}\(", source, re.MULTILINE)
    assert start is not None, name
    end = re.compile(r"^    (def |@|# -)", re.MULTILINE).search(source, start.end())
    assert end is not None, name
    return source[: start.start()] + source[end.start() :]


def _edit(path: Path, change: Callable[[str], str]) -> None:
    before = path.read_text(encoding="utf-8")
    after = change(before)
    assert after != before, path
    path.write_text(after, encoding="utf-8")


@pytest.fixture(scope="module")
def refused(tmp_path_factory: pytest.TempPathFactory) -> str:
    """mypy's report on a copy of the code with the three changes."""
    copy = tmp_path_factory.mktemp("careless")
    for package in CHECKED:
        shutil.copytree(
            ROOT / package, copy / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    _edit(
        copy / "bot/domain/models.py",
        lambda s: s.replace(
            '    REFRESH = "refresh"\n', '    REFRESH = "refresh"\n    SNAPSHOT = "snapshot"\n'
        ),
    )
    _edit(copy / "bot/adapters/vcenter/client.py", lambda s: _without_method(s, "instance_uuids"))
    _edit(copy / "tests/fakes.py", lambda s: _without_method(s, "set_attributes"))
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(copy / ".mypy_cache")],
        cwd=copy,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 1, done.stdout[-4000:] + done.stderr[-2000:]
    return done.stdout


def _said(report: str, where: str, *lines: str) -> None:
    """mypy said each of `lines` (the text after "file:line: ") about the file `where`."""
    for line in lines:
        assert f"{where}:" in report and any(
            said.startswith(where + ":") and said.split(": ", 1)[-1].strip() == line
            for said in report.splitlines()
        ), f"{where}: {line}\n---\n{report}"


def test_a_new_kind_of_run_is_refused_until_recovery_resumes_it_its_own_way(refused: str) -> None:
    _said(
        refused,
        "bot/services/recovery.py",
        'error: Argument 1 to "assert_never" has incompatible type '
        '"Literal[RunKind.SNAPSHOT]"; expected "Never"  [arg-type]',
    )


def test_the_vcenter_adapter_missing_a_port_method_is_refused(refused: str) -> None:
    _said(
        refused,
        "bot/bootstrap.py",
        'error: Incompatible return value type (got "bot.adapters.vcenter.client.VCenter", '
        'expected "bot.ports.VCenter")  [return-value]',
        "note:     instance_uuids",
    )


def test_the_fake_vcenter_missing_a_port_method_is_refused(refused: str) -> None:
    _said(
        refused,
        "tests/fakes.py",
        'error: Incompatible types in assignment (expression has type "FakeVCenter", variable '
        'has type "VCenter")  [assignment]',
        "note:     set_attributes",
    )
