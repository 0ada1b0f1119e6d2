"""`handlers.people.SlackPeople` against the fake Slack Web API: direct messages paced per
conversation and 429s waited out (also once the client's own retry handler gave up), what
Slack refuses said in words, the workspace's look-ups."""

from __future__ import annotations

from pathlib import Path

import pytest
from slack_sdk import WebClient

from bot.domain.errors import ClonesError, NotDelivered
from bot.domain.trainees import HandOut, VmRemoved
from handlers.people import SlackPeople

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
def plain_client(fake_slack: FakeSlack) -> WebClient:
    """A client without retry handlers: SlackPeople's own back-off is all there is."""
    return WebClient(token="xoxb-test", base_url=fake_slack.api_url)


def test_messages_are_paced_per_conversation_and_429s_waited_out(
    fake_slack: FakeSlack, plain_client: WebClient
) -> None:
    fake_slack.add_user("UANN", "Ann")
    fake_slack.add_user("UBOB", "Bob")
    t = Sleeps()
    people = SlackPeople(plain_client, interval_s=1.0, clock=t.clock, sleep=t.sleep)
    fake_slack.rate_limit("chat.postMessage", times=2, retry_after=3)
    people.send("UANN", HandOut("nov", "TRN-CAP-001", "capture"))
    assert t.slept == [3.0, 3.0]  # Retry-After, twice
    people.send("UBOB", VmRemoved("nov", "TRN-CAP-002"))  # another conversation: at once
    assert t.slept == [3.0, 3.0]
    people.send("UANN", VmRemoved("nov", "TRN-CAP-001"))  # the same one, within its second
    assert t.slept == [3.0, 3.0]  # the 6 s of back-off already spaced it
    people.send("UANN", VmRemoved("nov", "TRN-CAP-001"))
    assert t.slept[-1] == pytest.approx(1.0)
    posted = [c.params["channel"] for c in fake_slack.ok_calls("chat.postMessage")]
    assert posted == ["DUANN", "DUBOB", "DUANN", "DUANN"]
    assert len(fake_slack.ok_calls("conversations.open")) == 2  # kept per person

    fake_slack.rate_limit("chat.postMessage", times=10, retry_after=0)
    with pytest.raises(NotDelivered, match="kept rate limiting"):
        people.send("UBOB", VmRemoved("nov", "TRN-CAP-002"))


def test_refusals_say_why(fake_slack: FakeSlack, plain_client: WebClient) -> None:
    fake_slack.add_user("UGONE", "Gone", deleted=True)
    people = SlackPeople(plain_client, interval_s=0)
    with pytest.raises(NotDelivered, match="deactivated"):
        people.send("UGONE", VmRemoved("nov", "TRN-CAP-001"))
    fake_slack.refuse("users.lookupByEmail", "missing_scope", needed="users:read.email")
    with pytest.raises(ClonesError, match=r"lacks the users:read\.email scope"):
        people.user_by_email("ann@example.com")
    with pytest.raises(ClonesError, match="invite it there"):
        people.channel_members("CNOWHERE")


def test_the_workspace_is_read_page_by_page(fake_slack: FakeSlack, plain_client: WebClient) -> None:
    fake_slack.add_user("UANN", "Ann Example", "ann@example.com")
    fake_slack.add_user("UBOT2", "A bot", bot=True)
    fake_slack.channel_members["CBIG"] = [f"U{n:04}" for n in range(25)]
    fake_slack.page_size = 10
    people = SlackPeople(plain_client)
    assert people.channel_members("CBIG") == [f"U{n:04}" for n in range(25)]
    assert len(fake_slack.ok_calls("conversations.members")) == 3
    assert people.user_by_email("ANN@example.com") == "UANN"
    assert people.user_by_email("nobody@example.com") is None
    ann = people.person("UANN")
    assert (ann.name, ann.email, ann.bot, ann.label) == (
        "Ann Example", "ann@example.com", False, "Ann Example (UANN)"
    )  # fmt: skip
    assert people.person("UBOT2").bot


# The Web API methods the bot calls for trainees, and the bot scope each needs.
TRAINEE_SCOPES = {
    "conversations.open": "im:write",
    "users.info": "users:read",
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
