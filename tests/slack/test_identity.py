"""A name is taken for an identity (issue 21, point 2), through the real Bolt app against the lab
vCenter and the fake Slack: a trainee's VM goes (deleted by an admin and found missing, or a
rebuild that failed), its name comes back for another course and another trainee, and the
first trainee's typed command and the buttons they were shown before must reach nothing.

Both tests use the buttons exactly as Slack shows them (their values read from the messages), so
they read the same on a version whose buttons carried the VM's name alone."""

from __future__ import annotations

import json
from typing import Any

import pytest

from handlers.blocks.ids import (
    ACTION_MY_POWER_OFF,
    ACTION_MY_REBUILD,
    ACTION_MY_RESET,
    ACTION_REBUILD_CONFIRM,
)
from tests.helpers import vms
from tests.vsphere import Admin

from .conftest import OPERATOR, SlackHarness
from .fake_api import FakeSlack

pytestmark = pytest.mark.lab

U01, U08 = "U01", "U08"


def _assign(h: SlackHarness, environment: str, user: str) -> None:
    assert h.command(f"assign {environment} <@{user}|{user.lower()}>").status == 200
    h.idle(120)


def _workspace(fake: FakeSlack) -> None:
    fake.add_user(OPERATOR, "Olga Operator", "olga@example.com")
    for user in (U01, U08):
        fake.add_user(user, f"Trainee {user}", f"{user.lower()}@example.com")


def _buttons(h: SlackHarness, user: str) -> dict[str, str]:
    """`/clones my` as `user`: their VM's buttons, action id -> value, as Slack shows them."""
    assert h.command("my", user=user).status == 200
    h.idle()
    blocks = h.fake.of("response_url")[-1].params["blocks"]
    return {
        e["action_id"]: e["value"] for b in blocks if b["type"] == "actions" for e in b["elements"]
    }


def _dms(fake: FakeSlack, user: str) -> list[str]:
    return [
        str(c.params.get("text", ""))
        for c in fake.ok_calls("chat.postMessage")
        if c.params["channel"] in (user, fake.dm(user))
    ]


def _course_a_for_u01(h: SlackHarness) -> dict[str, str]:
    """Course a: one clone, powered on, given to U01; the buttons `my` shows them."""
    _workspace(h.fake)
    h.deploy("deploy capture 1 as course-a and power on")
    _assign(h, "course-a", U01)
    return _buttons(h, U01)


def _course_b_for_u08(h: SlackHarness) -> dict[str, Any]:
    """Course b: one clone, powered on; the freed name TRN-CAP-001 comes back; U08 holds it."""
    h.deploy("deploy capture 1 as course-b and power on")
    _assign(h, "course-b", U08)
    [theirs] = h.core.repo.assignments(trainee=U08)
    assert theirs.clone_name == "TRN-CAP-001"
    vm = vms(h.lab)["TRN-CAP-001"]
    assert vm["power_state"] == "poweredOn"
    return vm


def _u01_reaches_nothing(h: SlackHarness, old: dict[str, str], theirs: dict[str, Any]) -> None:
    """U01 types `reset TRN-CAP-001` and clicks their old Power off and Reset buttons (in their
    DM, where `my` showed them): no power task reaches vCenter, U08's VM stays on, and each
    attempt is audited as U01's denied request."""
    h.lab.control.reset()  # zero the SOAP counters
    denied_before = len(_denied(h))
    typed = h.command("reset TRN-CAP-001", user=U01)
    h.idle()
    for action in (ACTION_MY_POWER_OFF, ACTION_MY_RESET):
        assert h.click(action, old[action], U01, ts="1.0", channel=h.fake.dm(U01)).status == 200
        h.idle()
    requests = h.lab.control.stats()["requests"]
    assert not requests.get("ResetVM_Task") and not requests.get("PowerOffVM_Task")
    now = vms(h.lab)["TRN-CAP-001"]
    assert now["instance_uuid"] == theirs["instance_uuid"] and now["power_state"] == "poweredOn"
    denied = _denied(h)[denied_before:]
    assert len(denied) == 3, [(e.command, e.detail) for e in denied]
    assert not [e for e in h.core.repo.audit_entries(actor=U01) if e.result in ("ok", "partial")]
    told = [typed.json.get("text", ""), *h.ephemeral_texts()[-2:]]
    assert all(t.startswith(":no_entry:") for t in told), told


def _denied(h: SlackHarness) -> list[Any]:
    entries = [e for e in h.core.repo.audit_entries(actor=U01) if e.result == "denied"]
    return sorted(entries, key=lambda e: e.id or 0)


def test_a_name_reused_after_an_admin_deleted_the_vm_is_not_the_old_trainees(
    harness: SlackHarness,
) -> None:
    h = harness
    old = _course_a_for_u01(h)
    assert ACTION_MY_POWER_OFF in old and "TRN-CAP-001" in old[ACTION_MY_POWER_OFF]

    admin = Admin(h.lab)
    try:
        admin.destroy(vms(h.lab)["TRN-CAP-001"]["moref"])  # in the vSphere Client
    finally:
        admin.close()
    assert h.command("resume").status == 200
    h.idle(120)
    [gone] = h.core.repo.clones(environment="course-a")
    assert gone.state.value == "missing"
    # The assignment ended with it, and U01 was told.
    assert h.core.repo.assignments(trainee=U01) == []
    assert any("is no longer yours" in text for text in _dms(h.fake, U01))

    theirs = _course_b_for_u08(h)
    _u01_reaches_nothing(h, old, theirs)
    # U08's own Power off works, on U08's VM.
    mine = _buttons(h, U08)
    assert h.click(ACTION_MY_POWER_OFF, mine[ACTION_MY_POWER_OFF], U08, "2.0").status == 200
    h.idle()
    assert vms(h.lab)["TRN-CAP-001"]["power_state"] == "poweredOff"


def test_a_name_reused_after_a_failed_rebuild_is_not_the_old_trainees(
    harness: SlackHarness,
) -> None:
    h = harness
    old = _course_a_for_u01(h)

    # U01 rebuilds (Rebuild..., Confirm in their DM); every clone call fails meanwhile.
    h.lab.control.configure(faults={"fail_fraction": 1.0, "fault": "InvalidArgument"})
    assert h.click(ACTION_MY_REBUILD, old[ACTION_MY_REBUILD], U01, "1.0", h.fake.dm(U01)).status
    h.idle()
    [ask] = [m for m in h.fake.messages.values() if m.text.startswith("Rebuild TRN-CAP-001?")]
    value = ask.button(ACTION_REBUILD_CONFIRM)
    assert h.click(ACTION_REBUILD_CONFIRM, value, U01, ask.ts, channel=h.fake.dm(U01)).status
    h.idle(120)
    h.lab.control.configure(faults={"fail_fraction": 0.0})
    [failed] = h.core.repo.clones(environment="course-a")
    assert failed.state.value == "failed", json.dumps(h.ephemeral_texts())
    assert "TRN-CAP-001" not in vms(h.lab)
    assert h.core.repo.assignments(trainee=U01) == []
    assert any("could not be made again" in text for text in _dms(h.fake, U01))

    theirs = _course_b_for_u08(h)
    _u01_reaches_nothing(h, old, theirs)
