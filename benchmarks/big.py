"""6. One big environment: N clones at concurrency C (600 at 32; issue 16, sections 4 and 5).

- **SQLite on the clone slot's path.** While the deployment runs, every write through the
  repository is timed (the wait for the in-process write lock, and the write), and counted as
  "in the slot" when its thread holds a clone slot (between taking a slot and freeing it, the
  time a clone task may be in vCenter). Target: no write inside a slot.
- **Strip back's up-front check** (`Ownership.verify_ours`: is every recorded VM the one the bot
  made?) timed on the N clones (median of 3), with its SOAP calls.
- **Strip back**: wall time and SOAP calls per clone.
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks.common import (
    Profile,
    Table,
    deploy_command,
    lab,
    settings_for,
    targets_table,
    warm_up,
    write_result,
)
from bot import bootstrap
from bot.domain.models import CloneState
from bot.services import fullcopy
from storage import sqlite as storage_sqlite

TARGET_PRECHECK_S = 0.4
ACTOR = "bench"


class _SlotWatch:
    """Marks threads holding a clone slot and times the repository's writes."""

    def __init__(self) -> None:
        self.local = threading.local()
        self.lock = threading.Lock()
        self.writes = 0
        self.in_slot = 0
        self.wait_s = 0.0
        self.in_slot_wait_s = 0.0
        self.in_slot_write_s = 0.0

    @contextmanager
    def installed(self) -> Iterator[None]:
        enter, leave = fullcopy._TypeSlot.__enter__, fullcopy._TypeSlot.__exit__
        writing = storage_sqlite.SqliteBackend.writing
        watch = self

        def slot_enter(slot: Any) -> Any:
            out = enter(slot)
            watch.local.depth = getattr(watch.local, "depth", 0) + 1
            return out

        def slot_exit(slot: Any, *exc: Any) -> Any:
            watch.local.depth = getattr(watch.local, "depth", 1) - 1
            return leave(slot, *exc)

        @contextmanager
        def timed_writing(repo: Any) -> Iterator[None]:
            asked = time.perf_counter()
            with writing(repo):
                got = time.perf_counter()
                try:
                    yield
                finally:
                    done = time.perf_counter()
                    watch.count(got - asked, done - got)

        fullcopy._TypeSlot.__enter__ = slot_enter  # type: ignore[method-assign]
        fullcopy._TypeSlot.__exit__ = slot_exit  # type: ignore[method-assign]
        storage_sqlite.SqliteBackend.writing = timed_writing  # type: ignore[method-assign, assignment]
        try:
            yield
        finally:
            fullcopy._TypeSlot.__enter__ = enter  # type: ignore[method-assign]
            fullcopy._TypeSlot.__exit__ = leave  # type: ignore[method-assign]
            storage_sqlite.SqliteBackend.writing = writing  # type: ignore[method-assign]

    def count(self, wait: float, write: float) -> None:
        inside = getattr(self.local, "depth", 0) > 0
        with self.lock:
            self.writes += 1
            self.wait_s += wait
            if inside:
                self.in_slot += 1
                self.in_slot_wait_s += wait
                self.in_slot_write_s += write


# Kept whole: deploy, the check, strip back, in order on one lab, then one table.
def run(profile: Profile, out_dir: Path) -> dict[str, Any]:
    n, c = profile.big_clones, profile.big_concurrency
    watch = _SlotWatch()
    with (
        tempfile.TemporaryDirectory(prefix="clones-bench-") as tmp,
        lab(profile.latency_ms) as lb,
    ):
        settings = settings_for(lb, Path(tmp) / "clones.db", concurrency=c)
        app = bootstrap.build(settings, start_lab=False)
        try:
            warm_up(app)
            lb.control.reset()
            started = time.perf_counter()
            with watch.installed():
                deployed = app.use_cases.deployer.deploy(deploy_command(n, "big"), actor=ACTOR)
            deploy_s = time.perf_counter() - started
            deploy_stats = lb.control.stats()
            env = app.use_cases.queries.environment("big")
            clones = app.repo.clones(environment="big", states=[CloneState.READY])
            checks_s: list[float] = []
            lb.control.reset()
            for _ in range(3):
                began = time.perf_counter()
                checked = app.use_cases.ownership.verify_ours(env, clones)
                verified, gone, skipped = checked.verified, checked.gone, checked.left_alone
                checks_s.append(time.perf_counter() - began)
            check_stats = lb.control.stats()
            lb.control.reset()
            started = time.perf_counter()
            stripped = app.use_cases.strip_back.teardown("big", actor=ACTOR)
            strip_s = time.perf_counter() - started
            strip_stats = lb.control.stats()
        finally:
            app.close()
    if len(deployed.ready) != n or len(verified) != n or len(stripped.destroyed) != n:
        raise RuntimeError(
            f"{len(deployed.ready)} ready, {len(verified)} verified ({len(gone)} gone, "
            f"{len(skipped)} skipped), {len(stripped.destroyed)} destroyed of {n}"
        )
    check = statistics.median(checks_s)
    per_strip = strip_stats.get("total", 0) / n
    targets: dict[str, dict[str, Any]] = {
        "precheck_s": {
            "value": round(check, 3),
            "target": f"<= {TARGET_PRECHECK_S}",
            "met": check <= TARGET_PRECHECK_S,
        },
        "sqlite_writes_in_slot": {
            "value": watch.in_slot,
            "target": "== 0",
            "met": not watch.in_slot,
        },
    }
    table = Table(
        f"6. One environment of {n} clones, concurrency {c}, L={profile.latency_ms} ms",
        ["figure", "value"],
    )
    rows: list[tuple[str, Any]] = [
        ("deploy wall s", round(deploy_s, 2)),
        ("deploy SOAP calls per clone", round(deploy_stats.get("total", 0) / n, 2)),
        ("SQLite writes during the deployment", watch.writes),
        ("  of which inside a clone slot", watch.in_slot),
        ("  thread-s waiting for the write lock", round(watch.wait_s, 3)),
        ("  thread-s waiting, inside a slot", round(watch.in_slot_wait_s, 3)),
        ("  thread-s writing, inside a slot", round(watch.in_slot_write_s, 3)),
        ("strip back pre-check s (median of 3)", round(check, 3)),
        ("  its SOAP calls (each)", round(check_stats.get("total", 0) / 3, 1)),
        ("strip back wall s", round(strip_s, 2)),
        ("strip back SOAP calls per clone", round(per_strip, 2)),
    ]
    for row in rows:
        table.add(*row)
    checks = targets_table(targets)
    print(table.render())
    print(checks.render())
    data = {
        "params": {"clones": n, "concurrency": c, "latency_ms": profile.latency_ms},
        "deploy_s": round(deploy_s, 3),
        "deploy_calls_per_clone": round(deploy_stats.get("total", 0) / n, 3),
        "sqlite": {
            "writes": watch.writes,
            "in_slot": watch.in_slot,
            "wait_s": round(watch.wait_s, 4),
            "in_slot_wait_s": round(watch.in_slot_wait_s, 4),
            "in_slot_write_s": round(watch.in_slot_write_s, 4),
        },
        "precheck_s": [round(x, 4) for x in checks_s],
        "precheck_calls": check_stats.get("total", 0) / 3,
        "strip_s": round(strip_s, 3),
        "strip_calls_per_clone": round(per_strip, 3),
        "targets": targets,
        "tables": [table.to_json(), checks.to_json()],
    }
    write_result("big", profile, data, out_dir)
    return data
