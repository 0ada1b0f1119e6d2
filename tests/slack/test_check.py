"""`/clones check`: the pre-flight from Slack, for admins only, answered privately."""

from __future__ import annotations

import pytest

from .conftest import ADMIN, OPERATOR, SlackHarness

pytestmark = pytest.mark.lab


def test_admins_get_the_check_privately(harness: SlackHarness) -> None:
    h = harness
    held = [
        "System.Read",
        "System.View",
        "VirtualMachine.Provisioning.Clone",
        "VirtualMachine.Inventory.CreateFromExisting",
        "Resource.AssignVMToPool",
        "Datastore.AllocateSpace",
        "Network.Assign",
        "VirtualMachine.State.CreateSnapshot",
        "Global.ManageCustomFields",
        "Global.SetCustomField",
        "VirtualMachine.Config.Annotation",
        "VirtualMachine.Interact.PowerOn",
        "VirtualMachine.Interact.PowerOff",
        "VirtualMachine.Inventory.Delete",
    ]  # no Reset: `power reset` would fail
    h.lab.control.configure(privileges=held)
    reply = h.command("check", user=ADMIN)
    assert reply.status == 200 and reply.elapsed_s < 3
    assert reply.json["text"].startswith("Checking vCenter")
    h.fake.wait_for(lambda: h.fake.of("response_url"))
    (answer,) = h.fake.of("response_url")
    assert answer.params["response_type"] == "ephemeral"
    assert answer.params["text"] == "vCenter check: 1 problem(s)"  # the types share a folder
    blocks = answer.params["blocks"]
    text = "\n".join(b["text"]["text"] for b in blocks if b["type"] == "section")
    assert "VirtualMachine.Interact.Reset" in text and "_Fix:_" in text
    assert len(blocks) <= 50 and all(len(b["text"]["text"]) <= 3000 for b in blocks if "text" in b)
    assert not h.fake.of("chat.postMessage")  # nothing in the channel


def test_operators_may_not_check(harness: SlackHarness) -> None:
    h = harness
    before = h.lab.control.stats()["total"]
    reply = h.command("check", user=OPERATOR)
    assert reply.json["response_type"] == "ephemeral"
    assert reply.json["text"].startswith(":no_entry: `check` is for the bot's admins")
    assert h.lab.control.stats()["total"] == before
    (entry,) = h.core.repo.audit_entries()
    assert (entry.actor, entry.result) == (OPERATOR, "denied")
