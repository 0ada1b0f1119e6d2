"""The throttled progress message, against the fake Web API (no vCenter needed)."""

from __future__ import annotations

import itertools
from dataclasses import replace

from bot.domain.results import DEPLOYING, ProgressEvent
from bot.settings import SlackSettings
from handlers.app import make_client
from handlers.blocks.kit import Rendered, section
from handlers.blocks.runs import deploy_progress
from handlers.progress import LiveRuns, ProgressMessage
from tests.helpers import at_once

from .fake_api import FakeSlack


def _event(done: int, total: int = 50) -> ProgressEvent:
    return ProgressEvent("clone_ready", 1, "env", DEPLOYING, total, done, 0, done * 0.01)


def test_bursts_are_coalesced_and_the_final_state_always_sent(fake_slack: FakeSlack) -> None:
    client = make_client(SlackSettings(api_url=fake_slack.api_url), "xoxb-test")
    progress: ProgressMessage[ProgressEvent] = ProgressMessage(
        client, "C1", lambda e: deploy_progress(e, "U1"), interval_s=1.0
    )

    def burst(i: int) -> None:
        for k in range(10):
            progress.on_event(_event(i * 10 + k))

    assert at_once(burst, 5) < 0.5  # events never wait on Slack
    ts = progress.finish(Rendered("done", [section("all done")]))

    posts, updates = fake_slack.of("chat.postMessage"), fake_slack.of("chat.update")
    assert ts is not None and len(posts) == 1 and ts == posts[0].params.get("ts", ts)
    assert 1 <= len(updates) <= 3  # 50 events became a handful of edits
    assert fake_slack.messages[ts].text == "done"
    stamps = [posts[0].at] + [u.at for u in updates]
    assert all(b - a >= 0.95 for a, b in itertools.pairwise(stamps))


def test_final_survives_429(fake_slack: FakeSlack) -> None:
    client = make_client(SlackSettings(api_url=fake_slack.api_url), "xoxb-test")
    fake_slack.rate_limit("chat.update", times=2, retry_after=1)
    progress: ProgressMessage[ProgressEvent] = ProgressMessage(
        client, "C1", lambda e: deploy_progress(e, "U1"), interval_s=1.0
    )
    progress.on_event(_event(1, 2))
    fake_slack.wait_for(lambda: fake_slack.of("chat.postMessage"))
    ts = progress.finish(Rendered("final", []))
    assert ts is not None and fake_slack.messages[ts].text == "final"
    assert [c.status for c in fake_slack.of("chat.update")] == [429, 429, 200]


def test_a_run_paused_at_a_restart_keeps_the_paused_state_whatever_its_workers_still_send(
    fake_slack: FakeSlack,
) -> None:
    """SIGTERM past the drain limit: the bot marks the run paused while its clone workers still
    send progress (and may still finish). The paused state is the message's last edit."""
    client = make_client(SlackSettings(api_url=fake_slack.api_url), "xoxb-test")
    live = LiveRuns()
    progress: ProgressMessage[ProgressEvent] = ProgressMessage(
        client, "C1", lambda e: deploy_progress(e, "U1"), interval_s=1.0, live=live
    )
    progress.on_event(_event(1))
    fake_slack.wait_for(lambda: progress.sent)  # posted, and known to show run 1
    progress.on_event(_event(2))  # queued behind the interval when the bot stops

    assert live.finish(1, Rendered("paused", [section("paused by a restart")]), timeout_s=10)
    progress.on_event(_event(3))  # a worker still running
    assert progress.finish(Rendered("done", [section("all done")])) is not None

    ts = fake_slack.of("chat.postMessage")[0].params.get("ts") or progress.ts
    assert ts is not None and fake_slack.messages[ts].text == "paused"
    assert [u.params["text"] for u in fake_slack.of("chat.update")] == ["paused"]
    assert not live.finish(1, Rendered("again", []), timeout_s=1)  # forgotten once shown


def test_a_run_queued_for_vcenter_capacity_says_so_in_its_message(fake_slack: FakeSlack) -> None:
    """A run waiting behind other runs of the bot for room in vCenter (issue 22) shows why,
    until it has room again: it does not look stuck."""
    client = make_client(SlackSettings(api_url=fake_slack.api_url), "xoxb-test")
    progress: ProgressMessage[ProgressEvent] = ProgressMessage(
        client, "C1", lambda e: deploy_progress(e, "U1"), interval_s=0.0
    )
    why = "queued: waiting for vCenter capacity (all 8 clone tasks (concurrency) are in use)"
    progress.on_event(replace(_event(0, 4), kind="waiting", waiting=why))
    fake_slack.wait_for(lambda: fake_slack.of("chat.postMessage"))
    [post] = fake_slack.of("chat.postMessage")
    assert f":hourglass: {why}" in str(post.params.get("blocks"))
    progress.on_event(_event(1, 4))  # room again: the line goes
    fake_slack.wait_for(lambda: fake_slack.of("chat.update"))
    assert "waiting for vCenter capacity" not in str(fake_slack.of("chat.update")[-1].params)
    progress.finish(Rendered("done", [section("all done")]))
