"""The trainee services against the in-memory vCenter and workspace (tests/fakes.py) and real
SQLite: assignment (stable, refused when short), who a channel or a roster names, the hand-out,
self-service on one's own VM only, the end of the course."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.domain import grammar
from bot.domain.errors import (
    CapacityError,
    ConflictError,
    NotFoundError,
    PermissionDenied,
    UsageError,
)
from bot.domain.models import CloneState, RunKind, RunState
from bot.domain.trainees import (
    ASSIGNED_TO,
    Assigned,
    HandOut,
    HandOutProgress,
    LabEnding,
    RebuildPlan,
    VmRef,
    VmRemoved,
    read_roster,
)
from bot.services.container import Services
from bot.services.dispatch import Invocation, dispatch, plan_for, resolve_target
from bot.services.refresh import RefreshResult
from tests.fakes import FakePeople, FakeVCenter
from tests.helpers import dead_run

TRAINER = Invocation("UTRAINER", "slack", "CTRAIN", anyone=True)


def trainee(user: str) -> Invocation:
    return Invocation(user, "slack", "CTRAIN")


def run(s: Services, text: str, who: Invocation = TRAINER) -> Any:
    return dispatch(s, grammar.parse(text), who)


@pytest.fixture
def people(services: Services) -> FakePeople:
    fake = FakePeople()
    fake.add("UTRAINER", "Tina Trainer", "tina@example.com")
    for n in range(1, 6):
        fake.add(f"U0{n}", f"Trainee {n}", f"t{n}@example.com")
    services.use_cases.trainees.connect(fake, fake, staff=lambda user: user == "UTRAINER")
    return fake


def test_one_ready_clone_each_stable_when_run_again(
    services: Services, people: FakePeople, vcenter: FakeVCenter
) -> None:
    run(services, "deploy capture 4 as nov")
    first = run(services, "assign nov U02 U01")
    assert isinstance(first, Assigned)
    assert [(a.trainee, a.clone_name) for a in first.new] == [
        ("U02", "TRN-CAP-001"),
        ("U01", "TRN-CAP-002"),
    ]
    assert first.handout.sent == ["U02", "U01"] and first.kept == []

    again = run(services, "assign nov U01 U03 U02")  # one new trainee; the pairs stay
    assert [(a.trainee, a.clone_name) for a in again.new] == [("U03", "TRN-CAP-003")]
    assert sorted(a.trainee for a in again.kept) == ["U01", "U02"]
    assert again.handout.sent == ["U03"]  # the others already have theirs
    held = {a.trainee: a.clone_name for a in services.repo.assignments(environment="nov")}
    assert held == {"U01": "TRN-CAP-002", "U02": "TRN-CAP-001", "U03": "TRN-CAP-003"}

    # Two more than the one free clone: refused, naming the deploy to type, nothing changed.
    with pytest.raises(CapacityError) as refused:
        run(services, "assign nov U04 U05")
    assert '"deploy capture 1 as nov"' in str(refused.value)
    assert "Nothing was assigned" in str(refused.value)
    assert len(services.repo.assignments(environment="nov")) == 3
    assert len(people.sent) == 3


def test_a_channel_is_its_members_less_bots_and_the_people_who_run_the_lab(
    services: Services, people: FakePeople
) -> None:
    run(services, "deploy capture 3 as nov")
    people.add("UBOT", "Some bot", bot=True)
    people.add("UGONE", "Left", deleted=True)
    people.channels["CTRAIN"] = ["UTRAINER", "U01", "UBOT", "USLACKBOT", "U02", "UGONE"]
    result = run(services, "assign nov from #CTRAIN")
    assert sorted(a.trainee for a in result.new) == ["U01", "U02"]
    assert result.left_out == 4


def test_e_mail_addresses_are_looked_up_and_unknown_ones_change_nothing(
    services: Services, people: FakePeople
) -> None:
    run(services, "deploy capture 3 as nov")
    with pytest.raises(NotFoundError, match=r"nobody@example\.com"):
        run(services, "assign nov t1@example.com nobody@example.com")
    assert services.repo.assignments() == []
    result = run(services, "assign nov t1@example.com U02 T2@Example.com")
    assert [a.trainee for a in result.new] == ["U01", "U02"]  # the same person once


def test_without_slack_ids_work_and_e_mail_addresses_are_refused(services: Services) -> None:
    services.use_cases.trainees.connect(None, None, missing="SLACK_BOT_TOKEN is not set")
    run(services, "deploy capture 2 as nov")
    with pytest.raises(UsageError, match="SLACK_BOT_TOKEN is not set"):
        run(services, "assign nov t1@example.com")
    result = run(services, "assign nov U01")
    assert [a.clone_name for a in result.new] == ["TRN-CAP-001"]
    assert "not messaged: SLACK_BOT_TOKEN is not set" in result.handout.not_sent
    assert services.repo.assignments()[0].handed_out_at is None


def test_the_hand_out_carries_links_and_the_end_and_says_who_was_not_reached(
    services: Services, people: FakePeople, vcenter: FakeVCenter
) -> None:
    run(services, "deploy capture 3 as nov")
    ends = datetime.now(UTC) + timedelta(days=2, minutes=90)
    services.repo.update_environment("nov", ends_at=ends)
    people.unreachable["U02"] = "their Slack account is deactivated"
    seen: list[HandOutProgress] = []
    result = services.use_cases.trainees.assign(
        grammar.Assign("nov", ("U01", "U02", "U03")), actor="UTRAINER", on_progress=seen.append
    )
    assert result.handout.sent == ["U01", "U03"]
    assert result.handout.failed == [("U02", "their Slack account is deactivated")]
    assert [(p.sent, p.failed) for p in seen] == [(0, 0), (1, 0), (1, 1), (2, 1)]
    [message] = people.to("U01")
    assert isinstance(message, HandOut)
    moref = vcenter.named("TRN-CAP-001").moref
    assert message.vm == "TRN-CAP-001" and message.type == "capture"
    assert message.client_url == (
        f"https://127.0.0.1:9/ui/app/vm;nav=h/urn:vmomi:VirtualMachine:{moref}:fake-uuid/summary"
    )
    assert message.vmrc_url == f"vmrc://127.0.0.1:9/?moid={moref}"
    assert message.ends and "(in 2 d 1 h)" in message.ends
    # Run again: only the trainee not reached is tried again.
    del people.unreachable["U02"]
    again = run(services, "assign nov U01 U02 U03")
    assert again.handout.sent == ["U02"] and again.new == []
    assert [u for u, _ in people.sent].count("U01") == 1


def test_a_trainee_acts_on_their_own_vm_only_and_a_refusal_is_audited(
    services: Services, people: FakePeople, vcenter: FakeVCenter
) -> None:
    run(services, "deploy capture 3 as nov and power on")
    run(services, "assign nov U01 U02")
    mine = run(services, "my", trainee("U01"))
    assert [v.assignment.clone_name for v in mine.vms] == ["TRN-CAP-001"]
    assert mine.vms[0].vmrc_url.endswith(vcenter.named("TRN-CAP-001").moref)

    done = run(services, "reset", trainee("U01"))
    assert done.done == ["TRN-CAP-001"] and not done.failed
    off = run(services, "power off", trainee("U01"))
    assert off.done == ["TRN-CAP-001"]
    assert not vcenter.named("TRN-CAP-001").powered_on
    assert vcenter.named("TRN-CAP-002").powered_on  # the other trainee's VM: untouched

    calls = vcenter.calls["power"]
    for text in ("reset TRN-CAP-002", "power off <@U02>", "rebuild TRN-CAP-002", "reset TRN-X"):
        with pytest.raises(PermissionDenied, match="not your VM"):
            run(services, text, trainee("U01"))
    assert vcenter.calls["power"] == calls
    denied = [e for e in services.repo.audit_entries() if e.result == "denied"]
    assert [e.command for e in reversed(denied)] == [
        "reset TRN-CAP-002",
        "power off U02",
        "rebuild TRN-CAP-002",
        "reset TRN-X",
    ]
    assert all(e.actor == "U01" for e in denied)

    with pytest.raises(NotFoundError, match="You hold no training VM"):
        run(services, "reset", trainee("U05"))
    # The trainer may act for anyone.
    assert run(services, "power off <@U02>").done == ["TRN-CAP-002"]


def test_a_rebuild_re_creates_the_recorded_vm_same_name_and_assignment(
    services: Services, people: FakePeople, vcenter: FakeVCenter
) -> None:
    run(services, "deploy capture 2 as nov")
    run(services, "assign nov U01 U02")
    old = vcenter.named("TRN-CAP-001")
    other = vcenter.named("TRN-CAP-002")
    command = resolve_target(services, grammar.parse("rebuild"), trainee("U01"))
    [held] = services.repo.assignments(trainee="U01")
    ref = VmRef(held.clone_id, old.instance_uuid, "TRN-CAP-001")
    assert command == grammar.Rebuild(vm="TRN-CAP-001", ref=ref)  # by identity, not name
    plan = plan_for(services, command)
    assert isinstance(plan, RebuildPlan) and plan.vm == "TRN-CAP-001" and plan.trainee == "U01"
    assert plan.ref == ref
    result = dispatch(services, command, trainee("U01"))
    assert isinstance(result, RefreshResult) and result.refreshed == ["TRN-CAP-001"]
    new = vcenter.named("TRN-CAP-001")
    assert new.moref != old.moref and new.linked and old.moref not in vcenter.vms
    assert vcenter.named("TRN-CAP-002") is other  # nobody else's VM was touched
    [held] = services.repo.assignments(trainee="U01")
    assert held.clone_name == "TRN-CAP-001"
    assert services.repo.get_clone(held.clone_id).moref == new.moref
    with pytest.raises(PermissionDenied):
        resolve_target(services, grammar.parse("rebuild TRN-CAP-002"), trainee("U01"))


def test_a_hand_out_gives_up_after_its_time_not_per_trainee_and_handout_retries_those(
    services: Services, people: FakePeople
) -> None:
    """Slack keeps each message waiting 400 s: within the hand-out's 600 s two get through,
    the rest are not even tried; `handout ENV` then messages only those."""
    run(services, "deploy capture 4 as nov")
    now = [0.0]
    services.use_cases.trainees.handouts.monotonic = lambda: now[0]
    budgets: list[float | None] = []
    deliver = people.send

    def slow(user: str, message: Any, *, within_s: float | None = None) -> None:
        budgets.append(within_s)
        deliver(user, message, within_s=within_s)
        now[0] += 400

    people.send = slow  # type: ignore[method-assign]
    result = run(services, "assign nov U01 U02 U03 U04")
    assert result.handout.sent == ["U01", "U02"]
    assert result.handout.failed == [
        ("U03", "Slack kept rate limiting the messages"),
        ("U04", "Slack kept rate limiting the messages"),
    ]
    assert budgets[:3] == [600, 200, 0]  # one budget for the hand-out, not one per trainee

    again = run(services, "handout nov")
    assert again.waiting == 2 and again.report.sent == ["U03", "U04"]
    assert [u for u, _ in people.sent] == ["U01", "U02", "U03", "U04"]
    assert run(services, "handout nov").waiting == 0  # everyone has theirs: nothing sent
    assert len(people.sent) == 4
    details = [e.detail for e in services.repo.audit_entries() if e.command == "handout nov"]
    assert sorted(details) == [
        "0 reached, 0 not reached of 0 waiting",
        "2 reached, 0 not reached of 2 waiting",
    ]


def test_a_rebuild_waits_for_a_live_run_but_not_for_a_dead_one(make_services: Any) -> None:
    """A run whose process died never finishes by itself: the rebuild says "resume" at once
    rather than waiting out busy_wait_s; a run in progress elsewhere is waited for (bounded)."""
    import socket
    import time

    s = make_services(trainees={"busy_wait_s": 3})
    fake = FakePeople()
    fake.add("U01", "Trainee 1")
    s.use_cases.trainees.connect(fake, fake)
    run(s, "deploy capture 1 as nov")
    run(s, "assign nov U01")
    dead = f"{socket.gethostname()}:{2**22 + 12345}:gone"  # no such pid here
    stuck = s.repo.start_run(
        environment="nov", kind=RunKind.REFRESH, requested_by="x", requested=1, owner=dead
    )
    started = time.monotonic()
    with pytest.raises(ConflictError, match='"resume" finishes it'):
        dispatch(s, grammar.Rebuild(vm="TRN-CAP-001"), trainee("U01"))
    assert time.monotonic() - started < 1.5  # refused at once, not after busy_wait_s
    s.repo.finish_run(stuck.id, state=RunState.SUCCEEDED, succeeded=1, failed=0)

    alive = f"elsewhere.example:{1}:other"  # another machine, heartbeat fresh: in progress
    busy = s.repo.start_run(
        environment="nov", kind=RunKind.REFRESH, requested_by="x", requested=1, owner=alive
    )
    started = time.monotonic()
    with pytest.raises(ConflictError, match="is busy"):
        dispatch(s, grammar.Rebuild(vm="TRN-CAP-001"), trainee("U01"))
    assert time.monotonic() - started >= 2.5  # waited for it, up to busy_wait_s
    s.repo.finish_run(busy.id, state=RunState.SUCCEEDED, succeeded=1, failed=0)
    rebuilt = dispatch(s, grammar.Rebuild(vm="TRN-CAP-001"), trainee("U01"))
    assert isinstance(rebuilt, RefreshResult) and rebuilt.refreshed == ["TRN-CAP-001"]


def test_a_rebuild_cut_short_is_finished_by_recovery_with_its_assigned_to(
    make_services: Any,
) -> None:
    """A rebuild whose process died after destroying the old VM: `resume` clones it again,
    same name, same assignment, and AssignedTo is written on the new VM too."""
    s = make_services(trainees={"assigned_to_attribute": True})
    vcenter = s.use_cases.core.vcenter
    fake = FakePeople()
    fake.add("U01", "Trainee 1")
    s.use_cases.trainees.connect(fake, fake)
    run(s, "deploy capture 2 as nov")
    run(s, "assign nov U01")
    [held] = s.repo.assignments(trainee="U01")
    clone = s.repo.get_clone(held.clone_id)
    stuck = dead_run(s.repo, "nov", RunKind.REFRESH, "U01", [clone])
    s.repo.update_clone(clone.id, state=CloneState.DESTROYING)
    vcenter.destroy(clone.moref or "", expected_uuid=clone.instance_uuid or "")
    s.repo.update_run(stuck.id, state=RunState.INTERRUPTED)

    [resumed] = s.recovery.recover(actor="trainer").resumed
    assert resumed.recreated == [clone.name]
    new = vcenter.named(clone.name)
    assert new.moref != clone.moref and new.attributes[ASSIGNED_TO] == "Trainee 1 (U01)"
    [still] = s.repo.assignments(trainee="U01")
    assert still.id == held.id and still.clone_name == clone.name
    assert ASSIGNED_TO not in vcenter.named("TRN-CAP-002").attributes


def test_a_strip_back_ends_the_assignments_and_tells_each_trainee_once(
    services: Services, people: FakePeople
) -> None:
    run(services, "deploy capture 3 as nov")
    run(services, "assign nov U01 U02")
    people.sent.clear()
    services.use_cases.strip_back.teardown("nov", actor="UTRAINER")
    assert services.repo.assignments() == []
    ended = services.repo.assignments(active=False)
    assert {a.ended_reason for a in ended} == {"removed"} and all(a.told_at for a in ended)
    assert sorted((u, m) for u, m in people.sent) == [
        ("U01", VmRemoved("nov", "TRN-CAP-001")),
        ("U02", VmRemoved("nov", "TRN-CAP-002")),
    ]
    assert services.use_cases.trainees.tell_removed() == 0  # once each


def test_removals_wait_for_a_messenger(services: Services, people: FakePeople) -> None:
    run(services, "deploy capture 1 as nov")
    run(services, "assign nov U01")
    trainees = services.use_cases.trainees
    trainees.connect(None, None)  # the terminal without a token
    services.use_cases.strip_back.teardown("nov", actor="trainer")
    assert len(services.repo.untold_removals()) == 1
    trainees.connect(people, people)  # the bot, at its next start
    assert trainees.tell_removed() == 1
    assert people.to("U01")[-1] == VmRemoved("nov", "TRN-CAP-001")


def test_unassign_keeps_the_vm_and_assigned_to_follows_the_setting(
    make_services: Any, vcenter: FakeVCenter
) -> None:
    s = make_services(trainees={"assigned_to_attribute": True, "remind": True})
    people = FakePeople()
    people.add("U01", "Ann Example", "ann@example.com")
    s.use_cases.trainees.connect(people, people)
    run(s, "deploy capture 2 as nov")
    run(s, "assign nov U01 U02")
    assert vcenter.named("TRN-CAP-001").attributes[ASSIGNED_TO] == "Ann Example (U01)"
    assert vcenter.named("TRN-CAP-002").attributes[ASSIGNED_TO] == "U02"
    assert vcenter.calls["set_attributes"] == 2  # one SetField per assignment

    status = run(s, "status nov")[0]
    assert sorted(status.assigned.values()) == ["U01", "U02"]
    rows = {r.name: r.assigned_to for r in run(s, "inventory nov")}
    assert rows == {"TRN-CAP-001": "U01", "TRN-CAP-002": "U02"}

    result = run(s, "unassign nov U01 U05")
    assert [a.clone_name for a in result.ended] == ["TRN-CAP-001"]
    assert result.not_assigned == ["U05"]
    assert vcenter.named("TRN-CAP-001").attributes[ASSIGNED_TO] == ""
    assert "TRN-CAP-001" in [vm.name for vm in vcenter.clones()]

    # The reminder before a scheduled strip back reaches the trainees (configured here).
    env = s.repo.update_environment("nov", ends_at=datetime.now(UTC) + timedelta(hours=1))
    people.sent.clear()
    assert s.use_cases.trainees.remind(env) == 1
    [(user, message)] = people.sent
    assert user == "U02" and isinstance(message, LabEnding) and message.vm == "TRN-CAP-002"


def test_an_assignment_whose_clone_is_not_ready_is_replaced(
    services: Services, people: FakePeople
) -> None:
    run(services, "deploy capture 3 as nov")
    run(services, "assign nov U01")
    [a] = services.repo.assignments()
    services.repo.update_clone(a.clone_id, state=CloneState.DESTROYING)  # mid-rebuild
    result = run(services, "assign nov U01")
    assert [x.clone_name for x in result.replaced] == ["TRN-CAP-001"]
    assert [x.clone_name for x in result.new] == ["TRN-CAP-002"]


def test_a_roster_names_member_ids_or_e_mail_addresses() -> None:
    text = "name,email,slack\nAnn,ann@example.com,U0ANN\nBob,BOB@example.com,\n\n# late\nU0CAT\n"
    assert read_roster(text) == ["U0ANN", "bob@example.com", "U0CAT"]
    with pytest.raises(UsageError, match="line 3"):
        read_roster("email\nann@example.com\nno one here\n")
    with pytest.raises(UsageError, match="names nobody"):
        read_roster("name,email\n")
