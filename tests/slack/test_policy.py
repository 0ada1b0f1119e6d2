"""The access policy and the job pool, on their own."""

from __future__ import annotations

import threading

import pytest

from bot.domain.errors import ConflictError
from bot.services.access import AccessPolicy
from bot.settings import SlackSettings
from handlers.jobs import Jobs


def test_read_only_for_all_changes_for_operators() -> None:
    p = AccessPolicy(SlackSettings(admins=("UA",), operators=("UO",)))
    for verb in ("status", "savings", "types", "help"):
        assert p.check("UX", "C1", verb)
    assert p.check("UO", "C1", "deploy") and p.check("UA", "C1", "teardown")
    assert not p.check("UX", "C1", "deploy")
    assert p.may_confirm("UO", "UO") and p.may_confirm("UA", "UO")
    assert not p.may_confirm("UO2", "UO")


def test_group_lookup_is_cached_and_fails_closed() -> None:
    calls: list[str] = []

    def members(group: str) -> list[str]:
        calls.append(group)
        if len(calls) > 1:
            raise OSError("slack down")
        return ["UG"]

    now = [0.0]
    p = AccessPolicy(
        SlackSettings(operator_groups=("S1",)), members, cache_s=10, clock=lambda: now[0]
    )
    assert p.check("UG", "C", "deploy") and p.check("UG", "C", "deploy")
    assert calls == ["S1"]
    now[0] = 11.0
    assert p.check("UG", "C", "deploy")  # lookup failed: last known members still apply
    assert not p.check("UX", "C", "deploy")


def test_before_the_ack_a_group_never_read_is_pending_and_a_stale_one_is_used_as_it_is() -> None:
    """`wait=False` (the slash command before its ack) never asks Slack: a group not read yet
    leaves the decision pending (made after the ack); with a background refresh running, a
    stale group is used as it is and the refresh is asked to read it again."""
    calls: list[str] = []
    now = [0.0]

    def members(group: str) -> list[str]:
        calls.append(group)
        return ["UG"]

    p = AccessPolicy(
        SlackSettings(operator_groups=("S1",)), members, cache_s=10, clock=lambda: now[0]
    )
    p.refreshed_in_background = True
    decision = p.check("UG", "C", "deploy", wait=False)
    assert decision.pending and not decision and calls == []
    assert p.wanted.is_set()  # the background refresh is woken
    assert p.check("UO", "C", "status", wait=False)  # read-only: nothing to look up
    assert p.refresh() == 1 and calls == ["S1"] and not p.wanted.is_set()
    assert p.check("UG", "C", "deploy", wait=False)
    assert p.stale_in() == 10
    now[0] = 11.0
    assert p.check("UG", "C", "deploy", wait=False) and calls == ["S1"]  # stale, used as is
    assert p.wanted.is_set() and p.stale_in() == 0
    assert not p.check("UX", "C", "deploy", wait=False).pending  # known: not a member


def test_jobs_refuse_beyond_the_bound() -> None:
    jobs = Jobs(workers=1, max_pending=1)
    gate = threading.Event()
    jobs.submit(gate.wait)
    jobs.submit(gate.wait)
    with pytest.raises(ConflictError, match="busy"):
        jobs.submit(gate.wait)
    gate.set()
    jobs.shutdown()
    with pytest.raises(ConflictError):
        jobs.submit(print)
