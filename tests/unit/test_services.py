"""The services against in-memory fakes of the ports: fast, no sockets (the lab tier covers
everything that speaks SOAP)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from bot.domain import grammar
from bot.domain.errors import ConflictError, VCenterFault, VCenterUnreachable
from bot.domain.models import CloneState, RunKind, RunState
from bot.domain.results import REFRESHING, SNAPSHOTTING, ProgressEvent
from bot.services.container import Services
from bot.services.dispatch import Deployed, Invocation, dispatch, plan_for
from bot.services.pipeline import run_per_clone
from handlers.blocks import runs as shown
from tests.fakes import FakeVCenter
from tests.helpers import dead_run

WHO = Invocation("trainer", "cli")


def deploy(s: Services, text: str) -> Any:
    return dispatch(s, grammar.parse(text), WHO)


def test_a_deployment_makes_linked_clones_the_run_owns(
    services: Services, vcenter: FakeVCenter
) -> None:
    done = deploy(services, "deploy capture 3 packaging 2 as nov")
    assert isinstance(done, Deployed)
    result = done.result
    assert result.state is RunState.SUCCEEDED and len(result.ready) == 5
    names = [vm.name for vm in vcenter.clones()]
    assert names == [*(f"TRN-CAP-00{n}" for n in (1, 2, 3)), "TRN-PKG-001", "TRN-PKG-002"]
    assert all(vm.linked and vm.attributes["Environment"] == "nov" for vm in vcenter.clones())
    owned = services.repo.clones(run_id=result.run_id)
    assert sorted(c.name for c in owned) == names
    assert result.savings is not None and result.savings.clones == 5


def test_a_strip_back_destroys_only_what_it_recorded_and_ends_once(
    services: Services, vcenter: FakeVCenter
) -> None:
    deploy(services, "deploy capture 4 as nov")
    repo = services.repo
    live = repo.clones(environment="nov", states=[CloneState.READY])
    # A strip back whose process died after recording its set and destroying two clones.
    run = dead_run(repo, "nov", RunKind.TEARDOWN, "trainer", live)
    for c in live[:2]:
        repo.update_clone(c.id, state=CloneState.DESTROYING)
        vcenter.destroy(c.moref or "", expected_uuid=c.instance_uuid or "")
        repo.update_clone(c.id, state=CloneState.DESTROYED)
    repo.update_run(run.id, state=RunState.INTERRUPTED)

    first = services.recovery.recover(actor="trainer")
    [resumed] = first.resumed
    assert resumed.kind is RunKind.TEARDOWN and resumed.state is RunState.SUCCEEDED
    assert repo.get_run(run.id).state is RunState.SUPERSEDED
    assert vcenter.clones() == []

    deploy(services, "deploy capture 2 as nov")  # a new cohort under the same name
    again = services.recovery.recover(actor="trainer")
    assert again.resumed == [] and again.left == []
    assert [vm.name for vm in vcenter.clones()] == ["TRN-CAP-001", "TRN-CAP-002"]


def test_gone_is_one_outcome_however_it_is_found(services: Services, vcenter: FakeVCenter) -> None:
    deploy(services, "deploy capture 3 as nov")
    gone = vcenter.named("TRN-CAP-002")
    del vcenter.vms[gone.moref]  # deleted in the vSphere Client
    result = services.use_cases.strip_back.teardown("nov", actor="trainer")
    assert result.already_gone == ["TRN-CAP-002"]
    assert result.destroyed == ["TRN-CAP-001", "TRN-CAP-003"]
    states = {c.name: c.state for c in services.repo.clones(environment="nov")}
    assert set(states.values()) == {CloneState.DESTROYED}


def test_a_full_copy_stops_its_type_and_nothing_else(
    services: Services, vcenter: FakeVCenter
) -> None:
    vcenter.full_copies = True
    result = deploy(services, "deploy capture 4 as nov").result
    assert result.ready == [] and vcenter.clones() == []
    errors = sorted(f.error for f in result.failed)
    assert sum("full copy" in e for e in errors) == 4
    assert vcenter.calls["clone"] == 1  # one full copy written, not four
    assert "stopped at its first full copy" in result.message


def test_a_clone_skipped_at_a_full_copy_names_the_clone_that_stopped_its_type(
    make_services: Any, vcenter: FakeVCenter
) -> None:
    # The race between the full copy and the clone waiting for its slot: once the first clone
    # has proven the type linked, every clone comes out a full copy. The one that does holds
    # its event until the clone behind it (waiting for the one slot) has been skipped. The
    # skipped clone must name the clone that stopped the type, never "(?)".
    s = make_services(concurrency=1)
    skipped = threading.Event()

    def on_event(e: Any) -> None:
        if e.kind == "clone_ready":
            vcenter.full_copies = True
        elif (
            e.kind == "clone_failed"
            and "full copy" in e.message
            and "not attempted" not in e.message
        ):
            skipped.wait(timeout=5)
        elif e.kind == "clone_failed" and "not attempted" in e.message:
            skipped.set()

    done = dispatch(
        s, grammar.parse("deploy capture 4 as nov"), Invocation("trainer", "cli", "", on_event)
    )
    assert isinstance(done, Deployed)
    result = done.result
    assert skipped.is_set()
    [copy] = [f for f in result.failed if "not attempted" not in f.error]
    rest = [f for f in result.failed if f is not copy]
    assert rest and all(f"full copy ({copy.name})" in f.error for f in rest)
    assert "(?)" not in result.message and f"full copy ({copy.name}, removed" in result.message


def test_a_lost_vcenter_interrupts_the_run_and_resume_finishes_it(
    services: Services, vcenter: FakeVCenter
) -> None:
    original = vcenter.clone
    made: list[str] = []

    def flaky(req: Any, *, finish: bool = True) -> Any:
        if len(made) == 2:
            vcenter.lost = True
        made.append(req.name)
        return original(req, finish=finish)

    vcenter.clone = flaky  # type: ignore[method-assign]
    result = deploy(services, "deploy capture 5 as nov").result
    assert result.state is RunState.INTERRUPTED and result.interrupted
    assert "resume" in result.message
    assert services.repo.get_run(result.run_id).state is RunState.INTERRUPTED
    vcenter.lost = False
    vcenter.clone = original  # type: ignore[method-assign]
    report = services.recovery.recover(actor="trainer")
    assert report.complete, report.text
    ready = services.repo.clones(environment="nov", states=[CloneState.READY])
    assert len(ready) == 5 and len(vcenter.clones()) == 5


def test_status_shows_drift_beside_each_record(services: Services, vcenter: FakeVCenter) -> None:
    deploy(services, "deploy capture 3 as nov")
    vcenter.named("TRN-CAP-001").name = "renamed-001"
    vcenter.named("TRN-CAP-002").attributes["Environment"] = "elsewhere"
    del vcenter.vms[vcenter.named("TRN-CAP-003").moref]
    [st] = services.use_cases.queries.status("nov")
    drift = {c.name: st.drift[c.id].text for c in st.clones if c.id in st.drift}
    assert drift == {
        "TRN-CAP-001": "renamed to renamed-001",
        "TRN-CAP-002": "relabelled: Environment is 'elsewhere'",
        "TRN-CAP-003": "missing from vCenter",
    }
    # A strip back leaves the relabelled clone alone and names the renamed one.
    result = services.use_cases.strip_back.teardown("nov", actor="trainer")
    assert result.renamed == {"TRN-CAP-001": "renamed-001"}
    assert [f.name for f in result.skipped] == ["TRN-CAP-002"]


def test_a_transient_fault_is_retried_a_permanent_one_is_not(
    make_services: Any, vcenter: FakeVCenter
) -> None:
    services = make_services(retries=2)
    vcenter.fail_clone["TRN-CAP-001"] = VCenterFault("no space", "InsufficientDiskSpace")
    result = deploy(services, "deploy capture 2 as nov").result
    assert result.state is RunState.PARTIAL
    assert [f.name for f in result.failed] == ["TRN-CAP-001"]
    assert vcenter.calls["clone"] == 2  # no retry of a permanent fault


def test_destructive_commands_have_a_plan_to_confirm(services: Services) -> None:
    deploy(services, "deploy capture 2 as nov")
    plan = plan_for(services, grammar.parse("teardown nov"))
    assert plan is not None and plan.clones == 2  # type: ignore[attr-defined]
    assert plan_for(services, grammar.parse("status nov")) is None
    refresh = plan_for(services, grammar.parse("refresh nov"))
    assert refresh is not None and refresh.by_type == {"capture": 2}  # type: ignore[attr-defined]


def test_one_environment_runs_one_thing_at_a_time(services: Services) -> None:
    deploy(services, "deploy capture 1 as nov")
    with (
        services.use_cases.runs.environment_lock("nov"),
        pytest.raises(ConflictError, match="busy"),
    ):
        services.use_cases.strip_back.teardown("nov", actor="trainer")


def test_run_per_clone_stops_starting_work_once_vcenter_is_lost() -> None:
    started: list[int] = []
    gate = threading.Event()

    def work(n: int, stop: Any) -> int:
        if stop():
            return -1
        started.append(n)
        if n == 0:
            raise VCenterUnreachable("gone")
        gate.wait(1)
        return n

    per = run_per_clone(list(range(20)), work, workers=2, name="t")
    gate.set()
    assert per.lost is not None and str(per.lost) == "gone"
    assert len(started) < 20 and per.not_started  # the rest never began
    assert all(r != 0 for _, r in per.results)


def test_run_per_clone_lets_a_bug_surface() -> None:
    def work(n: int, stop: Any) -> int:
        if n == 3:
            raise RuntimeError("a bug")
        time.sleep(0.001)
        return n

    with pytest.raises(RuntimeError, match="a bug"):
        run_per_clone(list(range(6)), work, workers=3, name="t")


def test_strip_back_checks_ownership_with_one_narrow_read(
    services: Services, vcenter: FakeVCenter
) -> None:
    # Strip back's check reads identity, power, labels and storage only: one sightings read for
    # every clone, no full VM facts (device lists); what it reclaims comes from that read.
    deploy(services, "deploy capture 5 as nov")
    vcenter.calls.clear()
    vcenter.sighting_extras.clear()
    result = services.use_cases.strip_back.teardown("nov", actor="trainer")
    assert len(result.destroyed) == 5
    assert vcenter.calls["sightings"] == 1 and vcenter.calls["vm_facts"] == 0
    assert vcenter.sighting_extras == [("storage",)]
    assert result.reclaimed_bytes == 5 * int(0.13 * 2**30)


def test_a_vm_without_labels_is_checked_by_its_notes_read_for_it_alone(
    services: Services, vcenter: FakeVCenter
) -> None:
    # Made but not labelled (a crash between CloneVM_Task and SetField): its Notes, written by
    # the clone call, prove it ours; they are read for that VM alone, after the narrow read.
    deploy(services, "deploy capture 3 as nov")
    bare = vcenter.named("TRN-CAP-002")
    bare.attributes.clear()
    vcenter.calls.clear()
    vcenter.sighting_extras.clear()
    result = services.use_cases.strip_back.teardown("nov", actor="trainer")
    assert sorted(result.destroyed) == ["TRN-CAP-001", "TRN-CAP-002", "TRN-CAP-003"]
    assert vcenter.sighting_extras == [("storage",), ("notes",)]


def test_a_resumed_refresh_reports_its_progress_as_a_refresh(
    services: Services, vcenter: FakeVCenter
) -> None:
    """Progress events carry a label, not a run kind: a refresh taken over after a crash says
    it refreshes (it used to say it deployed, the only label its clone loop had)."""
    deploy(services, "deploy capture 3 as nov")
    original = vcenter.clone
    made: list[str] = []

    def flaky(req: Any, *, finish: bool = True) -> Any:
        if made:
            vcenter.lost = True
        made.append(req.name)
        return original(req, finish=finish)

    vcenter.clone = flaky  # type: ignore[method-assign]
    with pytest.raises(VCenterUnreachable):
        deploy(services, "refresh nov")
    [run] = [r for r in services.repo.runs(environment="nov") if r.kind is RunKind.REFRESH]
    assert run.state is RunState.INTERRUPTED
    vcenter.lost = False
    vcenter.clone = original  # type: ignore[method-assign]
    events: list[ProgressEvent] = []
    report = services.recovery.recover(actor="trainer", on_event=events.append)
    [resumed] = report.resumed
    assert resumed.kind is RunKind.REFRESH and report.complete, report.text
    assert events and {e.label for e in events} == {REFRESHING}
    assert events[0].message.startswith("Refreshing ")
    assert "Resuming the refresh of *nov*" in str(shown.resumed_progress(events[-1], "U1").blocks)


def test_a_snapshot_reports_progress_under_its_own_label(
    services: Services, vcenter: FakeVCenter
) -> None:
    """A bulk verb's progress events say what it does (SNAPSHOTTING), not a run kind."""
    deploy(services, "deploy capture 2 as nov")
    events: list[ProgressEvent] = []
    who = Invocation("operator", "cli", on_event=events.append)
    result: Any = dispatch(services, grammar.parse("snapshot nov before-lab"), who)
    assert len(result.done) == 2 and not result.failed
    assert [t.method for _, t in vcenter.tasks_done] == ["CreateSnapshot_Task"] * 2
    assert events and {e.label for e in events} == {SNAPSHOTTING}
    assert [e.kind for e in events].count("clone_ready") == 2
