"""Shared helpers for integration tests: settings, configs and apps that target a test's lab."""

from __future__ import annotations

import copy
import json
import threading
import time
import tomllib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.adapters.lab import DEFAULT_SPEC, LabProcess
from bot.bootstrap import App, build
from bot.domain import grammar
from bot.domain.models import Clone, Run, RunKind
from bot.ports import Clock as ClockPort
from bot.ports import Repository as RepositoryPort
from bot.settings import BUNDLED_LAB_CONFIG, Settings, settings_from_dict
from storage import Repository

PASSWORD_ENV = "CLONES_VCENTER_PASSWORD"

# The bundled lab configuration's three types (bot/data/lab.toml), as plain data: the one table.
# Without its delta_estimate_gb: tests that estimate space set their own (default: 1 GB).
LAB_TYPES: dict[str, dict[str, Any]] = {
    name: {k: v for k, v in table.items() if k != "delta_estimate_gb"}
    for name, table in tomllib.loads(BUNDLED_LAB_CONFIG.read_text(encoding="utf-8"))[
        "types"
    ].items()
}


def lab_config(
    lab: LabProcess | None,
    database: Path | str,
    *,
    url: str | None = None,
    types: dict[str, dict[str, Any]] | None = None,
    **clones: Any,
) -> dict[str, Any]:
    """A raw configuration (as TOML would load it) that targets `lab` and a database (a SQLite
    file, or a PostgreSQL URL).

    `clones` overrides entries of the [clones] table; tests default to no retry backoff.
    """
    if url is None:
        url = lab.info.url if lab is not None else "http://127.0.0.1:9/sdk"  # nothing listens
    user = lab.info.user if lab is not None else "clones"
    return {
        "vcenter": {"url": url, "user": user, "insecure": True, "timeout_s": 10.0},
        "clones": {
            "database": str(database),
            "concurrency": 8,
            "retries": 3,
            "retry_backoff_s": 0,
            **clones,
        },
        "types": copy.deepcopy(LAB_TYPES if types is None else types),
    }


def lab_environ(lab: LabProcess | None, password: str | None = None) -> dict[str, str]:
    """The environment variables a process needs to log in to `lab` (password only)."""
    if password is None:
        password = lab.info.password if lab is not None else "lab-password"
    return {PASSWORD_ENV: password}


def lab_settings(
    lab: LabProcess, database: Path | str, *, password: str | None = None, **overrides: Any
) -> Settings:
    """Validated Settings for `lab`, with the database at `database`."""
    raw = lab_config(lab, database, **overrides)
    return settings_from_dict(raw, env=lab_environ(lab, password))


def lab_app(lab: LabProcess, database: Path | str, **overrides: Any) -> App:
    """The wired application (repository, vCenter adapter, service) for `lab`."""
    return build(lab_settings(lab, database, **overrides), start_lab=False)


def to_toml(raw: dict[str, Any]) -> str:
    """Serialise a config dict of tables (and tables of tables) of scalars and lists to TOML."""
    lines: list[str] = []

    def emit(prefix: str, table: dict[str, Any]) -> None:
        scalars = {k: v for k, v in table.items() if not isinstance(v, dict)}
        tables = {k: v for k, v in table.items() if isinstance(v, dict)}
        if prefix and (scalars or not tables):
            lines.append(f"[{prefix}]")
        for key, value in scalars.items():
            lines.append(f"{key} = {_toml_value(value)}")
        if scalars:
            lines.append("")
        for key, sub in tables.items():
            emit(f"{prefix}.{key}" if prefix else key, sub)

    emit("", raw)
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))  # a JSON string is a valid TOML basic string


def write_config(path: Path, raw: dict[str, Any]) -> Path:
    path.write_text(to_toml(raw), encoding="utf-8")
    return path


MakeLab = Callable[[dict[str, Any]], LabProcess]
MakeApp = Callable[..., App]


def deploy(app: App, text: str, actor: str = "trainer", **kwargs: Any) -> Any:
    """Run a deploy command through the service layer, as a front end would."""
    command = grammar.parse(text)
    assert isinstance(command, grammar.Deploy)
    return app.use_cases.deployer.deploy(command, actor=actor, **kwargs)


def types_with(**changes: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The lab's three types with some keys changed (or whole types added)."""
    types = copy.deepcopy(LAB_TYPES)
    for name, change in changes.items():
        types.setdefault(name, {}).update(change)
    return types


def parents_with(**changes: dict[str, Any]) -> list[dict[str, Any]]:
    """The default spec's parents with some fields changed, by parent name."""
    parents: list[dict[str, Any]] = json.loads(DEFAULT_SPEC.read_text(encoding="utf-8"))["parents"]
    for p in parents:
        p.update(changes.get(p["name"], {}))
    return parents


def vms(lab: LabProcess) -> dict[str, dict[str, Any]]:
    """The lab's VMs by name (names are unique in these tests)."""
    return {vm["name"]: vm for vm in lab.control.vms()}


def clones_of(lab: LabProcess) -> dict[str, dict[str, Any]]:
    return {n: vm for n, vm in vms(lab).items() if n.startswith("TRN-")}


def stored(repo: RepositoryPort) -> Repository:
    """The services' repository as the storage class it is (its location, `find_clone`, its
    connections: what a test reads that the services' port does not offer)."""
    assert isinstance(repo, Repository), repo
    return repo


def at_once(work: Callable[[int], object], n: int) -> float:
    """`work(0)` ... `work(n - 1)`, each in its own thread, all started together: the seconds
    until the last one ended."""
    threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.monotonic() - started


def dead_run(
    repo: RepositoryPort, environment: str, kind: RunKind, requested_by: str, clones: list[Clone]
) -> Run:
    """A run over `clones` recorded by a process that has died since (owner `elsewhere:1:dead`)."""
    return repo.start_run(
        environment=environment,
        kind=kind,
        requested_by=requested_by,
        requested=len(clones),
        owner="elsewhere:1:dead",
        clone_ids=[c.id for c in clones],
    )


def recorded_deployment(
    repo: RepositoryPort, environment: str, count: int, pattern: str, *, owner: str = ""
) -> tuple[Run, list[Clone]]:
    """A deployment of `count` capture clones as recorded before cloning (by U1): its run, and
    its clones reserved (nothing in vCenter)."""
    run = repo.start_run(
        environment=environment,
        kind=RunKind.DEPLOY,
        requested_by="U1",
        requested=count,
        owner=owner,
    )
    clones = repo.reserve_clones(
        environment=environment,
        type="capture",
        parent="Capture",
        pattern=pattern,
        count=count,
        run_id=run.id,
    )
    return run, clones


def set_state(repo: Any, clone_id: int, target: Any, **changes: Any) -> Any:
    """Move a recorded clone to `target` along the shortest path the clone state machine
    allows (tests that need a clone in some state without running the steps in between)."""
    from collections import deque

    from bot.domain.models import CLONE_TRANSITIONS, CloneState

    target = CloneState(target)
    start = repo.get_clone(clone_id).state
    paths: dict[CloneState, list[CloneState]] = {start: []}
    queue = deque([start])
    while queue:
        state = queue.popleft()
        for nxt in CLONE_TRANSITIONS[state]:
            if nxt not in paths:
                paths[nxt] = [*paths[state], nxt]
                queue.append(nxt)
    if target not in paths:
        raise AssertionError(f"no path from {start} to {target}")
    clone = repo.get_clone(clone_id)
    steps = paths[target] or [target]
    for i, state in enumerate(steps):
        clone = repo.update_clone(clone_id, state=state, **(changes if i == len(steps) - 1 else {}))
    return clone


class Clock:
    """A controllable clock: time moves only when a test says so."""

    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


if TYPE_CHECKING:  # mypy proves the double implements its port (docs/architecture.md)
    _clock: ClockPort = Clock()
