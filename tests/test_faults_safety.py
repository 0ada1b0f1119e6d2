"""Safe strip back and concurrency, against the lab vCenter and real SQLite files.

Decoys (a same-name VM in another folder, a VM forging ManagedBy that no row records, a
template, the parents and their base snapshots) survive every deploy, refresh, strip back and
orphan clean-up; two deployments into one environment, or a strip back during a deployment,
are refused with a clear message; concurrent SQLite writers lose nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from pyVim.connect import Disconnect, SmartConnect
from pyVmomi import vim

from bot.adapters.lab import LabProcess
from bot.bootstrap import App
from bot.domain import grammar
from bot.domain.errors import ConflictError
from bot.domain.models import CloneState, RunKind
from bot.services.recovery import Recovery
from storage import Repository
from tests.faults import Clones, clone_vms, others, record, snapshot_count, wait_until
from tests.helpers import MakeLab, deploy, lab_app, set_state

pytestmark = pytest.mark.lab


def _mark_as_template(lab: LabProcess, name: str) -> None:
    """vSphere's MarkAsTemplate, through pyVmomi (the lab has no template of its own)."""
    si = SmartConnect(
        host=lab.info.host,
        port=lab.info.port,
        user=lab.info.user,
        pwd=lab.info.password,
        protocol="http",
        disableSslCertValidation=True,
    )
    try:
        view = si.content.viewManager.CreateContainerView(
            si.content.rootFolder, [vim.VirtualMachine], True
        )
        [vm] = [v for v in view.view if v.name == name]
        vm.MarkAsTemplate()
        assert vm.config.template
    finally:
        Disconnect(si)


def test_decoys_parents_snapshots_and_a_template_survive_every_operation(
    lab: LabProcess, make_app: Callable[..., App]
) -> None:
    app = make_app(lab)
    # Same names in another folder (made first: a datastore path is the VM's name).
    for n in (1, 2):
        lab.control.add_vm(f"TRN-CAP-{n:03}", folder="Parents", parent_like="Capture")
    lab.control.add_vm("golden", folder="Parents", parent_like="Capture")
    _mark_as_template(lab, "golden")
    deploy(app, "deploy capture 1 as warmup")  # creates the base snapshot
    lab.control.add_vm(
        "forged", folder="Training", parent_like="Capture", linked=True,
        custom={"ManagedBy": "clones", "Environment": "safe"},
    )  # fmt: skip
    checks = 0

    def guarded(what: str, op: Callable[[], object]) -> None:
        nonlocal checks
        ours = {c.moref for c in app.repo.clones() if c.moref}
        before = others(lab, ours)
        snapshots = snapshot_count(lab)
        op()
        ours |= {c.moref for c in app.repo.clones() if c.moref}
        assert others(lab, ours) == before, what  # every decoy, moref for moref, field for field
        assert snapshot_count(lab) == snapshots, what  # the base snapshot is never removed
        checks += 1

    guarded("deploy", lambda: deploy(app, "deploy capture 4 as safe"))
    guarded(
        "refresh", lambda: app.admin.refresher.refresh(grammar.Refresh("safe"), actor="trainer")
    )
    row = app.repo.clones(environment="safe")[0]
    set_state(app.repo, row.id, CloneState.FAILED, error="reply lost")  # an orphan

    def clean_orphans() -> None:
        recovery = Recovery.over(app.use_cases)
        orphans = recovery.orphan_finder.orphans()
        assert sorted(o.vm.name for o in orphans) == sorted([row.name, "forged"])
        results = [recovery.orphan_finder.remove(o, actor="trainer") for o in orphans]
        assert [r.error for r in results if r is not None] == [
            "not made by this bot (unknown instance UUID): left alone"
        ]

    guarded("orphans remove", clean_orphans)
    guarded("strip back", lambda: app.use_cases.strip_back.teardown("safe", actor="trainer"))
    guarded("strip back", lambda: app.use_cases.strip_back.teardown("warmup", actor="trainer"))
    assert clone_vms(lab, "TRN-CAP-") == [
        vm for vm in clone_vms(lab, "TRN-CAP-") if vm["folder"] == "Parents"
    ]
    names = {vm["name"] for vm in lab.control.vms()}
    assert {"golden", "forged", "Capture", "Packaging", "Verification"} <= names
    assert {vm["name"]: vm["snapshots"] for vm in lab.control.vms()}["Capture"] == 1
    record(
        "safe strip back with decoys and a template",
        operations_checked=checks,
        decoys=5,
        decoys_touched=0,
        snapshots_removed=0,
    )


def test_two_deployments_into_one_environment_from_two_threads(
    make_lab: MakeLab, make_app: Callable[..., App]
) -> None:
    lab = make_lab({"clone_latency_ms": 200})
    app = make_app(lab)
    barrier = threading.Barrier(2)
    outcomes: list[object] = []

    def go() -> None:
        barrier.wait()
        try:
            outcomes.append(deploy(app, "deploy capture 6 as shared"))
        except ConflictError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=go) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    refused = [o for o in outcomes if isinstance(o, ConflictError)]
    assert len(refused) == 1 and "shared is busy" in str(refused[0])
    assert len(clone_vms(lab, "TRN-CAP-")) == 6
    assert len(app.repo.clones(environment="shared")) == 6
    record("two deployments at once (threads)", refused=1, clones=6, asked=6)


def test_two_deployments_into_one_environment_from_two_processes(
    make_lab: MakeLab, tmp_path: Path
) -> None:
    lab = make_lab({"clone_latency_ms": 300})
    clones = Clones(tmp_path, lab)
    assert clones.run("deploy", "capture", "1", "as", "race").returncode == 0  # schema, snapshot
    procs = [clones.start("deploy", "capture", "6", "as", "race") for _ in range(2)]
    results = [(*p.communicate(timeout=120), p.returncode) for p in procs]
    refused = [r for r in results if r[2] != 0]
    with clones.repo() as repo:
        live = repo.clones(environment="race", states=[CloneState.READY])
    names = [vm["name"] for vm in clone_vms(lab, "TRN-CAP-")]
    assert len(names) == len(set(names)) == len(live)
    if refused:  # overlapped: refused with a clear message, never more clones than asked
        [(_, err, _)] = refused
        assert "race is busy" in err and "Traceback" not in err
        assert len(live) == 7
    else:  # one finished before the other began: serialised, each got what it asked for
        assert len(live) == 13
    record("two deployments at once (processes)", refused=len(refused), clones=len(live))


def test_a_strip_back_during_a_deployment_is_refused(
    make_lab: MakeLab, make_app: Callable[..., App], tmp_path: Path
) -> None:
    lab = make_lab({"clone_latency_ms": 300})
    app = make_app(lab)
    deploy(app, "deploy capture 2 as busy")
    worker = threading.Thread(target=lambda: deploy(app, "deploy capture 10 as busy"))
    worker.start()
    try:
        wait_until(lambda: len(app.repo.clones(environment="busy")) == 12)
        with pytest.raises(ConflictError, match="busy with another deployment or strip back"):
            app.use_cases.strip_back.teardown("busy", actor="trainer")
        # ...and from another process (the check is in SQLite, across processes).
        other = lab_app(lab, app.settings.database)
        try:
            with pytest.raises(ConflictError, match=r"busy: deploy run \d+ .* still running"):
                other.use_cases.strip_back.teardown("busy", actor="someone-else")
        finally:
            other.close()
    finally:
        worker.join()
    assert len(clone_vms(lab, "TRN-CAP-")) == 12
    assert [r.kind for r in app.repo.runs(environment="busy")] == [RunKind.DEPLOY] * 2
    record("strip back during a deployment", refused=2, destroyed=0)


def test_no_lost_updates_from_eight_threads(tmp_path: Path) -> None:
    db = tmp_path / "threads.db"
    with Repository(db) as repo:
        repo.ensure_environment("busy", owner="trainer", channel="")
        run = repo.start_run(
            environment="busy", kind=RunKind.DEPLOY, requested_by="t", requested=64
        )
        clones = repo.reserve_clones(
            environment="busy", type="capture", parent="Capture", pattern="TRN-CAP-{n:03}",
            count=64, run_id=run.id,
        )  # fmt: skip
        barrier = threading.Barrier(8)
        errors: list[BaseException] = []

        def work(k: int) -> None:
            try:
                barrier.wait()
                for c in clones[k::8]:
                    set_state(repo, c.id, CloneState.READY, moref=f"vm-{c.id}", attempts=k)
                    repo.audit(actor=f"t{k}", source="test", command=c.name, result="ok")
                    repo.heartbeat(run.id)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        rows = repo.clones(environment="busy")
        assert all(c.state is CloneState.READY and c.moref == f"vm-{c.id}" for c in rows)
        assert sorted(c.attempts for c in rows) == sorted(k for k in range(8) for _ in range(8))
        entries = repo.audit_entries(limit=1000)
        assert len(entries) == 64 and {e.command for e in entries} == {c.name for c in rows}
    record("8 threads writing SQLite", updates=64, audit_rows=64, lost=0)
