"""The service layer against the lab vCenter: real SOAP through pyVmomi, a real SQLite file."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from bot.adapters.lab import LabProcess
from bot.bootstrap import App
from bot.domain.errors import (
    CapacityError,
    NotFoundError,
    UsageError,
    VCenterError,
)
from bot.domain.models import CloneState, RunKind, RunState
from bot.domain.provenance import read_provenance
from bot.domain.results import ProgressEvent
from tests.helpers import LAB_TYPES, MakeApp, deploy, stored
from tests.vsphere import Admin

pytestmark = pytest.mark.lab

GIB = 2**30
ATTRIBUTES = ("ManagedBy", "Environment", "DeployedFrom")
PARENTS = ("Capture", "Packaging", "Verification")


@pytest.fixture
def app(lab: LabProcess, make_app: MakeApp) -> App:
    return make_app(lab)


def vms_by_name(lab: LabProcess) -> dict[tuple[str, str], dict[str, Any]]:
    """Every VM in the lab keyed by (folder, name)."""
    return {(vm["folder"], vm["name"]): vm for vm in lab.control.vms()}


def clone_vms(lab: LabProcess, prefix: str = "TRN-") -> dict[str, dict[str, Any]]:
    return {
        vm["name"]: vm
        for vm in lab.control.vms()
        if vm["name"].startswith(prefix) and vm["folder"] == "Training"
    }


def names(prefix: str, numbers: range | list[int]) -> list[str]:
    return [f"{prefix}-{n:03}" for n in numbers]


# ------------------------------------------------------------------------------------------------
# deploy


def test_deploy_25_capture_creates_verified_linked_clones(lab: LabProcess, app: App) -> None:
    events: list[ProgressEvent] = []
    result = deploy(app, "deploy capture 25 as demo", on_event=events.append)

    assert result.state is RunState.SUCCEEDED
    assert sorted(result.ready) == names("TRN-CAP", range(1, 26))
    assert result.failed == []

    vms = clone_vms(lab)
    assert sorted(vms) == names("TRN-CAP", range(1, 26))
    records = {c.name: c for c in app.repo.clones(environment="demo")}
    for name, vm in vms.items():
        assert vm["linked"] is True, name
        assert vm["parent"] == "Capture"
        assert vm["folder"] == "Training"
        assert vm["committed"] == round(0.13 * GIB)
        custom = vm["custom"]
        assert set(custom) == set(ATTRIBUTES), custom
        assert custom["ManagedBy"] == "clones"
        assert custom["Environment"] == "demo"
        assert custom["DeployedFrom"] == "Capture"
        # Who and when are in the Notes, written by CloneVM_Task itself.
        noted = read_provenance(vm["notes"])
        assert noted["DeployedBy"] == "trainer"
        assert noted["Environment"] == "demo" and noted["DeployedFrom"] == "Capture"
        assert noted["Snapshot"] == "clones-base"
        datetime.fromisoformat(noted["DeployedAt"])
        record = records[name]
        assert record.state is CloneState.READY
        assert record.moref == vm["moref"]
        assert record.instance_uuid == vm["instance_uuid"]
        assert record.attempts == 1
        assert record.delta_bytes == round(0.13 * GIB)

    parents = vms_by_name(lab)
    assert parents[("Parents", "Capture")]["snapshots"] == 1
    assert parents[("Parents", "Packaging")]["snapshots"] == 0  # untouched: not deployed

    run = app.repo.get_run(result.run_id)
    assert (run.kind, run.state, run.requested, run.succeeded, run.failed) == (
        RunKind.DEPLOY,
        RunState.SUCCEEDED,
        25,
        25,
        0,
    )
    kinds = [e.kind for e in events]
    assert kinds[0] == "started" and kinds[-1] == "finished"
    assert kinds.count("clone_ready") == 25
    assert events[-1].done == 25 and events[-1].failed == 0


def test_provenance_attributes_also_writes_deployed_by_and_at(
    lab: LabProcess, make_app: MakeApp
) -> None:
    app = make_app(lab, provenance_attributes=True)
    deploy(app, "deploy packaging 2 as audit")
    for vm in lab.control.vms():
        if vm["name"].startswith("TRN-PKG-"):
            custom = vm["custom"]
            assert set(custom) == {*ATTRIBUTES, "DeployedBy", "DeployedAt"}, custom
            assert custom["DeployedBy"] == "trainer"
            assert custom["DeployedAt"] == read_provenance(vm["notes"])["DeployedAt"]
    rows = app.admin.inventory_reader.inventory("audit")
    assert [(r.deployed_by, bool(r.deployed_at)) for r in rows] == [("trainer", True)] * 2


def test_origin_figures_for_25_of_each_type(app: App) -> None:
    result = deploy(app, "deploy capture 25 packaging 25 verification 25 as origin")
    assert result.state is RunState.SUCCEEDED
    assert len(result.ready) == 75

    s = app.use_cases.queries.savings("origin")
    assert s.clones == 75
    assert (s.thick_gb, s.thin_gb, s.linked_gb) == (675.00, 238.75, 19.30)
    assert s.saved_vs_thin_gb == pytest.approx(219.45, abs=0.01)
    assert s.saved_vs_thick_gb == pytest.approx(655.70, abs=0.01)
    by_parent = {p.parent: p.clones for p in s.by_parent}
    assert by_parent == {"Capture": 25, "Packaging": 25, "Verification": 25}
    assert result.savings is not None and result.savings.linked_gb == 19.30

    overall = app.use_cases.queries.savings()
    assert overall.as_dict() == s.as_dict()


def test_status_counts_clones_by_type_and_state(app: App) -> None:
    deploy(app, "deploy capture 3 packaging 2 as cohort")
    [status] = app.use_cases.queries.status("cohort")
    assert status.by_type == {"capture": {"ready": 3}, "packaging": {"ready": 2}}
    assert status.live == 5
    assert sorted(c.name for c in status.clones) == [
        *names("TRN-CAP", range(1, 4)),
        *names("TRN-PKG", range(1, 3)),
    ]
    assert [s.environment.name for s in app.use_cases.queries.status()] == ["cohort"]


def test_deploying_more_adds_to_the_environment_with_the_next_free_names(
    lab: LabProcess, app: App
) -> None:
    deploy(app, "deploy capture 3 as cohort")
    more = deploy(app, "deploy capture 2 packaging 1 as cohort")

    assert sorted(more.ready) == [*names("TRN-CAP", [4, 5]), "TRN-PKG-001"]
    assert [e.name for e in app.repo.list_environments()] == ["cohort"]
    [status] = app.use_cases.queries.status("cohort")
    assert status.by_type == {"capture": {"ready": 5}, "packaging": {"ready": 1}}
    assert sorted(clone_vms(lab)) == [*names("TRN-CAP", range(1, 6)), "TRN-PKG-001"]
    assert app.use_cases.queries.savings("cohort").clones == 6


def test_names_are_never_reused_while_a_clone_lives_and_reused_after_strip_back(
    lab: LabProcess, app: App
) -> None:
    first = deploy(app, "deploy capture 2 as alpha")
    second = deploy(app, "deploy capture 2 as beta")
    assert sorted(first.ready) == names("TRN-CAP", [1, 2])
    assert sorted(second.ready) == names("TRN-CAP", [3, 4])

    app.use_cases.strip_back.teardown("alpha", actor="trainer")
    third = deploy(app, "deploy capture 3 as gamma")
    assert sorted(third.ready) == names("TRN-CAP", [1, 2, 5])

    live = app.repo.clones(states=[CloneState.READY])
    assert len({c.name for c in live}) == len(live) == 5
    assert sorted(clone_vms(lab)) == names("TRN-CAP", range(1, 6))


def test_an_unmanaged_vm_holding_a_name_is_left_alone(lab: LabProcess, app: App) -> None:
    decoy = lab.control.add_vm("TRN-CAP-001", folder="Training", parent_like="Capture")
    result = deploy(app, "deploy capture 2 as cohort")

    assert result.state is RunState.PARTIAL
    assert sorted(result.ready) == ["TRN-CAP-002"]
    [failed] = result.failed
    assert failed.name == "TRN-CAP-001" and "left alone" in failed.error
    after = vms_by_name(lab)[("Training", "TRN-CAP-001")]
    assert after["moref"] == decoy["moref"] and after["custom"] == {}


# ------------------------------------------------------------------------------------------------
# strip back


def test_teardown_removes_exactly_the_environment_and_nothing_else(
    lab: LabProcess, app: App
) -> None:
    # Decoys: a same-name VM in another folder, and VMs forging the bot's attributes.
    lab.control.add_vm("TRN-CAP-001", folder="Parents", parent_like="Capture")
    deploy(app, "deploy capture 3 packaging 2 as alpha")
    deploy(app, "deploy capture 2 as beta")
    lab.control.add_vm(
        "forged", folder="Training", parent_like="Capture", linked=True,
        custom={"ManagedBy": "clones", "Environment": "alpha"},
    )  # fmt: skip
    lab.control.add_vm(
        "TRN-CAP-099", folder="Training", parent_like="Capture", power_state="poweredOn",
        custom={"ManagedBy": "clones", "Environment": "alpha", "DeployedFrom": "Capture"},
    )  # fmt: skip
    before = vms_by_name(lab)
    alpha = {c.name: c.moref for c in app.repo.clones(environment="alpha")}

    plan = app.use_cases.strip_back.teardown_plan("alpha")
    assert (plan.clones, plan.by_type) == (5, {"capture": 3, "packaging": 2})
    result = app.use_cases.strip_back.teardown("alpha", actor="trainer")

    assert result.state is RunState.SUCCEEDED
    assert result.destroyed == sorted(alpha)
    assert result.skipped == [] and result.failed == [] and result.already_gone == []
    assert result.reclaimed_bytes == 5 * round(0.13 * GIB)

    after = vms_by_name(lab)
    gone = {key for key in before if key not in after}
    assert gone == {("Training", name) for name in alpha}
    for key, vm in after.items():  # everything else untouched, moref for moref
        assert before[key]["moref"] == vm["moref"]
        assert before[key]["power_state"] == vm["power_state"]
    for parent in PARENTS[:2]:
        assert after[("Parents", parent)]["snapshots"] == 1
    assert after[("Parents", "Verification")]["snapshots"] == 0

    states = {c.name: c.state for c in app.repo.clones(environment="alpha")}
    assert set(states.values()) == {CloneState.DESTROYED}
    assert {c.state for c in app.repo.clones(environment="beta")} == {CloneState.READY}
    run = app.repo.get_run(result.run_id)
    assert (run.kind, run.state, run.succeeded, run.failed) == (
        RunKind.TEARDOWN,
        RunState.SUCCEEDED,
        5,
        0,
    )
    assert app.use_cases.queries.savings("alpha").clones == 0
    with pytest.raises(NotFoundError, match="no clones to strip back"):
        app.use_cases.strip_back.teardown("alpha", actor="trainer")


def test_teardown_leaves_a_clone_whose_attributes_no_longer_match(
    lab: LabProcess, app: App
) -> None:
    deploy(app, "deploy capture 3 as alpha")
    moved = stored(app.repo).find_clone("TRN-CAP-002")
    assert moved is not None and moved.moref is not None
    # Someone relabelled this VM for another cohort: it is no longer provably ours.
    admin = Admin(lab)
    try:
        admin.relabel(moved.moref, "Environment", "someone-else")
    finally:
        admin.close()

    result = app.use_cases.strip_back.teardown("alpha", actor="trainer")

    assert result.state is RunState.PARTIAL
    assert result.destroyed == names("TRN-CAP", [1, 3])
    [skipped] = result.skipped
    assert skipped.name == "TRN-CAP-002" and "Environment" in skipped.error
    assert sorted(clone_vms(lab)) == ["TRN-CAP-002"]


def test_teardown_counts_a_clone_already_gone_from_vcenter(lab: LabProcess, app: App) -> None:
    deploy(app, "deploy capture 2 as alpha")
    gone = stored(app.repo).find_clone("TRN-CAP-001")
    assert gone is not None and gone.moref is not None
    app.vcenter.destroy(gone.moref, expected_uuid=gone.instance_uuid or "")

    result = app.use_cases.strip_back.teardown("alpha", actor="trainer")
    assert result.state is RunState.SUCCEEDED
    assert result.destroyed == ["TRN-CAP-002"]
    assert result.already_gone == ["TRN-CAP-001"]
    assert clone_vms(lab) == {}


# ------------------------------------------------------------------------------------------------
# faults


def test_transient_faults_are_retried_until_every_clone_succeeds(
    lab: LabProcess, make_app: MakeApp
) -> None:
    app = make_app(lab, retries=2)
    lab.control.configure(faults={"fail_nth": [2, 3], "fault": "FileLocked"})
    lab.control.reset()
    events: list[ProgressEvent] = []

    result = deploy(app, "deploy capture 5 as cohort", on_event=events.append)

    assert result.state is RunState.SUCCEEDED
    assert sorted(result.ready) == names("TRN-CAP", range(1, 6))
    clones = app.repo.clones(environment="cohort")
    assert sum(c.attempts for c in clones) == 7
    assert max(c.attempts for c in clones) >= 2
    retries = [e for e in events if e.kind == "clone_retry"]
    assert len(retries) == 2 and all("FileLocked" in e.message for e in retries)
    stats = lab.control.stats()
    assert stats["clone_calls"] == 7 and stats["clones_failed_injected"] == 2
    assert len(clone_vms(lab)) == 5


def test_transient_faults_beyond_the_retries_fail_the_clone(
    lab: LabProcess, make_app: MakeApp
) -> None:
    app = make_app(lab, retries=1, concurrency=1)
    lab.control.configure(faults={"fail_nth": [1, 2], "fault": "TaskInProgress"})
    lab.control.reset()

    result = deploy(app, "deploy capture 2 as cohort")

    assert result.state is RunState.PARTIAL
    assert result.ready == ["TRN-CAP-002"]
    [failed] = result.failed
    assert failed.name == "TRN-CAP-001" and "TaskInProgress" in failed.error
    assert stored(app.repo).find_clone("TRN-CAP-002") is not None
    record = next(c for c in app.repo.clones() if c.name == "TRN-CAP-001")
    assert (record.state, record.attempts) == (CloneState.FAILED, 2)
    assert sorted(clone_vms(lab)) == ["TRN-CAP-002"]


def test_a_permanent_fault_fails_one_clone_without_retry_or_leftover(
    lab: LabProcess, app: App
) -> None:
    lab.control.configure(faults={"fail_nth": [2], "fault": "InvalidArgument"})
    lab.control.reset()

    result = deploy(app, "deploy capture 4 as cohort")

    assert result.state is RunState.PARTIAL
    assert len(result.ready) == 3
    [failed] = result.failed
    assert "InvalidArgument" in failed.error
    assert failed.name not in clone_vms(lab)
    assert sorted(clone_vms(lab)) == sorted(result.ready)
    record = next(c for c in app.repo.clones() if c.name == failed.name)
    assert (record.state, record.attempts, record.moref) == (CloneState.FAILED, 1, None)
    assert lab.control.stats()["clone_calls"] == 4  # no retry of a permanent fault
    run = app.repo.get_run(result.run_id)
    assert (run.state, run.requested, run.succeeded, run.failed) == (RunState.PARTIAL, 4, 3, 1)
    [status] = app.use_cases.queries.status("cohort")
    assert status.by_type == {"capture": {"ready": 3, "failed": 1}}
    assert app.use_cases.queries.savings("cohort").clones == 3


def test_a_type_stops_at_its_first_full_copy_and_keeps_nothing(lab: LabProcess, app: App) -> None:
    # The first clone of each type goes alone; when it comes out as a full copy (an endpoint
    # that ignores linked cloning) that copy is removed and the type's other clones are not
    # attempted: one full copy written, not one per clone. The other type goes on.
    lab.control.configure(faults={"full_copy_nth": [1]})
    lab.control.reset()

    result = deploy(app, "deploy capture 3 packaging 3 as cohort")

    assert result.state is RunState.PARTIAL
    stats = lab.control.stats()
    assert stats["requests"].get("Destroy_Task") == 1
    assert stats["clone_calls"] == 4  # the full copy, then the other type's three
    [stopped] = {f.type for f in result.failed}
    went_on = "packaging" if stopped == "capture" else "capture"
    assert sorted(result.ready) == sorted(c.name for c in app.repo.clones(type=went_on))
    first, *rest = sorted(result.failed, key=lambda f: f.name)
    assert "came out as a full copy" in first.error and "It was removed" in first.error
    for cause in ("no base snapshot", "per-disk placement override", "ignores linked cloning"):
        assert cause in first.error
    assert len(rest) == 2
    assert all(f.error.startswith(f"not attempted: {stopped} stopped") for f in rest)
    assert all("Possible causes" not in f.error for f in rest)  # said once
    assert result.message.count("stopped at its first full copy") == 1
    assert f"2 {stopped} clones not attempted" in result.message
    vms = clone_vms(lab)
    assert sorted(vms) == sorted(result.ready) and all(vm["linked"] for vm in vms.values())
    records = {c.name: c for c in app.repo.clones(type=stopped)}
    assert all(c.state is CloneState.FAILED and c.moref is None for c in records.values())
    run = app.repo.get_run(result.run_id)
    assert run.message == result.message
    [removal] = [e for e in app.repo.audit_entries() if e.command.startswith("remove full copy")]
    assert removal.command == f"remove full copy {first.name}" and "destroyed" in removal.detail


def test_one_stray_full_copy_after_the_first_is_made_again_as_linked(
    lab: LabProcess, app: App
) -> None:
    # The probe was linked, so the rest went in parallel; one of them came out as a full copy
    # (a transient fault of the endpoint): it is removed and made again, once, as a linked
    # clone, and the type goes on. 24 clones asked for, 24 linked clones made: 23 + the retry.
    lab.control.configure(faults={"full_copy_nth": [2]})
    lab.control.reset()

    result = deploy(app, "deploy capture 24 as cohort")

    assert result.state is RunState.SUCCEEDED and result.failed == []
    assert len(result.ready) == 24
    stats = lab.control.stats()
    assert stats["clone_calls"] == 25 and stats["requests"].get("Destroy_Task") == 1
    vms = clone_vms(lab)
    assert sorted(vms) == sorted(result.ready) and all(vm["linked"] for vm in vms.values())
    records = app.repo.clones(environment="cohort")
    assert {c.state for c in records} == {CloneState.READY}
    assert {c.instance_uuid for c in records} == {vm["instance_uuid"] for vm in vms.values()}
    [removal] = [e for e in app.repo.audit_entries() if e.command.startswith("remove full copy")]
    again = removal.command.removeprefix("remove full copy ")
    assert "removed and made again as a linked clone" in result.message
    assert f"capture: {again} came out as a full copy" in result.message
    assert "(?)" not in result.message


def test_a_second_full_copy_stops_what_has_not_started(lab: LabProcess, make_app: MakeApp) -> None:
    # One clone at a time makes it exact: the third call is a full copy, made again (the
    # fourth call), which is a full copy too: the type stops there, named by that clone, and
    # its two clones not started are not attempted; the causes are said once.
    app = make_app(lab, concurrency=1)
    lab.control.configure(faults={"full_copy_nth": [3, 4]})
    lab.control.reset()

    result = deploy(app, "deploy capture 5 as cohort")

    assert result.ready == ["TRN-CAP-001", "TRN-CAP-002"]
    failed = {f.name: f.error for f in result.failed}
    assert sorted(failed) == ["TRN-CAP-003", "TRN-CAP-004", "TRN-CAP-005"]
    assert "came out as a full copy" in failed["TRN-CAP-003"]
    for name in ("TRN-CAP-004", "TRN-CAP-005"):
        assert failed[name] == (
            "not attempted: capture stopped at its second full copy (TRN-CAP-003); that "
            "clone's error says why."
        )
    assert lab.control.stats()["clone_calls"] == 4
    assert lab.control.stats()["requests"].get("Destroy_Task") == 2
    assert result.message.count("stopped at its second full copy (TRN-CAP-003, removed") == 1
    assert "2 capture clones not attempted" in result.message
    assert sum("Possible causes" in e for e in failed.values()) == 1  # said once


def test_full_copies_of_two_clones_stop_the_type_at_the_second(
    lab: LabProcess, make_app: MakeApp
) -> None:
    app = make_app(lab, concurrency=1)
    lab.control.configure(faults={"full_copy_nth": [2, 5]})
    lab.control.reset()

    result = deploy(app, "deploy capture 6 as cohort")

    # 001 probe; 002 full copy, made again (call 3); 003 (call 4); 004 full copy (call 5): stop.
    assert result.ready == ["TRN-CAP-001", "TRN-CAP-002", "TRN-CAP-003"]
    assert result.message.count("stopped at its second full copy (TRN-CAP-004, removed; the") == 1
    assert "the first, TRN-CAP-002, was removed and made again" in result.message
    assert "2 capture clones not attempted" in result.message
    assert lab.control.stats()["clone_calls"] == 5


# ------------------------------------------------------------------------------------------------
# parents and snapshots


def test_base_snapshot_is_created_once_and_kept(lab: LabProcess, app: App) -> None:
    lab.control.reset()
    deploy(app, "deploy capture 2 as alpha")
    deploy(app, "deploy capture 2 as beta")
    app.use_cases.strip_back.teardown("alpha", actor="trainer")
    app.use_cases.strip_back.teardown("beta", actor="trainer")
    deploy(app, "deploy capture 1 as gamma")

    assert lab.control.stats()["requests"].get("CreateSnapshot_Task") == 1
    capture = vms_by_name(lab)[("Parents", "Capture")]
    assert capture["snapshots"] == 1
    assert capture["power_state"] == "poweredOff"
    audit = [e for e in app.repo.audit_entries() if e.command == "snapshot Capture"]
    assert len(audit) == 1


def test_powered_on_parent_without_snapshot_is_refused_before_anything_is_made(
    lab: LabProcess, make_app: MakeApp
) -> None:
    lab.control.add_vm("Hot", folder="Parents", parent_like="Capture", power_state="poweredOn")
    types = {**LAB_TYPES, "hot": {**LAB_TYPES["capture"], "parent": "Hot"}}
    types["hot"]["name_pattern"] = "TRN-HOT-{n:03}"
    app = make_app(lab, types=types)
    before = vms_by_name(lab)
    lab.control.reset()

    with pytest.raises(VCenterError, match="powered on") as caught:
        deploy(app, "deploy capture 2 hot 1 as cohort")

    assert "Shut it down" in str(caught.value)
    assert vms_by_name(lab) == before  # not even Capture's snapshot
    requests = lab.control.stats()["requests"]
    assert not {"CreateSnapshot_Task", "CloneVM_Task"} & set(requests)
    assert app.repo.clones() == [] and app.repo.list_environments() == []


def test_powered_on_parent_with_its_snapshot_can_be_cloned(
    lab: LabProcess, make_app: MakeApp
) -> None:
    app = make_app(lab)
    deploy(app, "deploy capture 1 as first")  # snapshots Capture while it is off
    lab.control.add_vm("Other", folder="Training", power_state="poweredOn")
    result = deploy(app, "deploy capture 1 as second")
    assert result.state is RunState.SUCCEEDED


def test_missing_parent_is_refused(lab: LabProcess, make_app: MakeApp) -> None:
    types = {"capture": {**LAB_TYPES["capture"], "parent": "Nowhere"}}
    app = make_app(lab, types=types)
    with pytest.raises(NotFoundError, match='Parent VM "Nowhere" not found'):
        deploy(app, "deploy capture 1 as cohort")
    assert app.repo.clones() == [] and app.repo.list_environments() == []


def test_datastore_too_small_is_refused_before_anything_is_made(
    make_lab: Callable[[dict[str, Any]], LabProcess], make_app: MakeApp
) -> None:
    lab = make_lab({"datastores": [{"name": "TrainingDS", "capacity_gb": 500, "free_gb": 2}]})
    app = make_app(lab)
    before = vms_by_name(lab)

    with pytest.raises(CapacityError, match=r"TrainingDS has 2\.00 GB free"):
        deploy(app, "deploy capture 25 as cohort")

    assert vms_by_name(lab) == before
    assert app.repo.clones() == [] and app.repo.list_environments() == []


# ------------------------------------------------------------------------------------------------
# sessions and bad input at the service layer


def test_clone_tasks_in_vcenter_never_exceed_the_concurrency(
    lab: LabProcess, make_app: MakeApp
) -> None:
    # Labelling and recording overlap the next clone, but vCenter never has more than
    # `concurrency` clone tasks at once.
    app = make_app(lab, concurrency=4)
    deploy(app, "deploy capture 1 as warm")
    lab.control.configure(clone_latency_ms=100)
    try:
        lab.control.reset()
        result = deploy(app, "deploy capture 12 verification 12 as slots")
        stats = lab.control.stats()
    finally:
        lab.control.configure(clone_latency_ms=0)
    assert len(result.ready) == 24 and not result.failed
    assert stats["clone_calls_in_flight_max"] == 4
    assert stats["requests"]["CloneVM_Task"] == 24


def test_task_waiting_reads_finished_batches_without_filters(lab: LabProcess, app: App) -> None:
    # The lab answers CloneVM_Task when the clone is made, so each batch of tasks is collected
    # with one direct read: no filter, no blocking wait, at most one read per clone.
    deploy(app, "deploy capture 1 as warm")
    lab.control.reset()
    result = deploy(app, "deploy capture 8 packaging 8 as waits")
    assert len(result.ready) == 16
    stats = lab.control.stats()
    requests = stats["requests"]
    assert requests["CloneVM_Task"] == 16
    assert requests["SetField"] == 16 * 3  # ManagedBy, Environment, DeployedFrom
    assert "CreateFilter" not in requests and "WaitForUpdatesEx" not in requests
    assert 1 <= stats["task_reads"] <= 16


def test_task_waiting_falls_back_to_filters_and_back(lab: LabProcess, app: App) -> None:
    # As with a real vCenter, whose clone tasks run on after CloneVM_Task returns: the waiter
    # watches them through a filter and one WaitForUpdatesEx per batch.
    deploy(app, "deploy capture 1 as warm")
    adapter: Any = app.vcenter  # the real adapter (its task waiter), built on first use
    waiter = adapter._tasks.waiter()
    waiter._quick = False
    lab.control.reset()
    result = deploy(app, "deploy capture 4 as filtered")
    assert len(result.ready) == 4
    requests = lab.control.stats()["requests"]
    assert 1 <= requests["CreateFilter"] <= 4
    assert 1 <= requests["WaitForUpdatesEx"] <= requests["CreateFilter"] + 4
    # The filter's first update showed the tasks already over: direct reads are back on.
    assert waiter._quick
    lab.control.reset()
    deploy(app, "deploy capture 2 as direct")
    assert "CreateFilter" not in lab.control.stats()["requests"]


def test_session_expiry_mid_run_is_invisible(lab: LabProcess, app: App) -> None:
    expired: list[str | None] = []

    def expire_once(event: ProgressEvent) -> None:
        if event.kind == "clone_ready" and not expired:
            lab.control.expire_sessions()
            expired.append(event.clone)

    result = deploy(app, "deploy capture 10 as cohort", on_event=expire_once)
    assert expired and result.state is RunState.SUCCEEDED
    assert len(clone_vms(lab)) == 10

    lab.control.expire_sessions()
    [status] = app.use_cases.queries.status("cohort")
    assert status.live == 10
    lab.control.expire_sessions()
    stripped = app.use_cases.strip_back.teardown("cohort", actor="trainer")
    assert stripped.state is RunState.SUCCEEDED and len(stripped.destroyed) == 10
    assert lab.control.stats()["requests"].get("Login", 0) >= 3


@pytest.mark.parametrize(
    ("text", "error", "match"),
    [
        ("deploy captur 2 as cohort", UsageError, 'Unknown type "captur". Did you mean "capture"'),
        ("deploy capture 101 as cohort", UsageError, "maximum of 100"),
    ],
)
def test_bad_deploys_create_nothing(
    lab: LabProcess, app: App, text: str, error: type[Exception], match: str
) -> None:
    before = vms_by_name(lab)
    with pytest.raises(error, match=match):
        deploy(app, text)
    assert vms_by_name(lab) == before
    assert app.repo.clones() == [] and app.repo.list_environments() == []


def test_over_the_maximum_counts_what_the_environment_already_has(app: App) -> None:
    deploy(app, "deploy capture 98 as big")
    with pytest.raises(UsageError, match=r"98 already in big.*at most 2"):
        deploy(app, "deploy capture 3 as big")
    assert len(app.repo.clones(environment="big")) == 98


def test_unknown_environment(app: App) -> None:
    deploy(app, "deploy capture 1 as cohort")
    with pytest.raises(
        NotFoundError, match=r'No environment named "cohrot"\. Did you mean "cohort"'
    ):
        app.use_cases.strip_back.teardown("cohrot", actor="trainer")
    with pytest.raises(NotFoundError, match="No environment"):
        app.use_cases.queries.savings("nowhere")


def test_sightings_read_only_the_extras_asked_for(lab: LabProcess, app: App) -> None:
    # The narrow read behind strip back's and refresh's ownership check: identity, power and
    # labels, plus only the extras asked for; what it reads agrees with the full VM facts.
    deploy(app, "deploy capture 2 as cohort")
    morefs = [c.moref or "" for c in app.repo.clones(environment="cohort")]
    plain = app.vcenter.sightings(morefs).seen
    extra = app.vcenter.sightings(morefs, also=("storage", "host", "notes")).seen
    facts = app.vcenter.vm_facts(morefs).seen
    for moref in morefs:
        assert (plain[moref].committed_bytes, plain[moref].host, plain[moref].notes) == (0, "", "")
        assert extra[moref] == facts[moref].sighting()
        assert extra[moref].committed_bytes > 0 and extra[moref].host and extra[moref].notes
    with pytest.raises(ValueError, match="disks"):
        app.vcenter.sightings(morefs, also=("disks",))
