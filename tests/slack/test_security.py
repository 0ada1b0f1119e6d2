"""Signatures and access control: forged, stale and unauthorised requests change nothing."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from .conftest import CHANNEL, GROUP_MEMBER, OPERATOR, STRANGER, SlackHarness
from .signing import sign, slash_body

pytestmark = pytest.mark.lab


def _nothing_changed(h: SlackHarness, vcenter_before: int) -> None:
    assert h.core.repo.list_environments() == []
    assert h.core.repo.clones() == []
    assert h.core.repo.runs() == []
    assert h.lab.control.stats()["total"] == vcenter_before
    # Only look-ups (the token check at start, operator group members): nothing shown or posted.
    assert {c.method for c in h.fake.calls} <= {"auth.test", "usergroups.users.list"}


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(lambda body: sign(body, secret="not-the-secret-at-all-0000"), id="forged"),
        pytest.param(lambda body: sign(body, timestamp=int(time.time()) - 6 * 60), id="stale"),
        pytest.param(
            lambda body: {"Content-Type": "application/x-www-form-urlencoded"}, id="unsigned"
        ),
        pytest.param(lambda body: sign(body + "&text=teardown+x"), id="tampered"),
    ],
)
def test_bad_signatures_get_401_and_change_nothing(
    harness: SlackHarness, headers: Callable[[str], dict[str, str]]
) -> None:
    h = harness
    before = h.lab.control.stats()["total"]
    body = slash_body("deploy capture 2 as forged", OPERATOR, CHANNEL, h.fake.response_url())
    reply = h.post(body, headers(body))
    assert reply.status == 401
    h.idle()  # every request handled, every job it could have started finished
    _nothing_changed(h, before)
    assert h.core.repo.audit_entries() == []


def test_strangers_get_a_specific_ephemeral_denial_and_an_audit_entry(
    harness: SlackHarness,
) -> None:
    h = harness
    before = h.lab.control.stats()["total"]
    reply = h.command("deploy capture 2 as sneaky", user=STRANGER)
    assert reply.status == 200 and reply.elapsed_s < 3
    assert reply.json["response_type"] == "ephemeral"
    assert "You are not allowed to `deploy`" in reply.json["text"]
    reply = h.command("teardown sneaky", user=STRANGER)
    assert "You are not allowed to `teardown`" in reply.json["text"]
    h.idle()
    _nothing_changed(h, before)
    entries = h.core.repo.audit_entries()
    assert [(e.actor, e.channel, e.command, e.result) for e in entries] == [
        (STRANGER, CHANNEL, "/clones teardown sneaky", "denied"),
        (STRANGER, CHANNEL, "/clones deploy capture 2 as sneaky", "denied"),
    ]
    assert all(e.source == "slack" for e in entries)


def test_read_only_commands_work_for_everyone(harness: SlackHarness) -> None:
    h = harness
    reply = h.command("types", user=STRANGER)
    assert reply.status == 200 and reply.elapsed_s < 3
    h.fake.wait_for(lambda: any("*capture*" in t for t in h.ephemeral_texts()))
    h.command("status", user=STRANGER)
    h.fake.wait_for(lambda: any("No environments with clones" in t for t in h.ephemeral_texts()))
    assert all(c.params.get("response_type") == "ephemeral" for c in h.fake.of("response_url"))


def test_operator_group_members_may_deploy(harness: SlackHarness) -> None:
    h = harness
    reply = h.command("deploy capture 2 as grouped", user=GROUP_MEMBER)
    assert reply.json["text"].startswith("Deploying 2 capture clones into grouped")
    h.fake.wait_for(lambda: h.fake.ok_calls("files.completeUploadExternal"), timeout=60)
    (call,) = h.fake.of("usergroups.users.list")
    assert call.params["usergroup"] == "SOPS"


def test_changing_commands_only_in_configured_channels(
    make_harness: Callable[..., SlackHarness],
) -> None:
    h = make_harness(channels=("CLABS",))
    before = h.lab.control.stats()["total"]
    reply = h.command("deploy capture 2 as elsewhere", channel="CRANDOM")
    assert "not allowed in this channel" in reply.json["text"] and "<#CLABS>" in reply.json["text"]
    _nothing_changed(h, before)


def test_without_operators_changing_commands_are_refused(
    make_harness: Callable[..., SlackHarness],
) -> None:
    h = make_harness(admins=(), operators=(), operator_groups=())
    before = h.lab.control.stats()["total"]
    reply = h.command("deploy capture 2 as open")
    assert "no operators or admins are configured" in reply.json["text"]
    _nothing_changed(h, before)
    (entry,) = h.core.repo.audit_entries()
    assert entry.result == "denied"
