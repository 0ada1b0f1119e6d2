"""Shared pytest fixtures."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from bot.adapters.lab import DEFAULT_SPEC, LabProcess, deep_merge, ensure_built
from bot.bootstrap import App
from tests.helpers import MakeApp, lab_app
from tests.postgres import PASSWORD, PASSWORD_ENV, PostgresServer
from tests.terminal import Terminal

ROOT = Path(__file__).resolve().parent.parent

# Property tests: a few hundred examples per test by default, thousands with
# HYPOTHESIS_PROFILE=thorough. Under CI the examples are derived from each test alone
# (derandomize, no example database), so a run is repeatable and never fails by luck; a local
# run explores new examples each time and replays failures from .hypothesis/.
_CI = bool(os.environ.get("CI"))
_COMMON: dict[str, Any] = {
    "deadline": None,
    "derandomize": _CI,
    "database": None if _CI else settings().database,
    "print_blob": True,
    "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
}
settings.register_profile("ci", max_examples=400, **_COMMON)
settings.register_profile("thorough", max_examples=5000, **_COMMON)
HYPOTHESIS_PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
settings.load_profile(HYPOTHESIS_PROFILE)


@pytest.fixture(scope="session", autouse=True)
def _hermetic_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Every test session has its own lab state folder (a lab the user started by hand, or the
    README's demo, is never seen), and processes the tests start run this checkout's code."""
    saved = {
        name: os.environ.get(name) for name in ("CLONES_LAB_DIR", "PYTHONPATH", "XDG_STATE_HOME")
    }
    os.environ["CLONES_LAB_DIR"] = str(tmp_path_factory.mktemp("lab-state"))
    # The user's state folder (crash reports, a PostgreSQL database's scheduler lock).
    os.environ["XDG_STATE_HOME"] = str(tmp_path_factory.mktemp("user-state"))
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), saved["PYTHONPATH"]) if p)
    yield
    from bot.adapters.lab import lab_down

    lab_down()  # a lab a test started with `clones lab up` in this session's folder
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="session")
def lab_binary() -> Path:
    """The lab vCenter binary, built once (cached across runs)."""
    return ensure_built()


@pytest.fixture
def lab(lab_binary: Path) -> Iterator[LabProcess]:
    """A fresh lab vCenter with the default spec on a free port, stopped afterwards."""
    with LabProcess.start() as process:
        yield process


@pytest.fixture
def make_lab(lab_binary: Path) -> Iterator[Callable[[dict[str, Any]], LabProcess]]:
    """Factory: start a lab from the default spec with `overrides` deep-merged in."""
    started: list[LabProcess] = []

    def make(overrides: dict[str, Any] | None = None) -> LabProcess:
        spec = json.loads(DEFAULT_SPEC.read_text(encoding="utf-8"))
        process = LabProcess.start(deep_merge(spec, overrides or {}))
        started.append(process)
        return process

    yield make
    for process in started:
        process.stop()


@pytest.fixture
def term(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> Terminal:
    """`clones ...` as an operator types it, for this test's lab and SQLite file."""
    return Terminal(tmp_path, monkeypatch, capsys)


@pytest.fixture
def make_app(tmp_path: Path) -> Iterator[MakeApp]:
    """Factory: the wired app (repository, adapter, service) for a lab, each on its own SQLite
    file under tmp_path, closed afterwards."""
    apps: list[App] = []

    def make(lab: LabProcess, **overrides: Any) -> App:
        app = lab_app(lab, tmp_path / f"clones-{len(apps)}.db", **overrides)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.close()


# -- storage backends: SQLite files and a real PostgreSQL server ----------------------------


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test taking `backend` runs once per backend its closest `backends` mark names
    (`pytestmark = BOTH_BACKENDS` from tests/rawdb.py for a module;
    `@pytest.mark.backends("sqlite")` for a test about SQLite alone); without the mark, on
    SQLite only."""
    marker = metafunc.definition.get_closest_marker("backends")
    if marker is not None and "backend" in metafunc.fixturenames:
        metafunc.parametrize("backend", marker.args, indirect=True)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """ "sqlite" or "postgresql" (see pytest_generate_tests)."""
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the session (started on first use, stopped at the end); the
    bot's password is in the environment as the bot reads it."""
    saved = os.environ.get(PASSWORD_ENV)
    os.environ[PASSWORD_ENV] = PASSWORD
    with PostgresServer() as server:
        yield server
    if saved is None:
        os.environ.pop(PASSWORD_ENV, None)
    else:
        os.environ[PASSWORD_ENV] = saved


@pytest.fixture
def database(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """Where this test's database is: a new SQLite file, or a new empty PostgreSQL database
    (dropped afterwards), as `[clones] database` would name it."""
    if backend == "sqlite":
        yield str(tmp_path / "clones.db")
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    url = server.new_database()
    yield url
    server.drop_database(url)
