"""The admin features against the lab vCenter over SOAP, with real SQLite files.

prepare, host-limit confinement, guest customization, disk mode, power, plan and the capacity
guard, the asset inventory and refresh: each through the service layer
(`bot.services.usecases.UseCases`, `bot.services.admin.Admin`) wired by `bot.bootstrap.build`,
checked in the lab's own view of its VMs (`/lab/vms`) and, where the lab shows no view, by
reading vCenter through pyVmomi objects that the adapter hands out. Nothing is mocked.
"""

from __future__ import annotations

import json
import sqlite3
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.adapters.lab import DEFAULT_SPEC, LabError, LabProcess, validate_spec_data
from bot.bootstrap import App
from bot.domain import grammar
from bot.domain.errors import (
    CapacityError,
    ConfigError,
    NotFoundError,
    UsageError,
    VCenterError,
)
from bot.domain.models import CloneState
from bot.domain.placement import drs_prefix
from bot.domain.provenance import read_provenance
from bot.domain.savings import GIB
from bot.services.check import Checker
from tests.helpers import (
    LAB_TYPES,
    MakeApp,
    MakeLab,
    clones_of,
    deploy,
    lab_settings,
    parents_with,
    types_with,
    vms,
)
from tests.vsphere import run_task

pytestmark = pytest.mark.lab


WIN_SPEC = {"name": "win-training", "kind": "sysprep", "description": "Training Windows guests"}
LARGE_CLUSTERS = [{"name": "Training", "hosts": 8}, {"name": "Training-Large", "hosts": 12}]


# ----------------------------------------------------------------------------------- helpers


def power_parent(app: App, parent: str, on: bool = True) -> None:
    vm = app.vcenter.parent_entity(parent).obj
    run_task(vm.PowerOnVM_Task() if on else vm.PowerOffVM_Task())


def snapshot_parent(app: App, parent: str, name: str = "clones-base") -> str:
    """Take a snapshot of a (powered-off) parent through pyVmomi, as an admin would."""
    vm = app.vcenter.parent_entity(parent).obj
    snap = run_task(vm.CreateSnapshot_Task(name=name, memory=False, quiesce=False))
    return str(snap._moId)


def assert_nothing_changed(lab: LabProcess, app: App, before: dict[str, dict[str, Any]]) -> None:
    """No VM made, changed or removed in vCenter, nothing recorded in SQLite."""
    assert vms(lab) == before
    assert app.repo.list_environments() == []
    assert app.repo.clones() == []
    assert lab.control.stats()["requests"].get("CloneVM_Task", 0) == 0


def refused_deploy(lab: LabProcess, app: App, text: str, error: type[Exception]) -> str:
    """`text` deployed is refused with `error`, nothing changed: the refusal's message."""
    before = vms(lab)
    with pytest.raises(error) as info:
        deploy(app, text)
    assert_nothing_changed(lab, app, before)
    return str(info.value)


# ================================================================================ 1. prepare
def test_prepare_refuses_a_powered_on_parent_and_power_off_shuts_it_down_then_snapshots(
    lab: LabProcess, make_app: MakeApp
) -> None:
    app = make_app(lab)
    power_parent(app, "Capture")

    refused = app.admin.preparer.prepare(grammar.parse("prepare capture"), actor="admin")  # type: ignore[arg-type]
    assert not refused.ready
    problems = [f.text for f in refused.findings if f.level == "problem"]
    assert problems and "powered on" in problems[0] and "prepare capture power-off" in problems[0]
    parent = vms(lab)["Capture"]
    assert parent["power_state"] == "poweredOn" and parent["snapshots"] == 0

    command = grammar.parse("prepare capture power-off")
    assert command == grammar.Prepare("capture", power_off=True)
    done = app.admin.preparer.prepare(command, actor="admin")
    assert done.ready
    parent = vms(lab)["Capture"]
    assert parent["power_state"] == "poweredOff"
    assert parent["snapshots"] == 1
    assert app.vcenter.parent_report("Capture", "clones-base").snapshots_named == 1
    assert any(f.level == "done" and "shut down" in f.text for f in done.findings)


def test_prepare_reports_thick_and_independent_disks(make_lab: MakeLab, make_app: MakeApp) -> None:
    lab = make_lab(
        {
            "parents": parents_with(
                Capture={"thin": False}, Packaging={"disk_mode": "independent_persistent"}
            )
        }
    )
    app = make_app(lab)

    thick = app.admin.preparer.prepare(grammar.Prepare("capture"), actor="admin")
    advice = [f.text for f in thick.findings if f.level == "advice"]
    assert len(advice) == 1 and "thick" in advice[0] and "11.00 GB" in advice[0]
    assert thick.ready  # thick is advice: the parent can still be cloned
    assert thick.provisioned_bytes == 11 * GIB

    independent = app.admin.preparer.prepare(grammar.Prepare("packaging"), actor="admin")
    assert not independent.ready
    problems = [f.text for f in independent.findings if f.level == "problem"]
    assert len(problems) == 1
    assert "independent_persistent" in problems[0] and "block" in problems[0]
    # A blocked parent is not snapshotted.
    assert vms(lab)["Packaging"]["snapshots"] == 0
    assert app.vcenter.parent_report("Verification", "clones-base").disks[0].thin


def test_prepare_creates_the_configured_snapshot_once(lab: LabProcess, make_app: MakeApp) -> None:
    app = make_app(lab, types=types_with(capture={"snapshot": "golden-2024"}))
    first = app.admin.preparer.prepare(grammar.Prepare("capture"), actor="admin")
    assert first.ready
    assert any(f.level == "done" and '"golden-2024"' in f.text for f in first.findings)
    second = app.admin.preparer.prepare(grammar.Prepare("capture"), actor="admin")
    assert second.ready
    assert not any(f.level == "done" for f in second.findings)
    assert any(f.level == "ok" and "in place" in f.text for f in second.findings)
    assert vms(lab)["Capture"]["snapshots"] == 1
    assert app.vcenter.parent_report("Capture", "golden-2024").snapshots_named == 1
    assert app.vcenter.parent_report("Capture", "clones-base").snapshots_named == 0
    # A deployment after prepare uses that snapshot and makes no second one.
    assert deploy(app, "deploy capture 2 as try").ready == ["TRN-CAP-001", "TRN-CAP-002"]
    assert vms(lab)["Capture"]["snapshots"] == 1


def test_prepare_unknown_type_is_a_clear_error(lab: LabProcess, make_app: MakeApp) -> None:
    app = make_app(lab)
    before = vms(lab)
    with pytest.raises(UsageError, match=r'Unknown type "captur".*Did you mean "capture"'):
        app.admin.preparer.prepare(grammar.Prepare("captur"), actor="admin")
    assert vms(lab) == before


def test_types_shows_each_readiness(lab: LabProcess, make_app: MakeApp) -> None:
    ghost = {**LAB_TYPES["capture"], "parent": "Nowhere", "name_pattern": "TRN-GHO-{n:03}"}
    app = make_app(lab, types=types_with(ghost=ghost))
    app.admin.preparer.prepare(grammar.Prepare("capture"), actor="admin")
    power_parent(app, "Verification")
    status = {ts.type.name: ts for ts in app.use_cases.queries.types()}
    assert {n: ts.readiness for n, ts in status.items()} == {
        "capture": "ready",
        "packaging": "needs snapshot",
        "verification": "powered on",
        "ghost": "parent missing",
    }
    facts = status["capture"].parent
    assert facts is not None
    assert facts.provisioned_bytes == 11 * GIB
    assert facts.used_bytes == pytest.approx(3.34 * GIB, abs=1)
    assert status["ghost"].parent is None


# ============================================================================= 2. host limit
def large_lab(make_lab: MakeLab) -> LabProcess:
    return make_lab({"clusters": LARGE_CLUSTERS})


def confined_app(make_lab: MakeLab, make_app: MakeApp, **changes: Any) -> tuple[LabProcess, App]:
    """A lab with a 12-host Training-Large cluster, and an app deploying capture there with at
    most 8 hosts per base disk (`changes`: more settings)."""
    lab = large_lab(make_lab)
    app = make_app(
        lab,
        types=types_with(capture={"resource_pool": "Training-Large"}),
        max_hosts_per_base_disk=8,
        **changes,
    )
    return lab, app


def capture_confinement(app: App, cluster_name: str = "Training-Large") -> Any:
    """(VM group, host group, whether the rule is there) of Capture's DRS confinement."""
    cluster, _ = app.vcenter.cluster_hosts(cluster_name)
    return app.vcenter.drs_confinement(cluster, drs_prefix("Capture"))


def confined_deployment(
    make_lab: MakeLab, make_app: MakeApp, text: str
) -> tuple[LabProcess, App, list[str]]:
    """`text` deployed by `confined_app`: the lab, the app and Capture's DRS host group."""
    lab, app = confined_app(make_lab, make_app)
    deploy(app, text)
    _, host_group, _ = capture_confinement(app)
    return lab, app, host_group


def assert_confined(lab: LabProcess, app: App, host_group: list[str]) -> None:
    """Every clone is in Capture's DRS VM group, its host group is still `host_group`, and
    the rule holds."""
    vm_group, hosts, has_rule = capture_confinement(app)
    assert sorted(vm_group) == sorted(vm["moref"] for vm in clones_of(lab).values())
    assert sorted(hosts) == sorted(host_group) and has_rule


def drs_config(app: App, cluster_name: str) -> Any:
    """The cluster's configurationEx, read through pyVmomi."""
    cluster, _ = app.vcenter.cluster_hosts(cluster_name)
    return cluster.configurationEx


def test_host_limit_confines_a_parents_clones_to_a_drs_host_group(
    make_lab: MakeLab, make_app: MakeApp
) -> None:
    lab, app = confined_app(make_lab, make_app)
    result = deploy(app, "deploy capture 12 as big")
    assert len(result.ready) == 12 and not result.failed

    clones = clones_of(lab)
    assert len(clones) == 12
    assert {vm["cluster"] for vm in clones.values()} == {"Training-Large"}
    hosts_used = {vm["host"] for vm in clones.values()}
    assert len(hosts_used) == 8  # spread across the group, never beyond it

    cluster, all_hosts = app.vcenter.cluster_hosts("Training-Large")
    assert len(all_hosts) == 12
    name_of = {h.moref: h.name for h in all_hosts}
    prefix = drs_prefix("Capture")
    vm_group, host_group, has_rule = app.vcenter.drs_confinement(cluster, prefix)
    assert sorted(vm_group) == sorted(vm["moref"] for vm in clones.values())
    assert len(host_group) == 8 and {name_of[h] for h in host_group} == hosts_used
    assert has_rule

    # The same, read straight from the cluster's configuration with pyVmomi.
    config = drs_config(app, "Training-Large")
    groups = {g.name: g for g in config.group}
    assert {f"{prefix}-vms", f"{prefix}-hosts"} <= set(groups)
    assert {v._moId for v in groups[f"{prefix}-vms"].vm} == {vm["moref"] for vm in clones.values()}
    assert {h.name for h in groups[f"{prefix}-hosts"].host} == hosts_used
    rules = [r for r in config.rule if r.name == f"{prefix}-must-run"]
    assert len(rules) == 1
    rule = rules[0]
    assert rule.mandatory and rule.enabled
    assert rule.vmGroupName == f"{prefix}-vms" and rule.affineHostGroupName == f"{prefix}-hosts"

    # status shows the spread.
    [status] = app.use_cases.queries.status("big")
    assert status.hosts_by_parent == {"Capture": tuple(sorted(hosts_used))}

    # A second deployment keeps the host group and adds its clones to the VM group.
    second = deploy(app, "deploy capture 4 as big-two")
    assert len(second.ready) == 4
    clones = clones_of(lab)
    assert len(clones) == 16
    assert {vm["host"] for vm in clones.values()} == hosts_used
    vm_group2, host_group2, has_rule2 = app.vcenter.drs_confinement(cluster, prefix)
    assert sorted(host_group2) == sorted(host_group)
    assert sorted(vm_group2) == sorted(vm["moref"] for vm in clones.values())
    assert has_rule2
    config = drs_config(app, "Training-Large")
    assert [r.name for r in config.rule].count(f"{prefix}-must-run") == 1
    assert [g.name for g in config.group].count(f"{prefix}-vms") == 1


LARGE = {"resource_pool": "Training-Large"}
PARENT_OF = {"capture": "Capture", "packaging": "Packaging", "verification": "Verification"}


def host_groups(app: App) -> tuple[dict[str, set[str]], dict[str, str]]:
    """Each parent's DRS host group in Training-Large (host names), and host moref -> name."""
    cluster, hosts = app.vcenter.cluster_hosts("Training-Large")
    name_of = {h.moref: h.name for h in hosts}
    groups = {
        parent: {name_of[m] for m in app.vcenter.drs_confinement(cluster, drs_prefix(parent))[1]}
        for parent in PARENT_OF.values()
    }
    return groups, name_of


@pytest.mark.parametrize("together", [False, True], ids=["one-by-one", "in-one-deployment"])
def test_the_host_groups_of_several_parents_spread_over_the_whole_cluster(
    make_lab: MakeLab, make_app: MakeApp, together: bool
) -> None:
    # 12 hosts, 3 parents, at most 8 hosts per base disk: the three groups use all 12 hosts
    # (they were the same 8, by name, before), none more than 8, and each clone runs on its
    # parent's group. Deployed one type at a time, or all in one deployment.
    lab = large_lab(make_lab)
    app = make_app(
        lab, types=types_with(capture=LARGE, packaging=LARGE, verification=LARGE),
        max_hosts_per_base_disk=8,
    )  # fmt: skip
    if together:
        deploy(app, "deploy capture 4 packaging 4 verification 4 as all")
    else:
        for t in PARENT_OF:
            deploy(app, f"deploy {t} 4 as {t}-env")

    groups, name_of = host_groups(app)
    assert all(len(g) == 8 for g in groups.values()), groups
    assert set().union(*groups.values()) == set(name_of.values())  # all 12 hosts
    for vm in clones_of(lab).values():
        assert vm["host"] in groups[vm["parent"]], vm["name"]

    # A parent with clones keeps its group: another deployment of it stays on the same hosts.
    deploy(app, "deploy capture 6 as more")
    again, _ = host_groups(app)
    assert again == groups
    capture_hosts = {vm["host"] for vm in clones_of(lab).values() if vm["parent"] == "Capture"}
    assert capture_hosts <= groups["Capture"]

    # `check` and `status ENV` name the hosts each parent uses.
    report = Checker(app.use_cases).run()
    found = {f.subject: f.text for f in report.findings}
    for t, parent in PARENT_OF.items():
        listed = ", ".join(sorted(groups[parent]))
        assert f"clones of {parent} go to a DRS host group of 8: {listed}." in found[f"{t} hosts"]
    [status] = app.use_cases.queries.status("more")
    assert set(status.hosts_by_parent["Capture"]) <= groups["Capture"]
    assert len(status.hosts_by_parent["Capture"]) == 6


def test_small_cluster_needs_no_confinement(make_lab: MakeLab, make_app: MakeApp) -> None:
    lab = large_lab(make_lab)
    app = make_app(lab, max_hosts_per_base_disk=8)
    assert len(deploy(app, "deploy capture 10 as small").ready) == 10
    assert capture_confinement(app, "Training") == ([], [], False)


def test_host_limit_without_confinement_is_refused_and_creates_nothing(
    make_lab: MakeLab, make_app: MakeApp
) -> None:
    lab, app = confined_app(make_lab, make_app, confine_hosts=False)
    text = refused_deploy(lab, app, "deploy capture 3 as big", ConfigError)
    assert "12 hosts" in text and "at most 8" in text and "confine_hosts" in text
    assert capture_confinement(app) == ([], [], False)


# ========================================================================== 3. customization
def customizing_app(make_lab: MakeLab, make_app: MakeApp) -> tuple[LabProcess, App]:
    """A lab whose customization of TRN-CAP-002 fails, and an app customizing capture clones."""
    lab = make_lab(
        {
            "customization_specs": [WIN_SPEC],
            "faults": {"customization_fail_names": ["TRN-CAP-002"]},
        }
    )
    app = make_app(
        lab,
        types=types_with(capture={"customization_spec": "win-training"}),
        customization_timeout_s=20,
    )
    return lab, app


def test_customization_on_power_on_records_success_and_failure(
    make_lab: MakeLab, make_app: MakeApp
) -> None:
    lab, app = customizing_app(make_lab, make_app)
    result = deploy(app, "deploy capture 3 as cust and power on")
    assert sorted(result.ready) == ["TRN-CAP-001", "TRN-CAP-002", "TRN-CAP-003"]

    clones = clones_of(lab)
    recorded = {c.name: c for c in app.repo.clones(environment="cust")}
    for name in ("TRN-CAP-001", "TRN-CAP-003"):
        assert clones[name]["power_state"] == "poweredOn"
        assert clones[name]["customization"] == "succeeded"
        assert clones[name]["guest_hostname"] == name
        assert recorded[name].customization == "succeeded"
        assert not recorded[name].error
    failed = recorded["TRN-CAP-002"]
    assert clones["TRN-CAP-002"]["customization"] == "failed"
    assert clones["TRN-CAP-002"]["guest_hostname"] != "TRN-CAP-002"
    assert failed.customization == "failed"
    assert failed.error and "customization failed" in failed.error
    assert len(failed.error) > len("guest customization failed: ")  # the reason is kept


def test_refresh_customises_powered_on_clones_again_and_reports_failures(
    make_lab: MakeLab, make_app: MakeApp
) -> None:
    lab, app = customizing_app(make_lab, make_app)
    deploy(app, "deploy capture 2 as cust and power on")
    before = {n: vm["moref"] for n, vm in clones_of(lab).items()}
    result = app.admin.refresher.refresh(grammar.Refresh("cust"), actor="tester")
    after = clones_of(lab)
    assert all(after[n]["moref"] != before[n] for n in before)  # new VMs
    assert result.refreshed == ["TRN-CAP-001"]
    assert [f.name for f in result.failed] == ["TRN-CAP-002"]
    assert "customization" in result.failed[0].error
    recorded = {c.name: c for c in app.repo.clones(environment="cust")}
    assert recorded["TRN-CAP-001"].customization == "succeeded"
    assert after["TRN-CAP-001"]["guest_hostname"] == "TRN-CAP-001"
    assert recorded["TRN-CAP-002"].customization == "failed"


def test_missing_customization_spec_is_refused_before_anything_is_created(
    lab: LabProcess, make_app: MakeApp
) -> None:
    app = make_app(lab, types=types_with(capture={"customization_spec": "no-such-spec"}))
    text = refused_deploy(lab, app, "deploy capture 3 as cust and power on", NotFoundError)
    assert 'Customization spec "no-such-spec"' in text


def test_long_name_pattern_with_customization_is_a_config_error(
    lab: LabProcess, tmp_path: Path
) -> None:
    types = types_with(
        capture={"customization_spec": "win-training", "name_pattern": "TRAINING-CAPTURE-{n:03}"}
    )
    with pytest.raises(ConfigError, match="15"):
        lab_settings(lab, tmp_path / "clones.db", types=types)
    # The same pattern without customization is fine (vSphere allows 80-character VM names).
    del types["capture"]["customization_spec"]
    assert lab_settings(lab, tmp_path / "clones.db", types=types).types["capture"]


# ============================================================================== 4. disk mode
def test_disk_mode_is_set_on_every_clone_and_not_on_the_parent(
    lab: LabProcess, make_app: MakeApp
) -> None:
    app = make_app(lab, types=types_with(capture={"disk_mode": "independent_nonpersistent"}))
    assert len(deploy(app, "deploy capture 3 packaging 1 as disks").ready) == 4
    rows = vms(lab)
    for name in ("TRN-CAP-001", "TRN-CAP-002", "TRN-CAP-003"):
        assert rows[name]["disk_modes"] == ["independent_nonpersistent"]
        assert rows[name]["linked"] and rows[name]["parent"] == "Capture"
    assert rows["TRN-PKG-001"]["disk_modes"] == ["persistent"]  # a type without disk_mode
    assert rows["Capture"]["disk_modes"] == ["persistent"]
    assert not rows["Capture"]["linked"]


def test_unknown_disk_mode_is_a_config_error(lab: LabProcess, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r'disk_mode "scratch".*independent_nonpersistent'):
        lab_settings(
            lab, tmp_path / "clones.db", types=types_with(capture={"disk_mode": "scratch"})
        )


# ================================================================================== 5. power
def power(app: App, text: str) -> Any:
    command = grammar.parse(text)
    assert isinstance(command, grammar.Power)
    return app.admin.power_command.power_environment(command, actor="trainer")


def test_power_on_off_reset_an_environment(lab: LabProcess, make_app: MakeApp) -> None:
    app = make_app(lab)
    deploy(app, "deploy capture 3 as pw")
    deploy(app, "deploy capture 1 as other")
    names = ["TRN-CAP-001", "TRN-CAP-002", "TRN-CAP-003"]

    def states() -> dict[str, str]:
        return {n: vm["power_state"] for n, vm in clones_of(lab).items()}

    def recorded() -> dict[str, str | None]:
        return {c.name: c.power_state for c in app.repo.clones(environment="pw")}

    assert set(states().values()) == {"poweredOff"}
    on = power(app, "power on pw")
    assert sorted(on.done) == names and not on.failed
    assert states() == {**dict.fromkeys(names, "poweredOn"), "TRN-CAP-004": "poweredOff"}
    assert recorded() == dict.fromkeys(names, "poweredOn")

    lab.control.reset()
    reset = power(app, "power reset pw")
    assert sorted(reset.done) == names
    assert lab.control.stats()["requests"].get("ResetVM_Task") == 3
    assert states() == {**dict.fromkeys(names, "poweredOn"), "TRN-CAP-004": "poweredOff"}

    off = power(app, "power off pw")
    assert sorted(off.done) == names
    assert set(states().values()) == {"poweredOff"}
    assert recorded() == dict.fromkeys(names, "poweredOff")

    # Only a running VM can be reset: nothing happens, each clone says why, records stay off.
    refused = power(app, "power reset pw")
    assert refused.done == [] and sorted(f.name for f in refused.failed) == names
    assert all("powered off" in f.error for f in refused.failed)
    assert set(states().values()) == {"poweredOff"}
    assert recorded() == dict.fromkeys(names, "poweredOff")


def test_deploy_and_power_on(lab: LabProcess, make_app: MakeApp) -> None:
    app = make_app(lab)
    deploy(app, "deploy capture 2 as on and power on")
    assert {vm["power_state"] for vm in clones_of(lab).values()} == {"poweredOn"}
    assert {c.power_state for c in app.repo.clones(environment="on")} == {"poweredOn"}


def test_power_bad_input(lab: LabProcess, make_app: MakeApp) -> None:
    app = make_app(lab)
    deploy(app, "deploy capture 2 as pw")
    before = vms(lab)
    with pytest.raises(UsageError, match="not a power action"):
        grammar.parse("power sideways pw")
    with pytest.raises(UsageError, match='"power on nov-cohort"'):
        grammar.parse("power")
    # Without an environment it is one's own VM (a trainee's self-service), not an error.
    assert grammar.parse("power on") == grammar.MyPower("on")
    with pytest.raises(NotFoundError, match=r'No environment named "pww".*Did you mean "pw"'):
        power(app, "power on pww")
    assert vms(lab) == before


# =========================================================================== 6. plan, guard
def plan(app: App, text: str) -> Any:
    command = grammar.parse(text)
    assert isinstance(command, grammar.Plan)
    return app.admin.planner.plan(command)


def test_plan_shows_estimates_and_free_space(lab: LabProcess, make_app: MakeApp) -> None:
    app = make_app(lab, capacity_headroom_gb=10)
    before = vms(lab)
    result = plan(app, "plan capture 25")
    est = result.estimate
    assert est.clones == 25
    assert est.thick_bytes == 25 * 11 * GIB
    assert est.thin_bytes == pytest.approx(25 * 3.34 * GIB, abs=25)
    # No clone recorded yet: each delta is estimated at 1 GB, plus the shared base disk once.
    assert est.linked_bytes == pytest.approx(3.34 * GIB + 25 * GIB, abs=1)
    [need] = result.needs
    assert need.datastore == "TrainingDS"
    assert need.free_bytes == 480 * GIB
    assert need.needed_bytes == 25 * GIB and need.swap_bytes == 0
    assert need.headroom_bytes == 10 * GIB and result.fits
    with_power = plan(app, "plan capture 25 and power on")
    assert with_power.needs[0].swap_bytes == 25 * 1024 * 2**20
    assert vms(lab) == before  # plan creates nothing


def age_clones(app: App, environment: str, days: float) -> None:
    """The environment's clones made `days` ago (a course that ran): their creation time moved
    back in the SQLite file, as if the bot had made them then."""
    with sqlite3.connect(app.settings.database) as db:
        for clone_id, created in db.execute(
            "SELECT id, created_at FROM clones WHERE environment = ?", (environment,)
        ).fetchall():
            earlier = datetime.fromisoformat(created) - timedelta(days=days)
            db.execute(
                "UPDATE clones SET created_at = ? WHERE id = ?",
                (earlier.isoformat(timespec="microseconds"), clone_id),
            )


def test_plan_and_check_estimate_the_delta_from_how_far_clones_grew(
    make_lab: MakeLab, make_app: MakeApp
) -> None:
    # The lab's clones grow 1 GB a second while on. A just-made delta (0.13 GB) never sets the
    # estimate (it once said "room for about 22352413932 clones of 0.00 GB"); the sizes that
    # status, inventory and strip back read are recorded, and once the course's clones have
    # lived a day, plan and check estimate from the 95th percentile of their peaks.
    lab = make_lab({"delta_growth_gb_per_min": 60})
    app = make_app(lab, types=types_with(capture={"delta_estimate_gb": 0.5}))
    deploy(app, "deploy capture 3 as nov and power on")
    app.use_cases.queries.status("nov")  # sizes read and recorded, but the clones are young
    before = plan(app, "plan capture 25")
    assert before.estimate.linked_bytes == pytest.approx(3.34 * GIB + 25 * 0.5 * GIB, abs=25)
    assert before.deltas["capture"].source == "configured 0.50 GB: no clone has lived a day yet"

    age_clones(app, "nov", days=1)  # the course ran a day
    time.sleep(0.5)
    app.use_cases.queries.status("nov")
    peaks = {c.name: c.peak_bytes or 0 for c in app.repo.clones(environment="nov")}
    assert all(p > 0.6 * GIB for p in peaks.values()), peaks  # 0.13 GB when made
    est = plan(app, "plan capture 25").deltas["capture"]
    assert est.bytes == max(peaks.values())  # 95th percentile of 3: the largest
    assert est.source == (
        f"from 3 clones of nov that lived a day or more, 95th percentile {est.bytes / GIB:.2f} GB"
    )
    result = plan(app, "plan capture 25")
    assert result.estimate.linked_bytes == pytest.approx(3.34 * GIB + 25 * est.bytes, abs=25)
    assert result.needs[0].needed_bytes == 25 * est.bytes

    report = Checker(app.use_cases).run()
    [capacity] = [f for f in report.findings if f.subject == "capture capacity"]
    assert f"clones of {est.bytes / GIB:.2f} GB (from 3 clones of nov that lived" in capacity.text

    # The strip back reads each clone's size before destroying it: the last, largest peaks.
    time.sleep(0.3)
    app.use_cases.strip_back.teardown("nov", actor="trainer")
    final = {c.name: c.peak_bytes or 0 for c in app.repo.clones(environment="nov")}
    assert all(final[n] > peaks[n] for n in peaks), (peaks, final)
    assert plan(app, "plan capture 1").deltas["capture"].bytes == max(final.values())

    # A new course's clones, young, do not lower it; nor does an inventory of them.
    deploy(app, "deploy capture 2 as dec")
    app.admin.inventory_reader.inventory("dec")
    assert plan(app, "plan capture 1").deltas["capture"].bytes == max(final.values())


def test_capacity_guard_counts_swap_when_powering_on(make_lab: MakeLab, make_app: MakeApp) -> None:
    # 20 GB free, 10 GB headroom: 6 clones need 6 GB (fits), 12 GB with 1 GB swap each (not).
    lab = make_lab({"datastores": [{"name": "TrainingDS", "capacity_gb": 500, "free_gb": 20}]})
    app = make_app(lab, capacity_headroom_gb=10)
    assert plan(app, "plan capture 6").fits
    assert not plan(app, "plan capture 6 and power on").fits

    text = refused_deploy(lab, app, "deploy capture 6 as big and power on", CapacityError)
    assert "TrainingDS" in text and "20.00 GB free" in text and "swap" in text
    assert vms(lab)["Capture"]["snapshots"] == 0

    result = deploy(app, "deploy capture 6 as big")
    assert len(result.ready) == 6
    assert {vm["power_state"] for vm in clones_of(lab).values()} == {"poweredOff"}


def test_plan_bad_input(lab: LabProcess, make_app: MakeApp) -> None:
    app = make_app(lab)
    with pytest.raises(UsageError, match='Unknown type "nope"'):
        plan(app, "plan nope 3")
    with pytest.raises(UsageError):
        grammar.parse("plan capture 0")
    with pytest.raises(UsageError):
        grammar.parse("plan capture")


def test_impossible_count_creates_nothing(lab: LabProcess, make_app: MakeApp) -> None:
    app = make_app(lab)
    assert "maximum of 100" in refused_deploy(lab, app, "deploy capture 101 as big", UsageError)


# ============================================================================== 7. inventory
ASSET_ATTRIBUTES = {"AssetTag": "TRN-{n:04}", "CostCentre": "TR-01"}


def test_inventory_attributes_are_set_in_vcenter_and_listed(
    lab: LabProcess, make_app: MakeApp
) -> None:
    app = make_app(lab, types=types_with(capture={"attributes": ASSET_ATTRIBUTES}))
    deploy(app, "deploy capture 3 packaging 1 as inv")
    rows = vms(lab)
    for n in (1, 2, 3):
        custom = rows[f"TRN-CAP-{n:03}"]["custom"]
        assert custom["AssetTag"] == f"TRN-{n:04}"
        assert custom["CostCentre"] == "TR-01"
        assert custom["ManagedBy"] == "clones" and custom["Environment"] == "inv"
    assert "AssetTag" not in rows["TRN-PKG-001"]["custom"]
    assert "AssetTag" not in rows["Capture"]["custom"]

    inventory = {r.name: r for r in app.admin.inventory_reader.inventory("inv")}
    assert sorted(inventory) == ["TRN-CAP-001", "TRN-CAP-002", "TRN-CAP-003", "TRN-PKG-001"]
    row = inventory["TRN-CAP-002"]
    assert row.attributes == {
        "AssetTag": "TRN-0002",
        "CostCentre": "TR-01",
        "ManagedBy": "clones",
        "Environment": "inv",
        "DeployedFrom": "Capture",
    }
    assert (row.type, row.parent, row.environment) == ("capture", "Capture", "inv")
    assert row.deployed_by == "trainer" and row.deployed_at
    assert row.power_state == "poweredOff" and row.state == "ready"
    assert row.committed_gb == pytest.approx(0.13, abs=0.01)
    assert row.host == rows["TRN-CAP-002"]["host"]
    assert len(app.admin.inventory_reader.inventory()) == 4
    with pytest.raises(NotFoundError):
        app.admin.inventory_reader.inventory("nope")


# ================================================================================ 8. refresh
def test_refresh_recreates_clones_from_the_newest_snapshot(
    lab: LabProcess, make_app: MakeApp
) -> None:
    app = make_app(lab, types=types_with(capture={"attributes": ASSET_ATTRIBUTES}))
    deploy(app, "deploy capture 3 as cohort and power on")
    deploy(app, "deploy packaging 1 as other")
    old = clones_of(lab)
    first_snapshot = old["TRN-CAP-001"]["snapshot"]
    assert first_snapshot and {old[f"TRN-CAP-00{n}"]["snapshot"] for n in (1, 2, 3)} == {
        first_snapshot
    }
    # One clone is switched off by hand: refresh restores each clone's own power state.
    assert app.vcenter.power([old["TRN-CAP-003"]["moref"]], "off") == [None]
    # Decoys in the same folder: one even carries our attributes; neither is recorded.
    lab.control.add_vm(
        "TRN-CAP-900",
        folder="Training",
        parent_like="Capture",
        custom={"ManagedBy": "clones", "Environment": "cohort"},
        linked=True,
    )
    lab.control.add_vm("golden-image", folder="Training", parent_like="Capture")
    decoys = {n: vms(lab)[n] for n in ("TRN-CAP-900", "golden-image")}

    # The admin patches the parent (powered off) and snapshots it again under the same name.
    assert vms(lab)["Capture"]["power_state"] == "poweredOff"
    new_snapshot = snapshot_parent(app, "Capture")
    assert new_snapshot != first_snapshot
    assert app.vcenter.parent_report("Capture", "clones-base").snapshots_named == 2

    command = grammar.parse("refresh cohort")
    assert command == grammar.Refresh("cohort")
    result = app.admin.refresher.refresh(command, actor="admin")
    names = ["TRN-CAP-001", "TRN-CAP-002", "TRN-CAP-003"]
    assert result.refreshed == names and not result.failed and not result.skipped
    assert result.state.value == "succeeded"

    now = vms(lab)
    for name in names:
        before, after = old[name], now[name]
        assert after["moref"] != before["moref"]
        assert after["instance_uuid"] != before["instance_uuid"]
        assert after["linked"] and after["parent"] == "Capture"
        assert after["snapshot"] == new_snapshot
        assert after["host"] == before["host"]
        assert set(after["custom"]) == set(before["custom"])
        assert after["custom"] == before["custom"]
        # The Notes keep who deployed the clone (not the admin who refreshed it); the time is new.
        noted_before = read_provenance(before["notes"])
        noted_after = read_provenance(after["notes"])
        assert noted_before["DeployedBy"] == noted_after["DeployedBy"] == "trainer"
        assert noted_after["DeployedAt"] >= noted_before["DeployedAt"]
    assert before["custom"]["AssetTag"] == "TRN-0003"
    assert now["TRN-CAP-001"]["power_state"] == "poweredOn"
    assert now["TRN-CAP-002"]["power_state"] == "poweredOn"
    assert now["TRN-CAP-003"]["power_state"] == "poweredOff"
    # Nothing else touched: the old VMs are gone, decoys and the other environment stay.
    old_morefs = {old[n]["moref"] for n in names}
    assert not old_morefs & {vm["moref"] for vm in now.values()}
    for name, decoy in decoys.items():
        assert now[name] == decoy
    assert now["TRN-PKG-001"] == old["TRN-PKG-001"]
    assert now["Capture"]["snapshots"] == 2
    recorded = {c.name: c for c in app.repo.clones(environment="cohort")}
    assert {n: c.moref for n, c in recorded.items()} == {n: now[n]["moref"] for n in names}
    assert {c.state for c in recorded.values()} == {CloneState.READY}
    assert recorded["TRN-CAP-003"].instance_uuid == now["TRN-CAP-003"]["instance_uuid"]


def test_refresh_bad_input(lab: LabProcess, make_app: MakeApp) -> None:
    app = make_app(lab)
    with pytest.raises(NotFoundError, match='No environment named "ghost"'):
        app.admin.refresher.refresh(grammar.Refresh("ghost"), actor="admin")
    with pytest.raises(UsageError):
        grammar.parse("refresh")
    assert app.repo.list_environments() == []
    assert clones_of(lab) == {}


def test_deploy_from_a_powered_on_parent_without_snapshot_is_refused(
    lab: LabProcess, make_app: MakeApp
) -> None:
    app = make_app(lab)
    power_parent(app, "Capture")
    assert "powered on" in refused_deploy(lab, app, "deploy capture 2 as hot", VCenterError)


def test_refresh_keeps_confined_clones_in_their_drs_groups(
    make_lab: MakeLab, make_app: MakeApp
) -> None:
    lab, app, host_group = confined_deployment(make_lab, make_app, "deploy capture 10 as big")
    old = clones_of(lab)
    snapshot_parent(app, "Capture")

    result = app.admin.refresher.refresh(grammar.Refresh("big"), actor="admin")
    assert len(result.refreshed) == 10
    now = clones_of(lab)
    assert {n: vm["host"] for n, vm in now.items()} == {n: vm["host"] for n, vm in old.items()}
    assert_confined(lab, app, host_group)


def test_confinement_survives_a_strip_back_and_a_new_deployment(
    make_lab: MakeLab, make_app: MakeApp
) -> None:
    lab, app, host_group = confined_deployment(make_lab, make_app, "deploy capture 3 as first")
    app.use_cases.strip_back.teardown("first", actor="trainer")
    assert clones_of(lab) == {}

    result = deploy(app, "deploy capture 3 as second")
    assert len(result.ready) == 3 and not result.failed
    assert_confined(lab, app, host_group)


def test_lab_spec_checks_the_parent_disk_options(lab_binary: Path) -> None:
    spec = json.loads(DEFAULT_SPEC.read_text(encoding="utf-8"))
    spec["parents"] = parents_with(Capture={"disk_mode": "scratch"})
    with pytest.raises(LabError, match='disk_mode "scratch" is not a disk mode'):
        validate_spec_data(spec)
    spec["parents"] = parents_with(Capture={"thin": "no"})
    with pytest.raises(LabError, match=r"parents\[0\]\.thin: must be true or false"):
        validate_spec_data(spec)
    spec["parents"] = parents_with(Capture={"thin": False, "disk_mode": "independent_persistent"})
    checked = validate_spec_data(spec)
    assert checked["parents"][0]["thin"] is False
    assert (
        checked["parents"][1] | {"thin": True, "disk_mode": "persistent"} == checked["parents"][1]
    )


def test_refresh_stops_a_type_at_its_first_full_copy(lab: LabProcess, make_app: MakeApp) -> None:
    # The first clone re-created comes out as a full copy: it is removed (its old VM had to go
    # first, for the name), and the type's other clones are left exactly as they were.
    app = make_app(lab)
    deploy(app, "deploy capture 4 as cohort")
    before = clones_of(lab)
    lab.control.reset()
    lab.control.configure(faults={"full_copy_nth": [1]})

    command = grammar.parse("refresh cohort")
    assert isinstance(command, grammar.Refresh)
    result = app.admin.refresher.refresh(command, actor="trainer")

    assert result.refreshed == [] and lab.control.stats()["clone_calls"] == 1
    [lost] = result.failed
    assert "came out as a full copy" in lost.error and "Possible causes" in lost.error
    kept = {f.name for f in result.skipped}
    assert len(kept) == 3 and lost.name not in kept
    assert all("not refreshed, left as it was" in f.error for f in result.skipped)
    after = clones_of(lab)
    assert sorted(after) == sorted(kept)
    assert all(after[n]["moref"] == before[n]["moref"] for n in kept)  # untouched
    records = {c.name: c for c in app.repo.clones(environment="cohort")}
    assert records[lost.name].state is CloneState.FAILED
    assert all(records[n].state is CloneState.READY for n in kept)
    run = app.repo.get_run(result.run_id)
    assert "capture stopped at its first full copy" in run.message
    assert "3 capture clones not refreshed" in run.message


def test_refresh_makes_one_stray_full_copy_again_as_linked(
    lab: LabProcess, make_app: MakeApp
) -> None:
    # After the first clone re-created proved linked, one full copy is removed and made again.
    app = make_app(lab, concurrency=1)
    deploy(app, "deploy capture 4 as cohort")
    lab.control.reset()
    lab.control.configure(faults={"full_copy_nth": [2]})

    result = app.admin.refresher.refresh(grammar.Refresh("cohort"), actor="trainer")

    assert len(result.refreshed) == 4 and result.failed == [] and result.skipped == []
    assert lab.control.stats()["clone_calls"] == 5
    assert all(vm["linked"] for vm in clones_of(lab).values()) and len(clones_of(lab)) == 4
    run = app.repo.get_run(result.run_id)
    assert "came out as a full copy, was removed and made again as a linked clone" in run.message
