"""The bot keeps its word through restarts: `python -m bot` SIGKILLed or SIGTERMed in the middle
of a deployment, then started again. The restarted bot edits the run's own progress message to
its final state (resumed, counts, savings) with the chart in its thread; a SIGTERM keeps
answering while it drains, for at most `[slack] drain_timeout_s`."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.adapters.lab import LabProcess
from bot.domain.models import CloneState, RunState
from handlers.blocks.ids import ACTION_CONFIRM
from tests.faults import record, wait_until

from .conftest import CHANNEL, OPERATOR, STRANGER
from .fake_api import FakeSlack, Message
from .process import BotProcess

pytestmark = pytest.mark.lab

MakeLab = Callable[[dict[str, Any]], LabProcess]
FIRST = "CFIRSTCHAN"  # the first configured channel: recovery notes must not land here


@pytest.fixture
def bots(tmp_path: Path) -> Iterator[list[BotProcess]]:
    started: list[BotProcess] = []
    yield started
    for bot in started:
        bot.stop()


def _ready(bot: BotProcess, environment: str) -> int:
    with bot.repo() as repo:
        return sum(c.state is CloneState.READY for c in repo.clones(environment=environment))


def _sections(m: Message) -> str:
    return "\n".join(b["text"]["text"] for b in m.blocks if b["type"] == "section")


def _context(m: Message) -> str:
    return "\n".join(e["text"] for b in m.blocks if b["type"] == "context" for e in b["elements"])


def _run_message(fake: FakeSlack) -> Message:
    (message,) = fake.in_channel(CHANNEL)
    return message


def test_sigkill_mid_deploy_then_the_restart_finishes_the_original_message(
    make_lab: MakeLab, fake_slack: FakeSlack, tmp_path: Path, bots: list[BotProcess]
) -> None:
    fake = fake_slack
    lab = make_lab({"clone_latency_ms": 400})
    bot = BotProcess(tmp_path, lab, fake, channels=[FIRST, CHANNEL])
    bots.append(bot.start())
    reply = bot.command("deploy capture 30 as big-b")
    assert reply.status == 200 and reply.json["text"].startswith("Deploying 30 capture clones")
    wait_until(lambda: _ready(bot, "big-b") >= 6, timeout=90)
    fake.wait_for(lambda: "Deploying into big-b" in _run_message(fake).text)
    bot.kill()
    message = _run_message(fake)
    at_kill = message.text
    assert at_kill.startswith("Deploying into big-b: ") and "/30" in at_kill
    with bot.repo() as repo:
        (run,) = repo.runs(environment="big-b")
        shown = repo.run_message(run.id)
    assert run.state is RunState.RUNNING
    assert shown is not None and (shown.channel, shown.ts) == (CHANNEL, message.ts)

    bot.start()  # the same config and database: a restart
    fake.wait_for(lambda: message.text.startswith("30 of 30 linked clones ready"), timeout=120)
    final_edit = [u for u in fake.ok_calls("chat.update") if u.params["ts"] == message.ts][-1]
    assert final_edit.params["channel"] == CHANNEL
    assert "*big-b*" in _sections(message) and "```\nLayout" in _sections(message)
    assert "Resumed after a restart of the bot" in _context(message)
    assert "savings chart in the thread" in _context(message)
    fake.wait_for(lambda: message.files, timeout=30)
    assert message.files[0]["thread_ts"] == message.ts
    # The run's own message is the note: nothing in the first configured channel, and no
    # second message in the run's channel.
    assert fake.in_channel(FIRST) == []
    assert [m.ts for m in fake.in_channel(CHANNEL)] == [message.ts]
    with bot.repo() as repo:
        old = repo.get_run(run.id)
        assert old.state is RunState.SUPERSEDED and old.superseded_by is not None
        run = repo.get_run(old.superseded_by)  # the run recovery started in its place
        again = repo.run_message(run.id)  # ... shown in the same message
        assert again is not None and (again.channel, again.ts) == (CHANNEL, message.ts)
        names = sorted(c.name for c in repo.clones(environment="big-b") if c.state.live)
    assert (run.state, run.succeeded) == (RunState.SUCCEEDED, 30)
    assert names == [f"TRN-CAP-{n:03}" for n in range(1, 31)]
    record(
        "bot SIGKILLed mid-deploy, restarted",
        faults_injected=1,
        message_at_kill=at_kill.split(" (")[0],
        final_edit_of_original_message=1,
        notes_elsewhere=0,
        chart_in_thread=1,
    )


def test_sigkill_mid_strip_back_then_the_restart_finishes_the_plan_message(
    make_lab: MakeLab, fake_slack: FakeSlack, tmp_path: Path, bots: list[BotProcess]
) -> None:
    """The strip back is resumed as a new run; its message is still the confirmed plan."""
    fake = fake_slack
    lab = make_lab({"destroy_latency_ms": 600})
    bot = BotProcess(tmp_path, lab, fake)
    bots.append(bot.start())
    bot.command("deploy capture 12 as strip")
    fake.wait_for(lambda: fake.ok_calls("files.completeUploadExternal"), timeout=60)
    bot.command("teardown strip")
    plan = fake.wait_for(
        lambda: [m for m in fake.in_channel(CHANNEL) if m.text.startswith("Strip back strip?")]
    )[0]
    value = next(b for b in plan.blocks if b["type"] == "actions")["elements"][0]["value"]
    assert bot.click(ACTION_CONFIRM, value, OPERATOR, plan.ts).status == 200
    wait_until(lambda: _destroyed(bot, "strip") >= 3, timeout=60)
    bot.kill()
    assert _destroyed(bot, "strip") < 12

    bot.start()
    fake.wait_for(lambda: plan.text.startswith("Stripped back strip: "), timeout=90)
    assert "Finished after a restart of the bot" in _context(plan)
    with bot.repo() as repo:
        assert not any(c.state.live for c in repo.clones(environment="strip"))
    assert [m.ts for m in fake.in_channel(CHANNEL) if "strip" in m.text.lower()][-1] == plan.ts


def _destroyed(bot: BotProcess, environment: str) -> int:
    with bot.repo() as repo:
        return sum(c.state is CloneState.DESTROYED for c in repo.clones(environment=environment))


def test_sigterm_keeps_answering_drains_for_a_bounded_time_and_the_rest_resumes(
    make_lab: MakeLab, fake_slack: FakeSlack, tmp_path: Path, bots: list[BotProcess]
) -> None:
    fake = fake_slack
    lab = make_lab({"clone_latency_ms": 1500})  # 30 clones, 4 at a time: about 12 s
    bot = BotProcess(tmp_path, lab, fake, drain_timeout_s=4)
    bots.append(bot.start())
    bot.command("deploy capture 30 as big-b")
    wait_until(lambda: _ready(bot, "big-b") >= 4, timeout=90)
    bot.terminate()
    stopped_at = time.monotonic()

    # While it drains: reads are answered, changing commands are told to wait.
    status = bot.command("status", user=STRANGER)
    assert status.status == 200 and status.elapsed_s < 3
    fake.wait_for(lambda: any("big-b" in t for t in _ephemeral(fake)), timeout=3)
    # The signal reaches the bot's main thread when the machine gets round to it: once it says
    # it drains, a changing command is refused.
    wait_until(lambda: "stopping: finishing the work in hand" in bot.log(), timeout=30)
    deploy = bot.command("deploy capture 1 as other")
    assert deploy.status == 200 and deploy.elapsed_s < 3
    assert "The bot is restarting" in deploy.json["text"]

    assert bot.wait(timeout=30) == 0
    drained_s = time.monotonic() - stopped_at
    assert "1 run(s) unfinished (deploy of big-b)" in bot.log()
    assert "Traceback" not in bot.log()
    assert 3.5 < drained_s < 15, drained_s  # the drain limit, not the whole deployment
    message = _run_message(fake)
    assert "paused by a restart of the bot" in message.text
    with bot.repo() as repo:
        (run,) = repo.runs(environment="big-b")
        assert run.state is RunState.INTERRUPTED
        assert repo.get_environment("other") is None

    bot.start()
    fake.wait_for(lambda: message.text.startswith("30 of 30 linked clones ready"), timeout=120)
    assert "Resumed after a restart of the bot" in _context(message)
    fake.wait_for(lambda: message.files, timeout=30)
    record(
        "bot SIGTERMed mid-deploy (drain 4 s), restarted",
        faults_injected=1,
        drained_s=round(drained_s, 1),
        status_ack_ms=round(status.elapsed_s * 1000),
        deploy_during_drain="refused",
        resumed=1,
    )


def test_sigterm_lets_a_short_deployment_finish_before_exiting(
    make_lab: MakeLab, fake_slack: FakeSlack, tmp_path: Path, bots: list[BotProcess]
) -> None:
    fake = fake_slack
    lab = make_lab({"clone_latency_ms": 300})
    bot = BotProcess(tmp_path, lab, fake, drain_timeout_s=60)
    bots.append(bot.start())
    bot.command("deploy capture 6 as short")
    wait_until(lambda: _ready(bot, "short") >= 2, timeout=60)
    bot.terminate()
    status = bot.command("status short", user=STRANGER)
    assert status.status == 200 and status.elapsed_s < 3
    assert bot.wait(timeout=60) == 0
    message = _run_message(fake)
    assert message.text.startswith("6 of 6 linked clones ready in short")
    assert message.files  # the chart was posted before the process exited
    with bot.repo() as repo:
        (run,) = repo.runs(environment="short")
    assert run.state is RunState.SUCCEEDED
    assert "Traceback" not in bot.log()


def _ephemeral(fake: FakeSlack) -> list[str]:
    return [str(c.params.get("text", "")) for c in fake.of("response_url")]
