"""Unseen is never gone, in every service that reads VMs (issue 21, point 1): a VM vCenter
answers with a fault for (here NoPermission, `FakeVCenter.hide`) is left recorded as it was and
named "cannot see VM X: NoPermission, privilege System.Read" by status, strip back, power,
refresh, inventory, resume and a deployment's final count."""

from __future__ import annotations

from typing import Any

from bot.domain import grammar
from bot.domain.models import CloneState, RunKind, RunState
from bot.services.container import Services
from bot.services.dispatch import Invocation, dispatch
from tests.fakes import FakeVCenter
from tests.helpers import dead_run, set_state

WHO = Invocation("trainer", "cli")
CANNOT_SEE = "cannot see VM TRN-CAP-002: NoPermission, privilege System.Read"


def run(s: Services, text: str) -> Any:
    return dispatch(s, grammar.parse(text), WHO)


def states(s: Services) -> dict[str, CloneState]:
    return {c.name: c.state for c in s.repo.clones(environment="nov")}


def test_status_says_cannot_see_not_missing(services: Services, vcenter: FakeVCenter) -> None:
    run(services, "deploy capture 3 as nov")
    vcenter.hide("TRN-CAP-002")
    del vcenter.vms[vcenter.named("TRN-CAP-003").moref]  # really gone
    (status,) = run(services, "status nov")
    by_name = {c.name: status.drift.get(c.id) for c in status.clones}
    assert by_name["TRN-CAP-001"] is None
    assert by_name["TRN-CAP-002"] is not None and by_name["TRN-CAP-002"].text == CANNOT_SEE
    assert by_name["TRN-CAP-003"] is not None and by_name["TRN-CAP-003"].missing


def test_a_strip_back_leaves_what_it_cannot_see_as_recorded(
    services: Services, vcenter: FakeVCenter
) -> None:
    run(services, "deploy capture 3 as nov")
    vcenter.hide("TRN-CAP-002")
    result = run(services, "teardown nov")
    assert result.destroyed == ["TRN-CAP-001", "TRN-CAP-003"] and result.already_gone == []
    assert [(f.name, f.error) for f in result.unseen] == [("TRN-CAP-002", CANNOT_SEE)]
    assert result.state is RunState.PARTIAL
    assert states(services)["TRN-CAP-002"] is CloneState.READY
    assert [vm.name for vm in vcenter.clones()] == ["TRN-CAP-002"]


def test_power_and_refresh_leave_alone_what_they_cannot_see(
    services: Services, vcenter: FakeVCenter
) -> None:
    run(services, "deploy capture 3 as nov")
    vcenter.hide("TRN-CAP-002")
    powered = run(services, "power on nov")
    assert sorted(powered.done) == ["TRN-CAP-001", "TRN-CAP-003"]
    assert [(f.name, f.error) for f in powered.skipped] == [("TRN-CAP-002", CANNOT_SEE)]
    assert not vcenter.named("TRN-CAP-002").powered_on

    hidden = vcenter.named("TRN-CAP-002")
    refreshed = run(services, "refresh nov")
    assert sorted(refreshed.refreshed) == ["TRN-CAP-001", "TRN-CAP-003"]
    assert [(f.name, f.error) for f in refreshed.skipped] == [("TRN-CAP-002", CANNOT_SEE)]
    assert vcenter.vms[hidden.moref] is hidden  # the same VM, untouched
    assert states(services)["TRN-CAP-002"] is CloneState.READY


def test_inventory_says_cannot_see(services: Services, vcenter: FakeVCenter) -> None:
    run(services, "deploy capture 2 as nov")
    vcenter.hide("TRN-CAP-002")
    rows = {r.name: r.state for r in run(services, "inventory nov")}
    assert rows == {
        "TRN-CAP-001": "ready",
        "TRN-CAP-002": "cannot see (NoPermission, privilege System.Read)",
    }


def test_resume_records_gone_as_missing_and_unseen_as_it_was(
    services: Services, vcenter: FakeVCenter
) -> None:
    run(services, "deploy capture 3 as nov")
    vcenter.hide("TRN-CAP-002")
    del vcenter.vms[vcenter.named("TRN-CAP-003").moref]
    report = services.recovery.recover(actor="trainer")
    assert [c.name for c in report.missing] == ["TRN-CAP-003"]
    assert report.unseen == [CANNOT_SEE]
    assert not report.complete and CANNOT_SEE in report.text
    assert states(services) == {
        "TRN-CAP-001": CloneState.READY,
        "TRN-CAP-002": CloneState.READY,
        "TRN-CAP-003": CloneState.MISSING,
    }


def test_a_deployment_does_not_count_gone_what_it_cannot_see(
    services: Services, vcenter: FakeVCenter
) -> None:
    original = vcenter.clone

    def clone_then_lose_sight(req: Any, *, finish: bool = True) -> Any:
        facts = original(req, finish=finish)
        if req.name == "TRN-CAP-002":
            vcenter.hidden.add(facts.moref)
        return facts

    vcenter.clone = clone_then_lose_sight  # type: ignore[method-assign]
    result = run(services, "deploy capture 3 as nov").result
    assert sorted(result.ready) == ["TRN-CAP-001", "TRN-CAP-003"]
    assert [(f.name, f.error) for f in result.failed] == [("TRN-CAP-002", CANNOT_SEE)]
    assert states(services)["TRN-CAP-002"] is CloneState.READY  # made, recorded, not missing


def test_resume_neither_adopts_nor_remakes_a_clone_it_may_not_see(
    services: Services, vcenter: FakeVCenter
) -> None:
    # A deployment killed mid-clone: TRN-CAP-002 was made under its recorded UUID, but the
    # folder's listing now holds a VM vCenter will not show. It may be that one: making it
    # again could make a second.
    run(services, "deploy capture 2 as nov")
    repo = services.repo
    c2 = next(c for c in repo.clones(environment="nov") if c.name == "TRN-CAP-002")
    run_id = dead_run(repo, "nov", RunKind.DEPLOY, "trainer", [c2]).id
    set_state(repo, c2.id, CloneState.CLONING, moref=None)
    repo.update_run(run_id, state=RunState.INTERRUPTED)
    vcenter.hide("TRN-CAP-002")
    report = services.recovery.recover(actor="trainer")
    assert report.resumed == [] and len(report.left) == 1
    assert "NoPermission, privilege System.Read" in report.left[0][1]
    assert repo.get_clone(c2.id).state is CloneState.CLONING  # as it was
    assert len(vcenter.clones()) == 2  # nothing made again
    successor = max(r.id for r in repo.runs(environment="nov"))
    assert repo.get_run(successor).state is RunState.INTERRUPTED  # resumable later

    vcenter.hidden.clear()  # the privilege granted again: resume adopts it
    again = services.recovery.recover(actor="trainer")
    assert again.complete, again.text
    assert repo.get_clone(c2.id).state is CloneState.READY and len(vcenter.clones()) == 2
