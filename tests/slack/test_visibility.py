"""The Slack bot, long-lived, meets an ended vCenter session and VMs it may not see (issue 21,
point 1): a strip back confirmed in Slack destroys what it can see, never calls a clone it
cannot see gone, and says so in the channel."""

from __future__ import annotations

import pytest

from bot.domain.models import CloneState, RunState
from handlers.blocks.ids import ACTION_CONFIRM
from tests.helpers import clones_of

from .conftest import OPERATOR, SlackHarness
from .fake_api import Message

pytestmark = pytest.mark.lab


def _deploy(h: SlackHarness, n: int, env: str) -> None:
    h.command(f"deploy capture {n} as {env}")
    h.fake.wait_for(lambda: h.fake.ok_calls("files.completeUploadExternal"), timeout=60)


def _strip_back(h: SlackHarness, env: str) -> Message:
    """`/clones teardown ENV`, confirmed: the plan message, once it says how it ended."""
    before = len(h.fake.ok_calls("chat.postMessage"))
    assert h.command(f"teardown {env}").status == 200
    post = h.fake.wait_for(lambda: h.fake.ok_calls("chat.postMessage")[before:])[0]
    message = next(m for m in h.fake.messages.values() if m.text == post.params["text"])
    actions = next(b for b in message.blocks if b["type"] == "actions")
    value = next(e["value"] for e in actions["elements"] if e["action_id"] == ACTION_CONFIRM)
    assert h.click(ACTION_CONFIRM, value, OPERATOR, message.ts).status == 200
    h.fake.wait_for(lambda: message.text.startswith("Stripped back"), timeout=60)
    h.idle()
    return message


def _shown(message: Message) -> str:
    return "\n".join(str(b.get("text", {}).get("text", "")) for b in message.blocks)


def test_a_strip_back_after_the_session_ended_destroys_every_clone(
    harness: SlackHarness,
) -> None:
    h = harness
    _deploy(h, 4, "cohort")
    h.lab.control.configure(expired_session_reads="missing_set")
    h.lab.control.expire_sessions()  # the night passes; the bot's session ends

    message = _strip_back(h, "cohort")
    assert "4 clones destroyed" in message.text, message.text
    assert "already gone" not in _shown(message)
    assert clones_of(h.lab) == {}
    assert {c.state for c in h.core.repo.clones(environment="cohort")} == {CloneState.DESTROYED}
    assert h.lab.control.stats()["reads_without_session"] >= 1  # it met the simulator's answer


def test_a_strip_back_that_cannot_see_a_clone_says_so_and_leaves_it(
    harness: SlackHarness,
) -> None:
    h = harness
    _deploy(h, 3, "cohort")
    h.lab.control.configure(no_permission_vms=["TRN-CAP-002"])

    message = _strip_back(h, "cohort")
    assert "2 clones destroyed" in message.text
    assert "1 clone vCenter would not show, left as recorded" in message.text
    shown = _shown(message)
    assert "Cannot see in vCenter (left as recorded)" in shown
    assert "cannot see VM TRN-CAP-002: NoPermission, privilege System.Read" in shown
    assert ":warning:" in shown and "already gone" not in shown
    (run,) = [r for r in h.core.repo.runs(environment="cohort") if r.kind.value == "teardown"]
    assert run.state is RunState.PARTIAL
    records = {c.name: c.state for c in h.core.repo.clones(environment="cohort")}
    assert records["TRN-CAP-002"] is CloneState.READY
    assert set(clones_of(h.lab)) == {"TRN-CAP-002"}
