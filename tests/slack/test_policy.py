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
