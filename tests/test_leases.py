"""Leases and fences on real databases, a SQLite file and a PostgreSQL database of the session's
server (storage/leases.py, bot/services/leadership.py): one leader at a time, a takeover only once
the lease expired (a new epoch), bots racing for an expired lease on their own connections (one
wins), and every write made under an old epoch, or for a run another process took over, refused in
its own transaction."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

import storage.postgres
from bot.domain.errors import Fenced, StorageError
from bot.domain.models import CloneState, Fence, RunKind, RunState
from bot.services.leadership import Leadership
from storage import Repository
from tests.rawdb import BOTH_BACKENDS

pytestmark = BOTH_BACKENDS

LEASE_S = 5.0


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def repo(database: str) -> Iterator[Repository]:
    with Repository(database) as r:
        yield r


def test_one_leader_a_takeover_only_after_expiry_and_the_old_epoch_refused(
    repo: Repository,
) -> None:
    clock = Clock()
    a = Leadership(repo, lease_s=LEASE_S, clock=clock)
    b = Leadership(repo, lease_s=LEASE_S, clock=clock)
    assert a.acquire() and a.held and a.fence().epoch == 1
    assert not b.acquire() and b.is_held_elsewhere() and b.holder() == a.owner

    end = datetime.now(UTC) + timedelta(hours=1)
    repo.ensure_environment("nov", owner="U1")
    repo.update_environment("nov", ends_at=end)
    stale = a.fence()

    clock.now += LEASE_S - 0.5  # not expired yet: still a's
    assert not b.acquire()
    clock.now += 1.0  # a stopped renewing (hung): the lease ran out
    assert b.acquire() and b.fence().epoch == 2
    assert not b.is_held_elsewhere() and a.is_held_elsewhere()

    # a comes back and claims the strip back it had decided on: refused, nothing written.
    with pytest.raises(Fenced, match="epoch 1; the database has epoch 2"):
        repo.claim_end("nov", end, fence=stale)
    env = repo.get_environment("nov")
    assert env is not None and env.ends_at == end and repo.get_schedule("nov") is None
    assert repo.claim_end("nov", end, fence=b.fence())  # the leader's claim goes through

    # a's renewal is refused too: it learns it lost, and says why.
    lost: list[str] = []
    a.on_lost = lost.append
    a.tick()
    assert not a.held and len(lost) == 1 and "epoch 2 held by" in lost[0]
    assert not a.acquire()  # b renews in time: a stands by

    b.release()  # a clean stop: taken at once, under the next epoch
    assert a.acquire() and a.fence().epoch == 3


def test_a_fence_with_no_lease_held_is_refused(repo: Repository) -> None:
    repo.ensure_environment("nov", owner="U1")
    never = Fence("scheduler", "nobody", 0)
    with pytest.raises(Fenced):
        repo.claim_start("nov", datetime.now(UTC), fence=never)


def test_a_run_is_taken_over_only_after_its_lease_and_its_old_owner_is_refused(
    repo: Repository,
) -> None:
    repo.ensure_environment("nov", owner="U1")
    run = repo.start_run(
        environment="nov", kind=RunKind.DEPLOY, requested_by="U1", requested=2, owner="m1:1:t1"
    )
    clones = repo.reserve_clones(
        environment="nov", type="capture", parent="p", pattern="TRN-{n:02d}", count=2,
        run_id=run.id,
    )  # fmt: skip
    assert repo.heartbeat(run.id, "m1:1:t1")
    beat = repo.get_run(run.id).heartbeat_at
    assert beat is not None
    # Its heartbeat is newer than the lease: not abandoned, no takeover.
    early = repo.supersede_run(
        run.id, owner="m2:2:t2", expected_owner="m1:1:t1", stale_before=beat - timedelta(1)
    )
    assert early is None and repo.get_run(run.id).state is RunState.RUNNING
    new = repo.supersede_run(
        run.id, owner="m2:2:t2", expected_owner="m1:1:t1", stale_before=beat + timedelta(1)
    )
    assert new is not None and repo.get_run(run.id).superseded_by == new.id
    # The old owner, continued: its heartbeat and its next clone write are refused.
    assert not repo.heartbeat(run.id, "m1:1:t1")
    with pytest.raises(Fenced, match=f"took it over as run {new.id}"):
        repo.update_clone(
            clones[0].id, fence=Fence(run_id=run.id, owner="m1:1:t1"), state=CloneState.CLONING
        )
    assert repo.get_clone(clones[0].id).state is CloneState.PLANNED
    # The new owner writes.
    done = repo.update_clone(
        clones[0].id, fence=Fence(run_id=new.id, owner="m2:2:t2"), state=CloneState.CLONING
    )
    assert done.state is CloneState.CLONING


def test_bots_racing_for_an_expired_lease_one_wins_under_one_new_epoch(
    repo: Repository, database: str
) -> None:
    """Six bots, each with its own connection (as on six machines), try to take an expired
    lease at the same moment: exactly one holds it, under the next epoch, and the others see
    it held."""
    clock = Clock()
    first = repo.acquire_lease("scheduler", "gone:1:t0", LEASE_S, clock.now)
    assert first is not None and first.epoch == 1
    clock.now += LEASE_S + 1.0  # its holder died on another machine: the lease ran out
    repos = [Repository(database) for _ in range(6)]
    try:
        racers = [Leadership(r, lease_s=LEASE_S, clock=clock) for r in repos]
        start = threading.Barrier(len(racers))
        won: list[Leadership] = []

        def race(bot: Leadership) -> None:
            start.wait()
            if bot.acquire():
                won.append(bot)

        threads = [threading.Thread(target=race, args=(bot,)) for bot in racers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert len(won) == 1 and won[0].fence().epoch == 2
        lease = repo.get_lease("scheduler")
        assert lease is not None and lease.holder == won[0].owner and lease.epoch == 2
        assert all(bot.is_held_elsewhere() for bot in racers if bot is not won[0])
    finally:
        for bot in won:
            bot.release()
        for r in repos:
            r.close()


@pytest.mark.backends("postgresql")
def test_a_bot_stopped_inside_a_write_holds_the_others_only_until_the_server_ends_its_session(
    database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL's writers take turns on one lock (storage/postgres.py), so a bot stopped
    inside a write transaction (SIGSTOP, a frozen VM) would hold every other bot's writes, the
    lease takeover among them, until it is continued. The bot's sessions ask the server to end
    a transaction idle for IDLE_IN_TRANSACTION_S: the takeover then goes through, and the
    stopped bot, continued, finds its transaction gone (one sentence), nothing of it kept."""
    monkeypatch.setattr(storage.postgres, "IDLE_IN_TRANSACTION_S", 1.0)
    clock = Clock()
    with Repository(database) as hung, Repository(database) as other:
        assert hung.acquire_lease("scheduler", "m1:1:t1", LEASE_S, clock.now) is not None
        inside, go_on = threading.Event(), threading.Event()
        refused: list[StorageError] = []

        def stopped_inside_a_write() -> None:
            try:
                with hung.transaction():
                    hung.audit(actor="U1", source="cli", command="half", result="ok")
                    inside.set()
                    go_on.wait(60)  # stopped: nothing reaches the server meanwhile
                    hung.audit(actor="U1", source="cli", command="other half", result="ok")
            except StorageError as exc:
                refused.append(exc)

        thread = threading.Thread(target=stopped_inside_a_write)
        thread.start()
        try:
            assert inside.wait(30)
            clock.now += LEASE_S + 1.0  # its lease ran out meanwhile
            started = time.monotonic()
            lease = other.acquire_lease("scheduler", "m2:2:t2", LEASE_S, clock.now)
            waited = time.monotonic() - started
        finally:
            go_on.set()
            thread.join(60)
        assert lease is not None and lease.epoch == 2 and lease.holder == "m2:2:t2"
        assert waited < 15, waited  # the idle timeout (1 s), not the stopped bot, decided
        assert len(refused) == 1 and "\n" not in str(refused[0])
        assert not [e for e in other.audit_entries() if e.command in ("half", "other half")]
        # The connection the server ended is not handed out again: the bot writes on.
        hung.audit(actor="U1", source="cli", command="after", result="ok")
        assert [e.command for e in other.audit_entries()] == ["after"]
