"""Status tells the truth: records compared with vCenter, drift shown beside each clone; resume
records what vanished; a strip back names what was renamed and leaves what was relabelled."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.adapters.lab import LabProcess
from bot.domain.models import CloneState
from tests.faults import Clones, clone_vms
from tests.helpers import MakeApp, deploy
from tests.terminal import Terminal
from tests.vsphere import Admin

pytestmark = pytest.mark.lab


@pytest.fixture
def admin(lab: LabProcess) -> Iterator[Admin]:
    a = Admin(lab)
    yield a
    a.close()


def test_status_shows_what_changed_behind_the_bots_back(
    lab: LabProcess, make_app: MakeApp, admin: Admin
) -> None:
    app = make_app(lab)
    deploy(app, "deploy capture 5 as drift")
    vms = {vm["name"]: vm for vm in clone_vms(lab)}
    admin.destroy(vms["TRN-CAP-001"]["moref"])
    admin.rename(vms["TRN-CAP-002"]["moref"], "renamed-002")
    admin.power(vms["TRN-CAP-003"]["moref"], on=True)
    admin.relabel(vms["TRN-CAP-004"]["moref"], "Environment", "elsewhere")
    calls = lab.control.stats()["total"]

    [st] = app.use_cases.queries.status("drift")
    assert lab.control.stats()["total"] - calls <= 2  # one read (a page), not one per clone
    assert st.checked and not st.unchecked
    by_name = {c.name: st.drift.get(c.id) for c in st.clones}
    assert by_name["TRN-CAP-005"] is None
    assert by_name["TRN-CAP-001"] is not None and by_name["TRN-CAP-001"].missing
    assert by_name["TRN-CAP-002"] is not None and by_name["TRN-CAP-002"].renamed_to == "renamed-002"
    assert by_name["TRN-CAP-003"] is not None and by_name["TRN-CAP-003"].power == "on"
    assert by_name["TRN-CAP-004"] is not None
    assert by_name["TRN-CAP-004"].relabelled == ("Environment is 'elsewhere'",)
    # Status only reads: the records are as they were.
    assert {c.state for c in app.repo.clones(environment="drift")} == {CloneState.READY}

    # A strip back destroys the renamed clone (and says so), leaves the relabelled one alone,
    # and counts the destroyed one as already gone.
    result = app.use_cases.strip_back.teardown("drift", actor="trainer")
    assert result.renamed == {"TRN-CAP-002": "renamed-002"}
    assert result.already_gone == ["TRN-CAP-001"]
    assert sorted(result.destroyed) == ["TRN-CAP-002", "TRN-CAP-003", "TRN-CAP-005"]
    assert [f.name for f in result.skipped] == ["TRN-CAP-004"]
    assert [vm["name"] for vm in clone_vms(lab)] == ["TRN-CAP-004"]  # left alone


def test_status_in_the_terminal_and_unchecked_when_vcenter_is_away(
    lab: LabProcess, term: Terminal
) -> None:
    term.configure(lab)
    assert term("deploy", "capture", "3", "as", "seen").code == 0
    admin = Admin(lab)
    try:
        admin.rename(clone_vms(lab)[0]["moref"], "someone-else")
    finally:
        admin.close()
    shown = term("status", "seen")
    assert shown.code == 0
    assert "vCenter: 1 clone(s) differ" in shown.out and "! renamed to someone-else" in shown.out
    as_json = term("--json", "status", "seen").json["environments"][0]
    assert as_json["checked_against_vcenter"] is True
    drifts = [c["drift"] for c in as_json["clones"] if c["drift"]]
    assert drifts == [
        {
            "missing": False,
            "renamed_to": "someone-else",
            "power": "",
            "relabelled": [],
            "unseen": "",
        }
    ]

    lab.control.pause(30)
    try:
        away = term("status", "seen")
    finally:
        lab.control.pause(0)
    assert away.code == 0
    assert "vCenter not checked, records shown as they are" in away.out
    assert away.out.count("TRN-CAP-") == 3


def test_resume_records_clones_destroyed_outside_the_bot_as_missing(
    lab: LabProcess, tmp_path: Path
) -> None:
    clones = Clones(tmp_path, lab)
    assert clones.run("deploy", "capture", "3", "as", "gone").returncode == 0
    admin = Admin(lab)
    try:
        admin.destroy(clone_vms(lab)[1]["moref"])
    finally:
        admin.close()
    resumed = clones.run("resume")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "1 clones recorded as ready are gone from vCenter" in resumed.stdout
    assert "TRN-CAP-002" in resumed.stdout
    with clones.repo() as repo:
        states = {c.name: c.state for c in repo.clones(environment="gone")}
    assert states == {
        "TRN-CAP-001": CloneState.READY,
        "TRN-CAP-002": CloneState.MISSING,
        "TRN-CAP-003": CloneState.READY,
    }
    again = clones.run("resume")
    assert "Nothing to recover" in again.stdout
    # The missing clone's name is free: the next deployment reuses it.
    assert clones.run("deploy", "capture", "1", "as", "gone").returncode == 0
    assert sorted(vm["name"] for vm in clone_vms(lab)) == [f"TRN-CAP-00{n}" for n in (1, 2, 3)]
