"""No leak after a successful clone task, against the in-memory vCenter: a later step that fails
for good destroys the VM it made and says so; a refused destroy keeps its moref on the record;
vCenter lost at that point leaves the record knowing the VM, for `resume`."""

from __future__ import annotations

from bot.domain import grammar
from bot.domain.errors import VCenterFault, VCenterUnreachable
from bot.domain.models import CloneState, RunState
from bot.services.container import Services
from bot.services.dispatch import Deployed, Invocation, dispatch
from tests.fakes import FakeVCenter

WHO = Invocation("trainer", "cli")
REFUSED = VCenterFault("vCenter could not finish setting ManagedBy: NoPermission", "NoPermission")


def _deploy(s: Services, text: str) -> Deployed:
    done = dispatch(s, grammar.parse(text), WHO)
    assert isinstance(done, Deployed)
    return done


def test_a_label_refused_for_good_destroys_the_vm_it_made_and_says_so(
    services: Services, vcenter: FakeVCenter
) -> None:
    vcenter.fail_finish["TRN-CAP-002"] = REFUSED
    result = _deploy(services, "deploy capture 3 as lbl").result
    assert result.state is RunState.PARTIAL
    assert [vm.name for vm in vcenter.clones()] == ["TRN-CAP-001", "TRN-CAP-003"]  # no leak
    [failed] = [c for c in services.repo.clones(environment="lbl") if c.state is CloneState.FAILED]
    assert failed.name == "TRN-CAP-002" and failed.moref is None
    assert "TRN-CAP-002 was cloned (vm-" in (failed.error or "")
    assert "NoPermission" in (failed.error or "") and "was destroyed" in (failed.error or "")
    assert vcenter.calls["finish_clone"] == 3  # a permanent fault is not retried


def test_a_refused_destroy_keeps_the_vms_moref_and_orphans_lists_it_as_the_bots(
    services: Services, vcenter: FakeVCenter
) -> None:
    vcenter.fail_finish["TRN-CAP-001"] = REFUSED
    vcenter.fail_destroy["TRN-CAP-001"] = VCenterFault("Destroy_Task: NoPermission", "NoPermission")
    _deploy(services, "deploy capture 1 as stuck")
    [row] = services.repo.clones(environment="stuck")
    [vm] = vcenter.clones()
    assert (row.state, row.moref) == (CloneState.FAILED, vm.moref)
    assert "Destroying it failed too" in (row.error or "")
    [orphan] = services.recovery.orphan_finder.orphans()
    assert orphan.ours and orphan.recorded and orphan.vm.moref == vm.moref


def test_vcenter_lost_while_labelling_leaves_the_record_knowing_the_vm_for_resume(
    services: Services, vcenter: FakeVCenter
) -> None:
    vcenter.fail_finish["TRN-CAP-001"] = VCenterUnreachable("Lost contact with vCenter (fake).")
    result = _deploy(services, "deploy capture 1 as dark").result
    assert result.state is RunState.INTERRUPTED
    [row] = services.repo.clones(environment="dark")
    [vm] = vcenter.clones()
    assert (row.state, row.moref, row.instance_uuid) == (
        CloneState.CLONING,
        vm.moref,
        vm.instance_uuid,
    )
    del vcenter.fail_finish["TRN-CAP-001"]
    report = services.recovery.recover(actor="trainer")
    assert report.complete, report.text
    [row] = services.repo.clones(environment="dark")
    assert row.state is CloneState.READY and vcenter.clones()[0].attributes["ManagedBy"] == "clones"
