"""Leases and fences on a real database file (storage/leases.py, bot/services/leadership.py): one
leader at a time, a takeover only once the lease expired (a new epoch), and every write made under
an old epoch, or for a run another process took over, refused in its own transaction."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.domain.errors import Fenced
from bot.domain.models import CloneState, Fence, RunKind, RunState
from bot.services.leadership import Leadership
from storage import Repository

LEASE_S = 5.0


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Repository]:
    with Repository(tmp_path / "clones.db") as r:
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
