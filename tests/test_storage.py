"""Repository tests against real databases (no mocks): each runs on a SQLite file and on a
PostgreSQL database of the session's server (tests/postgres.py).

Schema checks read the database with the driver alone (tests/rawdb.py): what is stored is what the
next process sees.
"""

from __future__ import annotations

import multiprocessing
import re
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from bot.domain.errors import ConfigError, ConflictError, Fenced, NotFoundError
from bot.domain.models import (
    CloneState,
    Fence,
    InvalidTransition,
    ParentFacts,
    RunKind,
    RunMessage,
    RunState,
)
from bot.domain.results import FailedClone
from storage import Repository
from storage.migrations import migrations
from tests.helpers import set_state
from tests.rawdb import BOTH_BACKENDS, count, fault, indexes, raw, tables, unique_violation

pytestmark = BOTH_BACKENDS

PATTERN = "TRN-CAP-{n:03}"


@pytest.fixture
def db_path(database: str) -> str:
    """The test's database: a SQLite file's path or a PostgreSQL URL."""
    return database


@pytest.fixture
def repo(db_path: str) -> Iterator[Repository]:
    repository = Repository(db_path)
    yield repository
    repository.close()


def reserve(repo: Repository, count: int, env: str = "nov", pattern: str = PATTERN) -> list[str]:
    clones = repo.reserve_clones(
        environment=env,
        type="capture",
        parent="cap-parent",
        pattern=pattern,
        count=count,
        run_id=None,
    )
    return [clone.name for clone in clones]


# -- schema and migrations -----------------------------------------------------------------


def test_schema_created_and_migrations_applied_once(db_path: str) -> None:
    Repository(db_path).close()
    Repository(db_path).close()
    applied = raw(db_path, "SELECT migration_set, name FROM _sqlite_migrations ORDER BY id")
    names = [name for _, name in applied]
    assert names[:2] == ["m001_initial_schema", "m002_parent_facts"]
    assert len(names) == len(set(names)) == len(migrations._migrations)
    assert {"environments", "clones", "runs", "audit", "parents"} <= tables(db_path)
    assert {"clones_environment", "clones_state", "clones_live_name", "audit_at"} <= set(
        indexes(db_path)
    )
    with Repository(db_path) as repo, repo._using() as db:
        assert migrations.pending(db) == []


def test_parent_facts_round_trip_and_update(repo: Repository) -> None:
    assert repo.parent_facts() == {}
    repo.save_parent_facts(ParentFacts("Capture", 11 * 2**30, 3 * 2**30, memory_mb=1024))
    repo.save_parent_facts(ParentFacts("Capture", 11 * 2**30, 4 * 2**30, memory_mb=2048))
    assert repo.parent_facts() == {
        "Capture": ParentFacts("Capture", 11 * 2**30, 4 * 2**30, memory_mb=2048)
    }


@pytest.mark.backends("sqlite")
def test_wal_mode_and_foreign_keys(repo: Repository, db_path: str) -> None:
    assert raw(db_path, "PRAGMA journal_mode") == [("wal",)]
    conn = repo._db().conn
    assert conn.execute("PRAGMA foreign_keys").fetchone() == (1,)
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 30_000


def test_live_states_match_the_sql_filter(repo: Repository, db_path: str) -> None:
    # CloneState.live, the repository's filter and the unique index on live names must agree.
    from storage.sql import LIVE

    not_live = {state.value for state in CloneState if not state.live}
    assert not_live == {"failed", "destroyed", "missing"}
    assert set(re.findall(r"'(\w+)'", LIVE)) == not_live
    index_sql = indexes(db_path)["clones_live_name"]
    assert set(re.findall(r"'(\w+)'", index_sql)) == not_live
    if repo.dialect == "sqlite":  # word for word, or SQLite's planner will not use the index
        assert LIVE in index_sql


# -- environments --------------------------------------------------------------------------


def test_environments(repo: Repository) -> None:
    created = repo.ensure_environment("nov", owner="U1", channel="C1")
    assert created.owner == "U1" and created.channel == "C1"
    assert repo.ensure_environment("nov", owner="U2") == created  # existing: unchanged
    repo.ensure_environment("april", owner="U3")
    assert [env.name for env in repo.list_environments()] == ["april", "nov"]
    assert repo.get_environment("missing") is None

    ends = datetime(2025, 11, 28, 17, 0, tzinfo=timezone(timedelta(hours=1)))
    updated = repo.update_environment("nov", channel="C2", ends_at=ends)
    assert (updated.channel, updated.owner, updated.ends_at) == ("C2", "U1", ends)
    assert updated.ends_at is not None and updated.ends_at.tzinfo == UTC
    assert repo.update_environment("nov", owner="U9").ends_at == ends  # kept
    assert repo.update_environment("nov", ends_at=None).ends_at is None  # cleared
    with pytest.raises(ValueError, match="time zone"):
        repo.update_environment("nov", starts_at=datetime(2025, 1, 1))
    with pytest.raises(NotFoundError, match="missing"):
        repo.update_environment("missing", channel="C")


def test_delete_environment_only_without_live_clones(repo: Repository) -> None:
    repo.ensure_environment("nov", owner="U1")
    run = repo.start_run(environment="nov", kind=RunKind.DEPLOY, requested_by="U1", requested=2)
    clones = repo.reserve_clones(
        environment="nov", type="capture", parent="p", pattern=PATTERN, count=2, run_id=run.id
    )
    repo.finish_run(run.id, state=RunState.SUCCEEDED, succeeded=2, failed=0)
    with pytest.raises(ConflictError, match="strip it back"):
        repo.delete_environment("nov")
    for clone in clones:
        set_state(repo, clone.id, CloneState.DESTROYED)
    repo.delete_environment("nov")
    assert repo.get_environment("nov") is None
    assert repo.clones(environment="nov") == []  # history goes with it
    with pytest.raises(NotFoundError):
        repo.get_run(run.id)
    with pytest.raises(NotFoundError):
        repo.delete_environment("nov")


def test_delete_environment_refused_while_a_run_is_running(repo: Repository) -> None:
    repo.ensure_environment("nov", owner="U1")
    repo.start_run(environment="nov", kind=RunKind.DEPLOY, requested_by="U1", requested=0)
    with pytest.raises(ConflictError, match="in progress"):
        repo.delete_environment("nov")


# -- clone reservation ---------------------------------------------------------------------


def test_reservation_picks_smallest_free_numbers_and_reuses_dead_names(repo: Repository) -> None:
    repo.ensure_environment("nov", owner="U1")
    repo.ensure_environment("dec", owner="U1")
    first = repo.reserve_clones(
        environment="nov", type="capture", parent="p", pattern=PATTERN, count=5, run_id=None
    )
    assert [c.name for c in first] == [f"TRN-CAP-00{n}" for n in range(1, 6)]
    assert all(c.state is CloneState.PLANNED and c.attempts == 0 for c in first)
    set_state(repo, first[1].id, CloneState.DESTROYED)  # 002 free again
    set_state(repo, first[3].id, CloneState.FAILED, error="FileLocked")  # 004 free again
    set_state(repo, first[4].id, CloneState.DESTROYING)  # still live
    # Names are unique across environments, so "dec" gets the gaps and then continues.
    assert reserve(repo, 3, env="dec") == ["TRN-CAP-002", "TRN-CAP-004", "TRN-CAP-006"]
    assert reserve(repo, 0) == []


def test_a_found_clone_is_recorded_ready_and_a_live_name_is_never_taken_twice(
    repo: Repository,
) -> None:
    """`orphans adopt` of a clone whose record was lost: a new ready row owned by no run; a
    live clone of that name already recorded refuses it and changes nothing (both backends)."""
    repo.ensure_environment("nov", owner="U1")
    found = repo.record_found_clone(
        environment="nov",
        type="capture",
        parent="Parents/Capture",
        name="TRN-CAP-001",
        moref="vm-42",
        instance_uuid="5003aaaa-0000-0000-0000-000000000001",
        host="esx-01",
        delta_bytes=1024,
        power_state="poweredOff",
    )
    assert (found.state, found.run_id, found.moref, found.attempts) == (
        CloneState.READY,
        None,
        "vm-42",
        0,
    )
    assert repo.get_clone(found.id) == found
    assert reserve(repo, 1) == ["TRN-CAP-002"]  # the name is live again
    with pytest.raises(ConflictError, match="TRN-CAP-001"):
        repo.record_found_clone(
            environment="nov",
            type="capture",
            parent="Parents/Capture",
            name="TRN-CAP-001",
            moref="vm-43",
            instance_uuid="5003aaaa-0000-0000-0000-000000000002",
        )
    assert [c.moref for c in repo.clones(environment="nov")] == ["vm-42", None]
    repo.ensure_environment("dec", owner="U1")  # the refused write left the database usable


def test_reservation_spans_name_batches(repo: Repository) -> None:
    repo.ensure_environment("nov", owner="U1")
    names = reserve(repo, 1200, pattern="V-{n}")
    assert names == [f"V-{n}" for n in range(1, 1201)]


def test_reservation_validates_input(repo: Repository) -> None:
    with pytest.raises(NotFoundError, match="nov"):
        reserve(repo, 1)
    repo.ensure_environment("nov", owner="U1")
    with pytest.raises(ConfigError, match=r"\{n\}"):
        reserve(repo, 1, pattern="TRN-CAP")
    with pytest.raises(ConfigError, match="not valid"):
        reserve(repo, 1, pattern="TRN-{type}-{n}")
    with pytest.raises(NotFoundError, match="run"):
        repo.reserve_clones(
            environment="nov", type="capture", parent="p", pattern=PATTERN, count=1, run_id=99
        )
    assert repo.clones() == []


def run_threads(workers: list[Callable[[], None]]) -> None:
    errors: list[BaseException] = []

    def guarded(work: Callable[[], None]) -> None:
        try:
            work()
        except BaseException as exc:  # surface failures in the test thread
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(work,)) for work in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors


def concurrent_reservation(repos: list[Repository]) -> list[str]:
    repos[0].ensure_environment("nov", owner="U1")
    barrier = threading.Barrier(8)
    names: list[str] = []
    lock = threading.Lock()

    def worker(repo: Repository) -> Callable[[], None]:
        def work() -> None:
            barrier.wait()
            for _ in range(10):  # one at a time, to interleave as much as possible
                got = reserve(repo, 1)
                with lock:
                    names.extend(got)

        return work

    run_threads([worker(repos[i % len(repos)]) for i in range(8)])
    return names


def test_concurrent_reservation_from_threads(repo: Repository) -> None:
    names = concurrent_reservation([repo])
    assert sorted(names) == [f"TRN-CAP-{n:03}" for n in range(1, 81)]


def test_concurrent_reservation_from_two_repositories(db_path: str) -> None:
    with Repository(db_path) as one, Repository(db_path) as two:
        names = concurrent_reservation([one, two])
        assert sorted(names) == [f"TRN-CAP-{n:03}" for n in range(1, 81)]
        assert len(two.clones(states=[CloneState.PLANNED])) == 80


def reserve_in_process(path: str, start: threading.Barrier | None = None) -> list[str]:
    """Run in a child process: reserve 40 clones one at a time."""
    with Repository(path) as repo:
        if start is not None:
            start.wait()
        return [name for _ in range(40) for name in reserve(repo, 1)]


def test_concurrent_reservation_from_two_processes(db_path: str) -> None:
    with Repository(db_path) as repo:
        repo.ensure_environment("nov", owner="U1")
    context = multiprocessing.get_context("spawn")  # no fork of a process holding connections
    start = context.Manager().Barrier(2)
    with context.Pool(2) as pool:
        results = pool.starmap(reserve_in_process, [(str(db_path), start)] * 2)
    names = [name for result in results for name in result]
    assert sorted(names) == [f"TRN-CAP-{n:03}" for n in range(1, 81)]


def test_concurrent_first_open_applies_migrations_once(db_path: str) -> None:
    barrier = threading.Barrier(6)
    opened: list[Repository] = []

    def work() -> None:
        barrier.wait()
        opened.append(Repository(db_path))

    run_threads([work] * 6)
    for repo in opened:
        repo.close()
    assert raw(db_path, "SELECT count(*) FROM _sqlite_migrations") == [
        (len(migrations._migrations),)
    ]


def test_partial_unique_index_rejects_second_live_name(repo: Repository, db_path: str) -> None:
    repo.ensure_environment("nov", owner="U1")
    (old,) = repo.reserve_clones(
        environment="nov", type="capture", parent="p", pattern=PATTERN, count=1, run_id=None
    )
    set_state(repo, old.id, CloneState.FAILED)
    (new,) = repo.reserve_clones(
        environment="nov", type="capture", parent="p", pattern=PATTERN, count=1, run_id=None
    )
    assert new.name == old.name and new.id != old.id
    with pytest.raises(ConflictError, match="another live clone"):
        set_state(repo, old.id, CloneState.READY)
    assert repo.get_clone(old.id).state is CloneState.FAILED  # the failed update left no trace
    # The database itself enforces it, whoever writes.
    with pytest.raises(Exception, match=unique_violation()):
        raw(
            db_path,
            "INSERT INTO clones (name, environment, type, parent, state, created_at,"
            " updated_at) VALUES (?, 'nov', 'capture', 'p', 'planned', '', '')",
            (new.name,),
        )


# -- clones: update, get, find, list, counts -----------------------------------------------


def test_update_get_find(repo: Repository) -> None:
    repo.ensure_environment("nov", owner="U1")
    run = repo.start_run(environment="nov", kind=RunKind.DEPLOY, requested_by="U1", requested=1)
    (clone,) = repo.reserve_clones(
        environment="nov", type="capture", parent="p", pattern=PATTERN, count=1, run_id=run.id
    )
    assert clone.run_id == run.id
    time.sleep(0.001)
    repo.update_clone(clone.id, state="cloning")
    ready = repo.update_clone(
        clone.id,
        state="ready",
        moref="vm-42",
        instance_uuid="5003-abcd",
        attempts=2,
        delta_bytes=130_000_000,
    )
    assert ready.state is CloneState.READY and ready.moref == "vm-42" and ready.attempts == 2
    assert ready.delta_bytes == 130_000_000 and ready.instance_uuid == "5003-abcd"
    assert ready.updated_at is not None and clone.updated_at is not None
    assert ready.updated_at > clone.updated_at and ready.created_at == clone.created_at
    assert repo.get_clone(clone.id) == ready
    assert repo.find_clone("TRN-CAP-001") == ready
    assert repo.find_clone("TRN-CAP-999") is None
    set_state(repo, clone.id, CloneState.DESTROYED)
    assert repo.find_clone("TRN-CAP-001") is None  # only live clones are found

    # What an update returns is what a fresh read finds, every field.
    kept = repo.update_clone(
        clone.id, kept_attributes={"CostCentre": "TR-01"}, host="h1", power_state="poweredOn",
        customization="succeeded", error=None,
    )  # fmt: skip
    assert kept == repo.get_clone(clone.id) and kept.kept_attributes == (("CostCentre", "TR-01"),)

    with pytest.raises(NotFoundError, match="12345"):
        repo.get_clone(12345)
    with pytest.raises(NotFoundError):
        set_state(repo, 12345, CloneState.READY)
    with pytest.raises(TypeError, match="name"):
        repo.update_clone(clone.id, name="other")
    with pytest.raises(ConflictError, match="no such run"):
        repo.update_clone(clone.id, run_id=777)


def test_clones_filters_and_order(repo: Repository) -> None:
    repo.ensure_environment("nov", owner="U1")
    repo.ensure_environment("dec", owner="U1")
    run = repo.start_run(environment="dec", kind=RunKind.DEPLOY, requested_by="U1", requested=1)
    for env, kind, pattern, run_id in [
        ("nov", "verification", "V-{n}", None),
        ("nov", "capture", "C-{n}", None),
        ("dec", "capture", "D-{n}", run.id),
    ]:
        repo.reserve_clones(
            environment=env, type=kind, parent="p", pattern=pattern, count=2, run_id=run_id
        )
    c2 = repo.find_clone("C-2")
    assert c2 is not None
    set_state(repo, c2.id, CloneState.READY)
    assert [c.name for c in repo.clones()] == ["D-1", "D-2", "C-1", "C-2", "V-1", "V-2"]
    assert [c.name for c in repo.clones(environment="nov", type="capture")] == ["C-1", "C-2"]
    assert [c.name for c in repo.clones(states=[CloneState.READY])] == ["C-2"]
    assert [c.name for c in repo.clones(run_id=run.id)] == ["D-1", "D-2"]
    assert repo.clones(states=[]) == []


def test_clone_counts(repo: Repository) -> None:
    repo.ensure_environment("nov", owner="U1")
    repo.ensure_environment("dec", owner="U1")
    nov = repo.reserve_clones(
        environment="nov", type="capture", parent="p", pattern="C-{n}", count=3, run_id=None
    )
    repo.reserve_clones(
        environment="dec", type="packaging", parent="p", pattern="P-{n}", count=2, run_id=None
    )
    set_state(repo, nov[0].id, CloneState.READY)
    assert repo.clone_counts() == {
        "nov": {"capture": {CloneState.READY: 1, CloneState.PLANNED: 2}},
        "dec": {"packaging": {CloneState.PLANNED: 2}},
    }


def test_clone_counts_with_20000_clones(repo: Repository) -> None:
    """Correct at scale; its speed is measured in benchmarks/, not asserted here."""
    for env in ("a", "b"):
        repo.ensure_environment(env, owner="U1")
        for kind in ("capture", "packaging"):
            repo.reserve_clones(
                environment=env,
                type=kind,
                parent="p",
                pattern=f"{env}-{kind}-{{n}}",
                count=5000,
                run_id=None,
            )
    counts = repo.clone_counts()
    assert counts["b"]["packaging"] == {CloneState.PLANNED: 5000}
    assert sum(n for env in counts.values() for t in env.values() for n in t.values()) == 20000


# -- runs ----------------------------------------------------------------------------------


def test_runs_lifecycle(repo: Repository) -> None:
    repo.ensure_environment("nov", owner="U1")
    with pytest.raises(NotFoundError):
        repo.start_run(environment="missing", kind=RunKind.DEPLOY, requested_by="U1", requested=1)
    first = repo.start_run(environment="nov", kind=RunKind.DEPLOY, requested_by="U1", requested=3)
    assert first.state is RunState.RUNNING and first.finished_at is None
    assert first.started_at is not None and first.started_at.tzinfo == UTC
    progress = repo.update_run(first.id, succeeded=1, message="1 of 3 ready")
    assert (progress.succeeded, progress.message) == (1, "1 of 3 ready")
    done = repo.finish_run(first.id, state=RunState.PARTIAL, succeeded=2, failed=1, message="x")
    assert (done.state, done.succeeded, done.failed, done.message) == (RunState.PARTIAL, 2, 1, "x")
    assert done.finished_at is not None
    with pytest.raises(ConflictError, match="already finished"):
        repo.finish_run(first.id, state=RunState.SUCCEEDED, succeeded=3, failed=0)
    with pytest.raises(ValueError):
        repo.finish_run(first.id, state=RunState.RUNNING, succeeded=0, failed=0)

    second = repo.start_run(
        environment="nov", kind=RunKind.TEARDOWN, requested_by="U2", requested=2
    )
    stopped = repo.finish_run(second.id, state=RunState.INTERRUPTED, succeeded=0, failed=0)
    assert not stopped.state.terminal  # resumable, by superseding it
    with pytest.raises(InvalidTransition):
        repo.finish_run(second.id, state=RunState.SUCCEEDED, succeeded=2, failed=0)
    with pytest.raises(InvalidTransition):
        repo.update_run(second.id, state=RunState.RUNNING)
    resumed = repo.supersede_run(second.id, owner="me", expected_owner="")
    assert resumed is not None
    repo.finish_run(resumed.id, state=RunState.SUCCEEDED, succeeded=2, failed=0)
    third = repo.start_run(environment="nov", kind=RunKind.REFRESH, requested_by="U1", requested=1)

    assert [r.id for r in repo.runs()] == [third.id, resumed.id, second.id, first.id]
    assert [r.id for r in repo.runs(states=[RunState.RUNNING])] == [third.id]
    assert [r.id for r in repo.runs(environment="nov", limit=2)] == [third.id, resumed.id]
    assert repo.runs(environment="other") == []
    with pytest.raises(NotFoundError):
        repo.get_run(999)
    with pytest.raises(TypeError):
        repo.update_run(third.id, environment="x")


def test_a_run_owns_the_clones_it_started_with(repo: Repository) -> None:
    repo.ensure_environment("nov", owner="U1")
    deploy = repo.start_run(environment="nov", kind=RunKind.DEPLOY, requested_by="U1", requested=2)
    made = repo.reserve_clones(
        environment="nov", type="capture", parent="p", pattern=PATTERN, count=2, run_id=deploy.id
    )
    assert [c.id for c in repo.clones(run_id=deploy.id)] == [c.id for c in made]
    repo.finish_run(deploy.id, state=RunState.SUCCEEDED, succeeded=2, failed=0)
    strip = repo.start_run(
        environment="nov",
        kind=RunKind.TEARDOWN,
        requested_by="U1",
        requested=2,
        owner="a:1",
        clone_ids=[c.id for c in made],
    )
    later = reserve(repo, 3)  # deployed into the same environment name afterwards
    assert {c.id for c in repo.clones(run_id=strip.id)} == {c.id for c in made}
    repo.finish_run(strip.id, state=RunState.INTERRUPTED, succeeded=0, failed=0)

    # Recovery takes it over once: the old run ends superseded, the new one owns the same set.
    taken = repo.supersede_run(strip.id, owner="b:2", expected_owner="a:1")
    assert taken is not None and taken.state is RunState.RUNNING and taken.owner == "b:2"
    assert {c.id for c in repo.clones(run_id=taken.id)} == {c.id for c in made}
    old = repo.get_run(strip.id)
    assert old.state is RunState.SUPERSEDED and old.superseded_by == taken.id
    assert old.state.terminal
    assert repo.supersede_run(strip.id, owner="c:3", expected_owner="a:1") is None
    assert repo.supersede_run(taken.id, owner="c:3", expected_owner="a:1") is None  # not its owner
    assert not {c.name for c in repo.clones(run_id=taken.id)} & set(later)


def test_an_interrupted_run_blocks_a_deploy_and_is_superseded_by_a_strip_back(
    repo: Repository,
) -> None:
    repo.ensure_environment("nov", owner="U1")
    deploy = repo.start_run(environment="nov", kind=RunKind.DEPLOY, requested_by="U1", requested=1)
    repo.finish_run(deploy.id, state=RunState.INTERRUPTED, succeeded=0, failed=0)
    for kind in (RunKind.DEPLOY, RunKind.REFRESH):
        with pytest.raises(ConflictError, match="resume"):
            repo.start_run(environment="nov", kind=kind, requested_by="U1", requested=1)
    strip = repo.start_run(environment="nov", kind=RunKind.TEARDOWN, requested_by="U1", requested=1)
    old = repo.get_run(deploy.id)
    assert old.state is RunState.SUPERSEDED and old.superseded_by == strip.id


def test_clone_state_changes_follow_the_state_machine(repo: Repository) -> None:
    repo.ensure_environment("nov", owner="U1")
    (clone,) = repo.reserve_clones(
        environment="nov", type="capture", parent="p", pattern=PATTERN, count=1, run_id=None
    )
    with pytest.raises(InvalidTransition):
        repo.update_clone(clone.id, state=CloneState.READY)  # never cloned
    assert repo.get_clone(clone.id).state is CloneState.PLANNED  # nothing changed
    set_state(repo, clone.id, CloneState.DESTROYED)
    with pytest.raises(InvalidTransition):
        repo.update_clone(clone.id, state=CloneState.READY)  # destroyed is final


def test_a_clone_write_is_one_statement_and_each_refusal_still_says_why(repo: Repository) -> None:
    """update_clone writes with its checks in the statement (RETURNING the row); when it writes
    nothing, the refusal names its cause, and inside a caller's transaction a refused write
    undoes only itself."""
    repo.ensure_environment("nov", owner="U1")
    run = repo.start_run(
        environment="nov", kind=RunKind.DEPLOY, requested_by="U1", requested=2, owner="m1:1:t1"
    )
    a, b = repo.reserve_clones(
        environment="nov", type="capture", parent="p", pattern=PATTERN, count=2, run_id=run.id
    )
    fence = Fence(run_id=run.id, owner="m1:1:t1")
    done = repo.update_clone(a.id, fence=fence, state=CloneState.CLONING, moref="vm-1")
    assert (done.state, done.moref) == (CloneState.CLONING, "vm-1")
    assert repo.get_clone(a.id) == done  # the row returned is the row stored
    with pytest.raises(NotFoundError, match="no clone with id 999999"):
        repo.update_clone(999999, fence=fence, moref="vm-9")
    with pytest.raises(Fenced):
        repo.update_clone(a.id, fence=Fence(run_id=run.id, owner="other:1:x"), moref="vm-2")
    set_state(repo, b.id, CloneState.READY)
    set_state(repo, b.id, CloneState.MISSING)  # its name is free again
    with repo.transaction():
        again = repo.reserve_clones(
            environment="nov", type="capture", parent="p", pattern=PATTERN, count=1, run_id=None
        )
        assert again[0].name == b.name
        with pytest.raises(ConflictError, match=f"{b.name!r} cannot become live again"):
            repo.update_clone(b.id, state=CloneState.READY)  # the name is another's now
        repo.update_clone(a.id, fence=fence, state=CloneState.READY)  # the outer one goes on
    assert repo.get_clone(a.id).state is CloneState.READY
    with pytest.raises(ConflictError, match=f"{b.name!r} cannot become live again"):
        repo.update_clone(b.id, state=CloneState.READY)  # on its own: one round trip, refused
    assert repo.get_clone(b.id).state is CloneState.MISSING
    assert repo.get_clone(again[0].id).state is CloneState.PLANNED
    assert repo.heartbeat(run.id, "m1:1:t1") and not repo.heartbeat(run.id, "other:1:x")


def test_missing_is_recorded_only_for_rows_unchanged_since_the_read(repo: Repository) -> None:
    repo.ensure_environment("nov", owner="U1")
    a, b = repo.reserve_clones(
        environment="nov", type="capture", parent="p", pattern=PATTERN, count=2, run_id=None
    )
    set_state(repo, a.id, CloneState.READY)
    read_at = datetime.now(UTC)
    time.sleep(0.001)
    set_state(repo, b.id, CloneState.READY)  # became ready after vCenter was read
    marked = repo.mark_missing([a.id, b.id], unchanged_since=read_at)
    assert [c.id for c in marked] == [a.id]
    assert repo.get_clone(a.id).state is CloneState.MISSING
    assert repo.get_clone(b.id).state is CloneState.READY
    assert reserve(repo, 1) == [a.name]  # a missing clone's name is free again


def test_sizes_keep_each_clones_peak_without_changing_the_clone(repo: Repository) -> None:
    repo.ensure_environment("nov", owner="U1")
    a, b = repo.reserve_clones(
        environment="nov", type="capture", parent="p", pattern=PATTERN, count=2, run_id=None
    )
    before = repo.get_clone(a.id)
    repo.record_sizes([(a.id, 100), (b.id, 0)])  # 0: no size read, nothing recorded
    first = repo.get_clone(a.id)
    assert (first.peak_bytes, first.peak_at is not None) == (100, True)
    assert first.updated_at == before.updated_at  # a read is not a change (mark_missing)
    assert repo.get_clone(b.id).peak_bytes is None and repo.get_clone(b.id).sized_at is None
    time.sleep(0.001)
    repo.record_sizes([(a.id, 80)])  # smaller: the peak and its time stay, the reading moves
    second = repo.get_clone(a.id)
    assert (second.peak_bytes, second.peak_at) == (100, first.peak_at)
    assert second.sized_at is not None and first.sized_at is not None
    assert second.sized_at > first.sized_at
    repo.record_sizes([(a.id, 300)])
    third = repo.get_clone(a.id)
    assert third.peak_bytes == 300 and third.peak_at is not None
    assert first.peak_at is not None and third.peak_at > first.peak_at
    [peak] = repo.clone_peaks(type="capture", parent="p")
    assert (peak.environment, peak.peak_bytes, peak.created_at) == ("nov", 300, a.created_at)
    assert repo.clone_peaks(type="capture", parent="other") == []


# -- audit ---------------------------------------------------------------------------------


def test_audit(repo: Repository) -> None:
    first = repo.audit(actor="U1", source="slack", command="deploy capture 3", result="ok")
    repo.audit(actor="U2", source="cli", command="strip nov", result="denied", detail="not owner")
    third = repo.audit(
        actor="U1", source="scheduler", command="strip nov", result="ok", channel="C1"
    )
    entries = repo.audit_entries()
    assert [e.command for e in entries] == ["strip nov", "strip nov", "deploy capture 3"]
    assert entries[0] == third and entries[-1] == first
    assert entries[1].detail == "not owner"
    assert [e.id for e in repo.audit_entries(actor="U1")] == [third.id, first.id]
    assert len(repo.audit_entries(limit=1)) == 1


# -- transactions, threads, times ----------------------------------------------------------


def test_transaction_rolls_back_and_nests(repo: Repository) -> None:
    repo.ensure_environment("nov", owner="U1")
    with pytest.raises(RuntimeError), repo.transaction():
        reserve(repo, 2)
        raise RuntimeError("boom")
    assert repo.clones() == []

    with repo.transaction():
        reserve(repo, 1)
        with pytest.raises(RuntimeError), repo.transaction():
            reserve(repo, 1)
            raise RuntimeError("inner only")
        reserve(repo, 1)
    assert [c.name for c in repo.clones()] == ["TRN-CAP-001", "TRN-CAP-002"]


@pytest.mark.backends("sqlite")
def test_one_connection_per_thread_and_close(repo: Repository) -> None:
    repo.ensure_environment("nov", owner="U1")
    seen: list[int] = []

    def work() -> None:
        seen.append(id(repo._db()))
        assert repo.get_environment("nov") is not None

    run_threads([work, work])
    assert len(set(seen)) == 2 and id(repo._db()) not in seen
    repo.close()
    assert repo.get_environment("nov") is not None  # reconnects after close()


def test_times_round_trip_as_aware_utc(repo: Repository, db_path: str) -> None:
    before = datetime.now(UTC)
    env = repo.ensure_environment("nov", owner="U1")
    starts = datetime(2025, 3, 30, 1, 30, tzinfo=timezone(timedelta(hours=-5)))
    repo.update_environment("nov", starts_at=starts)
    assert env.created_at is not None and env.created_at.tzinfo == UTC
    assert before <= env.created_at <= datetime.now(UTC)
    with Repository(db_path) as other:  # read back through a fresh connection
        stored = other.get_environment("nov")
    assert stored is not None and stored.created_at == env.created_at
    assert stored.starts_at == starts and stored.starts_at is not None
    assert stored.starts_at.utcoffset() == timedelta(0)
    text = raw(db_path, "SELECT starts_at FROM environments")[0][0]
    assert text == "2025-03-30T06:30:00.000000+00:00"


def test_first_sighting_remembers_keys_for_the_window(repo: Repository, db_path: str) -> None:
    assert repo.first_sighting(["sig:1:a", "trigger:t1"], 300, now=1000.0)
    assert not repo.first_sighting(["trigger:t1"], 300, now=1100.0)  # a repeat, even re-signed
    assert not repo.first_sighting(["sig:1:a", "new"], 300, now=1100.0)
    assert repo.first_sighting(["new"], 300, now=1100.0)  # a refused call remembered nothing
    # Another Repository on the file (a restarted bot) still knows them, until they expire.
    with Repository(db_path) as other:
        assert not other.first_sighting(["trigger:t1"], 300, now=1299.0)
        assert other.first_sighting(["trigger:t1"], 300, now=1300.0)
    assert repo.first_sighting([], 300)


def test_writers_in_one_process_take_turns_without_losing_or_doubling(repo: Repository) -> None:
    # 20 request threads recording replay keys (each key twice) while 4 threads write audit
    # rows and transactions: every write lands once, and each key is "first" exactly once.
    keys = [f"sig:{i % 10}" for i in range(20)]
    firsts: list[str] = []
    errors: list[BaseException] = []
    start = threading.Barrier(24)

    def request(key: str) -> None:
        try:
            start.wait()
            if repo.first_sighting([key], 300):
                firsts.append(key)
        except BaseException as exc:
            errors.append(exc)

    def writer(n: int) -> None:
        try:
            start.wait()
            for i in range(10):
                repo.audit(actor=f"w{n}", source="cli", command=f"write {i}", result="ok")
                with repo.transaction():
                    repo.audit(actor=f"w{n}", source="cli", command=f"inner {i}", result="ok")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=request, args=(k,)) for k in keys]
    threads += [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    assert sorted(firsts) == sorted(set(keys))
    assert len(repo.audit_entries(limit=1000)) == 4 * 10 * 2


# -- transaction boundaries: a multi-step write is all or nothing --------------------------


def test_reserving_for_a_run_is_all_or_nothing(repo: Repository, db_path: str) -> None:
    repo.ensure_environment("nov", owner="U1")
    run = repo.start_run(environment="nov", kind=RunKind.DEPLOY, requested_by="U1", requested=3)
    # The third clone row is in; its membership of the run fails.
    with fault(db_path, "INSERT ON run_clones", "(SELECT count(*) FROM clones) = 3"):
        repo.reserve_clones(
            environment="nov", type="capture", parent="p", pattern=PATTERN, count=3, run_id=run.id
        )
    assert repo.clones() == [] and count(db_path, "run_clones") == 0
    assert reserve(repo, 3) == ["TRN-CAP-001", "TRN-CAP-002", "TRN-CAP-003"]  # no name burnt


def test_a_strip_back_starts_and_takes_over_an_interrupted_run_together(
    repo: Repository, db_path: str
) -> None:
    repo.ensure_environment("nov", owner="U1")
    deploy = repo.start_run(environment="nov", kind=RunKind.DEPLOY, requested_by="U1", requested=2)
    made = repo.reserve_clones(
        environment="nov", type="capture", parent="p", pattern=PATTERN, count=2, run_id=deploy.id
    )
    repo.finish_run(deploy.id, state=RunState.INTERRUPTED, succeeded=0, failed=0)
    with fault(db_path, "UPDATE OF state ON runs", "NEW.state = 'superseded'"):
        repo.start_run(
            environment="nov",
            kind=RunKind.TEARDOWN,
            requested_by="U1",
            requested=2,
            clone_ids=[c.id for c in made],
        )
    assert [(r.id, r.state) for r in repo.runs()] == [(deploy.id, RunState.INTERRUPTED)]
    assert count(db_path, "run_clones") == 2  # the deploy's own, nothing of the refused run
    strip = repo.start_run(environment="nov", kind=RunKind.TEARDOWN, requested_by="U1", requested=2)
    assert repo.get_run(deploy.id).superseded_by == strip.id


def test_taking_a_run_over_is_all_or_nothing(repo: Repository, db_path: str) -> None:
    repo.ensure_environment("nov", owner="U1")
    run = repo.start_run(
        environment="nov", kind=RunKind.TEARDOWN, requested_by="U1", requested=2, owner="a:1"
    )
    made = repo.reserve_clones(
        environment="nov", type="capture", parent="p", pattern=PATTERN, count=2, run_id=run.id
    )
    repo.save_run_message(run.id, channel="C1", ts="1.2")
    repo.finish_run(run.id, state=RunState.INTERRUPTED, succeeded=0, failed=0)
    # The new run and its members are in; copying the Slack message fails.
    with fault(db_path, "INSERT ON run_messages"):
        repo.supersede_run(run.id, owner="b:2", expected_owner="a:1")
    assert [r.id for r in repo.runs()] == [run.id]
    old = repo.get_run(run.id)
    assert (old.state, old.owner, old.superseded_by) == (RunState.INTERRUPTED, "a:1", None)
    assert count(db_path, "run_clones") == 2 and count(db_path, "run_messages") == 1

    taken = repo.supersede_run(run.id, owner="b:2", expected_owner="a:1")  # can still be resumed
    assert taken is not None
    assert [c.id for c in repo.clones(run_id=taken.id)] == [c.id for c in made]
    assert repo.run_message(taken.id) == RunMessage(taken.id, "C1", "1.2")


def test_claiming_an_end_is_all_or_nothing(repo: Repository, db_path: str) -> None:
    ends = datetime(2025, 11, 28, 16, 0, tzinfo=UTC)
    repo.ensure_environment("nov", owner="U1")
    repo.update_environment("nov", ends_at=ends)
    # ends_at is cleared; recording the strip back as claimed fails: the end must stay scheduled.
    with fault(db_path, "UPDATE OF stripping_for_end ON schedules"):
        repo.claim_end("nov", ends)
    env = repo.get_environment("nov")
    assert env is not None and env.ends_at == ends
    assert repo.get_schedule("nov") is None

    assert repo.claim_end("nov", ends) and not repo.claim_end("nov", ends)
    record = repo.get_schedule("nov")
    assert record is not None and record.stripping_for_end == ends


def test_marking_clones_missing_is_all_or_nothing(repo: Repository, db_path: str) -> None:
    repo.ensure_environment("nov", owner="U1")
    a, b = repo.reserve_clones(
        environment="nov", type="capture", parent="p", pattern=PATTERN, count=2, run_id=None
    )
    set_state(repo, a.id, CloneState.READY)
    set_state(repo, b.id, CloneState.READY)
    later = datetime.now(UTC) + timedelta(seconds=1)
    with fault(db_path, "UPDATE OF state ON clones", f"NEW.state = 'missing' AND OLD.id = {b.id}"):
        repo.mark_missing([a.id, b.id], unchanged_since=later)
    assert [c.state for c in repo.clones()] == [CloneState.READY] * 2
    assert len(repo.mark_missing([a.id, b.id], unchanged_since=later)) == 2


def test_remembering_replay_keys_is_all_or_nothing(repo: Repository, db_path: str) -> None:
    assert repo.first_sighting(["old"], 10, now=1000.0)
    with fault(db_path, "INSERT ON seen_requests", "NEW.key = 'b'"):
        repo.first_sighting(["a", "b"], 300, now=2000.0)
    assert raw(db_path, "SELECT key FROM seen_requests") == [("old",)]  # nor was "old" swept
    assert repo.first_sighting(["a", "b"], 300, now=2000.0)  # "a" was not remembered


def test_racing_repositories_get_exactly_one_winner(db_path: str) -> None:
    # Two bots on one file: taking a run over, the start and end claims, and starting a run in
    # one environment are each won once, whatever the interleaving.
    starts = datetime(2025, 11, 3, 8, 0, tzinfo=UTC)
    ends = datetime(2025, 11, 28, 16, 0, tzinfo=UTC)
    with Repository(db_path) as one, Repository(db_path) as two:
        one.ensure_environment("nov", owner="U1")
        one.ensure_environment("dec", owner="U1")
        one.update_environment("nov", starts_at=starts, ends_at=ends)
        run = one.start_run(
            environment="nov", kind=RunKind.TEARDOWN, requested_by="U1", requested=0, owner="a:1"
        )
        one.finish_run(run.id, state=RunState.INTERRUPTED, succeeded=0, failed=0)
        barrier = threading.Barrier(2)
        won: dict[str, list[Any]] = {"takeover": [], "start": [], "end": [], "run": []}

        def bot(repo: Repository, owner: str) -> Callable[[], None]:
            def work() -> None:
                barrier.wait()
                won["takeover"].append(
                    repo.supersede_run(run.id, owner=owner, expected_owner="a:1")
                )
                barrier.wait()
                won["start"].append(repo.claim_start("nov", starts))
                barrier.wait()
                won["end"].append(repo.claim_end("nov", ends))
                barrier.wait()
                try:
                    won["run"].append(
                        repo.start_run(
                            environment="dec", kind=RunKind.DEPLOY, requested_by=owner, requested=1
                        )
                    )
                except ConflictError as exc:
                    assert "dec is busy" in str(exc)
                    won["run"].append(None)

            return work

        run_threads([bot(one, "b:2"), bot(two, "c:3")])
        (taken,) = [t for t in won["takeover"] if t is not None]
        assert one.get_run(run.id).superseded_by == getattr(taken, "id", None)
        assert len(one.runs(environment="nov")) == 2
        assert sorted(won["start"]) == sorted(won["end"]) == [False, True]
        assert len([r for r in won["run"] if r is not None]) == 1
        assert len(one.runs(environment="dec")) == 1


def test_an_assignment_ends_in_the_write_its_clone_leaves_ready_for_good(repo: Repository) -> None:
    """m009/m012's trigger, on each backend: a clone destroyed, missing or failed ends its
    trainee's assignment in the same statement (the reason says which); a clone that merely
    moves along (a rebuild's destroying) keeps it."""
    repo.ensure_environment("nov", owner="U1")
    made = repo.reserve_clones(
        environment="nov", type="capture", parent="p", pattern=PATTERN, count=4, run_id=None
    )
    for c in made:
        set_state(repo, c.id, CloneState.READY, moref=f"vm-{c.id}", instance_uuid=f"u-{c.id}")
    repo.assign(
        environment="nov",
        pairs=[(f"U0{i}", c.id) for i, c in enumerate(made)],
        assigned_by="U1",
    )
    set_state(repo, made[0].id, CloneState.DESTROYED)
    set_state(repo, made[1].id, CloneState.MISSING)
    set_state(repo, made[2].id, CloneState.FAILED)
    set_state(repo, made[3].id, CloneState.DESTROYING)  # a rebuild under way
    every = {a.trainee: a for a in repo.assignments(environment="nov", active=None)}
    assert {t: (a.ended_at is not None, a.ended_reason) for t, a in every.items()} == {
        "U00": (True, "removed"),
        "U01": (True, "missing"),
        "U02": (True, "failed"),
        "U03": (False, ""),
    }
    assert sorted(a.trainee for a in repo.untold_removals()) == ["U00", "U01", "U02"]


def test_failed_clones_are_read_by_environment_without_the_destroyed(repo: Repository) -> None:
    """What the status overview lists under each environment: its failed and missing clones
    (their error, else their state), not destroyed ones, not other environments'."""
    for env in ("nov", "dec", "jan"):
        repo.ensure_environment(env, owner="U1")
    nov = repo.reserve_clones(
        environment="nov", type="capture", parent="p", pattern=PATTERN, count=3, run_id=None
    )
    dec = repo.reserve_clones(
        environment="dec", type="capture", parent="p", pattern="TRN-DEC-{n:03}", count=2,
        run_id=None,
    )  # fmt: skip
    set_state(repo, nov[0].id, CloneState.FAILED, error="CloneVM_Task: disk full")
    set_state(repo, nov[1].id, CloneState.READY, moref="vm-1", instance_uuid="u-1")
    set_state(repo, nov[1].id, CloneState.MISSING)
    set_state(repo, nov[2].id, CloneState.FAILED)
    set_state(repo, nov[2].id, CloneState.DESTROYED)  # history: not listed
    set_state(repo, dec[0].id, CloneState.FAILED, error="NoPermission")
    assert repo.failed_clones(["nov", "jan"]) == {
        "nov": [
            FailedClone("TRN-CAP-001", "capture", "CloneVM_Task: disk full"),
            FailedClone("TRN-CAP-002", "capture", "missing"),
        ]
    }
    assert sorted(repo.failed_clones()) == ["dec", "nov"]
    assert repo.failed_clones([]) == {}
