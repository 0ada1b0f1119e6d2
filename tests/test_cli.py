"""The `clones` CLI against the lab vCenter: in-process through bot.bootstrap.cli, and as a
subprocess.

Each test writes a clones.toml under tmp_path that targets its own lab, points CLONES_CONFIG at
it and passes the password in CLONES_VCENTER_PASSWORD, as an operator would.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bot.adapters.lab import LabProcess
from bot.cli import main as cli
from bot.cli import options
from bot.domain.models import CloneState
from bot.domain.provenance import read_provenance
from storage import Repository
from tests.helpers import LAB_TYPES, PASSWORD_ENV, set_state
from tests.terminal import Terminal, assert_clean_failure
from tests.vsphere import Admin

pytestmark = pytest.mark.lab

CLONE_ATTRIBUTES = {"ManagedBy", "Environment", "DeployedFrom"}
MakeLab = Callable[[dict[str, Any]], LabProcess]


def lab_state(lab: LabProcess) -> dict[tuple[str, str], dict[str, Any]]:
    return {(vm["folder"], vm["name"]): vm for vm in lab.control.vms()}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ------------------------------------------------------------------------------------------------
# the "done when", as an operator types it


def test_deploy_status_savings_teardown_through_the_clones_command(
    lab: LabProcess, term: Terminal
) -> None:
    term.configure(lab)
    lab.control.add_vm("TRN-CAP-001", folder="Parents", parent_like="Capture")
    lab.control.add_vm(
        "forged", folder="Training", parent_like="Capture",
        custom={"ManagedBy": "clones", "Environment": "demo"},
    )  # fmt: skip
    before = lab_state(lab)

    deployed = term.subprocess("deploy", "capture", "25", "as", "demo", "--json")
    assert deployed.code == 0, deployed.err
    assert "Traceback" not in deployed.err
    body = deployed.json
    assert body["state"] == "succeeded" and len(body["ready"]) == 25 and body["failed"] == []
    clones = {
        vm["name"]: vm
        for vm in lab.control.vms()
        if vm["folder"] == "Training" and vm["name"].startswith("TRN-CAP-")
    }
    assert sorted(clones) == sorted(body["ready"])
    for vm in clones.values():
        assert vm["linked"] and vm["parent"] == "Capture"
        assert set(vm["custom"]) >= CLONE_ATTRIBUTES
        assert vm["custom"]["Environment"] == "demo"
        assert read_provenance(vm["notes"])["DeployedBy"] == "trainer"

    status = term.subprocess("status", "--json")
    assert status.code == 0, status.err
    [env] = status.json["environments"]
    assert env["name"] == "demo"
    assert len(env["clones"]) == 25
    assert {(c["type"], c["state"]) for c in env["clones"]} == {("capture", "ready")}
    assert sorted(c["name"] for c in env["clones"]) == sorted(clones)

    savings = term.subprocess("savings", "demo", "--json")
    assert savings.code == 0, savings.err
    figures = savings.json
    assert figures["clones"] == 25
    assert (figures["thick_gb"], figures["thin_gb"], figures["linked_gb"]) == (275.0, 83.5, 6.59)
    assert figures["saved_vs_thin_gb"] == pytest.approx(76.91, abs=0.01)
    assert figures["saved_vs_thick_gb"] == pytest.approx(268.41, abs=0.01)

    stripped = term.subprocess("teardown", "demo", "--yes", "--json")
    assert stripped.code == 0, stripped.err
    assert sorted(stripped.json["destroyed"]) == sorted(clones)
    after = lab_state(lab)
    assert after == {k: v for k, v in after.items() if k in before}
    assert set(before) - set(after) == set()  # parents, snapshots and decoys all still there
    for key, vm in before.items():
        assert after[key]["moref"] == vm["moref"]
    assert after[("Parents", "Capture")]["snapshots"] == 1


def test_savings_json_shows_the_origin_figures(lab: LabProcess, term: Terminal) -> None:
    term.configure(lab)
    deployed = term("deploy", "capture", "25", "packaging", "25", "verification", "25", "as",
                    "origin", "--json")  # fmt: skip
    assert deployed.code == 0, deployed.err
    assert len(deployed.json["ready"]) == 75

    result = term("savings", "--json")
    assert result.code == 0, result.err
    s = result.json
    assert s["clones"] == 75
    assert (s["thick_gb"], s["thin_gb"], s["linked_gb"]) == (675.0, 238.75, 19.3)
    assert s["saved_vs_thin_gb"] == pytest.approx(219.45, abs=0.01)
    assert s["saved_vs_thick_gb"] == pytest.approx(655.7, abs=0.01)
    assert {p["parent"]: p["clones"] for p in s["by_parent"]} == {
        "Capture": 25,
        "Packaging": 25,
        "Verification": 25,
    }

    table = term("savings", "origin")
    assert table.code == 0
    for figure in ("675.00", "238.75", "19.30"):
        assert figure in table.out

    chart = term.tmp_path / "savings.png"
    charted = term("savings", "origin", "--chart", str(chart))
    assert charted.code == 0, charted.err
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_deploy_more_and_partial_runs_exit_codes(lab: LabProcess, term: Terminal) -> None:
    term.configure(lab)
    assert term("deploy", "capture", "2", "as", "cohort").code == 0
    lab.control.configure(faults={"fail_nth": [2], "fault": "InvalidArgument"})
    lab.control.reset()

    partial = term("deploy", "capture", "3", "as", "cohort", "--json")

    assert partial.code == options.EXIT_PARTIAL
    body = partial.json
    assert body["state"] == "partial" and len(body["ready"]) == 2
    [failed] = body["failed"]
    assert "InvalidArgument" in failed["error"]
    names = sorted([*body["ready"], failed["name"]])
    assert names == ["TRN-CAP-003", "TRN-CAP-004", "TRN-CAP-005"]
    status = term("status", "cohort", "--json").json
    [env] = status["environments"]
    states = sorted(c["state"] for c in env["clones"])
    assert states == ["failed"] + ["ready"] * 4


def test_an_environment_of_failed_records_is_listed_and_cleared(
    lab: LabProcess, term: Terminal
) -> None:
    # Every clone of a deployment failed: the environment holds failed records only. `status`
    # lists it with its failures (it was hidden: "No environments"), and `teardown` clears the
    # records, whose VMs never came to be, saying so, exit 0 (it was "no clones", exit 1).
    term.configure(lab)
    lab.control.configure(faults={"fail_nth": [1, 2], "fault": "InvalidArgument"})
    lab.control.reset()
    assert term("deploy", "capture", "2", "as", "broken").code == options.EXIT_ERROR
    before = lab_state(lab)

    listed = term("status")
    assert listed.code == 0, listed.err
    assert "broken: 0 live clones, 2 failed, owner trainer" in listed.out
    assert "failed: TRN-CAP-001: " in listed.out and "InvalidArgument" in listed.out
    assert "clones teardown broken clears failed records" in listed.out
    [env] = term("status", "--json").json["environments"]
    assert env["name"] == "broken" and env["counts"] == {"capture": {"failed": 2}}
    assert [f["name"] for f in env["failures"]] == ["TRN-CAP-001", "TRN-CAP-002"]

    cleared = term("teardown", "broken", "--yes")
    assert cleared.code == 0, cleared.out + cleared.err
    assert "2 failed records cleared, no VM in vCenter: TRN-CAP-001, TRN-CAP-002" in cleared.out
    assert "Traceback" not in cleared.out + cleared.err
    assert lab_state(lab) == before  # nothing in vCenter touched
    assert {c.state.value for c in term.clones("broken").values()} == {"destroyed"}
    assert "No environments" in term("status").out
    again = term("teardown", "broken", "--yes")
    assert_clean_failure(again, "no clones to strip back and no failed records")


def test_a_strip_back_destroys_a_vm_left_of_a_failed_record_only_when_it_is_ours(
    lab: LabProcess, term: Terminal
) -> None:
    # Records that say missing, though their VMs are there (vCenter had lost them for a while):
    # the strip back destroys such a VM through its normal path, when it proves to be the
    # bot's, and leaves one relabelled by someone else alone.
    term.configure(lab)
    assert term("deploy", "capture", "3", "as", "cohort").code == 0
    records = term.clones("cohort")
    with Repository(term.database) as repo:
        for name in ("TRN-CAP-001", "TRN-CAP-002"):
            set_state(repo, records[name].id, CloneState.MISSING, error="was gone")
    admin = Admin(lab)
    try:
        admin.relabel(records["TRN-CAP-002"].moref or "", "Environment", "elsewhere")
    finally:
        admin.close()

    stripped = term("teardown", "cohort", "--yes", "--json")
    assert stripped.code == options.EXIT_PARTIAL, stripped.out + stripped.err
    body = stripped.json
    assert sorted(body["destroyed"]) == ["TRN-CAP-001", "TRN-CAP-003"]
    assert [f["name"] for f in body["skipped"]] == ["TRN-CAP-002"]
    assert body["cleared"] == []
    left = {vm["name"] for vm in lab.control.vms() if vm["folder"] == "Training"}
    assert left == {"TRN-CAP-002"}


def test_status_shows_no_power_state_for_a_missing_or_failed_clone(
    lab: LabProcess, term: Terminal
) -> None:
    term.configure(lab)
    assert term("deploy", "capture", "2", "as", "cohort", "and", "power", "on").code == 0
    records = term.clones("cohort")
    admin = Admin(lab)
    try:
        admin.destroy(records["TRN-CAP-002"].moref or "")
    finally:
        admin.close()
    assert term("resume").code == 0  # records it missing (its power state was "on")
    assert term.clones("cohort")["TRN-CAP-002"].state is CloneState.MISSING

    shown = term("status", "cohort")
    lines = {line.split()[0]: line.split() for line in shown.out.splitlines() if "TRN-" in line}
    assert lines["TRN-CAP-001"][2:4] == ["ready", "on"]
    assert lines["TRN-CAP-002"][2] == "missing" and "on" not in lines["TRN-CAP-002"]
    [env] = term("status", "cohort", "--json").json["environments"]
    power = {c["name"]: c["power_state"] for c in env["clones"]}
    assert power == {"TRN-CAP-001": "poweredOn", "TRN-CAP-002": None}


def test_teardown_needs_confirmation_off_a_terminal(lab: LabProcess, term: Terminal) -> None:
    term.configure(lab)
    assert term("deploy", "capture", "2", "as", "cohort").code == 0
    before = lab_state(lab)
    result = term.subprocess("teardown", "cohort")
    assert_clean_failure(result, "--yes")
    assert lab_state(lab) == before


def test_types_and_help(lab: LabProcess, term: Terminal) -> None:
    term.configure(lab)
    types = term("types", "--json")
    assert types.code == 0, types.err
    rows = {t["type"]: t for t in types.json["types"]}
    assert set(rows) == {"capture", "packaging", "verification"}
    assert rows["capture"]["readiness"] == "needs snapshot"
    assert rows["capture"]["provisioned_gb"] == 11.0 and rows["capture"]["used_gb"] == 3.34
    helped = term("help")
    assert helped.code == 0 and "deploy" in helped.out


# ------------------------------------------------------------------------------------------------
# bad input: one line naming the problem and the fix, non-zero exit, nothing created or destroyed


@pytest.mark.parametrize(
    ("words", "fragments"),
    [
        (
            ["deploy", "captur", "5", "as", "cohort"],
            ['Unknown type "captur"', 'Did you mean "capture"'],
        ),
        (["deploy", "capture", "0", "as", "cohort"], ["capture"]),
        (["deploy", "capture", "-3", "as", "cohort"], ["capture"]),
        (["deploy", "capture", "101", "as", "cohort"], ["maximum of 100", "at most 100"]),
        (["deploy", "capture", "5", "as", "Bad_Name!"], ["Bad_Name!"]),
        (["teardown", "nowhere", "--yes"], ['No environment named "nowhere"', "status"]),
        (["savings", "nowhere"], ['No environment named "nowhere"']),
        (["frobnicate"], ["frobnicate"]),
    ],
    ids=["unknown-type", "zero", "negative", "over-max", "bad-env", "unknown-env",
         "unknown-env-savings", "unknown-verb"],
)  # fmt: skip
def test_bad_commands(
    lab: LabProcess, term: Terminal, words: list[str], fragments: list[str]
) -> None:
    term.configure(lab)
    before = lab_state(lab)
    result = term(*words)
    assert_clean_failure(result, *fragments)
    # A command that cannot be understood is exit 2; a well-formed one naming nothing is 1.
    assert result.code == (1 if fragments[0].startswith("No environment") else 2)
    assert lab_state(lab) == before
    assert term.recorded() == (0, 0)


def test_edges_of_the_terminal_never_crash(lab: LabProcess, term: Terminal, tmp_path: Path) -> None:
    term.configure(lab)
    assert term("deploy", "capture", "3", "as", "edges").code == 0
    # A reader that stops early (`| head -1`): no traceback, no "internal error".
    proc = subprocess.run(
        f"{' '.join(_clones_argv())} status edges | head -1",
        shell=True,
        env={**os.environ, **term.env},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.stdout.startswith("edges")
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr, proc.stderr
    # Unusable options are refused before anything happens, with the fix in the message.
    (tmp_path / "charts").mkdir()
    for args, fragments in (
        (["--chart", "charts", "savings"], ["is a folder", "savings.png"]),
        (["--chart", "nowhere/s.png", "savings"], ["does not exist"]),
        (["--config", str(tmp_path), "status"], ["is a folder", "clones.toml"]),
        (["prepare", "foo"], ['Unknown type "foo"']),
        (["deploy", "foo", "5"], ['Unknown type "foo"']),
    ):
        result = term(*args)
        assert_clean_failure(result, *fragments)
        assert result.code == (2 if args[0] in ("--chart", "prepare", "deploy") else 1), args
    assert term.recorded() == (1, 3)


def _clones_argv() -> list[str]:
    exe = shutil.which("clones")
    return [exe] if exe else [sys.executable, "-c", "from bot.bootstrap import cli; cli()"]


def test_a_crash_report_is_the_users_own(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        first = cli._write_crash_report()
        second = cli._write_crash_report()
    assert first != second and first.parent == tmp_path / "state" / "clones" / "crashes"
    assert "RuntimeError: boom" in first.read_text()
    assert oct(first.stat().st_mode & 0o777) == "0o600"


def test_teardown_of_an_unknown_environment_destroys_nothing(
    lab: LabProcess, term: Terminal
) -> None:
    term.configure(lab)
    assert term("deploy", "capture", "2", "as", "cohort").code == 0
    before = lab_state(lab)
    result = term("teardown", "cohrot", "--yes")
    assert_clean_failure(result, 'No environment named "cohrot"', 'Did you mean "cohort"')
    assert lab_state(lab) == before
    assert term.recorded() == (1, 2)


def test_vcenter_unreachable(term: Terminal) -> None:
    term.configure(None, url=f"http://127.0.0.1:{free_port()}/sdk")
    for command in (["deploy", "capture", "2", "as", "cohort"], ["types"]):
        # `types` too: a connection failure is one error line and exit 1, not a readiness
        # of each type with exit 0.
        result = term.subprocess(*command)
        assert_clean_failure(result, "unreachable", "[vcenter] url")
        assert result.out == ""
    assert term.recorded() == (0, 0)


def test_wrong_credentials(lab: LabProcess, term: Terminal) -> None:
    term.configure(lab, password="not-the-password")
    before = lab_state(lab)
    result = term.subprocess("deploy", "capture", "2", "as", "cohort")
    assert_clean_failure(result, "refused the login", PASSWORD_ENV)
    assert lab_state(lab) == before
    assert term.recorded() == (0, 0)


def test_missing_password(lab: LabProcess, term: Terminal) -> None:
    term.configure(lab)
    term.monkeypatch.delenv(PASSWORD_ENV)
    result = term("deploy", "capture", "2", "as", "cohort")
    assert_clean_failure(result, "credentials are missing", PASSWORD_ENV)
    assert term.recorded() == (0, 0)


def test_parent_missing(lab: LabProcess, term: Terminal) -> None:
    term.configure(lab, types={"capture": {**LAB_TYPES["capture"], "parent": "Nowhere"}})
    before = lab_state(lab)
    result = term("deploy", "capture", "2", "as", "cohort")
    assert_clean_failure(result, 'Parent VM "Nowhere" not found', "type's parent")
    assert lab_state(lab) == before
    assert term.recorded() == (0, 0)


def test_parent_powered_on_without_snapshot(lab: LabProcess, term: Terminal) -> None:
    lab.control.add_vm("Hot", folder="Parents", parent_like="Capture", power_state="poweredOn")
    hot = {**LAB_TYPES["capture"], "parent": "Hot", "name_pattern": "TRN-HOT-{n:03}"}
    term.configure(lab, types={**LAB_TYPES, "hot": hot})
    before = lab_state(lab)
    result = term("deploy", "capture", "2", "hot", "2", "as", "cohort")
    assert_clean_failure(result, 'Parent "Hot"', "powered on", "Shut it down")
    assert lab_state(lab) == before
    assert term.recorded() == (0, 0)


def test_datastore_too_small(make_lab: MakeLab, term: Terminal) -> None:
    lab = make_lab({"datastores": [{"name": "TrainingDS", "capacity_gb": 500, "free_gb": 3}]})
    term.configure(lab)
    before = lab_state(lab)
    result = term("deploy", "capture", "25", "as", "cohort")
    assert_clean_failure(result, "Datastore TrainingDS has 3.00 GB free", "deploy fewer")
    assert lab_state(lab) == before
    assert term.recorded() == (0, 0)


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("[vcenter\nurl = 1", ["not valid TOML"]),
        ('[vcenter]\nurl = "lab"\n', ["[types.NAME]"]),
        ('[vcenter]\nurl = "lab"\npassword = "x"\n[types.a]\nparent = "P"\n', ["password"]),
        ('[vcenter]\nurl = "vcenter.example.com"\n[types.a]\nparent = "P"\n', ["is not a URL"]),
    ],
    ids=["toml", "no-types", "password-in-file", "bad-url"],
)
def test_malformed_config(term: Terminal, text: str, fragments: list[str]) -> None:
    term.configure(None)
    term.config.write_text(text, encoding="utf-8")
    result = term.subprocess("deploy", "capture", "2", "as", "cohort")
    assert_clean_failure(result, str(term.config), *fragments)
    assert term.recorded() == (0, 0)


def test_missing_config_file(term: Terminal) -> None:
    term.configure(None)
    term.config.unlink()
    result = term("status")
    assert_clean_failure(result, "not found", "CLONES_CONFIG")


@pytest.mark.parametrize(
    ("spec", "fragments"),
    [
        ("{not json", ["not valid JSON"]),
        (json.dumps({"datacenter": "DC0"}), ['no "parents"']),
        (
            json.dumps({"parents": [{"name": "P", "disk_gb": 8, "cluster": "Nowhere"}]}),
            ["Nowhere"],
        ),
        (json.dumps({"parents": [{"name": "P", "disk_gb": 8, "colour": "red"}]}), ["colour"]),
    ],
    ids=["json", "no-parents", "unknown-cluster", "unknown-field"],
)
def test_malformed_lab_spec(term: Terminal, spec: str, fragments: list[str]) -> None:
    path = term.tmp_path / "bad-spec.json"
    path.write_text(spec, encoding="utf-8")
    result = term("lab", "up", "--spec", str(path), "--port", str(free_port()))
    assert_clean_failure(result, "bad-spec.json", *fragments)
    assert not (term.tmp_path / ".lab" / "lab.json").exists()
