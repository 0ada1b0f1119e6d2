"""Crash safety: a `clones` process SIGKILLed mid-deployment or mid-strip back, then `resume` (the
CLI) or the bot's start-up recovery; and `orphans` acting only on what the bot made.

Every test kills a real process or leaves a real VM behind in the lab vCenter, then compares
SQLite with /lab/vms: no VM lost, none doubled, no orphan, decoys untouched.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bot.adapters.lab import LabProcess
from bot.bootstrap import build
from bot.domain.models import CloneState, RunKind, RunState
from handlers.app import SlackTokens, create_bot
from handlers.webapi import make_client
from tests.faults import (
    Clones,
    clone_vms,
    duplicates,
    kill,
    others,
    record,
    snapshot_count,
    wait_until,
    wait_while_running,
)
from tests.helpers import lab_settings, set_state
from tests.slack.fake_api import FakeSlack
from tests.vsphere import Admin

pytestmark = pytest.mark.lab

MakeLab = Callable[[dict[str, Any]], LabProcess]
WANTED = [f"TRN-CAP-{n:03}" for n in range(1, 31)]


def _recover_with_the_bot(lab: LabProcess, database: Path) -> str:
    """Start the Slack bot on the same SQLite file: SlackBot.start() submits recovery to its job
    pool; wait for the job, then stop the bot."""
    fake = FakeSlack().start()
    core = build(lab_settings(lab, database), start_lab=False)
    try:
        # The bot's own paced client (a plain WebClient is refused by its progress messages).
        client = make_client(replace(core.settings.slack, api_url=fake.api_url), "xoxb-test")
        bot = create_bot(core, SlackTokens("xoxb-test", "s" * 32, "", 0), client=client)
        bot.start(paused=True)
        wait_until(
            lambda: not core.repo.runs(states=[RunState.RUNNING, RunState.INTERRUPTED]),
            timeout=90,
        )
        bot.close(wait=True)
        entries = [e for e in core.repo.audit_entries() if e.source == "recovery"]
        return entries[0].detail if entries else ""
    finally:
        core.close()
        fake.stop()


def test_sigkill_mid_deploy_and_power_on_then_resume_powers_every_clone_on(
    make_lab: MakeLab, tmp_path: Path
) -> None:
    """ "and power on" outlives a crash: the run recovery starts in its place powers on the
    clones made before the kill (those on stay as they are) and the ones it makes itself."""
    lab = make_lab({"clone_latency_ms": 300, "power_on_latency_ms": 200})
    clones = Clones(tmp_path, lab)
    proc = clones.start("deploy", "capture", "12", "as", "lit", "and", "power", "on")

    def on() -> int:
        with clones.repo() as repo:
            return sum(c.power_state == "poweredOn" for c in repo.clones(environment="lit"))

    wait_while_running(proc, lambda: clones.count("lit", "ready") >= 4 and on() >= 1, timeout=90)
    kill(proc)
    with clones.repo() as repo:
        [run] = repo.runs(environment="lit")
        assert run.power_on and run.state is RunState.RUNNING
        ready_at_kill = [c for c in repo.clones(environment="lit") if c.state is CloneState.READY]
    assert len(ready_at_kill) < 12
    off_at_kill = {vm["name"] for vm in clone_vms(lab) if vm["power_state"] != "poweredOn"}

    result = clones.run("resume")
    assert result.returncode == 0, result.stderr
    assert "finished succeeded" in result.stdout
    vms = clone_vms(lab, "TRN-CAP-")
    assert sorted(vm["name"] for vm in vms) == [f"TRN-CAP-{n:03}" for n in range(1, 13)]
    assert {vm["power_state"] for vm in vms} == {"poweredOn"}
    with clones.repo() as repo:
        rows = repo.clones(environment="lit")
        new = repo.get_run(repo.get_run(run.id).superseded_by or 0)
    assert new.power_on and new.state is RunState.SUCCEEDED
    assert {c.power_state for c in rows} == {"poweredOn"}
    record(
        "sigkill mid-deploy and power on, resumed",
        faults_injected=1,
        ready_at_kill=len(ready_at_kill),
        off_at_kill=len(off_at_kill & {c.name for c in ready_at_kill}),
        on_after_resume=len(vms),
    )


def test_sigkill_mid_refresh_then_resume_keeps_the_admins_own_attributes(
    make_lab: MakeLab, tmp_path: Path
) -> None:
    """An admin's own custom attribute (a cost centre) on each clone outlives a refresh killed
    between destroying the old VMs and labelling their successors: recovery re-creates or
    adopts each successor with it, as a refresh that runs to the end does."""
    lab = make_lab({"clone_latency_ms": 300})
    clones = Clones(tmp_path, lab, concurrency=2)
    assert clones.run("deploy", "capture", "4", "as", "kept").returncode == 0
    admin = Admin(lab)
    try:
        for vm in clone_vms(lab, "TRN-CAP-"):
            admin.tag(vm["moref"], "CostCenter", f"CC-{vm['name']}")
        lab.control.configure(clone_latency_ms=3000)
        proc = clones.start("refresh", "kept", "--yes")
        wait_while_running(proc, lambda: clones.count("kept", "cloning") >= 1, timeout=60)
        kill(proc)
        with clones.repo() as repo:
            cut = [c for c in repo.clones(environment="kept") if c.state is CloneState.CLONING]
        assert cut and all(dict(c.kept_attributes)["CostCenter"] for c in cut)

        result = clones.run("resume")
        assert result.returncode == 0, result.stdout + result.stderr
        lab.control.wait_idle()
        names = sorted(vm["name"] for vm in clone_vms(lab, "TRN-CAP-"))
        assert names == [f"TRN-CAP-{n:03}" for n in range(1, 5)]
        for name in names:
            assert admin.custom_values(name).get("CostCenter") == f"CC-{name}", name
    finally:
        admin.close()


@pytest.mark.parametrize("recover_with", ["cli", "bot"])
def test_sigkill_mid_deploy_then_recovery_finishes_30_with_no_duplicate_or_orphan(
    make_lab: MakeLab, tmp_path: Path, recover_with: str
) -> None:
    lab = make_lab({"clone_latency_ms": 300})
    clones = Clones(tmp_path, lab)
    untouched = others(lab, set())

    proc = clones.start("deploy", "capture", "30", "as", "crash")
    wait_while_running(proc, lambda: clones.count("crash", "ready") >= 6, timeout=90)
    kill(proc)

    with clones.repo() as repo:
        states = [c.state for c in repo.clones(environment="crash")]
        [run] = repo.runs(environment="crash")
    assert run.state is RunState.RUNNING  # nobody finished it: the process died
    ready_at_kill = states.count(CloneState.READY)
    in_flight = states.count(CloneState.CLONING)
    assert ready_at_kill < 30
    made_at_kill = len(clone_vms(lab, "TRN-CAP-"))

    if recover_with == "cli":
        result = clones.run("resume")
        assert result.returncode == 0, result.stderr
        assert f"Resumed deploy run {run.id} of crash" in result.stdout
        assert "finished succeeded" in result.stdout
        report = result.stdout
    else:
        report = _recover_with_the_bot(lab, clones.database)
        assert f"Resumed deploy run {run.id} of crash" in report

    found = re.search(r"(\d+) clones adopted, (\d+) re-created", report)
    assert found, report
    adopted, recreated = int(found[1]), int(found[2])
    assert adopted + recreated == 30 - ready_at_kill
    vms = clone_vms(lab, "TRN-CAP-")
    names = sorted(vm["name"] for vm in vms)
    assert names == WANTED  # exactly 30, no duplicate, none missing
    assert all(vm["linked"] and vm["folder"] == "Training" for vm in vms)
    with clones.repo() as repo:
        rows = repo.clones(environment="crash")
        old = repo.get_run(run.id)
        assert old.state is RunState.SUPERSEDED and old.superseded_by is not None
        run = repo.get_run(old.superseded_by)
    assert [c.name for c in rows] == WANTED
    assert all(c.state is CloneState.READY for c in rows)
    by_uuid = {vm["instance_uuid"]: vm for vm in vms}
    assert {c.instance_uuid for c in rows} == set(by_uuid)  # every VM recorded, by its UUID
    assert all(by_uuid[c.instance_uuid or ""]["moref"] == c.moref for c in rows)
    assert (run.state, run.succeeded, run.failed) == (RunState.SUCCEEDED, 30, 0)
    # Nothing else in the lab changed (parents, their snapshots are new: made by the deploy).
    after = others(lab, {vm["moref"] for vm in vms})
    assert set(after) == set(untouched)
    orphans = clones.run("orphans")
    assert orphans.returncode == 0 and "No orphans" in orphans.stdout
    record(
        f"sigkill mid-deploy, recovered by {recover_with}",
        faults_injected=1,
        ready_at_kill=ready_at_kill,
        cloning_at_kill=in_flight,
        vms_at_kill=made_at_kill,
        adopted=adopted,
        recreated=recreated,
        vms_lost=30 - len(set(names)),
        duplicates=duplicates(names),
        orphans=0,
    )


def test_sigkill_mid_strip_back_then_resume_destroys_the_rest_and_nothing_else(
    make_lab: MakeLab, tmp_path: Path
) -> None:
    lab = make_lab({"destroy_latency_ms": 250})
    clones = Clones(tmp_path, lab, concurrency=2)
    # A decoy of the same name in another folder (made first: the datastore path is the name's).
    lab.control.add_vm("TRN-CAP-005", folder="Parents", parent_like="Capture")
    assert clones.run("deploy", "capture", "12", "as", "strip").returncode == 0
    ours = {vm["moref"] for vm in clone_vms(lab, "TRN-CAP-") if vm["folder"] == "Training"}
    assert len(ours) == 12
    untouched = others(lab, ours)
    snapshots = snapshot_count(lab)

    proc = clones.start("teardown", "strip", "--yes")
    wait_while_running(proc, lambda: clones.count("strip", "destroyed") >= 3, timeout=60)
    kill(proc)
    destroyed_at_kill = clones.count("strip", "destroyed")
    assert destroyed_at_kill < 12

    result = clones.run("resume")
    assert result.returncode == 0, result.stderr
    assert "Resumed teardown run" in result.stdout

    assert [vm for vm in lab.control.vms() if vm["moref"] in ours] == []
    assert others(lab, ours) == untouched  # the decoy, the parents, their snapshot
    assert snapshot_count(lab) == snapshots
    with clones.repo() as repo:
        rows = repo.clones(environment="strip")
        runs = repo.runs(environment="strip")
    assert all(c.state is CloneState.DESTROYED for c in rows) and len(rows) == 12
    teardowns = [r for r in runs if r.kind is RunKind.TEARDOWN]
    assert [r.state for r in teardowns] == [RunState.SUCCEEDED, RunState.SUPERSEDED]
    again = clones.run("resume")  # the strip back is over: a second resume finds nothing
    assert again.returncode == 0 and "Nothing to recover" in again.stdout
    assert not [r for r in runs if r.state is RunState.RUNNING]
    record(
        "sigkill mid-strip back, resumed",
        faults_injected=1,
        destroyed_at_kill=destroyed_at_kill,
        vms_left=0,
        decoys_touched=0,
        vms_lost=0,
        duplicates=0,
    )


def test_a_resumed_strip_back_ends_and_never_touches_a_later_deployment(
    make_lab: MakeLab, tmp_path: Path
) -> None:
    """The strip back is killed while 8 Destroy_Task calls are still running in vCenter; resume
    meets VMs that vanish under it (ManagedObjectNotFound on its own calls) and must record
    them destroyed; a deployment into the same name afterwards is never stripped back by a
    later resume (the superseded run is over)."""
    lab = make_lab({"destroy_latency_ms": 1500})
    clones = Clones(tmp_path, lab)
    assert clones.run("deploy", "capture", "16", "as", "r1").returncode == 0
    first = {vm["instance_uuid"] for vm in clone_vms(lab, "TRN-CAP-")}

    proc = clones.start("teardown", "r1", "--yes")
    wait_while_running(proc, lambda: clones.count("r1", "destroying") >= 8, timeout=60)
    kill(proc)

    resumed = clones.run("resume")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "Resumed teardown run" in resumed.stdout and "finished succeeded" in resumed.stdout
    assert clone_vms(lab, "TRN-CAP-") == []
    with clones.repo() as repo:
        rows = repo.clones(environment="r1")
    assert {c.state for c in rows} == {CloneState.DESTROYED}  # no record ready for a gone VM

    assert clones.run("deploy", "capture", "6", "as", "r1").returncode == 0
    later = {vm["instance_uuid"] for vm in clone_vms(lab, "TRN-CAP-")}
    assert len(later) == 6 and not later & first
    again = clones.run("resume")
    assert again.returncode == 0 and "Nothing to recover" in again.stdout, again.stdout
    assert {vm["instance_uuid"] for vm in clone_vms(lab, "TRN-CAP-")} == later
    with clones.repo() as repo:
        live = repo.clones(environment="r1", states=[CloneState.READY])
        runs = repo.runs(environment="r1")
    assert len(live) == 6
    assert not [r for r in runs if not r.state.terminal]
    record(
        "sigkill mid-strip back with destroys in flight, resume, redeploy, resume",
        faults_injected=1,
        later_clones_destroyed=6 - len(live),
        ready_rows_for_gone_vms=0,
    )


def test_orphans_lists_ours_and_a_forged_decoy_and_acts_only_on_ours(
    lab: LabProcess, tmp_path: Path
) -> None:
    clones = Clones(tmp_path, lab)
    assert clones.run("deploy", "capture", "4", "as", "orph").returncode == 0
    decoy = lab.control.add_vm(
        "TRN-CAP-900",
        folder="Training",
        parent_like="Capture",
        custom={"ManagedBy": "clones", "Environment": "orph"},
    )
    # A clone whose reply was lost: the VM exists, the row says failed.
    with clones.repo() as repo:
        first, second = repo.clones(environment="orph")[:2]
        set_state(repo, first.id, CloneState.FAILED, error="reply lost")

    listed = clones.run("orphans")
    assert listed.returncode == 0
    assert "TRN-CAP-001" in listed.stdout and "made by this bot" in listed.stdout
    assert "TRN-CAP-900" in listed.stdout and "never touched" in listed.stdout
    assert clones.run("orphans", "adopt").returncode != 0  # needs --yes off a terminal

    adopted = clones.run("orphans", "adopt", "--yes")
    assert adopted.returncode == 0, adopted.stderr
    assert "adopted TRN-CAP-001 into orph" in adopted.stdout
    assert "TRN-CAP-900" not in adopted.stdout.split("never touched")[-1]
    with clones.repo() as repo:
        assert repo.get_clone(first.id).state is CloneState.READY

    with clones.repo() as repo:
        set_state(repo, second.id, CloneState.FAILED, error="reply lost")
    removed = clones.run("orphans", "remove", "--yes")
    assert removed.returncode == 0, removed.stderr
    assert "removed TRN-CAP-002" in removed.stdout
    names = [vm["name"] for vm in clone_vms(lab, "TRN-CAP-")]
    assert sorted(names) == ["TRN-CAP-001", "TRN-CAP-003", "TRN-CAP-004", "TRN-CAP-900"]
    [still] = [vm for vm in lab.control.vms() if vm["moref"] == decoy["moref"]]
    assert still == decoy | {"host": still["host"]}  # untouched (host is placement-only)
    with clones.repo() as repo:
        assert repo.get_clone(second.id).state is CloneState.DESTROYED
    final = clones.run("orphans")
    assert "TRN-CAP-900" in final.stdout and "TRN-CAP-00" not in final.stdout
    record(
        "orphans adopt/remove with a forged decoy",
        faults_injected=2,
        orphans_listed=2,
        adopted=1,
        removed=1,
        decoys_touched=0,
        vms_lost=0,
        duplicates=0,
    )
