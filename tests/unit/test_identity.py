"""A name is not an identity: what a trainee types or clicks reaches only the VM they hold, by
its record and instance UUID, and only while vCenter shows it is still that VM (the in-memory
vCenter and real SQLite; the same repro through the real Bolt app and the lab is in
tests/slack/test_identity.py).

An assignment ends in the write in which its clone leaves `ready` for good (missing, failed,
destroyed), the trainee is told, and the name comes back for another clone with nothing of the
old assignment on it."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from bot.domain import grammar
from bot.domain.errors import PermissionDenied, VCenterFault
from bot.domain.models import CloneState
from bot.domain.trainees import VmLost, VmRef
from bot.services.container import Services
from bot.services.dispatch import Invocation, dispatch, resolve_target
from storage import Repository
from tests.fakes import FakePeople, FakeVCenter
from tests.unit.test_trainees import TRAINER, run, trainee

# The trigger as migration m009 made it: an assignment ended only when its clone was destroyed.
M009_TRIGGER = """
CREATE TRIGGER assignments_end_with_clone
AFTER UPDATE OF state ON clones
WHEN NEW.state = 'destroyed' AND OLD.state != 'destroyed'
BEGIN
    UPDATE assignments
    SET ended_at = strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000+00:00', ended_reason = 'removed'
    WHERE clone_id = NEW.id AND ended_at IS NULL;
END
"""


def _act(s: Services, command: object, who: Invocation) -> Any:
    """The command's result, read by attribute (`dispatch` answers `object`)."""
    return dispatch(s, command, who)


@pytest.fixture
def people(services: Services) -> FakePeople:
    fake = FakePeople()
    for user in ("UTRAINER", "U01", "U02", "U08"):
        fake.add(user, f"Person {user}")
    services.use_cases.trainees.connect(fake, fake, staff=lambda user: user == "UTRAINER")
    return fake


def _button(s: Services, user: str) -> VmRef:
    """The identity the buttons of `user`'s VM carry (`my`, the Home tab)."""
    [vm] = s.use_cases.trainees.mine(user).vms
    return vm.ref


def _denied(s: Services, actor: str) -> list[Any]:
    return [e for e in s.repo.audit_entries(actor=actor) if e.result == "denied"]


def _course_a_for_u01(s: Services) -> VmRef:
    """Course a: one clone, powered on, given to U01; the identity their buttons carry."""
    run(s, "deploy capture 1 as course-a and power on")
    run(s, "assign course-a U01")
    return _button(s, "U01")


def _reuse_the_name_for_u08(s: Services, vcenter: FakeVCenter) -> str:
    """Course b deploys one clone: the freed name comes back, and U08 is given it."""
    run(s, "deploy capture 1 as course-b and power on")
    run(s, "assign course-b U08")
    [theirs] = s.repo.assignments(trainee="U08")
    assert theirs.clone_name == "TRN-CAP-001"
    return vcenter.named("TRN-CAP-001").moref


def _u01_reaches_nothing(s: Services, vcenter: FakeVCenter, old: VmRef, moref: str) -> None:
    """U01 typing the name, U01's old Power off and Reset buttons: refused, audited, and U08's
    VM never sees a power call."""
    calls = vcenter.calls["power"]
    for command in (
        grammar.parse("reset TRN-CAP-001"),
        grammar.parse("power off TRN-CAP-001"),  # an operator's form: refused for a trainee
        grammar.MyPower("off", ref=old),
        grammar.Reset(ref=old),
        grammar.Rebuild(ref=old),
        grammar.MyPower("off", vm="TRN-CAP-001"),  # a button posted by an older version
    ):
        if isinstance(command, grammar.Power):
            continue  # the access policy refuses it before the service (tests/slack)
        with pytest.raises(PermissionDenied, match="not your VM"):
            dispatch(s, command, trainee("U01"))
    assert vcenter.calls["power"] == calls and vcenter.vms[moref].powered_on
    assert len(_denied(s, "U01")) == 5


def test_a_name_reused_after_the_vm_went_missing_never_reaches_the_new_holder(
    services: Services, people: FakePeople, vcenter: FakeVCenter
) -> None:
    s = services
    old = _course_a_for_u01(s)
    gone = vcenter.named("TRN-CAP-001")
    del vcenter.vms[gone.moref]  # an admin deletes the VM in the vSphere Client

    run(s, "resume")  # records it missing: the assignment ends in that same write
    [clone] = s.repo.clones(environment="course-a")
    assert clone.state is CloneState.MISSING
    assert s.repo.assignments(trainee="U01") == []
    [ended] = s.repo.assignments(trainee="U01", active=False)
    assert ended.ended_reason == "missing" and ended.told_at is not None
    assert people.to("U01")[-1] == VmLost("course-a", "TRN-CAP-001", "missing")

    moref = _reuse_the_name_for_u08(s, vcenter)
    _u01_reaches_nothing(s, vcenter, old, moref)
    # U08's own button works, on U08's VM.
    assert _act(s, grammar.MyPower("off", ref=_button(s, "U08")), trainee("U08")).done == [
        "TRN-CAP-001"
    ]
    assert not vcenter.vms[moref].powered_on


def test_a_failed_rebuild_ends_the_assignment_and_the_reused_name_is_not_the_trainees(
    services: Services, people: FakePeople, vcenter: FakeVCenter
) -> None:
    s = services
    old = _course_a_for_u01(s)
    vcenter.fail_clone["TRN-CAP-001"] = VCenterFault("no", "InvalidArgument")
    result = _act(s, grammar.Rebuild(), trainee("U01"))
    assert result.refreshed == [] and result.failed
    del vcenter.fail_clone["TRN-CAP-001"]
    [clone] = s.repo.clones(environment="course-a")
    assert clone.state is CloneState.FAILED
    [ended] = s.repo.assignments(trainee="U01", active=False)
    assert ended.ended_reason == "failed" and ended.told_at is not None
    assert people.to("U01")[-1] == VmLost("course-a", "TRN-CAP-001", "failed")

    moref = _reuse_the_name_for_u08(s, vcenter)
    _u01_reaches_nothing(s, vcenter, old, moref)


def test_a_button_shown_before_a_rebuild_is_stale_and_refused(
    services: Services, people: FakePeople, vcenter: FakeVCenter
) -> None:
    s = services
    run(s, "deploy capture 2 as nov and power on")
    run(s, "assign nov U01 U02")
    before = _button(s, "U01")
    assert _act(s, grammar.Rebuild(ref=before), trainee("U01")).refreshed == ["TRN-CAP-001"]
    after = _button(s, "U01")
    assert after.clone_id == before.clone_id and after.instance_uuid != before.instance_uuid

    calls = vcenter.calls["power"]
    with pytest.raises(PermissionDenied, match="rebuilt or replaced since"):
        dispatch(s, grammar.MyPower("off", ref=before), trainee("U01"))
    assert vcenter.calls["power"] == calls
    [denied] = _denied(s, "U01")
    assert denied.command == "power off TRN-CAP-001" and "stale button" in denied.detail
    # The fresh button, and U02's identity in U01's hands (a forged value): mine only.
    assert _act(s, grammar.MyPower("off", ref=after), trainee("U01")).done == ["TRN-CAP-001"]
    with pytest.raises(PermissionDenied, match="not your VM"):
        dispatch(s, grammar.Reset(ref=_button(s, "U02")), trainee("U01"))
    assert vcenter.named("TRN-CAP-002").powered_on


@pytest.mark.parametrize("change", ["uuid", "gone", "relabelled"])
def test_a_vm_vcenter_no_longer_shows_as_recorded_is_refused_and_audited(
    services: Services, people: FakePeople, vcenter: FakeVCenter, change: str
) -> None:
    s = services
    run(s, "deploy capture 1 as nov and power on")
    run(s, "assign nov U01")
    vm = vcenter.named("TRN-CAP-001")
    if change == "uuid":
        vm.instance_uuid = "00000000-0000-0000-0000-000000000001"
    elif change == "gone":  # deleted, not yet recorded missing
        del vcenter.vms[vm.moref]
    else:
        vm.attributes["Environment"] = "elsewhere"
    calls = vcenter.calls["power"]
    for command in (grammar.Reset(), grammar.MyPower("off"), grammar.Rebuild()):
        with pytest.raises(PermissionDenied, match="not provably the VM that was assigned"):
            dispatch(s, command, trainee("U01"))
    assert vcenter.calls["power"] == calls and vcenter.calls["destroy"] == 0
    denied = _denied(s, "U01")
    assert [e.command for e in reversed(denied)] == [
        "reset TRN-CAP-001",
        "power off TRN-CAP-001",
        "rebuild TRN-CAP-001",
    ]
    assert all("not the recorded VM: TRN-CAP-001" in e.detail for e in denied)
    # An operator acting for the trainee meets the same rule, with their own advice.
    with pytest.raises(PermissionDenied, match='"status nov" shows what differs'):
        run(s, "power off <@U01>")


def test_an_operators_power_off_by_name_is_settled_by_identity(
    services: Services, people: FakePeople, vcenter: FakeVCenter
) -> None:
    """`power off TRN-CAP-001` is settled when it is typed (before Slack queues it): if the VM
    goes and its name comes back for another trainee before it runs, it runs on nothing."""
    s = services
    run(s, "deploy capture 1 as course-a and power on")
    run(s, "assign course-a U01")
    queued = resolve_target(s, grammar.parse("power off TRN-CAP-001"), TRAINER)
    assert isinstance(queued, grammar.MyPower) and queued.ref == _button(s, "U01")
    del vcenter.vms[vcenter.named("TRN-CAP-001").moref]
    run(s, "resume")
    moref = _reuse_the_name_for_u08(s, vcenter)
    with pytest.raises(PermissionDenied, match="no longer assigned to anyone"):
        dispatch(s, queued, TRAINER)
    assert _denied(s, "UTRAINER")[0].command == "power off TRN-CAP-001"
    assert vcenter.vms[moref].powered_on
    # Settled now, it names U08's VM, and powers that one off.
    now = resolve_target(s, grammar.parse("power off TRN-CAP-001"), TRAINER)
    assert _act(s, now, TRAINER).done == ["TRN-CAP-001"]
    assert not vcenter.vms[moref].powered_on


def test_a_button_value_names_the_vm_by_record_and_uuid() -> None:
    ref = VmRef(12, "4f1c2b9e-1d2a-4c3b-9e8f-0a1b2c3d4e5f", "TRN-CAP-001")
    assert ref.value == "TRN-CAP-001 12 4f1c2b9e-1d2a-4c3b-9e8f-0a1b2c3d4e5f"
    assert VmRef.parse(ref.value) == ref
    for value in ("TRN-CAP-001", "", "a b", "x 12", "x y 4f1c", "x 12 <script>", "x 1 2 3"):
        assert VmRef.parse(value) is None


def test_m012_ends_assignments_an_older_version_left_on_gone_clones(tmp_path: Path) -> None:
    """A database an older version wrote (m009's trigger: ended on `destroyed` only) with an
    assignment still active on a missing clone: opening it ends that assignment (to be told)."""
    path = tmp_path / "old.db"
    with Repository(path) as repo:
        repo.ensure_environment("nov", owner="x")
        ids = []
        for c in repo.reserve_clones(
            environment="nov",
            type="capture",
            parent="Capture",
            pattern="TRN-CAP-{n:03}",
            count=2,
            run_id=None,
        ):
            repo.update_clone(c.id, state=CloneState.CLONING, instance_uuid=f"u-{c.name}")
            repo.update_clone(c.id, state=CloneState.READY, moref=f"vm-{c.id}")
            ids.append(c.id)
        repo.assign(environment="nov", pairs=[("U01", ids[0]), ("U02", ids[1])], assigned_by="x")
    conn = sqlite3.connect(path)
    with conn:  # back to how m011 left the schema, then the clone goes missing there
        conn.execute("DELETE FROM _sqlite_migrations WHERE name LIKE 'm012%'")
        conn.execute("DROP TRIGGER assignments_end_with_clone")
        conn.execute(M009_TRIGGER)
        conn.execute("UPDATE clones SET state = 'missing' WHERE id = ?", (ids[0],))
    conn.close()

    with Repository(path) as repo:
        active = repo.assignments()
        assert [a.trainee for a in active] == ["U02"]
        [ended] = repo.assignments(trainee="U01", active=False)
        assert ended.ended_reason == "missing" and ended.told_at is None
        assert [a.id for a in repo.untold_removals()] == [ended.id]
        # And from now on the trigger ends them in the same write.
        repo.update_clone(ids[1], state=CloneState.MISSING)
        assert repo.assignments() == []
