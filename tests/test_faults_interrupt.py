"""Ctrl-C and SIGTERM in the terminal (issue 21, point 5): a real `clones` process signalled
mid-run against the lab vCenter with latency.

The first signal stops starting clones, destroys and power operations at once; the tasks already
in vCenter finish and are recorded; the run ends `interrupted` (resumable, the environment not
busy) and the process exits 130 saying what was done and that `clones resume` finishes it. A
second signal exits at once; the run stays resumable. Each test compares SQLite with /lab/vms.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bot.adapters.lab import LabProcess
from bot.domain.models import CloneState, RunKind, RunState
from tests.faults import (
    Clones,
    clone_vms,
    duplicates,
    interrupt,
    others,
    record,
    snapshot_count,
    wait_while_running,
)

pytestmark = pytest.mark.lab

MakeLab = Callable[[dict[str, Any]], LabProcess]
CONCURRENCY = 4


def _names(n: int) -> list[str]:
    return [f"TRN-CAP-{i:03}" for i in range(1, n + 1)]


def _records_match_the_lab(clones: Clones, lab: LabProcess, environment: str) -> None:
    """Nothing unrecorded: every clone VM in the lab has a ready record with its instance UUID,
    every ready record has its VM, and no record is left mid-way (cloning or destroying)."""
    vms = {vm["instance_uuid"]: vm for vm in clone_vms(lab) if vm["folder"] == "Training"}
    with clones.repo() as repo:
        rows = repo.clones(environment=environment)
    mid_way = [c.name for c in rows if c.state in (CloneState.CLONING, CloneState.DESTROYING)]
    assert not mid_way, f"left mid-way: {mid_way}"
    ready = {c.instance_uuid: c for c in rows if c.state is CloneState.READY}
    assert set(vms) == set(ready), (
        sorted(vm["name"] for vm in vms.values()),
        sorted(c.name for c in ready.values()),
    )


def _run_of(clones: Clones, environment: str, kind: RunKind) -> Any:
    with clones.repo() as repo:
        [run] = [r for r in repo.runs(environment=environment) if r.kind is kind]
    return run


def test_ctrl_c_mid_deploy_stops_starting_clones_and_resume_finishes_the_40(
    make_lab: MakeLab, tmp_path: Path
) -> None:
    """The issue's repro: a deployment of 40 interrupted once 1 clone existed made all 40 and
    left its run `running`. Now only the clone tasks already in vCenter finish."""
    lab = make_lab({"clone_latency_ms": 1000})  # ten rounds: the signal comes in the first
    clones = Clones(tmp_path, lab, concurrency=CONCURRENCY)
    proc = clones.start("deploy", "capture", "40", "as", "ctrl")
    wait_while_running(proc, lambda: clones.count("ctrl", "ready") >= 1, timeout=90)
    made_at_signal = len(clone_vms(lab))
    stopped = interrupt(proc)
    lab.control.wait_idle()

    assert stopped.code == 130, stopped.err
    assert "Traceback" not in stopped.out + stopped.err
    vms = clone_vms(lab)
    # Only the clone tasks in vCenter at the signal finished: at most `concurrency` more.
    assert len(vms) <= made_at_signal + CONCURRENCY, (made_at_signal, len(vms))
    assert len(vms) < 40
    run = _run_of(clones, "ctrl", RunKind.DEPLOY)
    assert run.state is RunState.INTERRUPTED, run.state
    _records_match_the_lab(clones, lab, "ctrl")
    with clones.repo() as repo:
        planned = [c for c in repo.clones(environment="ctrl") if c.state is CloneState.PLANNED]
    assert len(planned) == 40 - len(vms)
    # The report says what was done and how to finish it.
    assert f"{len(vms)} of 40" in stopped.out, stopped.out
    assert "clones resume" in stopped.out + stopped.err

    lab.control.configure(clone_latency_ms=0)
    result = clones.run("resume")
    assert result.returncode == 0, result.stdout + result.stderr
    names = sorted(vm["name"] for vm in clone_vms(lab))
    assert names == _names(40) and duplicates(names) == 0
    with clones.repo() as repo:
        runs = {r.id: r for r in repo.runs(environment="ctrl")}
    assert runs[run.id].state is RunState.SUPERSEDED
    assert runs[runs[run.id].superseded_by or 0].state is RunState.SUCCEEDED
    _records_match_the_lab(clones, lab, "ctrl")
    record(
        "ctrl-c mid-deploy of 40, resumed",
        faults_injected=1,
        vms_at_signal=made_at_signal,
        vms_at_exit=len(vms),
        exit_code=stopped.code,
        after_resume=len(names),
        duplicates=0,
    )


def test_ctrl_c_mid_strip_back_destroys_only_what_was_in_flight(
    make_lab: MakeLab, tmp_path: Path
) -> None:
    """The issue's repro: a strip back interrupted at 8 of 40 destroyed all 40. Now only the
    destroys already in vCenter finish; the rest stay ready and recorded; resume finishes."""
    lab = make_lab({})
    clones = Clones(tmp_path, lab, concurrency=CONCURRENCY)
    lab.control.add_vm("TRN-CAP-007", folder="Parents", parent_like="Capture")  # a decoy
    assert clones.run("deploy", "capture", "40", "as", "strip").returncode == 0
    ours = {vm["moref"] for vm in clone_vms(lab) if vm["folder"] == "Training"}
    assert len(ours) == 40
    untouched = others(lab, ours)
    snapshots = snapshot_count(lab)
    lab.control.configure(destroy_latency_ms=800)  # ten rounds: the signal comes in the third

    proc = clones.start("teardown", "strip", "--yes")
    wait_while_running(proc, lambda: clones.count("strip", "destroyed") >= 8, timeout=90)
    destroyed_at_signal = 40 - len([vm for vm in lab.control.vms() if vm["moref"] in ours])
    stopped = interrupt(proc)
    lab.control.wait_idle()

    assert stopped.code == 130, stopped.err
    assert "Traceback" not in stopped.out + stopped.err
    left = [vm for vm in lab.control.vms() if vm["moref"] in ours]
    destroyed = 40 - len(left)
    assert destroyed <= destroyed_at_signal + CONCURRENCY, (destroyed_at_signal, destroyed)
    assert left, "every clone was destroyed after Ctrl-C"
    run = _run_of(clones, "strip", RunKind.TEARDOWN)
    assert run.state is RunState.INTERRUPTED, run.state
    _records_match_the_lab(clones, lab, "strip")
    assert clones.count("strip", "destroyed") == destroyed
    assert "clones resume" in stopped.out + stopped.err

    lab.control.configure(destroy_latency_ms=0)
    result = clones.run("resume")
    assert result.returncode == 0, result.stdout + result.stderr
    assert [vm for vm in lab.control.vms() if vm["moref"] in ours] == []
    assert others(lab, ours) == untouched  # the decoy, the parents, their snapshot
    assert snapshot_count(lab) == snapshots
    with clones.repo() as repo:
        rows = repo.clones(environment="strip")
    assert len(rows) == 40 and all(c.state is CloneState.DESTROYED for c in rows)
    record(
        "ctrl-c mid-strip back of 40, resumed",
        faults_injected=1,
        destroyed_at_signal=destroyed_at_signal,
        destroyed_at_exit=destroyed,
        exit_code=stopped.code,
        vms_left=0,
        decoys_touched=0,
    )


def test_sigterm_mid_deploy_stops_like_ctrl_c(make_lab: MakeLab, tmp_path: Path) -> None:
    lab = make_lab({"clone_latency_ms": 1000})
    clones = Clones(tmp_path, lab, concurrency=CONCURRENCY)
    proc = clones.start("deploy", "capture", "24", "as", "term")
    wait_while_running(proc, lambda: clones.count("term", "ready") >= 1, timeout=90)
    made_at_signal = len(clone_vms(lab))
    stopped = interrupt(proc, signal.SIGTERM)
    lab.control.wait_idle()

    assert stopped.code == 130, stopped.err
    made_at_exit = len(clone_vms(lab))
    assert made_at_exit <= made_at_signal + CONCURRENCY
    assert _run_of(clones, "term", RunKind.DEPLOY).state is RunState.INTERRUPTED
    _records_match_the_lab(clones, lab, "term")

    lab.control.configure(clone_latency_ms=0)
    result = clones.run("resume")
    assert result.returncode == 0, result.stdout + result.stderr
    names = sorted(vm["name"] for vm in clone_vms(lab))
    assert names == _names(24)
    record(
        "sigterm mid-deploy of 24, resumed",
        faults_injected=1,
        vms_at_signal=made_at_signal,
        vms_at_exit=made_at_exit,
        exit_code=stopped.code,
        after_resume=len(names),
    )


def test_a_second_ctrl_c_exits_at_once_and_resume_finishes(
    make_lab: MakeLab, tmp_path: Path
) -> None:
    """Clone tasks take 6 s each: the first Ctrl-C would wait for those in vCenter; the second
    exits at once. The run is interrupted (not busy) and `resume` adopts what the tasks still
    in vCenter made: nothing lost, nothing doubled."""
    lab = make_lab({"clone_latency_ms": 6000})  # 40 clones: ten rounds of 6 s
    clones = Clones(tmp_path, lab, concurrency=CONCURRENCY)
    proc = clones.start("deploy", "capture", "40", "as", "twice")

    def a_clone_task_in_vcenter() -> bool:
        return lab.control.stats()["requests"].get("CloneVM_Task", 0) >= 1

    wait_while_running(proc, a_clone_task_in_vcenter, timeout=90)
    stopped = interrupt(proc, twice=True)

    assert stopped.code == 130, stopped.err
    assert stopped.exit_s < 4.0, stopped.exit_s  # not the 6 s the clone tasks still take
    assert "Traceback" not in stopped.out + stopped.err
    assert "clones resume" in stopped.err
    run = _run_of(clones, "twice", RunKind.DEPLOY)
    assert run.state is RunState.INTERRUPTED, (run, stopped)
    lab.control.wait_idle(timeout=60)  # the tasks left in vCenter finish there
    left_by_the_tasks = len(clone_vms(lab))
    assert left_by_the_tasks >= 1  # made after the process had gone: resume adopts it

    lab.control.configure(clone_latency_ms=0)
    result = clones.run("resume", timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    names = sorted(vm["name"] for vm in clone_vms(lab))
    assert names == _names(40) and duplicates(names) == 0
    _records_match_the_lab(clones, lab, "twice")
    record(
        "second ctrl-c mid-deploy of 40, resumed",
        faults_injected=2,
        exit_after_second_s=round(stopped.exit_s, 2),
        made_by_tasks_left_in_vcenter=left_by_the_tasks,
        after_resume=len(names),
        duplicates=0,
    )


@pytest.mark.parametrize("verb", ["deploy", "teardown"])
def test_ctrl_c_during_a_retry_backoff_ends_the_wait_and_asks_nothing_again(
    make_lab: MakeLab, tmp_path: Path, verb: str
) -> None:
    """A transient fault (FileLocked, TaskInProgress) puts the operation in its backoff (up to
    a minute); Ctrl-C then ends the wait at once and the operation is not asked for again
    (before, the process slept out the backoff and asked once more after the signal). `resume`
    finishes it."""
    lab = make_lab({})
    clones = Clones(tmp_path, lab, concurrency=CONCURRENCY, retries=3, retry_backoff_s=30)
    if verb == "teardown":
        made = clones.run("deploy", "capture", "2", "as", "backoff")
        assert made.returncode == 0, made.stdout + made.stderr
    method = "CloneVM_Task" if verb == "deploy" else "Destroy_Task"
    if verb == "deploy":
        lab.control.configure(faults={"fail_nth": [1], "fault": "FileLocked"})
    else:
        refuse = [{"method": method, "fault": "TaskInProgress", "nth": [1]}]
        lab.control.configure(faults={"refuse": refuse})
    lab.control.reset()

    def calls() -> int:
        return int(lab.control.stats()["requests"].get(method, 0))

    args = ("deploy", "capture", "2", "as", "backoff") if verb == "deploy" else (
        "teardown", "backoff", "--yes")  # fmt: skip
    proc = clones.start(*args)
    # The first ask refused: it waits its backoff (30 to 60 s). (The first clone of a type is
    # made alone, so a deployment's second ask is the retry; a strip back asks for both.)
    assert proc.stderr is not None  # where the progress goes, a line at a time
    said = [proc.stderr.readline()]
    while said[-1] and "retrying TRN-CAP-" not in said[-1]:  # the backoff has begun
        said.append(proc.stderr.readline())
    refused = said[-1].split("retrying ")[-1].split(":")[0]
    stopped = interrupt(proc)
    lab.control.wait_idle()

    assert stopped.code == 130, stopped.out + stopped.err
    assert stopped.exit_s < 10, stopped.exit_s  # not the backoff's 30 s or more
    assert "Traceback" not in stopped.out + stopped.err
    assert "retrying TRN-CAP-" in said[-1], said
    # The refused one was not asked again (a strip back's other destroy may have been asked
    # before the signal; the first clone of a deployment is made alone).
    assert calls() == (1 if verb == "deploy" else 2) or (verb, calls()) == ("teardown", 1)
    if verb == "teardown":
        assert refused in {vm["name"] for vm in clone_vms(lab)}, refused
    kind = RunKind.DEPLOY if verb == "deploy" else RunKind.TEARDOWN
    assert _run_of(clones, "backoff", kind).state is RunState.INTERRUPTED
    assert "clones resume" in stopped.out + stopped.err
    _records_match_the_lab(clones, lab, "backoff")  # none left cloning or destroying

    lab.control.configure(faults={})
    result = clones.run("resume")
    assert result.returncode == 0, result.stdout + result.stderr
    names = sorted(vm["name"] for vm in clone_vms(lab))
    assert names == (_names(2) if verb == "deploy" else []), names
    _records_match_the_lab(clones, lab, "backoff")
