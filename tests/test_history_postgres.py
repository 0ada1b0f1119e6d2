"""A year of use on PostgreSQL as on SQLite (issues 25 and 26): the history reads, the audit since
a date, the capacity's recorded peaks and pruning give the same answers on both backends.

The year is written into a SQLite file with SQL (tests/history.py) and copied into a real,
empty PostgreSQL database the way an operator moves (`storage.copy`, as `clones db copy` runs
it); then the same reads and the same pruning run on each, and their answers are compared.
Live rows beside the history (a deployment still in vCenter, a trainee still holding a clone)
must survive pruning on both."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.domain.models import CloneState, RunState
from storage import Repository
from storage.copy import DatabaseCopier
from storage.sql import to_text
from tests.helpers import recorded_deployment, set_state
from tests.history import fill
from tests.postgres import PostgresServer

END = datetime(2026, 11, 30, 12, tzinfo=UTC)


def _live_beside_the_history(repo: Repository) -> None:
    """One environment still in use: 2 clones ready (one held by a trainee), its run finished
    long ago, all of it older than any cutoff the test uses."""
    repo.ensure_environment("live", owner="U1", channel="C1")
    run, made = recorded_deployment(repo, "live", 2, "TRN-CAP-{n:03}", owner="a:1")
    for clone in made:
        set_state(
            repo,
            clone.id,
            CloneState.READY,
            moref=f"vm-live-{clone.id}",
            instance_uuid=f"u{clone.id}",
        )
    repo.finish_run(run.id, state=RunState.SUCCEEDED, succeeded=2, failed=0)
    repo.assign(environment="live", pairs=[("U0TRAINEE", made[0].id)], assigned_by="U1")
    repo.record_sizes([(made[0].id, 3_000_000_000), (made[1].id, 2_000_000_000)])
    repo.record_sizes([(made[0].id, 1_000_000_000)])  # a smaller reading keeps the peak


def _as_of(path: Path, moment: datetime) -> None:
    """Date every row written so far back to `moment`."""
    when = to_text(moment)
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("UPDATE environments SET created_at = ?", (when,))
        conn.execute("UPDATE runs SET started_at = ?, finished_at = ?", (when, when))
        conn.execute("UPDATE clones SET created_at = ?, updated_at = ?", (when, when))
        conn.execute("UPDATE assignments SET assigned_at = ?", (when,))
        conn.execute("UPDATE audit SET at = ?", (when,))
    conn.close()


@pytest.fixture
def both(tmp_path: Path, postgres_server: PostgresServer) -> Iterator[dict[str, Repository]]:
    path = tmp_path / "year.db"
    with Repository(path) as repo:
        _live_beside_the_history(repo)
    _as_of(path, END - timedelta(days=360))  # older than every cutoff: only being live keeps it
    fill(path, environments=120, clones_per_environment=6, days=365, end=END)
    url = postgres_server.new_database()
    DatabaseCopier().copy(path, url)
    repos = {"sqlite": Repository(path), "postgresql": Repository(url)}
    try:
        yield repos
    finally:
        for repo in repos.values():
            repo.close()
        postgres_server.drop_database(url)


def _answers(repo: Repository) -> dict[str, Any]:
    recent, older = repo.recent_environments(10)
    peaks = repo.clone_peaks(type="capture", parent="Capture")
    runs, older_runs, made = repo.run_history(recent[0], 5)
    return {
        "recent": (recent, older),
        # Deltas come in no particular order (they are summed): compared sorted.
        "lives": [
            (life, sorted(deltas, key=str))
            for life, deltas in repo.environment_history([*recent[:3], "live", "no-such"])
        ],
        "runs": (runs, older_runs, {k: sorted(v, key=str) for k, v in made.items()}),
        "audit": [(e.at, e.actor, e.command) for e in repo.audit_since(END - timedelta(days=30))],
        "audit_newest": [
            e.command for e in repo.audit_since(END - timedelta(days=90), limit=3, newest=True)
        ],
        "audit_count": repo.count_audit_since(END - timedelta(days=90)),
        "peaks": sorted((p.environment, p.peak_bytes) for p in peaks),
    }


def test_the_history_reads_answer_the_same_on_both_backends(both: dict[str, Repository]) -> None:
    sqlite, postgres = (_answers(both[b]) for b in ("sqlite", "postgresql"))
    assert sqlite == postgres
    assert sqlite["recent"][1] == 121 - 10  # 120 courses and the live environment, 10 shown
    assert sqlite["audit_count"] > 0 and len(sqlite["audit_newest"]) == 3
    assert ("live", 3_000_000_000) in sqlite["peaks"]  # the peak, not the last reading


def _prune_all(repo: Repository, before: datetime, audit_before: datetime) -> list[int]:
    totals = [0, 0, 0, 0]
    for _ in range(1000):
        pruned = repo.prune_history(before=before, audit_before=audit_before, batch=7)
        for i, n in enumerate((pruned.environments, pruned.runs, pruned.clones, pruned.audit)):
            totals[i] += n
        if pruned.done:
            return totals
    raise AssertionError("pruning never finished")


def _left(repo: Repository) -> dict[str, Any]:
    return {
        "environments": sorted(e.name for e in repo.list_environments()),
        "live": sorted((c.name, c.state.value) for c in repo.clones(environment="live")),
        "held": [a.trainee for a in repo.assignments(environment="live")],
        "audit": repo.count_audit_since(END - timedelta(days=4000)),
    }


def test_pruning_removes_the_same_rows_and_keeps_what_is_live_on_both(
    both: dict[str, Repository],
) -> None:
    before, audit_before = END - timedelta(days=200), END - timedelta(days=300)
    removed = {b: _prune_all(both[b], before, audit_before) for b in both}
    assert removed["sqlite"] == removed["postgresql"]
    environments, runs, _, audit = removed["postgresql"]
    # Batches of 7: many rounds, each checked again. The run pruned alone is the deploy of the
    # course straddling the cutoff: its strip back is newer, so its environment stays.
    assert environments > 40 and runs == 1 and audit > 0
    left = {b: _left(both[b]) for b in both}
    assert left["sqlite"] == left["postgresql"]
    assert "live" in left["postgresql"]["environments"]
    assert left["postgresql"]["live"] == [("TRN-CAP-001", "ready"), ("TRN-CAP-002", "ready")]
    assert left["postgresql"]["held"] == ["U0TRAINEE"]
