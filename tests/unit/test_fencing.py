"""Fencing in the cloner (issue 25): once another bot took a deployment's run over, the process
that ran it asks vCenter for nothing more and records nothing for the run's clones, even for a
clone that had recorded its instance UUID and waited for a slot, and even a failure of a clone
task it had asked for. Against the in-memory vCenter (the lab version of this is
tests/slack/test_failover.py, SIGSTOP)."""

from __future__ import annotations

from typing import Any

import pytest

from bot.domain import grammar
from bot.domain.errors import Fenced, VCenterFault
from bot.domain.models import CloneState, RunState
from bot.domain.vsphere import CloneRequest, VmFacts
from bot.services.container import Services
from bot.services.dispatch import Invocation, dispatch
from tests.fakes import FakeVCenter
from tests.faults import wait_until

OTHER_BOT = "machine-b:4242:0123456789ab"


def test_a_run_taken_over_mid_clone_asks_for_no_more_clones_and_records_no_failure(
    make_services: Any, vcenter: FakeVCenter
) -> None:
    s: Services = make_services(concurrency=1)  # one clone task at a time: the third waits
    asked: list[str] = []
    real = vcenter.clone

    def clone(req: CloneRequest, *, finish: bool = True) -> VmFacts:
        asked.append(req.name)
        if len(asked) != 2:
            return real(req, finish=finish)
        # The second clone's task is in vCenter; the first is recorded ready (its worker free),
        # so the third has recorded its UUID and waits for the slot. This process hangs past
        # the run's lease: another bot takes the run over...
        at_the_takeover = [CloneState.READY, CloneState.CLONING, CloneState.CLONING]
        wait_until(lambda: _states(s) == at_the_takeover, timeout=10)
        (run,) = [r for r in s.repo.runs(environment="cohort") if r.state is RunState.RUNNING]
        assert s.repo.supersede_run(run.id, owner=OTHER_BOT, expected_owner=run.owner)
        # ...and, continued, this process hears that the task failed.
        raise VCenterFault("the task failed", "SystemError")

    vcenter.clone = clone  # type: ignore[method-assign]
    with pytest.raises(Fenced, match="no longer this process's"):
        dispatch(s, grammar.parse("deploy capture 3 as cohort"), Invocation("trainer", "cli"))

    assert len(asked) == 2  # the third clone was never asked for
    # The two clones left are the other bot's to finish: still as they were at the takeover,
    # not failed over what it makes of them.
    assert _states(s) == [CloneState.READY, CloneState.CLONING, CloneState.CLONING]
    old, new = sorted(s.repo.runs(environment="cohort"), key=lambda r: r.id)
    assert old.state is RunState.SUPERSEDED and new.owner == OTHER_BOT
    assert len(s.repo.clones(run_id=new.id)) == 3  # its successor owns the three


def _states(s: Services) -> list[CloneState]:
    return [c.state for c in sorted(s.repo.clones(environment="cohort"), key=lambda c: c.name)]
