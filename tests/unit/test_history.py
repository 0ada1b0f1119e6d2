"""A year of use (issue 26): the everyday reads read what is live, through indexes; the past is
shown on request (`status --all`, `history [ENV]`, `audit --since DATE`); pruning removes only
what is older than its window, and never what may be in vCenter or what a run that may still act
owns. A year of history is written with SQL (tests/history.py), not deployed."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.domain import grammar
from bot.domain.history import AuditLog
from bot.domain.models import CloneState, RunKind, RunState
from bot.services.container import Services
from bot.services.dispatch import Invocation, dispatch
from bot.services.schedules.prune import Pruner
from storage.sql import to_text
from tests.helpers import Clock, recorded_deployment, set_state, stored
from tests.history import fill

WHO = Invocation("trainer", "cli")
HISTORY_TABLES = {"clones", "runs", "environments", "assignments", "audit", "run_clones"}


def run(s: Services, text: str) -> Any:
    return dispatch(s, grammar.parse(text), WHO)


@pytest.fixture
def year(services: Services) -> Services:
    """Services whose database holds a year of finished courses (500 here; the benchmark
    writes 7,860) and, beside them, two live environments deployed the usual way."""
    fill(Path(str(stored(services.repo).location)), environments=500)
    run(services, "deploy capture 3 as live-a")
    run(services, "deploy packaging 2 as live-b")
    return services


# ------------------------------------------------------------------ reads that cost what they show
def test_status_shows_the_live_environments_and_history_only_when_asked(year: Services) -> None:
    statuses = run(year, "status")
    assert [st.environment.name for st in statuses] == ["live-a", "live-b"]
    assert statuses[0].by_type == {"capture": {"ready": 3}}

    everything = run(year, "status --all")
    assert len(everything) == 502
    finished = next(st for st in everything if st.environment.name == "course-00007")
    assert finished.live == 0 and finished.by_type == {}  # its 20 destroyed clones are history

    [one] = run(year, "status course-00007")
    assert one.clones == [] and one.by_type == {}


def test_a_reused_name_shows_only_its_current_clones(services: Services) -> None:
    run(services, "deploy capture 3 as nov")
    run(services, "teardown nov")
    run(services, "deploy capture 2 as nov")  # the next cohort under the same name
    [st] = run(services, "status nov")
    assert st.by_type == {"capture": {"ready": 2}}
    assert [c.state for c in st.clones] == [CloneState.READY] * 2


def _plans(conn: sqlite3.Connection, statements: list[str]) -> list[tuple[str, str]]:
    """(statement, plan line) for each full scan of a history table that no partial index
    bounds: what would read a year of history."""
    partial = {
        name
        for name, sql in conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index'")
        if sql and " WHERE " in sql.upper()
    }
    found = []
    for sql in statements:
        if not sql.lstrip().upper().startswith("SELECT"):
            continue
        for *_, line in conn.execute(f"EXPLAIN QUERY PLAN {sql}"):
            scan = re.match(r"SCAN (\w+)(?: AS \w+)?(?: USING (?:COVERING )?INDEX (\w+))?", line)
            if scan is None:
                continue
            table, index = scan.groups()
            aliases = {"c": "clones", "a": "assignments", "e": "environments", "r": "runs"}
            table = aliases.get(table, table)
            if table in HISTORY_TABLES and index not in partial:
                found.append((sql, line))
    return found


def _everyday_reads(s: Services) -> None:
    """What `status`, App Home (handlers.listeners.home.publish_home), `savings`, `inventory`
    and the schedules' re-sync read."""
    s.use_cases.queries.status()
    s.use_cases.queries.status("live-a")
    for (
        st
    ) in s.use_cases.queries.status():  # App Home: each environment's savings, runs, one's own VMs
        s.use_cases.queries.savings(st.environment.name)
    s.use_cases.queries.running_runs()
    s.use_cases.trainees.mine("UTRAINEE")
    s.use_cases.queries.savings()
    s.admin.inventory_reader.inventory()
    s.use_cases.trainees.tell_removed()  # the re-sync's after-work
    s.repo.scheduled_environments()  # the re-sync's job table and every status's next events


def test_the_everyday_reads_use_indexes_that_hold_only_what_they_show(year: Services) -> None:
    """EXPLAIN QUERY PLAN of every statement the everyday reads run on a year of history: none
    scans a history table, or an index of all its rows."""
    conn = stored(year.repo)._db().conn  # this thread's connection: the reads below run on it
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    try:
        _everyday_reads(year)
    finally:
        conn.set_trace_callback(None)
    assert len(statements) > 10
    assert _plans(conn, statements) == []
    # ...and the check itself catches a read of all history (the query status ran before).
    before = (
        "SELECT environment, type, state, count(*) AS n FROM clones"
        " GROUP BY environment, type, state"
    )
    assert _plans(conn, [before]) != []


# ------------------------------------------------------------------ history on request
def test_history_says_when_who_how_many_what_it_saved_and_how_it_ended(year: Services) -> None:
    run(year, "teardown live-b")
    h = run(year, "history")
    names = [e.environment.name for e in h.environments]
    assert names[:2] == ["live-b", "live-a"]  # most recently run first
    assert h.more == 502 - len(names)
    live_b, live_a, oldest_shown = h.environments[0], h.environments[1], h.environments[-1]
    assert (live_b.outcome, live_b.made, live_b.live, live_b.deployed_by) == (
        "stripped back",
        2,
        0,
        ("trainer",),
    )
    assert (live_a.outcome, live_a.live) == ("live", 3)
    assert live_a.savings is not None and live_a.savings.clones == 3
    assert oldest_shown.outcome == "stripped back" and oldest_shown.made == 20
    assert oldest_shown.savings is not None and oldest_shown.savings.saved_vs_thin_gb > 0
    assert oldest_shown.started_at is not None and oldest_shown.finished_at is not None

    one = run(year, "history live-b")
    assert [r.run.kind for r in one.runs] == [RunKind.TEARDOWN, RunKind.DEPLOY]
    deploy = one.runs[1]
    assert (deploy.run.requested_by, deploy.made, deploy.run.state) == (
        "trainer",
        2,
        RunState.SUCCEEDED,
    )
    assert deploy.savings is not None and deploy.savings.clones == 2


def test_history_of_an_unknown_environment_names_the_problem(year: Services) -> None:
    from bot.domain.errors import NotFoundError

    with pytest.raises(NotFoundError, match='No environment named "nowhere"'):
        run(year, "history nowhere")


def test_the_audit_log_from_a_date_oldest_first(year: Services) -> None:
    log = run(year, "audit --since 2d")
    commands = [e.command for e in log.entries]
    assert any("live-a" in c for c in commands)
    assert all(e.at >= log.since for e in log.entries)
    assert [e.at for e in log.entries] == sorted(e.at for e in log.entries)
    everything = run(year, "audit --since 400d")
    assert len(everything.entries) >= 2 * 500
    slack = dispatch(year, grammar.parse("audit --since 400d"), Invocation("U1", "slack"))
    assert isinstance(slack, AuditLog)
    assert len(slack.entries) == 40 and slack.more == len(everything.entries) - 40
    assert slack.entries == everything.entries[-40:]  # the newest


# ------------------------------------------------------------------ pruning
NOW = datetime.now(UTC).replace(microsecond=0)
WINDOW = timedelta(days=400)


def _backdate(path: Path, environment: str, when: datetime) -> None:
    """Every record of an environment made as if it all happened at `when`."""
    at = to_text(when)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("UPDATE environments SET created_at = ? WHERE name = ?", (at, environment))
        conn.execute(
            "UPDATE runs SET started_at = ?, finished_at = CASE WHEN finished_at IS NULL"
            " THEN NULL ELSE ? END, heartbeat_at = ? WHERE environment = ?",
            (at, at, at, environment),
        )
        conn.execute(
            "UPDATE clones SET created_at = ?, updated_at = ? WHERE environment = ?",
            (at, at, environment),
        )
        conn.execute(
            "UPDATE assignments SET assigned_at = ?, ended_at = CASE WHEN ended_at IS NULL"
            " THEN NULL ELSE ? END WHERE environment = ?",
            (at, at, environment),
        )
    finally:
        conn.close()


def _counts(path: Path) -> dict[str, int]:
    conn = sqlite3.connect(path)
    try:
        return {
            table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in ("environments", "runs", "clones", "run_clones", "assignments", "audit")
        }
    finally:
        conn.close()


@pytest.fixture
def two_years(services: Services) -> Iterator[Services]:
    """800 days of finished courses, and old environments that something keeps."""
    s = services
    path = Path(str(stored(s.repo).location))
    old = NOW - timedelta(days=600)
    # Live for 600 days: a clone still in vCenter, the run that made it, and an earlier
    # cohort's destroyed clone under the same name.
    run(s, "deploy capture 1 as old-live")
    run(s, "teardown old-live")
    run(s, "deploy capture 1 as old-live")
    # A deployment that a lost vCenter interrupted, never resumed ("resume" may finish it):
    # its clones all failed, so only the run keeps it.
    s.repo.ensure_environment("old-interrupted", "U1")
    stopped, reserved = recorded_deployment(s.repo, "old-interrupted", 2, "OLD-INT-{n}")
    for clone in reserved:
        set_state(s.repo, clone.id, CloneState.FAILED, error="lost vCenter")
    s.repo.finish_run(stopped.id, state=RunState.INTERRUPTED, succeeded=0, failed=0)
    # A run whose process died mid-way (still "running"): recovery resumes it at start-up.
    dead = s.repo.start_run(
        environment=s.repo.ensure_environment("old-running", "U1").name,
        kind=RunKind.DEPLOY,
        requested_by="U1",
        requested=1,
        owner="gone:1",
    )
    # A strip back to come, and one claimed but not finished.
    s.repo.ensure_environment("old-scheduled", "U1")
    s.repo.update_environment("old-scheduled", ends_at=NOW + timedelta(days=1))
    s.repo.ensure_environment("old-claimed", "U1")
    s.repo.save_schedule("old-claimed", stripping_for_end=old)
    for name in ("old-live", "old-interrupted", "old-running", "old-scheduled", "old-claimed"):
        _backdate(path, name, old)
    # The clone still in vCenter was last changed long ago too.
    assert dead.state is RunState.RUNNING
    fill(path, environments=200, days=800, end=NOW - timedelta(days=1))
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(
        "INSERT INTO audit (at, actor, source, command, result)"
        " VALUES (?, 'U1', 'cli', 'old', 'ok')",
        (to_text(NOW - timedelta(days=1200)),),
    )
    conn.close()
    yield s


def test_pruning_removes_only_what_is_older_than_the_window(two_years: Services) -> None:
    s = two_years
    path = Path(str(stored(s.repo).location))
    cut = NOW - WINDOW
    conn = sqlite3.connect(path)
    course_ends = dict(
        conn.execute(
            "SELECT environment, max(finished_at) FROM runs WHERE environment LIKE 'course-%'"
            " GROUP BY environment"
        ).fetchall()
    )
    resumable = conn.execute(
        "SELECT id FROM runs WHERE state IN ('running', 'interrupted') ORDER BY id"
    ).fetchall()
    may_exist = conn.execute(
        "SELECT id, state FROM clones WHERE state NOT IN ('destroyed', 'failed', 'missing')"
    ).fetchall()
    old_live_made_by = conn.execute(
        "SELECT run_id FROM clones WHERE environment = 'old-live' AND state = 'ready'"
    ).fetchall()
    conn.close()
    old = {name for name, end in course_ends.items() if datetime.fromisoformat(end) < cut}
    assert 0 < len(old) < len(course_ends)
    before = _counts(path)

    pruner = Pruner(s.settings, s.repo, lambda: NOW, budget_s=60)
    pruned = pruner.prune()
    assert pruned.done and pruned.environments == len(old)
    assert pruned.audit == 1  # 1,200 days old; the audit log is kept 1,095 days

    conn = sqlite3.connect(path)
    try:
        left = {row[0] for row in conn.execute("SELECT name FROM environments")}
        kept = {"old-live", "old-interrupted", "old-running", "old-scheduled", "old-claimed"}
        assert left == (set(course_ends) - old) | kept
        assert (
            conn.execute(
                "SELECT id FROM runs WHERE state IN ('running', 'interrupted') ORDER BY id"
            ).fetchall()
            == resumable
        )
        assert (
            conn.execute(
                "SELECT id, state FROM clones WHERE state NOT IN ('destroyed', 'failed', 'missing')"
            ).fetchall()
            == may_exist
        )
        # old-live keeps its clone and the run that made it; its earlier cohort's runs and
        # destroyed clone went.
        assert (
            conn.execute(
                "SELECT run_id FROM clones WHERE environment = 'old-live' AND state = 'ready'"
            ).fetchall()
            == old_live_made_by
        )
        assert conn.execute(
            "SELECT state FROM clones WHERE environment = 'old-live'"
        ).fetchall() == [("ready",)]
        kinds = conn.execute("SELECT kind FROM runs WHERE environment = 'old-live'").fetchall()
        assert kinds == [("deploy",)]
        # The interrupted deployment keeps every clone it owns, failed ones included.
        assert conn.execute(
            "SELECT count(*) FROM clones WHERE environment = 'old-interrupted'"
        ).fetchone() == (2,)
        # What is newer than the window is all there, to the row.
        for name in set(course_ends) - old:
            assert conn.execute(
                "SELECT count(*) FROM clones WHERE environment = ?", (name,)
            ).fetchone() == (20,)
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    finally:
        conn.close()
    after = _counts(path)
    assert after["clones"] == before["clones"] - 20 * len(old) - 1
    assert after["audit"] == before["audit"] - 1
    assert pruner.prune().removed == 0  # nothing more to do


def test_pruning_runs_in_small_batches_at_the_quiet_hour_once_a_day(
    two_years: Services,
) -> None:
    s = two_years
    clock = Clock(datetime(2030, 1, 1, 2, 59, tzinfo=UTC))  # settings' zone: UTC; hour 3
    pruner = Pruner(s.settings, s.repo, clock, batch=5, budget_s=0)
    assert pruner.tick() is None  # not the quiet hour
    clock.advance(minutes=1)
    ticks = []
    while (pruned := pruner.tick()) is not None:
        ticks.append(pruned)
        assert pruned.environments <= 5  # one small batch a tick (no time budget)
    assert len(ticks) > 2 and ticks[-1].done
    clock.advance(minutes=30)
    assert pruner.tick() is None  # done for the day
    clock.advance(days=1)
    assert pruner.tick() is not None


def test_history_days_zero_keeps_history_for_ever(make_services: Any) -> None:
    s = make_services(history_days=0, audit_days=0)
    fill(Path(str(stored(s.repo).location)), environments=20, days=3000)
    pruned = Pruner(s.settings, s.repo, lambda: NOW).prune()
    assert pruned.done and pruned.removed == 0
