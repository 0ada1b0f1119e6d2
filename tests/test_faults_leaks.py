"""No clone leaks after its clone task succeeded, and none after the database is lost.

The lab refuses a step after `CloneVM_Task` for real (`faults.refuse`: `SetField` or
`ReconfigVM_Task` refused, the session lost at that point: `NotAuthenticated` even after logging
in again; `Destroy_Task` refused too) or loses vCenter right after a clone task's reply
(`faults.outage_after_clone_nth`). Each VM the bot made is then either finished (on retry or
`resume`: the record knows it) or destroyed and said so; none is left in vCenter unrecorded.
With the database deleted, `orphans` knows the bot's own clones by the provenance their Notes
carry: `orphans adopt` records them again, `orphans remove` removes the rest, and nothing else
(no provenance, another bot's, a copy, a forged attribute) is ever touched.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bot.adapters.lab import LabProcess
from bot.bootstrap import App
from bot.domain.models import CloneState, RunState
from bot.domain.provenance import provenance_note
from bot.services.orphans import act_on_orphans
from bot.services.recovery import Recovery
from tests.faults import Clones, clone_vms, record, wait_until
from tests.helpers import MakeLab, deploy, types_with
from tests.vsphere import Admin

pytestmark = pytest.mark.lab


def _refuse(lab: LabProcess, *rules: dict[str, Any]) -> None:
    lab.control.configure(faults={"refuse": list(rules)})


def _unrecorded(app: App, lab: LabProcess) -> list[str]:
    """VMs in vCenter carrying the bot's Notes that no clone record knows by instance UUID
    (a live row, or a failed one that kept the VM's moref)."""
    rows = app.repo.clones()
    known = {c.instance_uuid for c in rows if c.state.live or c.moref}
    return [
        vm["name"]
        for vm in lab.control.vms()
        if "ManagedBy: clones" in (vm.get("notes") or "") and vm["instance_uuid"] not in known
    ]


@pytest.mark.parametrize(
    ("method", "fault", "nth", "failed"),
    [
        ("SetField", "NoPermission", [1], 1),  # one label refused
        ("SetField", "NotAuthenticated", [], 3),  # the session lost, logging in again no help
        ("ReconfigVM_Task", "NoPermission", [2], 1),  # the disk mode refused
    ],
    ids=["SetField-refused", "session-lost", "disk-mode-refused"],
)
def test_a_step_after_the_clone_task_that_fails_destroys_the_vm_it_made_and_says_so(
    make_lab: MakeLab,
    make_app: Callable[..., App],
    method: str,
    fault: str,
    nth: list[int],
    failed: int,
) -> None:
    lab = make_lab({"clone_latency_ms": 50})
    app = make_app(
        lab, concurrency=1, types=types_with(capture={"disk_mode": "independent_nonpersistent"})
    )
    app.vcenter.ensure_attribute_definitions()  # defined up front: only SetField is counted
    _refuse(lab, {"method": method, "fault": fault, "nth": nth})

    result = deploy(app, "deploy capture 3 as lbl")

    assert _unrecorded(app, lab) == []  # no VM in vCenter that its records do not know
    rows = app.repo.clones(environment="lbl")
    ready = {c.instance_uuid for c in rows if c.state is CloneState.READY}
    assert {vm["instance_uuid"] for vm in clone_vms(lab, "TRN-CAP-")} == ready
    assert len(result.failed) == failed, result
    broken = [c for c in rows if c.state is CloneState.FAILED]
    assert len(broken) == failed
    for c in broken:
        assert "could not be finished" in (c.error or ""), c.error
        assert "was destroyed; nothing is left behind" in (c.error or ""), c.error
        assert c.moref is None
    audit = [e for e in app.repo.audit_entries() if e.command.startswith("remove unfinished")]
    assert len(audit) == failed and all(e.result == "ok" for e in audit)
    assert Recovery.over(app.use_cases).orphan_finder.orphans() == []
    record(
        f"{method} refused with {fault} after the clone task",
        faults_injected=failed,
        failed=failed,
        destroyed=len(audit),
        unrecorded=0,
    )


def test_a_clone_whose_destroy_is_refused_too_stays_recorded_and_orphans_removes_it(
    make_lab: MakeLab, make_app: Callable[..., App]
) -> None:
    lab = make_lab({})
    app = make_app(lab, concurrency=2)
    app.vcenter.ensure_attribute_definitions()
    _refuse(
        lab,
        {"method": "SetField", "fault": "NoPermission"},
        {"method": "Destroy_Task", "fault": "NoPermission"},
    )

    result = deploy(app, "deploy capture 2 as stuck")

    assert result.state is RunState.FAILED
    assert _unrecorded(app, lab) == []
    rows = app.repo.clones(environment="stuck")
    assert {c.state for c in rows} == {CloneState.FAILED}
    vms = {vm["moref"]: vm for vm in clone_vms(lab, "TRN-CAP-")}
    assert {c.moref for c in rows} == set(vms)  # each failed record keeps its VM's moref
    assert all("Destroying it failed too" in (c.error or "") for c in rows)

    finder = Recovery.over(app.use_cases).orphan_finder
    listed = finder.orphans()
    assert sorted(o.vm.name for o in listed) == ["TRN-CAP-001", "TRN-CAP-002"]
    assert all(o.ours and o.recorded for o in listed)
    _refuse(lab)  # the admin grants the privilege again
    outcome = act_on_orphans(finder, "remove", actor="admin")
    assert sorted(outcome.removed) == ["TRN-CAP-001", "TRN-CAP-002"] and not outcome.problems
    assert clone_vms(lab, "TRN-CAP-") == []
    assert {c.state for c in app.repo.clones(environment="stuck")} == {CloneState.DESTROYED}


def test_vcenter_lost_right_after_a_clone_task_then_resume_finishes_it(
    make_lab: MakeLab, make_app: Callable[..., App]
) -> None:
    """The clone is made and its reply delivered, then every session ends and vCenter is gone
    for a while: the run stops interrupted, its records know every VM it made (by the instance
    UUID chosen before the call), and `resume` adopts and labels them."""
    lab = make_lab(
        {
            "clone_latency_ms": 100,
            "faults": {"outage_after_clone_nth": [2], "outage_after_clone_s": 2},
        }
    )
    app = make_app(lab, concurrency=1)

    result = deploy(app, "deploy capture 4 as dark")

    assert result.state is RunState.INTERRUPTED, result
    assert _unrecorded(app, lab) == []
    wait_until(lambda: not lab.control.stats()["paused"], timeout=30)
    report = Recovery.over(app.use_cases).recover(actor="trainer")
    [resumed] = report.resumed
    assert resumed.state is RunState.SUCCEEDED, report.text
    assert "TRN-CAP-002" in resumed.adopted
    rows = app.repo.clones(environment="dark")
    assert {c.state for c in rows} == {CloneState.READY}
    vms = clone_vms(lab, "TRN-CAP-")
    assert sorted(vm["name"] for vm in vms) == [f"TRN-CAP-{n:03}" for n in range(1, 5)]
    assert {vm["instance_uuid"] for vm in vms} == {c.instance_uuid for c in rows}
    assert all(vm["custom"].get("ManagedBy") == "clones" for vm in vms)
    assert Recovery.over(app.use_cases).orphan_finder.orphans() == []


def test_clone_calls_whose_replies_were_lost_with_the_session_leave_no_vm_unrecorded(
    make_lab: MakeLab, make_app: Callable[..., App]
) -> None:
    """vCenter lost right after one clone task's reply while other clone calls are in flight:
    their replies are dropped, pyVmomi repeats the calls once vCenter is back and they meet an
    ended session (NotAuthenticated), though vCenter made their VMs. The bot believes such a
    failure only once no VM carries the instance UUID the call asked for: it finds the VMs the
    calls made and finishes them (found on main: recorded failed, their VMs left unrecorded)."""
    lab = make_lab(
        {
            "clone_latency_ms": 60,
            "faults": {"outage_after_clone_nth": [2], "outage_after_clone_s": 0.8},
        }
    )
    app = make_app(lab, concurrency=3, retries=1)

    result = deploy(app, "deploy packaging 4 as lost and power on")

    assert _unrecorded(app, lab) == []
    if result.state is RunState.INTERRUPTED:
        Recovery.over(app.use_cases).recover(actor="trainer")
    rows = app.repo.clones(environment="lost")
    assert {c.state for c in rows} == {CloneState.READY}, [(c.name, c.error) for c in rows]
    vms = clone_vms(lab, "TRN-PKG-")
    assert {vm["instance_uuid"] for vm in vms} == {c.instance_uuid for c in rows}
    assert Recovery.over(app.use_cases).orphan_finder.orphans() == []
    requests = lab.control.stats()["requests"]
    record(
        "vCenter lost right after a clone reply, other clone calls in flight",
        faults_injected=1,
        clone_calls=requests.get("CloneVM_Task", 0),
        found_by_instance_uuid=requests.get("FindByUuid", 0),
        ready=len(rows),
        unrecorded=0,
    )


def _forged_notes(managed_by: str, environment: str, parent: str) -> str:
    return provenance_note(
        {"ManagedBy": managed_by, "Environment": environment, "DeployedFrom": parent}
    )


def test_after_the_database_is_lost_orphans_adopts_the_bots_own_and_removes_the_rest(
    lab: LabProcess, tmp_path: Path
) -> None:
    clones = Clones(tmp_path, lab)
    assert clones.run("deploy", "capture", "3", "as", "dbl").returncode == 0
    assert clones.run("deploy", "packaging", "2", "as", "dbl2").returncode == 0
    admin = Admin(lab)
    try:
        mine = {vm["name"]: vm for vm in clone_vms(lab)}
        admin.rename(mine["TRN-CAP-003"]["moref"], "renamed-003")  # no type's name any more
        # Decoys: no provenance at all; a forged ManagedBy attribute; another bot's Notes; a
        # full copy of one of ours (a copy keeps the Notes); a linked clone of another parent
        # whose Notes claim it came from Capture.
        decoys = [
            lab.control.add_vm("TRN-CAP-900", folder="Training", parent_like="Capture"),
            lab.control.add_vm(
                "forged-01", folder="Training", custom={"ManagedBy": "clones", "Environment": "dbl"}
            ),
            lab.control.add_vm("TRN-CAP-901", folder="Training", linked=True),
            lab.control.add_vm("copy-of-001", folder="Training", parent_like="Capture"),
            lab.control.add_vm(
                "TRN-CAP-902", folder="Training", parent_like="Packaging", linked=True
            ),
        ]
        admin.write_notes(decoys[2]["moref"], _forged_notes("other-bot", "dbl", "Capture"))
        admin.write_notes(decoys[3]["moref"], mine["TRN-CAP-001"]["notes"])
        admin.write_notes(decoys[4]["moref"], _forged_notes("clones", "dbl", "Capture"))
    finally:
        admin.close()
    decoys = [vm for vm in lab.control.vms() if vm["moref"] in {d["moref"] for d in decoys}]
    for suffix in ("", "-wal", "-shm"):
        Path(f"{clones.database}{suffix}").unlink(missing_ok=True)

    listed = clones.run("orphans")
    assert listed.returncode == 0, listed.stderr
    lines = {line.split()[0]: line for line in listed.stdout.splitlines() if line.strip()}
    for name in ("TRN-CAP-001", "TRN-CAP-002", "TRN-PKG-001", "TRN-PKG-002", "renamed-003"):
        assert "made by this bot" in lines[name], listed.stdout
        assert "never touched" not in lines[name], listed.stdout
    assert "remove only" in lines["renamed-003"]
    for name in ("forged-01", "copy-of-001", "TRN-CAP-902"):
        assert "never touched" in lines[name], listed.stdout
    assert "not a linked clone of Capture" in lines["copy-of-001"]
    assert "not a linked clone of Capture" in lines["TRN-CAP-902"]
    assert "TRN-CAP-900" not in lines and "TRN-CAP-901" not in lines  # claim nothing of ours

    adopted = clones.run("orphans", "adopt", "--yes")
    assert adopted.returncode == 3, adopted.stdout + adopted.stderr  # renamed-003 left
    for name, environment in [
        ("TRN-CAP-001", "dbl"),
        ("TRN-CAP-002", "dbl"),
        ("TRN-PKG-001", "dbl2"),
        ("TRN-PKG-002", "dbl2"),
    ]:
        assert f"adopted {name} into {environment}" in adopted.stdout, adopted.stdout
    assert "renamed-003: renamed-003 matches no configured type" in adopted.stdout
    by_name = {vm["name"]: vm for vm in lab.control.vms()}
    with clones.repo() as repo:
        rows = repo.clones()
        assert repo.get_environment("dbl") is not None
    assert sorted(c.name for c in rows) == [
        "TRN-CAP-001",
        "TRN-CAP-002",
        "TRN-PKG-001",
        "TRN-PKG-002",
    ]
    for c in rows:
        assert c.state is CloneState.READY
        assert (c.moref, c.instance_uuid) == (
            by_name[c.name]["moref"],
            by_name[c.name]["instance_uuid"],
        )

    removed = clones.run("orphans", "remove", "--yes")
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert "removed renamed-003" in removed.stdout
    assert "renamed-003" not in {vm["name"] for vm in lab.control.vms()}
    final = clones.run("orphans")
    assert ": made by this bot" not in final.stdout, final.stdout

    stripped = clones.run("teardown", "dbl", "--yes")
    assert stripped.returncode == 0, stripped.stdout + stripped.stderr
    left = {vm["name"] for vm in clone_vms(lab)}
    assert {"TRN-CAP-001", "TRN-CAP-002"}.isdisjoint(left)
    assert {"TRN-PKG-001", "TRN-PKG-002"} <= left
    now = {vm["moref"]: vm for vm in lab.control.vms()}
    for decoy in decoys:
        assert now[decoy["moref"]] == decoy | {"host": now[decoy["moref"]]["host"]}, decoy["name"]
    record(
        "database lost, orphans adopt and remove",
        faults_injected=1,
        listed_ours=5,
        adopted=4,
        removed=1,
        decoys_touched=0,
    )
