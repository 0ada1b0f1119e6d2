"""`/clones orphans` in Slack after the records of some clones were lost: the bot's own clones
are listed as its own (known by their Notes), `adopt` records them again, `remove` asks Confirm /
Cancel and removes exactly the ones shown; a VM forging ManagedBy is never touched."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from handlers.blocks.ids import ACTION_ORPHANS_CONFIRM
from tests.faults import clone_vms
from tests.helpers import deploy, lab_app

from .conftest import ADMIN, CHANNEL, SlackHarness

pytestmark = pytest.mark.lab


def _deploy_then_lose_the_records(h: SlackHarness, tmp_path: Path, text: str) -> None:
    """Deploy with another database, then delete it: the clones exist, no record knows them."""
    lost = tmp_path / f"lost-{len(list(tmp_path.glob('lost-*')))}.db"
    other = lab_app(h.lab, lost)
    try:
        deploy(other, text)
    finally:
        other.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{lost}{suffix}").unlink(missing_ok=True)


def _answers(h: SlackHarness, before: int) -> str:
    """What the answers sent to the command's response_url since `before` say, blocks too."""
    h.idle()
    out = []
    for call in h.fake.of("response_url")[before:]:
        out.append(str(call.params.get("text", "")))
        blocks = call.params.get("blocks") or []
        if isinstance(blocks, str):
            blocks = json.loads(blocks)
        out += [json.dumps(b, ensure_ascii=False) for b in blocks]
    return "\n".join(out)


def test_orphans_adopt_and_remove_after_the_records_were_lost(
    harness: SlackHarness, tmp_path: Path
) -> None:
    h = harness
    forged = h.lab.control.add_vm("forged-01", folder="Training", custom={"ManagedBy": "clones"})
    _deploy_then_lose_the_records(h, tmp_path, "deploy capture 2 as lost")

    before = len(h.fake.of("response_url"))
    assert h.command("orphans", user=ADMIN).status == 200
    listed = _answers(h, before)
    assert "3 orphan VMs, 2 made by this bot" in listed, listed
    assert "its record lost (its Notes say so): adopt takes it back as capture" in listed
    assert "forged-01" in listed and "never touched" in listed

    before = len(h.fake.of("response_url"))
    assert h.command("orphans adopt", user=ADMIN).status == 200
    adopted = _answers(h, before)
    assert "Adopted 2 orphan VMs" in adopted, adopted
    rows = h.core.repo.clones(environment="lost")
    vms = {vm["name"]: vm for vm in clone_vms(h.lab, "TRN-CAP-")}
    assert sorted(c.name for c in rows) == ["TRN-CAP-001", "TRN-CAP-002"]
    assert all(c.instance_uuid == vms[c.name]["instance_uuid"] for c in rows)

    # Two more lost, under other names; `remove` shows them and removes exactly those.
    _deploy_then_lose_the_records(h, tmp_path, "deploy packaging 2 as gone")
    posts = len(h.fake.ok_calls("chat.postMessage"))
    assert h.command("orphans remove", user=ADMIN).status == 200
    post = h.fake.wait_for(lambda: h.fake.ok_calls("chat.postMessage")[posts:])[0]
    message = next(m for m in h.fake.messages.values() if m.text == post.params["text"])
    assert message.text == "Remove 2 orphan VMs made by this bot?"
    shown = message.blocks[0]["text"]["text"]
    assert "TRN-PKG-001" in shown and "TRN-PKG-002" in shown and "forged-01" not in shown
    actions = next(b for b in message.blocks if b["type"] == "actions")
    value = {e["action_id"]: e["value"] for e in actions["elements"]}[ACTION_ORPHANS_CONFIRM]
    assert h.click(ACTION_ORPHANS_CONFIRM, value, ADMIN, message.ts, CHANNEL).status == 200
    h.idle()
    names = {vm["name"] for vm in h.lab.control.vms()}
    assert {"TRN-PKG-001", "TRN-PKG-002"}.isdisjoint(names)
    assert {"TRN-CAP-001", "TRN-CAP-002", "forged-01"} <= names
    [still] = [vm for vm in h.lab.control.vms() if vm["moref"] == forged["moref"]]
    assert still == forged | {"host": still["host"]}
    assert any("Removed 2 orphan VMs" in m.text for m in h.fake.messages.values())
