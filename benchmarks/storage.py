"""9. Storage backends: the same deployments and status reads on SQLite and on PostgreSQL, in one
run, side by side.

- Deploy: N clones at concurrency c against one lab vCenter (latency L), on a SQLite file and on
  a PostgreSQL database, alternating (SQLite, PostgreSQL, PostgreSQL, SQLite, SQLite,
  PostgreSQL) so drift in the machine's load falls on both; the median wall time of each, and
  PostgreSQL's over SQLite's (target <= 1.05). Each backend warms up first (a 3-clone
  deployment and its strip back).
- Status at scale: a SQLite database seeded with the scale benchmark's estate (20,000 clones in
  the full profile), copied into PostgreSQL with `clones db copy`'s code (its time reported);
  then `status` (every environment) and `status ENV` (the largest) as the service layer answers
  them, many times each: p50 and p99 (target: p99 <= 50 ms on PostgreSQL).

PostgreSQL is a server of its own started from the machine's binaries (tests/postgres.py) with
its default, durable settings (fsync, synchronous_commit on), over TCP on 127.0.0.1 with a
password, as a bot on another machine would reach it; SQLite is a WAL file (synchronous=NORMAL).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import (
    Profile,
    Table,
    deploy_command,
    lab,
    percentile,
    settings_for,
    targets_table,
    warm_up,
    write_result,
)
from benchmarks.scale import seed
from bot import bootstrap
from storage import Repository
from storage.copy import DatabaseCopier
from tests.postgres import PASSWORD, PASSWORD_ENV, PostgresServer

TARGET_DEPLOY_RATIO = 1.05
TARGET_STATUS_P99_MS = 50.0
BACKENDS = ("sqlite", "postgresql")
ACTOR = "bench"


def _deploy_once(settings: Any, n: int, environment: str, *, warm: bool) -> tuple[float, float]:
    """(deploy wall s, strip back wall s) of N clones into `environment`."""
    app = bootstrap.build(settings, start_lab=False)
    try:
        if warm:
            warm_up(app, f"warm-{environment}")
        started = time.perf_counter()
        deployed = app.use_cases.deployer.deploy(deploy_command(n, environment), actor=ACTOR)
        deploy_s = time.perf_counter() - started
        started = time.perf_counter()
        stripped = app.use_cases.strip_back.teardown(environment, actor=ACTOR)
        strip_s = time.perf_counter() - started
    finally:
        app.close()
    if len(deployed.ready) != n or len(stripped.destroyed) != n:
        raise RuntimeError(f"{environment}: {len(deployed.ready)} ready, {len(stripped.destroyed)}")
    return deploy_s, strip_s


def measure_deploys(profile: Profile, where: dict[str, str]) -> dict[str, Any]:
    walls: dict[str, list[tuple[float, float]]] = {b: [] for b in BACKENDS}
    with lab(profile.latency_ms) as lb:
        # Three each, alternating so neither backend always goes first (the median of three
        # stands apart from one run disturbed by the shared machine).
        order = [*BACKENDS, *reversed(BACKENDS), *BACKENDS]
        for i, backend in enumerate(order):
            settings = settings_for(lb, where[backend], concurrency=profile.concurrency)
            warm = i < len(BACKENDS)
            walls[backend].append(_deploy_once(settings, profile.clones, f"b{i}", warm=warm))
    out: dict[str, Any] = {}
    for backend, runs in walls.items():
        out[backend] = {
            "deploy_wall_s": [round(d, 3) for d, _ in runs],
            "strip_wall_s": [round(s, 3) for _, s in runs],
            "deploy_median_s": round(statistics.median(d for d, _ in runs), 3),
            "strip_median_s": round(statistics.median(s for _, s in runs), 3),
        }
    return out


def measure_status(profile: Profile, where: dict[str, str], biggest: str) -> dict[str, Any]:
    samples = max(40, profile.repeats * 40)
    out: dict[str, Any] = {}
    for backend in BACKENDS:
        app = bootstrap.build(settings_for(None, where[backend]), start_lab=False)
        try:
            views = {
                "status": lambda a=app: a.use_cases.queries.status(None),
                f"status {biggest}": lambda a=app: a.use_cases.queries.status(biggest),
            }
            results: dict[str, Any] = {}
            for name, fn in views.items():
                fn()  # warm: connections, prepared statements, caches
                times = []
                for _ in range(samples if name == "status" else max(10, samples // 4)):
                    started = time.perf_counter()
                    fn()
                    times.append(time.perf_counter() - started)
                results[name] = {
                    "samples": len(times),
                    "p50_ms": round(percentile(times, 50) * 1000, 1),
                    "p99_ms": round(percentile(times, 99) * 1000, 1),
                    "max_ms": round(max(times) * 1000, 1),
                }
            out[backend] = results
        finally:
            app.close()
    return out


def run(profile: Profile, out_dir: Path) -> dict[str, Any]:
    size = profile.scale_sizes[-1]
    saved = os.environ.get(PASSWORD_ENV)
    os.environ[PASSWORD_ENV] = PASSWORD
    try:
        with (
            PostgresServer(durable=True) as server,
            tempfile.TemporaryDirectory(prefix="clones-storage-") as tmp,
        ):
            deploy_where = {
                "sqlite": str(Path(tmp) / "deploy.db"),
                "postgresql": server.new_database("deploy"),
            }
            deploys = measure_deploys(profile, deploy_where)

            scale_db = Path(tmp) / "scale.db"
            started = time.perf_counter()
            with Repository(scale_db) as repo:
                biggest = seed(repo, size, profile.scale_environments, size * 2)
            seed_s = time.perf_counter() - started
            scale_url = server.new_database("scale")
            started = time.perf_counter()
            copied = DatabaseCopier().copy(scale_db, scale_url)
            copy_s = time.perf_counter() - started
            status = measure_status(profile, {"sqlite": str(scale_db), "postgresql": scale_url},
                                    biggest)  # fmt: skip
    finally:
        if saved is None:
            os.environ.pop(PASSWORD_ENV, None)
        else:
            os.environ[PASSWORD_ENV] = saved
    return _report(profile, out_dir, size, deploys, status, seed_s, copy_s, copied.rows, biggest)


def _report(
    profile: Profile,
    out_dir: Path,
    size: int,
    deploys: dict[str, Any],
    status: dict[str, Any],
    seed_s: float,
    copy_s: float,
    copied_rows: int,
    biggest: str,
) -> dict[str, Any]:
    ratio = deploys["postgresql"]["deploy_median_s"] / deploys["sqlite"]["deploy_median_s"]
    p99 = status["postgresql"]["status"]["p99_ms"]
    targets = {
        "deploy_postgresql_vs_sqlite": {
            "value": round(ratio, 3),
            "target": f"<= {TARGET_DEPLOY_RATIO}",
            "met": ratio <= TARGET_DEPLOY_RATIO,
        },
        "status_p99_postgresql": {
            "value": p99,
            "target": f"<= {TARGET_STATUS_P99_MS:g} ms",
            "met": p99 <= TARGET_STATUS_P99_MS,
            "at_clones": size,
        },
    }
    n, c = profile.clones, profile.concurrency
    table = Table(
        f"9. Storage backends: deploy N={n} (L={profile.latency_ms} ms, concurrency {c}) and "
        f"status at {size:,} clones",
        ["measure", "SQLite", "PostgreSQL", "PostgreSQL / SQLite"],
    )
    for key, label in (("deploy_median_s", "deploy wall s"), ("strip_median_s", "strip back s")):
        s, p = deploys["sqlite"][key], deploys["postgresql"][key]
        table.add(f"{label} (median)", s, p, round(p / s, 3))
    for view in status["sqlite"]:
        for stat in ("p50_ms", "p99_ms"):
            s, p = status["sqlite"][view][stat], status["postgresql"][view][stat]
            label = view.replace(biggest, "ENV")
            table.add(f"{label} {stat[:3]} ms", s, p, round(p / s, 2) if s else "")
    table.add("seed SQLite s / db copy s", round(seed_s, 1), round(copy_s, 2), "")
    checks = targets_table(targets)
    print(table.render())
    print(checks.render())
    data = {
        "params": {
            "clones": n,
            "concurrency": c,
            "latency_ms": profile.latency_ms,
            "status_at_clones": size,
            "copied_rows": copied_rows,
        },
        "deploy": deploys,
        "status": status,
        "seed_s": round(seed_s, 2),
        "copy_s": round(copy_s, 2),
        "targets": targets,
        "tables": [table.to_json(), checks.to_json()],
    }
    write_result("storage", profile, data, out_dir)
    return data
