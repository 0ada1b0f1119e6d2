"""`handlers.people.SlackPeople` against the fake Slack Web API: direct messages posted to the
member's ID (no conversations.open), paced per conversation, 429s waited out by the pacer for
everyone and for a bounded time, what Slack refuses said in words, the workspace's look-ups
(users.list for many, users.info for a few, each member read once)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bot.domain.errors import ClonesError, NotDelivered
from bot.domain.trainees import HandOut, VmRemoved
from bot.settings import SlackSettings
from handlers.pacing import PacedWebClient
from handlers.people import SlackPeople
from handlers.webapi import make_client

from .fake_api import FakeSlack


class Sleeps:
    """A clock that moves only when slept on."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def client(fake_slack: FakeSlack) -> PacedWebClient:
    """The bot's client: every call through its pacer."""
    return make_client(SlackSettings(api_url=fake_slack.api_url), "xoxb-test")


def test_messages_go_to_the_member_id_paced_per_conversation(
    fake_slack: FakeSlack, client: PacedWebClient
) -> None:
    fake_slack.add_user("UANN", "Ann")
    fake_slack.add_user("UBOB", "Bob")
    t = Sleeps()
    people = SlackPeople(client, interval_s=1.0, clock=t.clock, sleep=t.sleep)
    people.send("UANN", HandOut("nov", "TRN-CAP-001", "capture"))
    people.send("UBOB", VmRemoved("nov", "TRN-CAP-002"))  # another conversation: at once
    assert t.slept == []
    people.send("UANN", VmRemoved("nov", "TRN-CAP-001"))  # the same one, within its second
    assert t.slept == [pytest.approx(1.0)]
    posted = [c.params["channel"] for c in fake_slack.ok_calls("chat.postMessage")]
    assert posted == ["UANN", "UBOB", "UANN"]  # Slack opens the app's DM with each
    assert {m.channel for m in fake_slack.messages.values()} == {"DUANN", "DUBOB"}
    assert not fake_slack.of("conversations.open")


def test_a_429_pauses_direct_messages_for_everyone_and_the_wait_is_bounded(
    fake_slack: FakeSlack, client: PacedWebClient
) -> None:
    fake_slack.add_user("UANN", "Ann")
    fake_slack.add_user("UBOB", "Bob")
    people = SlackPeople(client, interval_s=0)
    fake_slack.rate_limit("chat.postMessage", times=1, retry_after=1)
    started = time.monotonic()
    people.send("UANN", HandOut("nov", "TRN-CAP-001", "capture"))
    assert time.monotonic() - started >= 0.9  # Retry-After waited out, then sent once
    assert [c.status for c in fake_slack.of("chat.postMessage")] == [429, 200]

    # Slack keeps refusing for longer than the message may wait: not delivered at once,
    # after one attempt, saying why (not 24 attempts of a minute each).
    fake_slack.rate_limit("chat.postMessage", times=10, retry_after=30)
    started = time.monotonic()
    with pytest.raises(NotDelivered, match="kept rate limiting"):
        people.send("UBOB", VmRemoved("nov", "TRN-CAP-002"), within_s=5)
    assert time.monotonic() - started < 2
    assert [c.status for c in fake_slack.of("chat.postMessage")] == [429, 200, 429]
    with pytest.raises(NotDelivered, match="kept rate limiting"):
        people.send("UANN", VmRemoved("nov", "TRN-CAP-002"), within_s=0)
    assert len(fake_slack.of("chat.postMessage")) == 3  # out of time: not even tried


def test_refusals_say_why(fake_slack: FakeSlack, client: PacedWebClient) -> None:
    fake_slack.add_user("UGONE", "Gone", deleted=True)
    people = SlackPeople(client, interval_s=0)
    with pytest.raises(NotDelivered, match="deactivated"):
        people.send("UGONE", VmRemoved("nov", "TRN-CAP-001"))
    fake_slack.refuse("users.lookupByEmail", "missing_scope", needed="users:read.email")
    with pytest.raises(ClonesError, match=r"lacks the users:read\.email scope"):
        people.user_by_email("ann@example.com")
    with pytest.raises(ClonesError, match="invite it there"):
        people.channel_members("CNOWHERE")


def test_the_workspace_is_read_page_by_page(fake_slack: FakeSlack, client: PacedWebClient) -> None:
    fake_slack.add_user("UANN", "Ann Example", "ann@example.com")
    fake_slack.add_user("UBOT2", "A bot", bot=True)
    fake_slack.channel_members["CBIG"] = [f"U{n:04}" for n in range(25)]
    fake_slack.page_size = 10
    people = SlackPeople(client)
    assert people.channel_members("CBIG") == [f"U{n:04}" for n in range(25)]
    assert len(fake_slack.ok_calls("conversations.members")) == 3
    assert people.user_by_email("ANN@example.com") == "UANN"
    assert people.user_by_email("nobody@example.com") is None
    ann = people.person("UANN")
    assert (ann.name, ann.email, ann.bot, ann.label) == (
        "Ann Example", "ann@example.com", False, "Ann Example (UANN)"
    )  # fmt: skip
    assert people.person("UBOT2").bot
    assert len(fake_slack.ok_calls("users.info")) == 2  # a few: one by one

    # Many at once: users.list, a page at a time, until every one is found; then kept.
    for n in range(25):
        fake_slack.add_user(f"U{n:04}", f"Member {n}")
    members = [f"U{n:04}" for n in range(25)]
    found = people.persons(members)
    assert [p.name for p in found.values()] == [f"Member {n}" for n in range(25)]
    assert len(fake_slack.ok_calls("users.list")) == 3  # 27 members, 10 a page
    assert len(fake_slack.ok_calls("users.info")) == 2
    people.persons([*members, "UANN"])
    assert (
        len(fake_slack.ok_calls("users.list")) == 3 and len(fake_slack.ok_calls("users.info")) == 2
    )


# The Web API methods the bot calls for trainees, and the bot scope each needs.
TRAINEE_SCOPES = {
    "users.info": "users:read",
    "users.list": "users:read",
    "users.lookupByEmail": "users:read.email",
    "conversations.members": "channels:read",  # and groups:read for private channels
}


def test_the_manifest_asks_for_the_trainee_scopes_and_the_docs_explain_them() -> None:
    root = Path(__file__).resolve().parents[2]
    manifest = (root / "slack-manifest.yml").read_text(encoding="utf-8")
    scopes = {
        line.split("#")[0].strip().removeprefix("- ").strip()
        for line in manifest.splitlines()
        if line.strip().startswith("- ") and ":" in line.split("#")[0]
    }
    needed = {*TRAINEE_SCOPES.values(), "groups:read", "chat:write"}
    assert needed <= scopes, needed - scopes
    # An @person or #channel picked in Slack reaches `assign` as an ID only when escaped.
    assert "should_escape: true" in manifest
    readme = (root / "README.md").read_text(encoding="utf-8")
    slack_doc = (root / "docs" / "slack.md").read_text(encoding="utf-8")
    for scope in needed:
        assert f"`{scope}`" in slack_doc and f"`{scope}`" in readme, scope
