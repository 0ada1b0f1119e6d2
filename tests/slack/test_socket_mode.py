"""The same app over Socket Mode: apps.connections.open, a local WebSocket, envelopes and acks."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from handlers.blocks.ids import ACTION_CONFIRM, ACTION_MY_POWER_ON
from handlers.serving import GatedSocketModeHandler

from .conftest import CHANNEL, OPERATOR, SlackHarness
from .fake_socket import FakeSocketMode
from .signing import action_payload, slash_payload

pytestmark = pytest.mark.lab


@pytest.fixture
def socket_mode(harness: SlackHarness) -> Iterator[FakeSocketMode]:
    server = FakeSocketMode().start()
    harness.fake.socket_url = server.url
    handler = GatedSocketModeHandler(
        harness.bot.app, "xapp-1-test", web_client=harness.bot.app.client
    )
    handler.connect()
    server.wait_connected()
    yield server
    handler.close()
    server.stop()


def test_deploy_and_teardown_over_socket_mode(
    harness: SlackHarness, socket_mode: FakeSocketMode
) -> None:
    h = harness
    assert h.fake.ok_calls("apps.connections.open")
    h.lab.control.configure(clone_latency_ms=200)

    envelope = socket_mode.send(
        "slash_commands",
        slash_payload("deploy capture 2 as sock", OPERATOR, CHANNEL, h.fake.response_url()),
    )
    acked_at, ack = socket_mode.wait_ack(envelope)
    assert acked_at - socket_mode.sent[envelope] < 3
    assert ack["payload"]["text"].startswith("Deploying 2 capture clones into sock...")

    h.fake.wait_for(lambda: h.fake.ok_calls("files.completeUploadExternal"), timeout=60)
    (message,) = h.fake.messages.values()
    assert message.text.startswith("2 of 2 linked clones ready in sock")

    envelope = socket_mode.send(
        "slash_commands",
        slash_payload("teardown sock", OPERATOR, CHANNEL, h.fake.response_url()),
    )
    socket_mode.wait_ack(envelope)
    plan = h.fake.wait_for(
        lambda: [m for m in h.fake.messages.values() if m.text.startswith("Strip back sock?")]
    )[0]
    value = next(b for b in plan.blocks if b["type"] == "actions")["elements"][0]["value"]
    envelope = socket_mode.send(
        "interactive",
        action_payload(ACTION_CONFIRM, value, OPERATOR, CHANNEL, plan.ts, h.fake.response_url()),
    )
    socket_mode.wait_ack(envelope)
    h.fake.wait_for(lambda: plan.text.startswith("Stripped back sock"), timeout=60)
    assert not any(c.state.live for c in h.core.repo.clones(environment="sock"))


def test_an_envelope_of_the_wrong_shape_is_acked_and_logged_as_ignored(
    harness: SlackHarness, socket_mode: FakeSocketMode, caplog: pytest.LogCaptureFixture
) -> None:
    h = harness
    caplog.set_level(logging.INFO)
    payload = action_payload(ACTION_MY_POWER_ON, "TRN-CAP-001", OPERATOR, CHANNEL, "1.2", "")
    payload["user"] = OPERATOR  # Slack sends an object
    envelope = socket_mode.send("interactive", payload)
    socket_mode.wait_ack(envelope)
    h.idle()
    assert not [r for r in caplog.records if r.exc_info]
    said = [r.getMessage() for r in caplog.records if "wrong shape" in r.getMessage()]
    assert said == [
        "Ignored a Socket Mode interactive envelope of the wrong shape "
        "(block_actions user is str, not an object)"
    ]
    assert h.core.repo.audit_entries() == []
