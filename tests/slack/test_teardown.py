"""`/clones teardown`: the plan with Confirm / Cancel, who may confirm, and exactly-once."""

from __future__ import annotations

import threading

import pytest

from handlers.blocks.ids import ACTION_CANCEL, ACTION_CONFIRM

from .conftest import ADMIN, CHANNEL, OPERATOR, STRANGER, SlackHarness
from .fake_api import Message

pytestmark = pytest.mark.lab


def _deploy(h: SlackHarness, n: int, env: str) -> None:
    h.deploy(f"deploy capture {n} as {env}")


def _plan(h: SlackHarness, env: str, user: str = OPERATOR) -> tuple[Message, str]:
    before = len(h.fake.ok_calls("chat.postMessage"))
    reply = h.command(f"teardown {env}", user=user)
    assert reply.status == 200 and reply.elapsed_s < 3
    post = h.fake.wait_for(lambda: h.fake.ok_calls("chat.postMessage")[before:])[0]
    message = next(m for m in h.fake.messages.values() if m.text == post.params["text"])
    actions = next(b for b in message.blocks if b["type"] == "actions")
    values = {e["action_id"]: e["value"] for e in actions["elements"]}
    assert values[ACTION_CONFIRM] == values[ACTION_CANCEL]
    return message, values[ACTION_CONFIRM]


def _live(h: SlackHarness, env: str) -> int:
    return sum(c.state.live for c in h.core.repo.clones(environment=env))


def test_plan_shows_what_will_be_destroyed(harness: SlackHarness) -> None:
    h = harness
    _deploy(h, 3, "plan-env")
    message, value = _plan(h, "plan-env")
    assert message.channel == CHANNEL
    assert message.text.startswith("Strip back plan-env? 3 clones (3 capture), about ")
    shown = message.blocks[0]["text"]["text"]
    assert "destroys *3 clones* (3 capture)" in shown and "GB*" in shown
    assert value.startswith("plan-env ")
    assert _live(h, "plan-env") == 3


def test_two_concurrent_confirms_destroy_once(harness: SlackHarness) -> None:
    h = harness
    _deploy(h, 3, "double")
    message, value = _plan(h, "double")
    destroys_before = h.lab.control.stats()["requests"].get("Destroy_Task", 0)

    replies = []
    barrier = threading.Barrier(2)

    def click() -> None:
        barrier.wait()
        replies.append(h.click(ACTION_CONFIRM, value, OPERATOR, message.ts))

    threads = [threading.Thread(target=click) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.status for r in replies] == [200, 200]
    assert all(r.elapsed_s < 3 for r in replies)

    h.fake.wait_for(lambda: message.text.startswith("Stripped back double"), timeout=60)
    assert "3 clones destroyed" in message.text
    assert _live(h, "double") == 0
    destroys = h.lab.control.stats()["requests"].get("Destroy_Task", 0) - destroys_before
    assert destroys == 3
    runs = [r for r in h.core.repo.runs(environment="double") if r.kind.value == "teardown"]
    assert len(runs) == 1
    # The losing click was told, privately.
    assert any("already confirmed or cancelled" in t for t in h.ephemeral_texts())

    # A replayed click much later changes nothing either.
    h.click(ACTION_CONFIRM, value, OPERATOR, message.ts)
    h.fake.wait_for(lambda: sum("already confirmed" in t for t in h.ephemeral_texts()) >= 2)
    assert (
        len([r for r in h.core.repo.runs(environment="double") if r.kind.value == "teardown"]) == 1
    )


def test_only_requester_or_admin_may_confirm(harness: SlackHarness) -> None:
    h = harness
    _deploy(h, 2, "guarded")
    message, value = _plan(h, "guarded")

    h.click(ACTION_CONFIRM, value, STRANGER, message.ts)
    h.fake.wait_for(lambda: any("who asked for this strip back" in t for t in h.ephemeral_texts()))
    assert _live(h, "guarded") == 2
    denied = [e for e in h.core.repo.audit_entries() if e.result == "denied"]
    assert denied and denied[0].actor == STRANGER
    assert denied[0].command == "confirm teardown guarded" and denied[0].channel == CHANNEL

    # The admin may confirm someone else's request (the stranger's click did not use it up).
    h.click(ACTION_CONFIRM, value, ADMIN, message.ts)
    h.fake.wait_for(lambda: message.text.startswith("Stripped back guarded"), timeout=60)
    assert _live(h, "guarded") == 0


def test_cancel_changes_nothing(harness: SlackHarness) -> None:
    h = harness
    _deploy(h, 2, "keep")
    message, value = _plan(h, "keep")
    before = h.lab.control.stats()["requests"].get("Destroy_Task", 0)

    reply = h.click(ACTION_CANCEL, value, OPERATOR, message.ts)
    assert reply.status == 200
    h.fake.wait_for(lambda: "cancelled" in message.text)
    assert "nothing was destroyed" in message.text
    assert not any(b["type"] == "actions" for b in message.blocks)
    assert _live(h, "keep") == 2
    assert h.lab.control.stats()["requests"].get("Destroy_Task", 0) == before

    # Confirm after cancel: the token is gone.
    h.click(ACTION_CONFIRM, value, OPERATOR, message.ts)
    h.fake.wait_for(lambda: any("already confirmed or cancelled" in t for t in h.ephemeral_texts()))
    assert _live(h, "keep") == 2


def test_teardown_of_unknown_environment_says_so(harness: SlackHarness) -> None:
    h = harness
    reply = h.command("teardown nowhere")
    assert reply.status == 200
    h.fake.wait_for(lambda: any('No environment named "nowhere"' in t for t in h.ephemeral_texts()))
    assert h.fake.of("chat.postMessage") == []


def test_a_strip_back_confirmed_elsewhere_is_reported_in_the_environments_channel(
    harness: SlackHarness,
) -> None:
    h = harness
    _deploy(h, 2, "elsewhere")  # its channel: CHANNEL
    other = "C0OTHERCHAN"
    before = len(h.fake.ok_calls("chat.postMessage"))
    h.command("teardown elsewhere", channel=other)
    post = h.fake.wait_for(lambda: h.fake.ok_calls("chat.postMessage")[before:])[0]
    assert post.params["channel"] == other
    message = next(m for m in h.fake.messages.values() if m.text == post.params["text"])
    actions = next(b for b in message.blocks if b["type"] == "actions")
    value = next(e["value"] for e in actions["elements"] if e["action_id"] == ACTION_CONFIRM)
    h.click(ACTION_CONFIRM, value, OPERATOR, message.ts, channel=other)
    note = h.fake.wait_for(
        lambda: [
            p
            for p in h.fake.ok_calls("chat.postMessage")
            if p.params["channel"] == CHANNEL and "Strip back of elsewhere" in p.params["text"]
        ],
        timeout=60,
    )
    assert "2 clones destroyed" in note[0].params["text"]
    assert _live(h, "elsewhere") == 0
