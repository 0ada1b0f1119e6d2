"""The admin features from the terminal: `clones prepare|types|power|plan|inventory|refresh`,
host-limit confinement, customization and disk modes, against the lab vCenter.

Each test writes a clones.toml for its own lab under tmp_path, points CLONES_CONFIG at it and
passes the password in CLONES_VCENTER_PASSWORD, as an operator would, then runs
`bot.bootstrap.cli([...])` (one test runs the installed `clones` console script). What the commands
did is checked in the lab (`/lab/vms`) and in the SQLite file.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from bot.adapters.lab import LabProcess
from bot.adapters.vcenter.client import VCenter
from bot.cli import options
from bot.domain.placement import drs_prefix
from tests.helpers import LAB_TYPES, clones_of, lab_settings, parents_with, types_with, vms
from tests.terminal import Result, Terminal, assert_clean_failure
from tests.vsphere import run_task

pytestmark = pytest.mark.lab

MakeLab = Callable[[dict[str, Any]], LabProcess]
WIN_SPEC = {"name": "win-training", "kind": "sysprep"}
LARGE_CLUSTERS = [{"name": "Training", "hosts": 8}, {"name": "Training-Large", "hosts": 12}]
ASSET_ATTRIBUTES = {"AssetTag": "TRN-{n:04}", "CostCentre": "TR-01"}


@contextmanager
def adapter(lab: LabProcess, tmp_path: Path) -> Iterator[VCenter]:
    """The bot's own vCenter adapter, for a test to set the scene or read what pyVmomi sees."""
    vc = VCenter(lab_settings(lab, tmp_path / "scene.db").vcenter)
    try:
        yield vc
    finally:
        vc.close()


def ok(result: Result) -> Result:
    assert result.code == 0, result
    assert "Traceback" not in result.err
    return result


# ================================================================================ 1. prepare
def test_prepare_and_types_from_the_terminal(
    make_lab: MakeLab, term: Terminal, tmp_path: Path
) -> None:
    lab = make_lab(
        {
            "parents": parents_with(
                Capture={"thin": False}, Packaging={"disk_mode": "independent_persistent"}
            )
        }
    )
    ghost = {**LAB_TYPES["capture"], "parent": "Nowhere", "name_pattern": "TRN-GHO-{n:03}"}
    term.configure(lab, types=types_with(ghost=ghost))
    with adapter(lab, tmp_path) as vc:
        run_task(vc.parent_entity("Verification").obj.PowerOnVM_Task())

    types = ok(term("types", "--json")).json["types"]
    readiness = {t["type"]: t["readiness"] for t in types}
    assert readiness == {
        "capture": "needs snapshot",
        "packaging": "needs snapshot",
        "verification": "powered on",
        "ghost": "parent missing",
    }
    by_type = {t["type"]: t for t in types}
    assert by_type["capture"]["provisioned_gb"] == 11.0
    assert by_type["capture"]["used_gb"] == 3.34
    assert by_type["ghost"]["used_gb"] is None

    thick = ok(term("prepare", "capture"))
    assert "ready for linked clones" in thick.out
    assert "thick (11.00 GB provisioned)" in thick.out
    assert 'Created base snapshot "clones-base" of Capture' in thick.out
    again = ok(term("prepare", "capture"))
    assert "Created base snapshot" not in again.out and "is in place" in again.out
    assert vms(lab)["Capture"]["snapshots"] == 1

    blocked = term("prepare", "packaging")
    assert blocked.code == 1 and "Traceback" not in blocked.err
    assert "NOT ready" in blocked.out and "PROBLEM" in blocked.out
    assert "independent_persistent" in blocked.out and "block linked clones" in blocked.out
    assert vms(lab)["Packaging"]["snapshots"] == 0

    hot = term("prepare", "verification")
    assert hot.code == 1 and "powered on" in hot.out and "power-off" in hot.out
    assert vms(lab)["Verification"]["power_state"] == "poweredOn"
    assert vms(lab)["Verification"]["snapshots"] == 0
    cooled = ok(term("prepare", "verification", "power-off", "--json"))
    assert cooled.json["ready"] is True
    assert vms(lab)["Verification"]["power_state"] == "poweredOff"
    assert vms(lab)["Verification"]["snapshots"] == 1

    readiness = {t["type"]: t["readiness"] for t in ok(term("types", "--json")).json["types"]}
    assert readiness == {
        "capture": "ready",
        "packaging": "needs snapshot",
        "verification": "ready",
        "ghost": "parent missing",
    }
    text = ok(term("types"))
    assert "needs snapshot" in text.out and "parent missing" in text.out

    assert_clean_failure(term("prepare", "captur"), 'Unknown type "captur"', "capture")
    assert_clean_failure(term("prepare"), "prepare capture")
    assert term.recorded() == (0, 0)
    assert clones_of(lab) == {}


# ============================================================================= 2. host limit
def test_host_limit_from_the_terminal(make_lab: MakeLab, term: Terminal, tmp_path: Path) -> None:
    lab = make_lab({"clusters": LARGE_CLUSTERS})
    types = types_with(capture={"resource_pool": "Training-Large"})
    term.configure(lab, types=types, max_hosts_per_base_disk=8)

    deployed = ok(term("deploy", "capture", "12", "as", "big", "--json"))
    assert len(deployed.json["ready"]) == 12
    clones = clones_of(lab)
    assert len({vm["host"] for vm in clones.values()}) == 8

    status = ok(term("status", "big"))
    names = ", ".join(sorted({vm["host"] for vm in clones.values()}))
    assert f"Capture: clones on 8 hosts (limit 8 per base disk): {names}" in status.out
    [env] = ok(term("status", "big", "--json")).json["environments"]
    hosts = {c["host"] for c in env["clones"]}
    assert len(hosts) == 8

    with adapter(lab, tmp_path) as vc:
        cluster, _ = vc.cluster_hosts("Training-Large")
        vm_group, host_group, rule = vc.drs_confinement(cluster, drs_prefix("Capture"))
    assert sorted(vm_group) == sorted(vm["moref"] for vm in clones.values())
    assert sorted(host_group) == sorted(hosts) and rule

    # Confinement turned off: the same deployment is refused and nothing is created.
    term.configure(lab, types=types, max_hosts_per_base_disk=8, confine_hosts=False)
    before = vms(lab)
    refused = term("deploy", "capture", "3", "as", "big-two")
    assert_clean_failure(refused, "12 hosts", "at most 8", "confine_hosts")
    assert vms(lab) == before
    assert term.recorded() == (1, 12)


# ========================================================================== 3. customization
def test_customization_from_the_terminal(make_lab: MakeLab, term: Terminal) -> None:
    lab = make_lab(
        {
            "customization_specs": [WIN_SPEC],
            "faults": {"customization_fail_names": ["TRN-CAP-003"]},
        }
    )
    types = types_with(capture={"customization_spec": "win-training"})
    term.configure(lab, types=types, customization_timeout_s=20)

    deployed = term("deploy", "capture", "3", "as", "cust", "and", "power", "on")
    # A clone whose customization failed is not a usable training machine: the run is partial.
    assert deployed.code == 3, deployed
    assert "TRN-CAP-003" in deployed.out and "customization" in deployed.out
    rows = clones_of(lab)
    assert {n: vm["guest_hostname"] for n, vm in rows.items() if n != "TRN-CAP-003"} == {
        "TRN-CAP-001": "TRN-CAP-001",
        "TRN-CAP-002": "TRN-CAP-002",
    }
    [env] = ok(term("status", "cust", "--json")).json["environments"]
    shown = {c["name"]: c for c in env["clones"]}
    assert {n: c["customization"] for n, c in shown.items()} == {
        "TRN-CAP-001": "succeeded",
        "TRN-CAP-002": "succeeded",
        "TRN-CAP-003": "failed",
    }
    assert {c["power_state"] for c in shown.values()} == {"poweredOn"}
    assert "customization failed" in shown["TRN-CAP-003"]["error"]
    assert "customization failed" in ok(term("status", "cust")).out


def test_customization_bad_input_changes_nothing(lab: LabProcess, term: Terminal) -> None:
    before = vms(lab)
    term.configure(lab, types=types_with(capture={"customization_spec": "no-such-spec"}))
    assert_clean_failure(
        term("deploy", "capture", "3", "as", "cust"), 'Customization spec "no-such-spec"'
    )
    # A computer name longer than Windows allows is refused when the config is loaded.
    term.configure(
        lab,
        types=types_with(
            capture={"customization_spec": "win-training", "name_pattern": "TRAINING-CAP-{n:04}"}
        ),
    )
    assert_clean_failure(term("deploy", "capture", "3", "as", "cust"), "name_pattern", "15")
    assert_clean_failure(term("types"), "15")
    assert vms(lab) == before
    assert term.recorded() == (0, 0)


# ============================================================================== 4. disk mode
def test_disk_mode_from_the_terminal(lab: LabProcess, term: Terminal) -> None:
    term.configure(lab, types=types_with(capture={"disk_mode": "independent_nonpersistent"}))
    ok(term("deploy", "capture", "3", "as", "dm"))
    rows = vms(lab)
    clones = {n: vm for n, vm in rows.items() if n.startswith("TRN-CAP-")}
    assert len(clones) == 3
    for vm in clones.values():
        assert vm["disk_modes"] == ["independent_nonpersistent"]
        assert vm["linked"] and vm["parent"] == "Capture"
    assert rows["Capture"]["disk_modes"] == ["persistent"]

    before = vms(lab)
    term.configure(lab, types=types_with(capture={"disk_mode": "nonpersistant"}))
    assert_clean_failure(term("deploy", "capture", "3", "as", "dm2"), 'disk_mode "nonpersistant"')
    assert vms(lab) == before
    assert term.recorded() == (1, 3)


# ================================================================================== 5. power
def test_power_from_the_terminal(lab: LabProcess, term: Terminal) -> None:
    term.configure(lab)
    ok(term("deploy", "capture", "3", "as", "pw"))

    def shown() -> dict[str, str]:
        [env] = ok(term("status", "pw", "--json")).json["environments"]
        return {c["name"]: c["power_state"] for c in env["clones"]}

    def in_lab() -> set[str]:
        return {vm["power_state"] for vm in clones_of(lab).values()}

    assert set(shown().values()) == {"poweredOff"}
    assert "3 done, 0 failed" in ok(term("power", "on", "pw")).out
    assert in_lab() == {"poweredOn"} and set(shown().values()) == {"poweredOn"}
    assert "on " in ok(term("status", "pw")).out

    lab.control.reset()
    reset = ok(term("power", "reset", "pw", "--json"))
    assert len(reset.json["done"]) == 3
    assert lab.control.stats()["requests"]["ResetVM_Task"] == 3
    assert in_lab() == {"poweredOn"}

    ok(term("power", "off", "pw"))
    assert in_lab() == {"poweredOff"} and set(shown().values()) == {"poweredOff"}

    # A reset of powered-off clones does nothing and says so; status still says off.
    refused = term("power", "reset", "pw")
    assert refused.code == options.EXIT_PARTIAL
    assert "0 done, 3 failed" in refused.out and "powered off" in refused.out
    assert in_lab() == {"poweredOff"} and set(shown().values()) == {"poweredOff"}

    before = vms(lab)
    bad = term("power", "sideways", "pw")
    assert_clean_failure(bad, '"sideways" is not a power action', "on, off or reset")
    assert bad.code == options.EXIT_USAGE
    assert_clean_failure(term("power", "on", "nope"), 'No environment named "nope"')
    assert_clean_failure(term("power", "on"), "power on nov-cohort")
    assert vms(lab) == before


# =========================================================================== 6. plan, guard
def test_plan_from_the_terminal(lab: LabProcess, term: Terminal) -> None:
    term.configure(lab, capacity_headroom_gb=10)
    before = vms(lab)
    shown = ok(term("plan", "capture", "25"))
    assert "Thick, full clones" in shown.out and "275.00" in shown.out
    assert "Thin, full clones" in shown.out and "83.50" in shown.out
    assert "Linked clones" in shown.out and "28.34" in shown.out
    assert "Datastore TrainingDS: 480.00 GB free" in shown.out and "fits" in shown.out
    data = ok(term("plan", "capture", "25", "packaging", "5", "and", "power", "on", "--json")).json
    assert data["estimate"]["clones"] == 30 and data["power_on"] is True and data["fits"]
    [ds] = data["datastores"]
    assert ds["swap_bytes"] == 30 * 2**30 and ds["needed_bytes"] == 60 * 2**30
    assert vms(lab) == before
    assert_clean_failure(term("plan", "nope", "3"), 'Unknown type "nope"')
    assert_clean_failure(term("plan", "capture"), "how many")
    assert_clean_failure(term("plan", "capture", "0"))
    assert term.recorded() == (0, 0)


def test_capacity_guard_from_the_terminal(make_lab: MakeLab, term: Terminal) -> None:
    # 20 GB free, 10 GB headroom: 6 clones need 6 GB, or 12 GB with their 1 GB swap files.
    lab = make_lab({"datastores": [{"name": "TrainingDS", "capacity_gb": 500, "free_gb": 20}]})
    term.configure(lab, capacity_headroom_gb=10)
    ok(term("plan", "capture", "6"))
    tight = term("plan", "capture", "6", "and", "power", "on")
    assert tight.code == 1 and "DOES NOT FIT" in tight.out and "swap" in tight.out

    before = vms(lab)
    refused = term("deploy", "capture", "6", "as", "big", "and", "power", "on")
    assert_clean_failure(refused, "Datastore TrainingDS has 20.00 GB free", "swap", "headroom")
    assert vms(lab) == before
    assert term.recorded() == (0, 0)
    assert_clean_failure(term("deploy", "capture", "101", "as", "big"), "maximum of 100")
    assert_clean_failure(term("deploy", "capture", "0", "as", "big"))
    assert vms(lab) == before
    assert term.recorded() == (0, 0)

    ok(term("deploy", "capture", "6", "as", "big"))
    assert len(clones_of(lab)) == 6
    assert {vm["power_state"] for vm in clones_of(lab).values()} == {"poweredOff"}


# ============================================================================== 7. inventory
def test_inventory_from_the_terminal(lab: LabProcess, term: Terminal) -> None:
    term.configure(lab, types=types_with(capture={"attributes": ASSET_ATTRIBUTES}))
    ok(term("deploy", "capture", "3", "as", "inv"))
    ok(term("deploy", "packaging", "1", "as", "other"))
    rows = clones_of(lab)
    for n in (1, 2, 3):
        assert rows[f"TRN-CAP-{n:03}"]["custom"]["AssetTag"] == f"TRN-{n:04}"
        assert rows[f"TRN-CAP-{n:03}"]["custom"]["CostCentre"] == "TR-01"

    text = ok(term("inventory", "inv")).out
    assert "TRN-CAP-001" in text and "AssetTag=TRN-0001" in text and "CostCentre=TR-01" in text
    assert "TRN-PKG-001" not in text

    table = ok(term("--csv", "inventory", "inv")).out
    parsed = list(csv.reader(io.StringIO(table)))
    header, body = parsed[0], parsed[1:]
    assert header[:3] == ["name", "type", "parent"]
    assert {"environment", "power_state", "committed_gb", "AssetTag", "CostCentre"} <= set(header)
    assert len(body) == 3
    records = [dict(zip(header, row, strict=True)) for row in body]
    assert sorted(r["name"] for r in records) == ["TRN-CAP-001", "TRN-CAP-002", "TRN-CAP-003"]
    for r in records:
        n = int(r["name"][-3:])
        assert r["AssetTag"] == f"TRN-{n:04}" and r["CostCentre"] == "TR-01"
        assert r["environment"] == "inv" and r["parent"] == "Capture"
        assert r["deployed_by"] == "trainer" and r["power_state"] == "poweredOff"
        assert r["host"] == rows[r["name"]]["host"]

    everything = list(csv.reader(io.StringIO(ok(term("inventory", "--csv")).out)))
    assert len(everything) == 1 + 4
    assert_clean_failure(term("inventory", "nope"), 'No environment named "nope"')


# ================================================================================ 8. refresh
def test_refresh_from_the_terminal(lab: LabProcess, term: Terminal, tmp_path: Path) -> None:
    term.configure(lab, types=types_with(capture={"attributes": ASSET_ATTRIBUTES}))
    ok(term("deploy", "capture", "3", "as", "cohort", "and", "power", "on"))
    lab.control.add_vm(
        "TRN-CAP-900", folder="Training", parent_like="Capture",
        custom={"ManagedBy": "clones", "Environment": "cohort"}, linked=True,
    )  # fmt: skip
    old = clones_of(lab)
    with adapter(lab, tmp_path) as vc:
        assert vc.power([old["TRN-CAP-002"]["moref"]], "off") == [None]
    assert clones_of(lab)["TRN-CAP-002"]["power_state"] == "poweredOff"
    with adapter(lab, tmp_path) as vc:
        parent = vc.parent_entity("Capture").obj
        snap = run_task(parent.CreateSnapshot_Task(name="clones-base", memory=False, quiesce=False))
    new_snapshot = str(snap._moId)
    old = clones_of(lab)

    # Without --yes (no terminal to ask on) nothing happens.
    assert_clean_failure(term("refresh", "cohort"), "refresh cohort --yes")
    assert clones_of(lab) == old

    done = ok(term("refresh", "cohort", "--yes", "--json")).json
    assert done["refreshed"] == ["TRN-CAP-001", "TRN-CAP-002", "TRN-CAP-003"]
    assert done["state"] == "succeeded" and done["failed"] == []
    now = clones_of(lab)
    for name in done["refreshed"]:
        assert now[name]["moref"] != old[name]["moref"]
        assert now[name]["snapshot"] == new_snapshot != old[name]["snapshot"]
        assert now[name]["linked"]
        assert now[name]["custom"]["AssetTag"] == old[name]["custom"]["AssetTag"]
        assert now[name]["custom"]["Environment"] == "cohort"
    assert now["TRN-CAP-001"]["power_state"] == "poweredOn"
    assert now["TRN-CAP-002"]["power_state"] == "poweredOff"
    assert now["TRN-CAP-900"] == old["TRN-CAP-900"]
    recorded = term.clones("cohort")
    assert {n: c.moref for n, c in recorded.items()} == {n: now[n]["moref"] for n in recorded}

    before = vms(lab)
    assert_clean_failure(term("refresh", "nope", "--yes"), 'No environment named "nope"')
    assert_clean_failure(term("refresh", "--yes"), "refresh nov-cohort")
    assert vms(lab) == before


# ======================================================================= the console script
def test_admin_verbs_through_the_clones_console_script(lab: LabProcess, term: Terminal) -> None:
    term.configure(lab, types=types_with(capture={"attributes": ASSET_ATTRIBUTES}))
    planned = term.subprocess("plan", "capture", "3", "--json")
    assert planned.code == 0, planned.err
    assert planned.json["estimate"]["clones"] == 3
    prepared = term.subprocess("prepare", "capture")
    assert prepared.code == 0 and "Created base snapshot" in prepared.out, prepared
    deployed = term.subprocess("deploy", "capture", "3", "as", "cs", "and", "power", "on")
    assert deployed.code == 0, deployed.err
    off = term.subprocess("power", "off", "cs")
    assert off.code == 0 and "3 done" in off.out, off
    assert {vm["power_state"] for vm in clones_of(lab).values()} == {"poweredOff"}
    listed = term.subprocess("inventory", "cs", "--csv")
    assert listed.code == 0 and len(listed.out.strip().splitlines()) == 4, listed
    bad = term.subprocess("power", "sideways", "cs")
    assert_clean_failure(Result(bad.code, bad.out, bad.err), "not a power action")
