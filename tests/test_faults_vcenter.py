"""vCenter faults injected for real in the lab: unreachable mid-run (POST /lab/pause drops every
SOAP connection, lost replies included), task faults (FileLocked, InsufficientDiskSpace,
DuplicateName, Timedout) and session expiry while clones are in flight."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from bot.adapters.lab import LabProcess
from bot.adapters.vcenter.faults import TRANSIENT_FAULTS
from bot.bootstrap import App
from bot.domain.models import CloneState, RunState
from bot.domain.results import ProgressEvent
from bot.services.recovery import Recovery
from tests.faults import clone_vms, duplicates, record, wait_until
from tests.helpers import MakeLab, deploy

pytestmark = pytest.mark.lab


def test_vcenter_unreachable_mid_run_stops_cleanly_and_resume_finishes_it(
    make_lab: MakeLab, make_app: Callable[..., App]
) -> None:
    lab = make_lab({"clone_latency_ms": 300})
    app = make_app(lab)
    paused = threading.Event()

    def pause_after_four(event: ProgressEvent) -> None:
        if event.kind == "clone_ready" and event.done >= 4 and not paused.is_set():
            paused.set()
            lab.control.pause(120)  # resumed below, once the run has stopped

    result = deploy(app, "deploy capture 20 as dark", on_event=pause_after_four)
    dropped = lab.control.stats()["dropped"]
    lab.control.pause(0)

    assert paused.is_set() and dropped > 0
    assert result.state is RunState.INTERRUPTED
    assert "Lost contact with vCenter" in result.message and '"resume"' in result.message
    run = app.repo.get_run(result.run_id)
    assert run.state is RunState.INTERRUPTED and run.message == result.message
    rows = app.repo.clones(environment="dark")
    ready_at_stop = sum(c.state is CloneState.READY for c in rows)
    unfinished = sum(c.state in (CloneState.PLANNED, CloneState.CLONING) for c in rows)
    assert ready_at_stop + unfinished == 20 and unfinished > 0
    assert f"{unfinished} clones are not finished" in result.message
    # A clone task whose reply was dropped may have made its VM: never a second one.
    made_while_dark = len(clone_vms(lab, "TRN-CAP-")) - ready_at_stop

    report = Recovery.over(app.use_cases).recover(actor="trainer")
    [resumed] = report.resumed
    assert resumed.state is RunState.SUCCEEDED and report.left == []
    assert len(resumed.adopted) + len(resumed.recreated) == unfinished
    names = sorted(vm["name"] for vm in clone_vms(lab, "TRN-CAP-"))
    assert names == [f"TRN-CAP-{n:03}" for n in range(1, 21)]
    rows = app.repo.clones(environment="dark")
    assert all(c.state is CloneState.READY for c in rows)
    assert app.repo.get_run(result.run_id).superseded_by == resumed.run_id
    run = app.repo.get_run(resumed.run_id)
    assert (run.state, run.succeeded, run.failed) == (RunState.SUCCEEDED, 20, 0)
    assert Recovery.over(app.use_cases).orphan_finder.orphans() == []
    record(
        "vCenter unreachable mid-deploy (lab paused), resumed",
        faults_injected=dropped,
        ready_at_stop=ready_at_stop,
        made_while_unreachable=made_while_dark,
        adopted=len(resumed.adopted),
        recreated=len(resumed.recreated),
        vms_lost=0,
        duplicates=duplicates(names),
    )


def test_vcenter_unreachable_mid_strip_back_stops_cleanly_and_resume_finishes_it(
    make_lab: MakeLab, make_app: Callable[..., App]
) -> None:
    lab = make_lab({"destroy_latency_ms": 200})
    app = make_app(lab, concurrency=2)
    deploy(app, "deploy capture 10 as dusk")
    ours = {vm["moref"] for vm in clone_vms(lab, "TRN-CAP-")}
    rest = {vm["moref"]: vm for vm in lab.control.vms() if vm["moref"] not in ours}
    paused = threading.Event()

    def pause_after_three(event: ProgressEvent) -> None:
        if event.kind == "clone_ready" and event.done >= 3 and not paused.is_set():
            paused.set()
            lab.control.pause(120)

    with pytest.raises(Exception, match="Lost contact with vCenter") as raised:
        app.use_cases.strip_back.teardown("dusk", actor="trainer", on_event=pause_after_three)
    dropped = lab.control.stats()["dropped"]
    lab.control.pause(0)
    assert type(raised.value).__name__ == "VCenterUnreachable"
    [run] = [r for r in app.repo.runs(environment="dusk") if r.kind.value == "teardown"]
    assert run.state is RunState.INTERRUPTED
    assert not app.repo.clones(environment="dusk", states=[CloneState.DESTROYING])

    report = Recovery.over(app.use_cases).recover(actor="trainer")
    assert report.left == [] and len(report.resumed) == 1
    assert clone_vms(lab, "TRN-CAP-") == []
    assert {vm["moref"]: vm for vm in lab.control.vms() if vm["moref"] not in ours} == rest
    assert {c.state for c in app.repo.clones(environment="dusk")} == {CloneState.DESTROYED}
    record(
        "vCenter unreachable mid-strip back (lab paused), resumed",
        faults_injected=dropped,
        vms_left=0,
        decoys_touched=0,
        vms_lost=0,
        duplicates=0,
    )


@pytest.mark.parametrize(
    ("fault", "transient"),
    [
        ("FileLocked", True),
        ("Timedout", True),
        ("InsufficientDiskSpace", False),
        ("DuplicateName", False),
    ],
)
def test_injected_task_faults_are_classified_retried_within_bounds_and_counted_exactly(
    lab: LabProcess, make_app: Callable[..., App], fault: str, transient: bool
) -> None:
    lab_name = "InsufficientStorageSpace" if fault == "InsufficientDiskSpace" else fault
    assert (lab_name in TRANSIENT_FAULTS) is transient
    app = make_app(lab, retries=2, concurrency=4)
    # Calls 2 and 5 fail once; calls 7, 8, 9 fail in a row (one clone's every attempt, if the
    # fault is retried: retries are bounded at 2).
    lab.control.configure(faults={"fail_nth": [2, 5, 7, 8, 9], "fault": fault})
    lab.control.reset()

    result = deploy(app, "deploy capture 8 as faulty")

    stats = lab.control.stats()
    vms = {vm["name"]: vm for vm in clone_vms(lab, "TRN-CAP-")}
    rows = {c.name: c for c in app.repo.clones(environment="faulty")}
    # The report counts exactly what exists: ready = in vCenter, failed = not in vCenter.
    assert sorted(result.ready) == sorted(vms)
    assert {f.name for f in result.failed}.isdisjoint(vms)
    assert len(result.ready) + len(result.failed) == 8
    assert all(rows[n].state is CloneState.READY and rows[n].moref == vms[n]["moref"] for n in vms)
    assert all(rows[f.name].state is CloneState.FAILED for f in result.failed)
    assert all(lab_name in f.error or "already exists" in f.error for f in result.failed)
    assert max(c.attempts for c in rows.values()) <= 3  # retries + 1
    assert stats["clone_calls"] == sum(c.attempts for c in rows.values())
    if transient:
        assert stats["clones_failed_injected"] == 5
        assert len(result.failed) <= 1  # at most the clone that drew 3 failures in a row
        assert stats["clone_calls"] == len(result.ready) + 5
    else:
        # A permanent fault is never retried: one call per clone (so call 9 never comes), and
        # each injected fault fails one clone.
        assert stats["clone_calls"] == 8 and stats["clones_failed_injected"] == 4
        assert len(result.failed) == 4 and len(result.ready) == 4
    run = app.repo.get_run(result.run_id)
    assert (run.succeeded, run.failed) == (len(result.ready), len(result.failed))
    record(
        f"task fault {fault}",
        transient=transient,
        faults_injected=stats["clones_failed_injected"],
        clone_calls=stats["clone_calls"],
        ready=len(result.ready),
        failed=len(result.failed),
        vms_lost=0,
        duplicates=duplicates(list(vms)),
        report_matches_vcenter=True,
    )


def test_session_expiry_while_clones_are_in_flight_is_invisible(
    make_lab: MakeLab, make_app: Callable[..., App]
) -> None:
    lab = make_lab({"clone_latency_ms": 200})
    app = make_app(lab, concurrency=6)
    expiries = 0
    stop = threading.Event()

    def expire_repeatedly() -> None:
        nonlocal expiries
        while not stop.wait(0.15):
            lab.control.expire_sessions()
            expiries += 1

    expirer = threading.Thread(target=expire_repeatedly)
    expirer.start()
    try:
        result = deploy(app, "deploy capture 18 as sleepy")
        wait_until(lambda: expiries >= 3)
        stripped = app.use_cases.strip_back.teardown("sleepy", actor="trainer")
    finally:
        stop.set()
        expirer.join()
    assert result.state is RunState.SUCCEEDED and len(result.ready) == 18
    assert stripped.state is RunState.SUCCEEDED and len(stripped.destroyed) == 18
    assert clone_vms(lab, "TRN-CAP-") == []
    logins = lab.control.stats()["requests"].get("Login", 0)
    assert logins >= 2
    record(
        "session expiry while clones are in flight",
        faults_injected=expiries,
        logins=logins,
        vms_lost=0,
        duplicates=0,
    )
