"""A year of history, written straight into a SQLite file with SQL (seconds, not a year of
deployments): finished environments, each deployed and stripped back by its runs, with their
destroyed clones, the runs' members, ended assignments and the audit rows the bot writes.

Rows look as the bot writes them (the same columns, states and time format), so the reads under
test meet what a year of use leaves behind. Shared by tests (test_history.py) and benchmarks
(benchmarks/history.py, benchmarks/soak.py).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from storage.sql import to_text

TYPES = (("capture", "Capture", "TRN-CAP-{n:03}"), ("packaging", "Packaging", "TRN-PKG-{n:03}"))
DELTA_BYTES = 140_000_000  # about 0.13 GB, a powered-off clone's delta


@dataclass(frozen=True)
class Year:
    """What `fill` wrote."""

    environments: int
    runs: int
    clones: int
    audit: int
    first: datetime  # when the oldest environment was created
    last: datetime  # when the newest environment was stripped back


def fill(
    path: Path,
    *,
    environments: int = 7_860,
    clones_per_environment: int = 20,
    days: int = 365,
    end: datetime | None = None,
    prefix: str = "course",
) -> Year:
    """Write `environments` finished environments spread evenly over the `days` before `end`
    (default: now), each with a deploy and a strip back run and `clones_per_environment`
    destroyed clones (half of each type), into the database at `path` (its schema must exist:
    open a `storage.Repository` on it first)."""
    end = end or datetime.now(UTC)
    start = end - timedelta(days=days)
    # Each course lives three days and a half hour: the newest is stripped back before `end`.
    step = (end - timedelta(days=3, hours=1) - start) / max(environments, 1)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("BEGIN IMMEDIATE")
        run_id = _next_id(conn, "runs")
        clone_id = _next_id(conn, "clones")
        envs, runs, clones, members, assignments, audit = [], [], [], [], [], []
        for i in range(environments):
            created = start + step * i
            deployed = created + timedelta(minutes=1)
            ready = deployed + timedelta(minutes=20)
            stripped = ready + timedelta(days=3)
            done = stripped + timedelta(minutes=5)
            name = f"{prefix}-{i:05d}"
            owner = f"U{i % 40:08d}"
            envs.append((name, owner, "C0TRAINING", to_text(created)))
            deploy, teardown = run_id, run_id + 1
            run_id += 2
            n = clones_per_environment
            runs.append((deploy, name, "deploy", owner, "succeeded", n, n, 0, deployed, ready, ""))
            runs.append(
                (teardown, name, "teardown", owner, "succeeded", n, n, 0, stripped, done, "")
            )
            for k in range(n):
                type_name, parent, pattern = TYPES[k % len(TYPES)]
                clones.append(
                    (
                        clone_id,
                        pattern.format(n=k // len(TYPES) + 1),
                        name,
                        type_name,
                        parent,
                        deploy,
                        f"vm-{clone_id}",
                        f"4200{clone_id:028x}"[-32:],
                        DELTA_BYTES,
                        to_text(deployed),
                        to_text(done),
                    )
                )
                members += [(deploy, clone_id), (teardown, clone_id)]
                if k < n // 2:
                    assignments.append(
                        (name, f"UT{i:05d}{k:03d}", clone_id, owner, to_text(ready), to_text(done))
                    )
                clone_id += 1
            audit += [
                (to_text(deployed), owner, "slack", f"deploy capture {n} as {name}", "ok"),
                (to_text(stripped), owner, "slack", f"teardown {name}", "ok"),
            ]
        conn.executemany(
            "INSERT INTO environments (name, owner, channel, created_at) VALUES (?, ?, ?, ?)", envs
        )
        conn.executemany(
            "INSERT INTO runs (id, environment, kind, requested_by, state, requested, succeeded,"
            " failed, started_at, finished_at, message) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(*r[:8], to_text(r[8]), to_text(r[9]), r[10]) for r in runs],
        )
        conn.executemany(
            "INSERT INTO clones (id, name, environment, type, parent, state, run_id, moref,"
            " instance_uuid, delta_bytes, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, 'destroyed', ?, ?, ?, ?, ?, ?)",
            clones,
        )
        conn.executemany("INSERT INTO run_clones (run_id, clone_id) VALUES (?, ?)", members)
        conn.executemany(
            "INSERT INTO assignments (environment, trainee, clone_id, assigned_by, assigned_at,"
            " ended_at, ended_reason, told_at) VALUES (?, ?, ?, ?, ?, ?, 'removed', ?)",
            [(*a, a[5]) for a in assignments],
        )
        conn.executemany(
            "INSERT INTO audit (at, actor, source, command, result) VALUES (?, ?, ?, ?, ?)", audit
        )
        conn.execute("COMMIT")
    finally:
        conn.close()
    return Year(
        environments=len(envs),
        runs=len(runs),
        clones=len(clones),
        audit=len(audit),
        first=start,
        last=start + step * max(environments - 1, 0) + timedelta(days=3, minutes=26),
    )


def _next_id(conn: sqlite3.Connection, table: str) -> int:
    row = conn.execute(f"SELECT max(id) FROM {table}").fetchone()
    return int(row[0] or 0) + 1
