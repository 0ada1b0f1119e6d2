"""Schedules from Slack: deploy until / at, status and Home show the next event, the reminder
with its Extend and Strip back now buttons, and bad times that change nothing; missed courses,
late starts and a scheduler taken over from a SIGKILLed bot.

Most tests run the schedule service on a controllable clock with its scheduler paused; due jobs
run with `ScheduleService.run_due()` in the test's thread, calling what the scheduler would. The
tests under "the real scheduler" run APScheduler for real and wait on conditions (a message, the
scheduler idle), never on sleeps.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.adapters.lab import LabProcess
from bot.domain.models import CloneState, RunKind, RunState
from bot.services.leadership import Leadership
from bot.settings import ScheduleSettings
from handlers.blocks.ids import ACTION_CONFIRM, ACTION_EXTEND, ACTION_STRIP_NOW
from storage import Repository
from tests.faults import record, wait_until
from tests.helpers import Clock, lab_config, lab_environ, write_config

from .conftest import CHANNEL, OPERATOR, STRANGER, SlackHarness
from .fake_api import FakeSlack, Message
from .signing import SECRET

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.lab

AT = r"\w{3} \d{1,2} \w{3}( \d{4})? \d\d:\d\d UTC"  # the bundled zone is UTC
WHEN = AT + r" \(in [^)]+\)"


def _deployed(h: SlackHarness, n: int = 1) -> None:
    h.fake.wait_for(lambda: len(h.fake.ok_calls("files.completeUploadExternal")) >= n, timeout=60)


def _said(h: SlackHarness, fragment: str) -> dict:
    """A reply containing `fragment`: private (response_url) or, for `deploy ... at`, the
    confirmation posted in the channel."""

    def found() -> list[dict]:
        private = [c.params for c in h.fake.of("response_url")]
        public = [{"text": m.text} for m in h.fake.messages.values()]
        return [p for p in private + public if fragment in str(p.get("text"))]

    return h.fake.wait_for(found)[0]


def _message(h: SlackHarness, prefix: str) -> Message:
    return h.fake.wait_for(
        lambda: [m for m in h.fake.messages.values() if m.text.startswith(prefix)]
    )[0]


def _jobs(h: SlackHarness) -> dict[str, object]:
    ids = set(h.bot.schedules.job_ids())  # deploy:, teardown:, remind: (not the re-sync)
    return {j.id: j.run_at for j in h.bot.schedules.scheduler.jobs() if j.id in ids}


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
    # The reminder is scheduled once the deployment has run (it is about clones).
    assert set(_jobs(h)) == {"deploy:later", "teardown:later"}

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
    assert set(_jobs(h)) == {"teardown:later", "remind:later"}
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
    # Told privately just after the reminder is edited (wait: the edit may be seen first).
    h.fake.wait_for(lambda: any("2 h later" in t for t in h.ephemeral_texts()))
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


# ===================================================================== the real scheduler
# These run APScheduler for real, on the wall clock. A bot "down" is a stopped scheduler whose
# jobs live only in SQLite; the restarted bot's scheduler finds them due and starts them at once,
# in threads of its own, as after a real restart. Tests wait on conditions (a message, the
# scheduler idle), never on sleeps.
FAST = ScheduleSettings(resync_s=0.2)


def _idle(h: SlackHarness, timeout: float = 60) -> None:
    wait_until(h.bot.schedules.idle, timeout=timeout)
    h.bot.ctx.jobs.shutdown(wait=True)  # and no Slack work left (progress, uploads)


def _texts(h: SlackHarness, fragment: str) -> list[Message]:
    return sorted(
        (m for m in h.fake.messages.values() if fragment in m.text), key=lambda m: float(m.ts)
    )


def test_a_course_missed_while_the_bot_was_down_leaves_nothing_and_says_why(
    make_harness: Callable[..., SlackHarness],
) -> None:
    """`deploy ... at T until Y`, and the bot is down through both T and Y: at the next start
    both jobs fire at once; the deployment creates nothing (its course is over), the strip back
    has nothing to do and says nothing, and the channel is told why."""
    earlier = Clock(datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10))
    first = make_harness(clock=earlier)
    first.command("deploy capture 2 as s3r at in 1m until in 2m")
    _said(first, "s3r deploys")
    first.bot.schedules.shutdown()  # the bot goes down; the course is only in SQLite now

    h = make_harness(paused=False, schedule=FAST, channels=(CHANNEL,))
    told = _message(h, "The scheduled deployment of s3r")
    _idle(h)
    assert told.channel == CHANNEL
    assert re.fullmatch(
        f"The scheduled deployment of s3r \\(deploy capture 2 as s3r\\) did not run: it was due "
        f"{AT} \\(9 min ago\\) and its course ended {AT} \\(8 min ago\\), "
        "while no bot was running schedules. Nothing was created.",
        told.text,
    ), told.text
    assert h.lab.control.stats()["clone_calls"] == 0
    assert [vm for vm in h.lab.control.vms() if vm["name"].startswith("TRN-")] == []
    assert h.core.repo.get_environment("s3r") is None and h.core.repo.clones() == []
    assert h.core.repo.runs() == [] and h.bot.schedules.job_ids() == []
    said = [m.text for m in h.fake.messages.values()]
    assert not any("strip back of s3r" in t.lower() and "done" in t for t in said)
    assert not any("nothing to do" in t for t in said)
    # The start-up report: one line, no server paths.
    [report] = _texts(h, "Scheduler running")
    assert report.channel == CHANNEL and "\n" not in report.text
    folder = h.db_path.parent if isinstance(h.db_path, Path) else h.db_path
    assert str(folder) not in report.text and ".lock" not in report.text
    assert "2 fell due while no bot was running schedules" in report.text
    record(
        "course missed entirely while the bot was down",
        clone_calls=h.lab.control.stats()["clone_calls"],
        vms_left=len([vm for vm in h.lab.control.vms() if vm["name"].startswith("TRN-")]),
        channel_messages=len([m for m in h.fake.messages.values() if m.channel == CHANNEL]),
    )


def test_a_late_start_whose_course_is_still_on_deploys_and_keeps_its_strip_back(
    make_harness: Callable[..., SlackHarness],
) -> None:
    """The bot is down through the start but not the end: the deployment runs late and says
    so, the strip back stays scheduled, and the reminder (its time passed too: the lease left is
    inside the lead) comes after the deployment, never before a clone exists."""
    earlier = Clock(datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=2))
    first = make_harness(clock=earlier)
    first.command("deploy capture 2 as s4 at in 1m until in 1h")
    said = _said(first, "s4 deploys")
    assert "the owner is reminded once the deployment is done" in said["text"]
    first.bot.schedules.shutdown()
    env = first.core.repo.get_environment("s4")
    assert env is not None and env.ends_at is not None
    ends = env.ends_at

    h = make_harness(paused=False, schedule=FAST)
    reminder = _message(h, "Reminder: s4 is stripped back")
    _idle(h)
    done = _message(h, "2 of 2 linked clones ready in s4")  # the run's one message, finished
    assert "when no bot was running schedules" in _context(done)
    assert "s4 strips back" in _shown(done)
    assert float(done.ts) < float(reminder.ts)
    live = [c for c in h.core.repo.clones(environment="s4") if c.state.live]
    assert len(live) == 2
    assert len(h.core.vcenter.vm_facts([c.moref or "" for c in live]).seen) == 2
    env = h.core.repo.get_environment("s4")
    assert env is not None and env.ends_at == ends
    assert _jobs(h) == {"teardown:s4": ends}
    assert len(_texts(h, "Reminder: s4")) == 1
    record(
        "late start, course still on",
        deployed=len(live),
        strip_back_kept=_jobs(h).get("teardown:s4") == ends,
        reminder_after_done=float(reminder.ts) > float(done.ts),
    )


def test_a_deploy_whose_end_is_inside_the_lead_reminds_after_its_clones_exist(
    make_harness: Callable[..., SlackHarness],
) -> None:
    clock = Clock(datetime.now(UTC).replace(second=14, microsecond=0))
    start = (clock.now + timedelta(minutes=1)).replace(second=0)  # 46 s away
    h = make_harness(clock=clock)
    h.command(f"deploy capture 1 as brief at {start:%H:%M} until in 20m")
    said = _said(h, "brief deploys")
    assert re.search(
        r"brief deploys .* UTC \(in 46 s\) and strips back .*\(in 20 min\)", said["text"]
    )
    assert "the owner is reminded once the deployment is done" in said["text"]
    assert set(_jobs(h)) == {"deploy:brief", "teardown:brief"}
    assert h.bot.schedules.run_due() == []  # no reminder before anything exists
    assert not _texts(h, "Reminder")
    clock.advance(seconds=46)
    assert h.bot.schedules.run_due() == ["deploy:brief", "remind:brief"]
    done = _message(h, "1 of 1 linked clones ready in brief")
    reminder = _message(h, "Reminder: brief is stripped back")
    assert float(done.ts) < float(reminder.ts)
    assert "(in 19 min)" in reminder.text or "(in 20 min)" in reminder.text


def test_times_are_shown_back_as_typed_and_a_short_lead_never_reads_now(
    make_harness: Callable[..., SlackHarness],
) -> None:
    h = make_harness()  # the real clock: the reply is made a moment after the time was read
    reply = h.command("deploy capture 1 as three until in 3h")
    assert re.search(
        r"Strip back is set for .* UTC \(in 3 h\) once clones are ready", reply.json["text"]
    )
    _deployed(h)
    h.bot.schedules.shutdown()

    clock = Clock()
    h = make_harness(clock=clock, schedule=ScheduleSettings(reminder_lead_min=1))
    h.command("deploy capture 1 as lead1 until in 10m")
    _deployed(h, 2)
    clock.advance(minutes=9, seconds=0.3)  # the reminder's job runs a moment after its time
    assert h.bot.schedules.run_due() == ["remind:lead1"]
    reminder = _message(h, "Reminder: lead1 is stripped back")
    assert reminder.text.endswith("(in 1 min)")


def test_a_refused_deploy_past_the_cap_suggests_a_deploy_that_fits(
    make_harness: Callable[..., SlackHarness],
) -> None:
    h = make_harness(schedule=ScheduleSettings(max_lease_hours=3))
    reply = h.command("deploy capture 1 as s6b until in 4h")
    text = reply.json["text"].replace("&quot;", '"')
    assert reply.json["response_type"] == "ephemeral"
    assert re.search(r'e\.g\. "deploy capture 1 as s6b until \d{4}-\d\d-\d\d \d\d:\d\d"', text)
    assert "schedule s6b" not in text
    suggested = re.search(r'e\.g\. "(deploy [^"]+)"', text)
    assert suggested is not None
    reply = h.command(suggested[1])
    assert "Strip back is set for" in reply.json["text"]
    _deployed(h)
    reply = h.command("deploy capture 1 as s6c until in 400d")
    assert "at most a year ahead" in reply.json["text"]


def test_no_reply_promises_a_time_when_no_scheduler_holds_the_lock(harness: SlackHarness) -> None:
    h = harness
    h.command("deploy capture 1 as plain")
    _deployed(h)
    h.bot.schedules.shutdown()  # e.g. the bot is stopping: nothing would keep the time
    h.command("schedule plain until fri 17:00")
    said = _said(h, "plain strips back")
    assert said["text"].endswith(
        "No bot is running the scheduler for this database right now, so nothing runs at that "
        "time until one starts (`python -m bot`); it then runs anything due, late if need be."
    )
    reply = h.command("deploy capture 1 as other until fri 17:00")
    assert "No bot is running the scheduler" in reply.json["text"]


def _bot_process(
    lab: LabProcess, fake: FakeSlack, database: Path, schedule: dict[str, float], lease_s: float
) -> subprocess.Popen[bytes]:
    """`python -m bot` (HTTP mode) on `database`, the test's lab and its fake Slack."""
    raw = lab_config(lab, database)
    raw["clones"]["lease_s"] = lease_s
    raw["slack"] = {
        "api_url": fake.api_url,
        "operators": [OPERATOR],
        "channels": [CHANNEL],
        "progress_interval_s": 1.0,
    }
    raw["schedule"] = schedule
    config = write_config(database.with_name("bot-a.toml"), raw)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "CLONES_"))}
    env.update(
        CLONES_CONFIG=str(config),
        CLONES_LAB_DIR=os.environ.get("CLONES_LAB_DIR", ""),
        SLACK_BOT_TOKEN="xoxb-test",
        SLACK_SIGNING_SECRET=SECRET,
        PORT=str(port),
        **lab_environ(lab),
    )
    log = database.with_name("bot-a.log").open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "bot"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )


def test_the_standing_bot_takes_over_when_the_holder_hangs_and_runs_the_job_once(
    make_harness: Callable[..., SlackHarness],
    lab: LabProcess,
    fake_slack: FakeSlack,
    tmp_path: Path,
) -> None:
    """Bots A (a real `python -m bot`, leading) and B (standing by) on one database. A hangs
    (SIGSTOP) and a strip back falls due: B takes the lease over once A's has run out (within
    `lease_s` and a third), runs the strip back once, and says it was due when no bot was
    running schedules. A, continued, is refused its next write (its lease renewal: fenced) and
    does nothing more."""
    resync, lease = 1.0, 2.0
    database = tmp_path / "clones.db"  # the harness's database
    a = _bot_process(lab, fake_slack, database, {"resync_s": 0.5}, lease)
    a_log = database.with_name("bot-a.log")
    try:
        watch = Leadership(Repository(database))
        wait_until(lambda: f":{a.pid}:" in watch.holder(), timeout=60)  # read, never probed
        h = make_harness(
            paused=False,
            schedule=ScheduleSettings(resync_s=resync),
            channels=(CHANNEL,),
            lease_s=lease,
        )
        sched = h.bot.schedules
        assert not sched.active  # A leads: B stands by
        [standing] = _texts(h, "Standing by")
        assert standing.text == (
            ":calendar: Standing by: another bot runs the schedules for this database; this "
            "one takes them over within 3 s if that one stops."
        )
        h.command("deploy capture 2 as s2c")
        h.command("deploy capture 1 as s2d")
        _deployed(h, 2)

        os.kill(a.pid, signal.SIGSTOP)  # A hangs: its scheduler runs nothing
        stopped = time.monotonic()
        end = datetime.now(UTC) + timedelta(seconds=0.5)
        sched.set_end("s2c", end, actor=OPERATOR)
        wait_until(lambda: sched.active, timeout=30)
        takeover_s = time.monotonic() - stopped
        assert datetime.now(UTC) > end  # it fell due while nobody led
        # A reply right after the takeover promises a time this bot will keep.
        h.command("schedule s2d until in 2h")
        said = _said(h, "s2d strips back")
        assert "No bot" not in said["text"]
        _message(h, "Stripped back s2c: 2 clones destroyed")
        _idle(h)
        os.kill(a.pid, signal.SIGCONT)  # A comes back: it no longer leads
        wait_until(
            lambda: "fenced: Refused: renewing lease 'scheduler'" in a_log.read_text(), timeout=30
        )
        _idle(h)
    finally:
        if a.poll() is None:
            a.kill()
            a.wait(30)
    record(
        "standing bot takes the scheduler over from a hung leader",
        lease_s=lease,
        takeover_s=round(takeover_s, 2),
        teardown_runs=[r.kind for r in h.core.repo.runs(environment="s2c")].count(RunKind.TEARDOWN),
    )
    # The lease runs out within `lease` s of the stop, the next try within a third of it; the
    # margin is for a busy machine.
    assert takeover_s <= lease + lease / 3 + 2.0, takeover_s
    [taken] = _texts(h, "Took the schedules over from a bot that stopped")
    assert taken.channel == CHANNEL
    assert "1 fell due while no bot was running schedules" in taken.text
    [done] = _texts(h, "Stripped back s2c: 2 clones destroyed")  # the run's one message
    assert "when no bot was running schedules" in _shown(done)
    assert not _texts(h, "while the bot was not running")
    runs = h.core.repo.runs(environment="s2c")
    assert [r.kind for r in runs].count(RunKind.TEARDOWN) == 1
    assert all(c.state is CloneState.DESTROYED for c in h.core.repo.clones(environment="s2c"))
    assert [vm["name"] for vm in h.lab.control.vms() if vm["name"].startswith("TRN-")] == [
        c.name for c in h.core.repo.clones(environment="s2d")
    ]
    assert _jobs(h) == {
        "teardown:s2d": h.core.repo.get_environment("s2d").ends_at,  # type: ignore[union-attr]
        "remind:s2d": h.core.repo.get_environment("s2d").ends_at - timedelta(hours=1),  # type: ignore[union-attr,operator]
    }
