"""Slack at workspace scale (issue 23), against the fake Slack keeping Slack's documented rate
tiers: per method per minute, per channel for posts, 429 with Retry-After when exceeded, and the
slash command's text escaped as Slack escapes it.

The fake's minute is shortened here (every window scales with it, and so does the bot's pacer),
so nothing sleeps for minutes; `python -m benchmarks --only slackscale` proves the same with
Slack's real minute and the issue's sizes (110 trainees, four deployments).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.domain.results import DEPLOYING, ProgressEvent
from bot.settings import SlackSettings
from handlers.blocks.kit import Rendered, section
from handlers.pacing import Pacer, Priority, SlackBusy, paced
from handlers.progress import ProgressMessage
from handlers.webapi import make_client
from tests.helpers import at_once

from .fake_api import FakeSlack
from .signing import slack_escaped

MINUTE_S = 3.0  # the fake's (and the pacer's) minute in these tests
SCALE = MINUTE_S / 60.0


@pytest.fixture
def tiered() -> Iterator[FakeSlack]:
    fake = FakeSlack(tiers=True, minute_s=MINUTE_S).start()
    yield fake
    fake.stop()


def _plain(fake: FakeSlack) -> WebClient:
    """A client without any pacing or retries: what Slack answers, as it answers it."""
    return WebClient(token="xoxb-test", base_url=fake.api_url)


def _status(call: Callable[[], object]) -> int:
    try:
        call()
    except SlackApiError as exc:
        return int(exc.response.status_code)
    return 200


# ===================================================================== the fake is Slack-like
def test_the_fake_keeps_slacks_tiers_per_method_and_per_channel(tiered: FakeSlack) -> None:
    client = _plain(tiered)
    tiered.group_members["S1"] = ["U1"]
    answers = [_status(lambda: client.usergroups_users_list(usergroup="S1")) for _ in range(21)]
    assert answers == [200] * 20 + [429]  # Tier 2: 20 a minute
    [refused] = tiered.limited()
    assert refused.method == "usergroups.users.list"
    # Another method has its own tier; posts their own limit per channel.
    assert all(_status(lambda: client.users_info(user="U1")) != 429 for _ in range(20))
    posts = [_status(lambda: client.chat_postMessage(channel="C1", text="x")) for _ in range(6)]
    assert posts == [200] * 5 + [429]
    assert _status(lambda: client.chat_postMessage(channel="C2", text="x")) == 200
    try:
        client.chat_postMessage(channel="C1", text="x")
    except SlackApiError as exc:
        assert exc.response.headers.get("Retry-After") == "1"
    time.sleep(MINUTE_S)  # the window is over: Slack takes calls again
    assert _status(lambda: client.usergroups_users_list(usergroup="S1")) == 200


def test_the_slash_text_arrives_escaped_as_slack_sends_it() -> None:
    typed = "deploy capture 1 as a<b>&c for <@U1|ann> in <#C1|general>"
    assert slack_escaped(typed) == (
        "deploy capture 1 as a&lt;b&gt;&amp;c for <@U1|ann> in <#C1|general>"
    )


# ===================================================================== the pacer
def test_calls_from_many_threads_stay_within_the_tiers_and_never_meet_a_429(
    tiered: FakeSlack,
) -> None:
    client = make_client(SlackSettings(api_url=tiered.api_url), "xoxb-t", pacer=Pacer(scale=SCALE))
    tiered.add_user("U1", "Ann")

    def work(_: int) -> None:
        for _ in range(5):
            client.users_info(user="U1")  # Tier 4
            client.chat_postMessage(channel="CBUSY", text="x")  # one channel

    took = at_once(work, 12)
    assert not tiered.limited()
    assert len(tiered.ok_calls("users.info")) == 60
    assert tiered.busiest("users.info", MINUTE_S) <= 80  # 80% of Tier 4
    assert tiered.busiest("chat.postMessage", 5 * SCALE) <= 4  # at most 4 in 5 s per channel
    # 60 posts to one channel at 4 per 5 s (scaled): paced, not refused.
    assert took >= (60 / 4 - 1) * 5 * SCALE


def test_a_429_pauses_the_method_for_everyone_not_one_call(tiered: FakeSlack) -> None:
    client = make_client(SlackSettings(api_url=tiered.api_url), "xoxb-t", pacer=Pacer())
    tiered.rate_limit("usergroups.users.list", times=1, retry_after=2)
    done: list[float] = []
    started = time.monotonic()

    def read() -> None:
        client.usergroups_users_list(usergroup="S1")
        done.append(time.monotonic() - started)

    first = threading.Thread(target=read)
    first.start()
    # The first call met the 429...
    tiered.wait_for(lambda: client.pacer.paused_for("usergroups.users.list") > 0)
    others = [threading.Thread(target=read) for _ in range(5)]
    for t in others:
        t.start()
    for t in [first, *others]:
        t.join()
    # ...and the five after it waited out the same Retry-After instead of meeting it again.
    assert len(tiered.limited()) == 1
    assert len(tiered.ok_calls("usergroups.users.list")) == 6
    assert min(done) >= 1.9


def test_a_call_that_may_not_wait_that_long_fails_at_once_saying_how_long(
    tiered: FakeSlack,
) -> None:
    client = make_client(SlackSettings(api_url=tiered.api_url), "xoxb-t", pacer=Pacer())
    tiered.rate_limit("chat.postMessage", times=5, retry_after=30)
    started = time.monotonic()
    with pytest.raises(SlackBusy) as caught, paced(Priority.PERSON, within_s=5):
        client.chat_postMessage(channel="C1", text="x")
    assert time.monotonic() - started < 2 and caught.value.retry_after_s == 30
    assert len(tiered.of("chat.postMessage")) == 1  # one attempt, not a retry per second


def test_answers_and_final_states_go_before_progress() -> None:
    """Progress may use three quarters of a rule: the rest waits for what matters more."""
    pacer = Pacer(scale=SCALE)  # chat.update: 40 per (scaled) minute, 30 of them for progress
    for _ in range(30):
        pacer.release(pacer.acquire("chat.update", "C1", Priority.PROGRESS))
    waiting: list[str] = []

    def progress() -> None:
        with pacer.turn("chat.update", "C1", Priority.PROGRESS):
            waiting.append("progress")

    behind = threading.Thread(target=progress)
    behind.start()
    time.sleep(0.2)
    assert waiting == []  # progress waits for the window...
    started = time.monotonic()
    with pacer.turn("chat.update", "C2", Priority.FINAL):  # ...a final state does not
        waiting.append("final")
    assert time.monotonic() - started < 0.1
    behind.join(MINUTE_S + 1)
    assert waiting == ["final", "progress"]
    # Messages being kept current share progress's room (30 edits a minute): with one, each
    # is edited every 3 s (the setting); with five, every 10 s.
    real = Pacer()
    real.stream_started()
    assert real.edit_interval(3.0) == 3.0
    for _ in range(4):
        real.stream_started()
    assert real.edit_interval(3.0) == pytest.approx(10.0)


# ===================================================================== progress edits
def _event(done: int, total: int = 10) -> ProgressEvent:
    return ProgressEvent("clone_ready", 1, "env", DEPLOYING, total, done, 0, 0.0)


def _render(e: ProgressEvent) -> Rendered:
    return Rendered(f"{e.done}/{e.total}", [section(f"{e.done}/{e.total}")])


def test_an_edit_rate_limited_sends_the_latest_state_never_a_stale_retry(
    fake_slack: FakeSlack,
) -> None:
    client = make_client(SlackSettings(api_url=fake_slack.api_url), "xoxb-t")
    message: ProgressMessage[ProgressEvent] = ProgressMessage(client, "C1", _render, interval_s=0.1)
    message.on_event(_event(1))
    fake_slack.wait_for(lambda: fake_slack.ok_calls("chat.postMessage"))
    fake_slack.rate_limit("chat.update", times=1, retry_after=2)
    message.on_event(_event(2))
    fake_slack.wait_for(fake_slack.limited)  # "2/10" met a 429: chat.update is paused 2 s
    for done in range(3, 10):  # the run goes on meanwhile
        message.on_event(_event(done))
    fake_slack.wait_for(lambda: fake_slack.ok_calls("chat.update"), timeout=10)
    ts = message.finish(Rendered("done", [section("done")]))
    updates = fake_slack.of("chat.update")
    assert [u.params["text"] for u in updates] == ["2/10", "9/10", "done"]
    assert [u.status for u in updates] == [429, 200, 200]
    assert ts is not None and fake_slack.messages[ts].text == "done"
