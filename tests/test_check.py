"""`clones check` and the deployment's pre-flight against the lab vCenter: a missing privilege
(the lab answers privilege queries from its spec), a missing VM folder, and what changes nothing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pyVim.connect import Disconnect, SmartConnect

from bot.adapters.lab import LabError, LabProcess, validate_spec_data
from bot.domain.errors import NotFoundError, VCenterError
from bot.services.check import Checker
from bot.services.preflight import PRIVILEGES
from tests.helpers import MakeApp, MakeLab, deploy, types_with, vms
from tests.terminal import Terminal, assert_clean_failure

ROOT = Path(__file__).resolve().parent.parent
CREATE = "VirtualMachine.Inventory.CreateFromExisting"


def held_privileges(lab: LabProcess) -> list[str]:
    """What the lab's user holds on the vCenter root, asked as any client would."""
    info = lab.info
    si = SmartConnect(
        host=info.host, port=info.port, user=info.user, pwd=info.password, protocol="http"
    )
    try:
        content = si.RetrieveContent()
        [result] = content.authorizationManager.FetchUserPrivilegeOnEntities(
            entities=[content.rootFolder], userName=info.user
        )
        return list(result.privileges)
    finally:
        Disconnect(si)


@pytest.mark.lab
def test_check_passes_on_the_lab(lab: LabProcess, term: Terminal) -> None:
    before = lab.control.stats()["requests"]
    term.configure(lab)
    result = term("check")
    assert result.code == 0, result.out
    lines = result.out.strip().splitlines()
    assert lines[-1] == "All checks passed: ready to deploy."
    assert lines[0].startswith("ok       connection: VMware vCenter Server")
    assert "note     tls: vCenter's certificate is not verified" in result.out
    assert not [line for line in lines if line.startswith("PROBLEM")]
    for t in ("capture", "packaging", "verification"):
        assert f'ok       {t} folder: VM folder "Training" found.' in lines
    assert "ok       privileges: The service account holds every privilege" in result.out
    changing = {"CloneVM_Task", "CreateSnapshot_Task", "AddCustomFieldDef", "SetField"}
    assert not changing & set(lab.control.stats()["requests"]) - set(before)


@pytest.mark.lab
def test_a_missing_privilege_is_reported_and_deploy_stops_first(
    lab: LabProcess, term: Terminal, make_app: MakeApp
) -> None:
    held = held_privileges(lab)
    assert CREATE in held and {p.id for p in PRIVILEGES} <= set(held)
    lab.control.configure(privileges=[p for p in held if p != CREATE])
    assert CREATE not in held_privileges(lab)

    term.configure(lab)
    result = term("check")
    assert result.code == 1
    [line] = [x for x in result.out.splitlines() if x.startswith("PROBLEM")]
    assert line == (
        "PROBLEM  privileges on folder Training: The service account lacks "
        f'{CREATE} on VM folder "Training" (needed for clone). Fix: Add them to the '
        "account's role, assigned on this object or above it with Propagate to children "
        "(docs/vcenter.md has the role recipe)."
    )

    app = make_app(lab)
    before = vms(lab)
    lab.control.reset()
    with pytest.raises(VCenterError, match=f"lacks {CREATE}.*Nothing was created"):
        deploy(app, "deploy capture 3 as cohort")
    requests = lab.control.stats()["requests"]
    assert "CloneVM_Task" not in requests and "CreateSnapshot_Task" not in requests
    assert vms(lab) == before and app.repo.clones() == []


@pytest.mark.lab
def test_only_what_a_deployment_uses_is_required_of_it(lab: LabProcess, make_app: MakeApp) -> None:
    # Without Reset (the `power reset` command), a deployment still runs; check reports it.
    held = held_privileges(lab)
    lab.control.configure(privileges=[p for p in held if p != "VirtualMachine.Interact.Reset"])
    app = make_app(lab)
    assert len(deploy(app, "deploy capture 2 as cohort").ready) == 2
    report = Checker(app.use_cases).run()
    [problem] = report.problems
    assert "VirtualMachine.Interact.Reset" in problem.text and "(needed for power)" in problem.text


@pytest.mark.lab
def test_a_missing_folder_is_found_before_any_clone(
    lab: LabProcess, make_app: MakeApp, term: Terminal
) -> None:
    types = types_with(capture={"folder": "Training/Nowhere"})
    app = make_app(lab, types=types)
    lab.control.reset()
    with pytest.raises(NotFoundError) as info:
        deploy(app, "deploy capture 25 as cohort")
    assert str(info.value) == (
        'VM folder "Training/Nowhere" not found in datacenter DC0. Fix: Create the VM folder '
        "(VMs and Templates view, New Folder) or fix [types.capture] folder."
    )
    requests = lab.control.stats()["requests"]
    assert "CloneVM_Task" not in requests and "CreateSnapshot_Task" not in requests
    assert app.repo.clones() == [] and app.repo.list_environments() == []

    term.configure(lab, types=types)
    result = term("deploy", "capture", "25", "as", "cohort")
    assert_clean_failure(result, 'VM folder "Training/Nowhere" not found')
    check = term("check")
    assert check.code == 1
    assert 'PROBLEM  capture folder: VM folder "Training/Nowhere" not found' in check.out


@pytest.mark.lab
def test_check_in_json_and_without_vcenter(term: Terminal) -> None:
    term.configure(None)  # nothing listens there
    result = term("--json", "check")
    assert result.code == 1
    data = result.json
    assert data["ok"] is False
    [finding] = data["findings"]
    assert finding["level"] == "problem" and finding["subject"] == "connection"
    assert "unreachable" in finding["text"]


@pytest.mark.lab
def test_lab_spec_privileges_are_validated(lab_binary: Path) -> None:
    """The lab binary checks the spec (`clones-lab --check`)."""
    spec = {"parents": [{"name": "P", "disk_gb": 1}], "privileges": ["System.Read"]}
    assert validate_spec_data(spec)["privileges"] == ["System.Read"]
    with pytest.raises(LabError, match=r'privileges\[0\]: "Read" is not a privilege id'):
        validate_spec_data({**spec, "privileges": ["Read"]})


def test_every_privilege_is_documented() -> None:
    doc = (ROOT / "docs" / "vcenter.md").read_text(encoding="utf-8")
    for p in PRIVILEGES:
        assert f"`{p.id}`" in doc, p.id
    groups = "System|VirtualMachine|Resource|Datastore|Network|Global|Host|Sessions"
    documented = set(re.findall(rf"`((?:{groups})(?:\.[A-Z][A-Za-z]+)+)`", doc))
    listed = {p.id for p in PRIVILEGES} | {"System.View", "System.Anonymous"}
    assert documented <= listed, documented - listed


@pytest.mark.lab
def test_make_lab_accepts_privileges(make_lab: MakeLab) -> None:
    lab = make_lab({"privileges": ["System.Read", "System.View"]})
    assert sorted(held_privileges(lab)) == ["System.Read", "System.View"]
    assert lab.control.config()["privileges"] == ["System.Read", "System.View"]
