"""The bot in a workspace that keeps Slack's rate tiers (issue 23): the real Bolt app, the lab
vCenter and the fake Slack with its tiers on (a shortened minute: every window of the fake's and
of the bot's pacer scales with it). A hand-out from a channel, deployments and a hand-out at
once, a group operator's command while Slack rate limits user groups, a run whose first message
Slack keeps refusing, a hand-out that runs out of time, and user text escaped once.

Figures with Slack's real minute and the issue's sizes: `python -m benchmarks --only slackscale`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest

from bot.domain.models import RunKind, RunState
from bot.settings import TraineeSettings
from handlers.jobs import Jobs

from .conftest import CHANNEL, GROUP_MEMBER, OPERATOR, STRANGER, SlackHarness
from .fake_api import FakeSlack

pytestmark = pytest.mark.lab

MINUTE_S = 6.0
PER_MEMBER = ("users.info", "conversations.open")


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    """The fake keeping Slack's tiers (the harness gives the bot a pacer of the same minute)."""
    fake = FakeSlack(tiers=True, minute_s=MINUTE_S).start()
    yield fake
    fake.stop()


def _cohort(fake: FakeSlack, n: int, channel: str = "CCOHORT") -> list[str]:
    fake.add_user(OPERATOR, "Olga Operator")
    fake.add_user("UHELPER", "Helper bot", bot=True)
    cohort = [f"UT{i:03}" for i in range(1, n + 1)]
    for user in cohort:
        fake.add_user(user, f"Trainee {user}")
    fake.channel_members[channel] = [OPERATOR, "UHELPER", *cohort, "USLACKBOT"]
    return cohort


def _edits(fake: FakeSlack) -> list[str]:
    return [json.dumps(c.params.get("blocks")) for c in fake.ok_calls("chat.update")]


def test_a_hand_out_from_a_channel_keeps_within_the_tiers_and_a_second_asks_nothing_per_member(
    harness: SlackHarness,
) -> None:
    h = harness
    h.deploy("deploy capture 30 as nov")
    cohort = _cohort(h.fake, 30)
    h.fake.page_size = 20  # users.list and conversations.members answer in pages

    started = time.monotonic()
    reply = h.command("assign nov from <#CCOHORT|cohort>")
    assert reply.status == 200 and reply.elapsed_s < 1
    h.idle(120)
    took = time.monotonic() - started

    [shown] = [m for m in h.fake.in_channel(CHANNEL) if "hold a VM" in m.text]
    assert shown.text.startswith("nov: 30 trainees hold a VM (30 new, 0 kept)")
    assert "Hand-out: 30 trainees reached" in shown.text
    assert not h.fake.limited(), "paced within the tiers: Slack never had to refuse a call"
    dms = [c for c in h.fake.ok_calls("chat.postMessage") if c.params["channel"] in cohort]
    assert sorted(c.params["channel"] for c in dms) == cohort  # each once, to the member ID
    assert not any(h.fake.of(m) for m in PER_MEMBER)  # who they are: users.list, by pages
    assert len(h.fake.ok_calls("users.list")) == 2  # 33 members, 20 a page
    # Direct messages at most 2 a (scaled) second in all; the trainer saw Slack pacing it.
    assert h.fake.busiest("chat.postMessage", MINUTE_S / 60, lambda c: c in dms) <= 2
    assert took >= 30 / 2 * MINUTE_S / 60 * 0.9
    assert any("Slack is pacing the hand-out" in e for e in _edits(h.fake))
    # Every Web API call of the bot went through its one pacer (Bolt's listeners' too).
    h.idle()
    web_api = [c for c in h.fake.calls if c.method not in ("upload", "response_url")]
    assert h.bot.app.client.pacer.calls == len(web_api)  # type: ignore[attr-defined]

    # Again, with nobody new: no call per member, no message.
    calls = len(h.fake.calls)
    assert h.command("assign nov from <#CCOHORT|cohort>").status == 200
    h.idle(60)
    again = [c.method for c in h.fake.calls[calls:]]
    assert again.count("conversations.members") == 2  # the channel, by pages
    assert "users.list" not in again and "users.info" not in again
    assert len([c for c in h.fake.calls[calls:] if c.params.get("channel") in cohort]) == 0
    assert "every trainee named already has theirs" in h.fake.in_channel(CHANNEL)[-1].text


def test_deployments_and_a_hand_out_at_once_stay_under_the_tier_and_every_final_lands(
    make_harness: Callable[..., SlackHarness],
) -> None:
    h = make_harness(jobs=Jobs(workers=6, max_pending=8))
    h.deploy("deploy capture 8 as cohort")
    cohort = _cohort(h.fake, 8)
    h.lab.control.configure(clone_latency_ms=2500)
    h.fake.calls.clear()
    wall = time.time() - time.monotonic()  # the fake's clock -> wall clock

    for n in range(4):
        assert h.command(f"deploy packaging 6 as run-{n}").status == 200
    assert h.command("assign cohort from <#CCOHORT|cohort>").status == 200
    h.idle(240)

    assert not h.fake.limited()
    assert h.fake.busiest("chat.update", MINUTE_S) < 50
    for n in range(4):
        [run] = h.core.repo.runs(environment=f"run-{n}")
        assert run.kind is RunKind.DEPLOY and run.state is RunState.SUCCEEDED
        assert run.finished_at is not None
        [message] = [m for m in h.fake.in_channel(CHANNEL) if f"ready in run-{n}" in m.text]
        [final] = [
            c for c in h.fake.ok_calls("chat.update")
            if c.params.get("ts") == message.ts and "ready in" in str(c.params.get("text"))
        ]  # fmt: skip
        ended = run.finished_at.replace(tzinfo=run.finished_at.tzinfo or UTC)
        lag = datetime.fromtimestamp(final.at + wall, UTC) - ended
        assert lag.total_seconds() < 10, f"run-{n}'s final state landed {lag} after its end"
    assert sum(c.params["channel"] in cohort for c in h.fake.ok_calls("chat.postMessage")) == 8


def test_a_group_operator_is_acked_at_once_while_slack_rate_limits_user_groups(
    make_harness: Callable[..., SlackHarness], fake_slack: FakeSlack
) -> None:
    fake_slack.rate_limit("usergroups.users.list", times=2, retry_after=2)
    h = make_harness(warm_groups=False)

    member = h.command("deploy capture 1 as grouped", user=GROUP_MEMBER)
    stranger = h.command("deploy capture 1 as stranger", user=STRANGER)
    for reply in (member, stranger):
        assert reply.status == 200 and reply.elapsed_s < 1
        assert "Checking with Slack that you may `deploy`" in reply.json["text"]
    h.fake.wait_for(lambda: h.fake.ok_calls("files.completeUploadExternal"), timeout=60)
    h.idle()
    said = h.ephemeral_texts()
    assert any(t.startswith("Deploying 1 capture clones into grouped") for t in said), said
    assert any(t.startswith(":no_entry: You are not allowed to `deploy`") for t in said), said
    assert [e.result for e in h.core.repo.audit_entries(actor=STRANGER)] == ["denied"]
    assert not h.core.repo.runs(environment="stranger")
    assert [c.status for c in h.fake.of("usergroups.users.list")][:3] == [429, 429, 200]


def test_a_run_whose_first_message_slack_keeps_refusing_starts_nothing(
    harness: SlackHarness,
) -> None:
    h = harness
    h.fake.rate_limit("chat.postMessage", times=5, retry_after=30, channel=CHANNEL)
    before = h.lab.control.stats()["total"]
    assert h.command("deploy capture 2 as limited").status == 200
    h.idle(30)
    assert h.ephemeral_texts()[-1] == (
        ":warning: Slack is rate-limiting this workspace, nothing was started, try again in 30 s."
    )
    assert h.lab.control.stats()["total"] == before
    assert not h.core.repo.runs(environment="limited")
    assert len(h.fake.of("chat.postMessage")) == 1  # tried once: the wait is longer than 15 s


def test_user_text_in_error_replies_is_escaped_once(harness: SlackHarness) -> None:
    reply = harness.command("deploy capture 1 as a<b>&c")
    text = reply.json["text"]
    assert '"a&lt;b&gt;&amp;c" is not a valid environment name' in text, text
    assert "&amp;lt;" not in text


def test_a_hand_out_out_of_time_names_who_was_not_reached_and_handout_retries_them(
    make_harness: Callable[..., SlackHarness],
) -> None:
    h = make_harness(trainees=TraineeSettings(handout_timeout_s=10))
    h.deploy("deploy capture 3 as lab")
    _cohort(h.fake, 3)
    # Slack keeps refusing UT002's DM for longer than the hand-out may wait.
    h.fake.rate_limit("chat.postMessage", times=1, retry_after=11, channel="UT002")
    started = time.monotonic()
    assert h.command("assign lab <@UT001|a> <@UT002|b> <@UT003|c>").status == 200
    h.idle(60)
    assert time.monotonic() - started < 10  # not 24 attempts of a minute each
    final = h.fake.in_channel(CHANNEL)[-1]
    assert "Hand-out: 2 trainees reached, 1 trainee not reached" in final.text
    blocks = json.dumps(final.blocks)
    assert "<@UT002>: Slack kept rate limiting the messages" in blocks
    assert '\\"/clones handout lab\\" sends it to them again' in blocks
    assert [a.trainee for a in h.core.repo.assignments() if not a.handed_out_at] == ["UT002"]

    pacer = h.bot.app.client.pacer  # type: ignore[attr-defined]
    h.fake.wait_for(lambda: not pacer.paused_for("chat.postMessage", "UT002"), timeout=15)
    assert h.command("handout lab").status == 200
    h.idle(60)
    final = h.fake.in_channel(CHANNEL)[-1]
    assert final.text.startswith("lab: the hand-out again to 1 trainee not reached before.")
    assert "Hand-out: 1 trainee reached" in final.text
    assert all(a.handed_out_at for a in h.core.repo.assignments())
    dms = [c.params["channel"] for c in h.fake.ok_calls("chat.postMessage")]
    assert sorted(d for d in dms if d.startswith("UT")) == ["UT001", "UT002", "UT003"]
