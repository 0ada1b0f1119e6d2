"""Schedules from Slack: deploy until / at, status and Home show the next event, the reminder
with its Extend and Strip back now buttons, and bad times that change nothing.

The schedule service runs on a controllable clock with its scheduler paused; due jobs run with
`ScheduleService.run_due()` in the test's thread, calling what the scheduler would. No sleeping.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta

import pytest

from bot.models import RunState
from bot.settings import ScheduleSettings
from handlers.blocks import ACTION_CONFIRM, ACTION_EXTEND, ACTION_STRIP_NOW

from .conftest import CHANNEL, OPERATOR, STRANGER, Clock, SlackHarness
from .fake_api import Message

pytestmark = pytest.mark.lab

WHEN = r"\w{3} \d{1,2} \w{3}( \d{4})? \d\d:\d\d UTC \(in [^)]+\)"  # the bundled zone is UTC


def _deployed(h: SlackHarness, n: int = 1) -> None:
    h.fake.wait_for(lambda: len(h.fake.ok_calls("files.completeUploadExternal")) >= n, timeout=60)


def _said(h: SlackHarness, fragment: str) -> dict:
    call = h.fake.wait_for(
        lambda: [c for c in h.fake.of("response_url") if fragment in str(c.params.get("text"))]
    )[0]
    return call.params


def _message(h: SlackHarness, prefix: str) -> Message:
    return h.fake.wait_for(
        lambda: [m for m in h.fake.messages.values() if m.text.startswith(prefix)]
    )[0]


def _jobs(h: SlackHarness) -> dict[str, object]:
    ids = set(h.bot.schedules.job_ids())  # deploy:, teardown:, remind: (not the re-sync)
    return {j.id: j.next_run_time for j in h.bot.schedules.scheduler.get_jobs() if j.id in ids}


def test_deploy_until_sets_the_end_and_status_shows_it(harness: SlackHarness) -> None:
    h = harness
    reply = h.command("deploy capture 1 as until-env until fri 17:00")
    assert reply.status == 200 and reply.elapsed_s < 3
    assert re.search(f"Strip back is set for Fri {WHEN[6:]}", reply.json["text"])
    _deployed(h)

    env = h.core.repo.get_environment("until-env")
    assert env is not None and env.ends_at is not None
    local = env.ends_at.astimezone(h.bot.schedules.zone)
    assert (local.weekday(), local.hour, local.minute) == (4, 17, 0)
    assert _jobs(h)["teardown:until-env"] == env.ends_at
    summary = _message(h, "1 of 1 linked clones ready in until-env")
    shown = "\n".join(b["text"]["text"] for b in summary.blocks if b["type"] == "section")
    assert ":calendar: until-env strips back Fri" in shown

    h.command("status", user=STRANGER)
    status = _said(h, "until-env (1 live")
    assert re.search(f"until-env \\(1 live, strip back {WHEN}\\)", status["text"])
    first = status["blocks"][0]["text"]["text"]
    assert re.search(f":calendar: Next: strip back {WHEN}", first)


def test_deploy_at_schedules_without_creating_clones_then_runs_with_progress(
    make_harness: Callable[..., SlackHarness],
) -> None:
    clock = Clock()
    h = make_harness(clock=clock)
    reply = h.command("deploy capture 2 as later at in 2h until in 1d")
    assert reply.status == 200 and reply.elapsed_s < 3
    # The confirmation is a channel message: posting it proved the bot may post there.
    said = _message(h, "later deploys")
    assert said.channel == CHANNEL
    assert re.search(f"later deploys {WHEN} and strips back {WHEN}", said.text)
    assert "(in 2 h)" in said.text

    assert h.core.repo.clones(environment="later") == []
    assert h.lab.control.stats()["clone_calls"] == 0
    env = h.core.repo.get_environment("later")
    assert env is not None and env.starts_at == clock.now + timedelta(hours=2)
    assert set(_jobs(h)) >= {"deploy:later", "teardown:later", "remind:later"}

    # App Home shows the next event too.
    h.event({"type": "app_home_opened", "user": OPERATOR, "tab": "home"})
    view = h.fake.wait_for(lambda: h.fake.ok_calls("views.publish"))[-1].params["view"]
    home = "\n".join(b["text"]["text"] for b in view["blocks"] if b["type"] == "section")
    assert re.search(f"\\*later\\*: 0 live clones.*\n:calendar: Next: deploy {WHEN}", home)

    # Nothing is due yet; two hours later the deployment runs, in ONE channel message edited in
    # place (progress, then savings and the chart in its thread), as a typed deploy is.
    assert h.bot.schedules.run_due() == []
    before = {m.ts for m in h.fake.in_channel(CHANNEL)}
    clock.advance(hours=2, seconds=1)
    assert h.bot.schedules.run_due() == ["deploy:later"]
    assert len([c for c in h.core.repo.clones(environment="later") if c.state.live]) == 2
    (run,) = [m for m in h.fake.in_channel(CHANNEL) if m.ts not in before]
    assert run.text.startswith("2 of 2 linked clones ready in later")
    shown = _shown(run)
    assert "ready 2 · failed 0 · remaining 0" in shown
    assert "```\nLayout" in shown and "Linked clones" in shown  # the savings table
    assert re.search(f":calendar: later strips back {WHEN}", shown)
    assert ":calendar: Scheduled deployment" in _context(run)
    assert run.files and run.files[0]["title"] == "Savings in later"
    edits = [u for u in h.fake.ok_calls("chat.update") if u.params["ts"] == run.ts]
    assert edits and edits[-1].params["text"] == run.text  # the outcome is the last edit
    assert not any("done" in m.text for m in h.fake.in_channel(CHANNEL))


def test_a_scheduled_strip_back_is_one_message(make_harness: Callable[..., SlackHarness]) -> None:
    clock = Clock()
    h = make_harness(clock=clock, schedule=ScheduleSettings(reminder_lead_min=0))
    h.command("deploy capture 2 as ending until in 3h")
    _deployed(h)
    before = {m.ts for m in h.fake.in_channel(CHANNEL)}
    clock.advance(hours=3, seconds=1)
    assert h.bot.schedules.run_due() == ["teardown:ending"]
    (run,) = [m for m in h.fake.in_channel(CHANNEL) if m.ts not in before]
    assert run.text.startswith("Stripped back ending: 2 clones destroyed")
    assert "(scheduled)" in _shown(run)
    assert not any(c.state.live for c in h.core.repo.clones(environment="ending"))


def _shown(m: Message) -> str:
    return "\n".join(b["text"]["text"] for b in m.blocks if b["type"] == "section")


def _context(m: Message) -> str:
    return "\n".join(e["text"] for b in m.blocks if b["type"] == "context" for e in b["elements"])


def test_reminder_extend_and_strip_back_now(make_harness: Callable[..., SlackHarness]) -> None:
    clock = Clock()
    h = make_harness(clock=clock)
    h.command("deploy capture 1 as remind-env until in 3h")
    _deployed(h)
    sched = h.bot.schedules
    end = clock.now + timedelta(hours=3)
    assert _jobs(h)["remind:remind-env"] == end - timedelta(hours=1)

    clock.advance(hours=2, minutes=1)
    assert sched.run_due() == ["remind:remind-env"]
    reminder = _message(h, "Reminder: remind-env is stripped back")
    assert reminder.channel == CHANNEL
    assert f"<@{OPERATOR}>" in reminder.blocks[0]["text"]["text"]
    assert "(in 59 min)" in reminder.text
    buttons = {
        e["action_id"]: e for b in reminder.blocks if b["type"] == "actions" for e in b["elements"]
    }
    assert buttons[ACTION_EXTEND]["text"]["text"] == "Extend 2h"
    assert buttons[ACTION_STRIP_NOW]["text"]["text"] == "Strip back now"
    assert sched.run_due() == []  # once per scheduled end

    # A bystander may not extend: told privately, audited, nothing moves.
    h.click(ACTION_EXTEND, "remind-env", STRANGER, reminder.ts)
    h.fake.wait_for(lambda: any("not allowed to `extend`" in t for t in h.ephemeral_texts()))
    denied = [e for e in h.core.repo.audit_entries() if e.result == "denied"]
    assert denied[0].actor == STRANGER and "Extend 2h remind-env" in denied[0].command
    env = h.core.repo.get_environment("remind-env")
    assert env is not None and env.ends_at == end

    reply = h.click(ACTION_EXTEND, "remind-env", OPERATOR, reminder.ts)
    assert reply.status == 200 and reply.elapsed_s < 3
    h.fake.wait_for(lambda: "Extended by" in str(reminder.blocks))
    env = h.core.repo.get_environment("remind-env")
    assert env is not None and env.ends_at == end + timedelta(hours=2)
    assert _jobs(h)["teardown:remind-env"] == end + timedelta(hours=2)
    assert _jobs(h)["remind:remind-env"] == end + timedelta(hours=1)
    assert any("2 h later" in t for t in h.ephemeral_texts())
    assert any(
        e.actor == OPERATOR and e.source == "slack" and e.command == "extend remind-env 2h"
        for e in h.core.repo.audit_entries()
    )

    # Strip back now: the usual plan with Confirm / Cancel, nothing destroyed yet.
    h.click(ACTION_STRIP_NOW, "remind-env", OPERATOR, reminder.ts)
    plan = _message(h, "Strip back remind-env?")
    assert plan.channel == CHANNEL
    assert any(
        e["action_id"] == ACTION_CONFIRM
        for b in plan.blocks
        if b["type"] == "actions"
        for e in b["elements"]
    )
    assert sum(c.state.live for c in h.core.repo.clones(environment="remind-env")) == 1


def test_extend_past_the_cap_is_explained_and_changes_nothing(
    make_harness: Callable[..., SlackHarness],
) -> None:
    clock = Clock()
    h = make_harness(clock=clock, schedule=ScheduleSettings(max_lease_hours=4))
    h.command("deploy capture 1 as capped until in 3h")
    _deployed(h)
    env = h.core.repo.get_environment("capped")
    assert env is not None and env.ends_at is not None
    end = env.ends_at

    h.click(ACTION_EXTEND, "capped", OPERATOR, ts="")
    said = _said(h, "cannot be extended")
    assert said["response_type"] == "ephemeral"
    assert "max_lease_hours" in said[
        "text"
    ] and 'Extend by at most 1 h, e.g. "extend capped 1h"' in (said["text"].replace("&quot;", '"'))
    env = h.core.repo.get_environment("capped")
    assert env is not None and env.ends_at == end


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("deploy capture 1 as bad until 2020-01-01 09:00", "which has passed"),
        ("deploy capture 1 as bad until someday", 'could not read "someday" as a time'),
        (
            "deploy capture 1 as bad at 2030-01-02 09:00 until 2030-01-01 09:00",
            "must be after the start",
        ),
        ("deploy capture 1 as bad at in 1h until in 30d", "may run at most 336 h"),
    ],
)
def test_bad_deploy_times_are_refused_in_the_ack_and_nothing_is_created(
    harness: SlackHarness, text: str, expected: str
) -> None:
    h = harness
    reply = h.command(text)
    assert reply.status == 200 and reply.elapsed_s < 3
    assert reply.json["response_type"] == "ephemeral"
    assert expected in reply.json["text"].replace("&quot;", '"')
    h.idle()
    assert h.core.repo.list_environments() == []
    assert h.lab.control.stats()["clone_calls"] == 0
    assert h.fake.of("chat.postMessage") == [] and _jobs(h) == {}


def test_bad_schedule_commands_answer_privately_and_change_nothing(harness: SlackHarness) -> None:
    h = harness
    h.command("deploy capture 1 as plain")
    _deployed(h)
    before = h.core.repo.get_environment("plain")

    cases = [
        ("schedule nowhere until fri 17:00", 'No environment named "nowhere"'),
        ("schedule plain until 2020-01-01 09:00", "which has passed"),
        ("extend plain 2h", "has no scheduled strip back to extend"),
        ("schedule plain at mon 08:00", "has no scheduled deployment to move"),
    ]
    for text, expected in cases:
        reply = h.command(text)
        assert reply.status == 200 and reply.elapsed_s < 3
        said = _said(h, expected)
        assert said["response_type"] == "ephemeral"
    assert h.core.repo.get_environment("plain") == before
    assert _jobs(h) == {}

    h.command("cancel-schedule plain")
    said = _said(h, "plain has nothing scheduled")
    assert said["response_type"] == "ephemeral"


def test_home_shows_what_is_deploying_now(harness: SlackHarness) -> None:
    h = harness
    h.lab.control.configure(clone_latency_ms=8000)
    h.command("deploy capture 1 as slow")
    h.fake.wait_for(lambda: h.core.repo.runs(states=[RunState.RUNNING]), timeout=10)
    h.event({"type": "app_home_opened", "user": STRANGER, "tab": "home"})
    view = h.fake.wait_for(lambda: h.fake.ok_calls("views.publish"))[-1].params["view"]
    home = "\n".join(b["text"]["text"] for b in view["blocks"] if b["type"] == "section")
    assert "*Working now*" in home and "*slow*: deploying" in home
