"""9. Slack at workspace scale: the bot within Slack's rate tiers (issue 23).

The real Bolt app (`handlers.app.create_bot`, served over HTTP) on the lab vCenter, against the
fake Slack Web API keeping Slack's documented tiers (tests/slack/fake_api.py, `tiers=True`): each
method its tier's calls per minute, chat.postMessage about one a second per channel, a call over
a limit answered 429 with Retry-After. The full profile keeps Slack's real minute; `--smoke`
shortens it (the fake's and the bot's pacer's windows scale together).

1. **Hand-out.** A freshly started bot (cold caches) hands out `trainees` VMs from a channel:
   the time from the slash command to the trainer's final message, the 429s received, the calls
   by method; then `assign` again with nothing new, and the calls it made per member.
2. **Deployments and a hand-out at once.** `deployments` deployments of `deployment_clones`
   clones (lab clone latency `deployment_latency_ms`) and a hand-out of `trainees`, started
   together: the most `chat.update` calls in any minute, the 429s, and how long after each
   run's end its final state landed in its message.
3. **The ack while Slack rate limits user groups.** A member of an operator group, on a bot that
   has not read the group yet, while `usergroups.users.list` answers 429 (Retry-After 5 s):
   how long the slash command's acknowledgement takes, and when the answer follows.
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.common import Profile, Table, lab, settings_for, targets_table, write_result
from bot import bootstrap
from bot.adapters.lab import LabProcess
from bot.domain.models import RunState
from bot.settings import Settings, SlackSettings
from handlers.app import SlackBot, SlackTokens, create_bot, http_server
from handlers.jobs import Jobs
from handlers.pacing import Pacer
from tests.slack.fake_api import Call, FakeSlack
from tests.slack.signing import SECRET, sign, slash_body

OPERATOR = "UBENCHOP"
GROUP_MEMBER = "UBENCHGROUPIE"
CHANNEL = "CBENCH"
COHORT = "CCOHORT"
HANDOUT_TARGET_S = 90.0
UPDATES_PER_MINUTE_TARGET = 50
FINAL_LAG_TARGET_S = 10.0
ACK_TARGET_MS = 1000.0
PER_MEMBER = ("users.info", "users.list", "conversations.open")


# ===================================================================== the bot on the fake
@dataclass
class Bot:
    core: bootstrap.App
    bot: SlackBot
    url: str
    server: Any

    def command(self, fake: FakeSlack, text: str, user: str = OPERATOR) -> float:
        """Send `/clones text` as Slack would; the acknowledgement's time in ms."""
        body = slash_body(text, user, CHANNEL, fake.response_url("bench"))
        request = urllib.request.Request(self.url, data=body.encode(), headers=sign(body))
        started = time.perf_counter()
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()
        return (time.perf_counter() - started) * 1000


def _settings(lb: LabProcess, db: Path, fake: FakeSlack, profile: Profile) -> Settings:
    settings = settings_for(lb, db, concurrency=8)
    return replace(
        settings,
        slack=SlackSettings(
            operators=(OPERATOR,),
            operator_groups=("SOPS",),
            progress_interval_s=3.0 * fake.minute_s / 60.0,
            api_url=fake.api_url,
        ),
    )


@contextmanager
def running_bot(settings: Settings, fake: FakeSlack, *, workers: int = 2) -> Iterator[Bot]:
    """A freshly started bot (its own pacer, with the fake's minute; nothing cached)."""
    core = bootstrap.build(settings, start_lab=False)
    bot = create_bot(
        core,
        SlackTokens("xoxb-bench", SECRET, "", 0),
        jobs=Jobs(workers=workers, max_pending=16),
        pacer=Pacer(scale=fake.minute_s / 60.0),
    )
    bot.start(paused=True)
    server = http_server(bot.app, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, name="bench-http", daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/slack/events"
    try:
        yield Bot(core, bot, url, server)
    finally:
        server.shutdown()
        bot.close(wait=True)
        core.close()


def _workspace(fake: FakeSlack, n: int) -> list[str]:
    fake.group_members["SOPS"] = [GROUP_MEMBER]
    fake.add_user(OPERATOR, "Olga Operator")
    fake.add_user("UHELPER", "Helper bot", bot=True)
    cohort = [f"UT{i:04}" for i in range(1, n + 1)]
    for user in cohort:
        fake.add_user(user, f"Trainee {user}")
    fake.channel_members[COHORT] = [OPERATOR, "UHELPER", *cohort, "USLACKBOT"]
    return cohort


def _wait(predicate: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.1)
    raise RuntimeError(f"timed out after {timeout:.0f} s")


def _final(fake: FakeSlack, words: str, after: int = 0) -> Call | None:
    """The first chat.update (or post) from call `after` on whose text holds `words`."""
    with fake._cond:
        calls = list(fake.calls[after:])
    return next(
        (
            c
            for c in calls
            if c.method in ("chat.update", "chat.postMessage")
            and c.status == 200
            and words in str(c.params.get("text", ""))
        ),
        None,
    )


def _ended(bot: Bot, environment: str) -> bool:
    return any(r.state is not RunState.RUNNING for r in bot.core.repo.runs(environment=environment))


def _deploy(bot: Bot, fake: FakeSlack, text: str, environment: str) -> None:
    bot.command(fake, text)
    _wait(lambda: _ended(bot, environment), 600)
    bot.bot.wait_idle(120)


# ===================================================================== 1. the hand-out
def hand_out(profile: Profile, tmp: Path) -> dict[str, Any]:
    fake = FakeSlack(tiers=True, minute_s=profile.slack_minute_s).start()
    try:
        with lab(20) as lb:
            settings = _settings(lb, tmp / "handout.db", fake, profile)
            with running_bot(settings, fake) as bot:
                _deploy(bot, fake, f"deploy capture {profile.trainees} as cohort", "cohort")
            cohort = _workspace(fake, profile.trainees)
            with running_bot(settings, fake) as bot:  # freshly started: nothing cached
                first = len(fake.calls)
                started = time.monotonic()
                bot.command(fake, f"assign cohort from <#{COHORT}|cohort>")
                done = _wait(lambda: _final(fake, "hold a VM", first), 900)
                took = done.at - started
                bot.bot.wait_idle(60)
                calls = fake.calls[first:]
                dms = [c for c in calls if c.method == "chat.postMessage" and c.status == 200]
                dm_calls = [c for c in dms if c.params.get("channel") in cohort]
                edits = [c for c in calls if c.method == "chat.update" and c.status == 200]
                said = [json.dumps(e.params) for e in edits]
                pacing_said = any("Slack is pacing the hand-out" in e for e in said)
                again_from = len(fake.calls)
                bot.command(fake, f"assign cohort from <#{COHORT}|cohort>")
                _wait(lambda: _final(fake, "already has theirs", again_from), 120)
                bot.bot.wait_idle(60)
                again = fake.calls[again_from:]
            reached = sum(a.handed_out_at is not None for a in bot.core.repo.assignments())
    finally:
        fake.stop()
    per_member_again = sum(
        1 for c in again if c.method in PER_MEMBER or c.params.get("channel") in cohort
    )
    return {
        "trainees": len(cohort),
        "reached": reached,
        "seconds": round(took, 1),
        "limited": sum(1 for c in calls if c.status == 429),
        "calls": dict(Counter(c.method for c in calls)),
        "direct_messages": len(dm_calls),
        "dms_busiest_second": fake.busiest(
            "chat.postMessage", profile.slack_minute_s / 60, lambda c: c in dm_calls
        ),
        "trainer_told_of_pacing": pacing_said,
        "again_calls": dict(Counter(c.method for c in again)),
        "again_per_member_calls": per_member_again,
    }


# ===================================================================== 2. deployments at once
def at_once(profile: Profile, tmp: Path) -> dict[str, Any]:
    fake = FakeSlack(tiers=True, minute_s=profile.slack_minute_s).start()
    try:
        with lab(profile.deployment_latency_ms) as lb:
            settings = _settings(lb, tmp / "at-once.db", fake, profile)
            with running_bot(settings, fake, workers=profile.deployments + 2) as bot:
                lb.control.configure(clone_latency_ms=20)
                _deploy(bot, fake, f"deploy capture {profile.trainees} as cohort", "cohort")
                cohort = _workspace(fake, profile.trainees)
                lb.control.configure(clone_latency_ms=profile.deployment_latency_ms)
                first = len(fake.calls)
                wall = time.time() - time.monotonic()
                started = time.monotonic()
                for n in range(profile.deployments):
                    bot.command(fake, f"deploy packaging {profile.deployment_clones} as run-{n}")
                bot.command(fake, f"assign cohort from <#{COHORT}|cohort>")
                envs = [f"run-{n}" for n in range(profile.deployments)]
                _wait(
                    lambda: all(_ended(bot, e) for e in envs) and _final(fake, "hold a VM", first),
                    1800,
                )
                bot.bot.wait_idle(120)
                took = time.monotonic() - started
                lags: dict[str, float | None] = {}
                ready: dict[str, int] = {}
                for env in envs:
                    [run] = bot.core.repo.runs(environment=env)
                    ready[env] = run.succeeded
                    final = _final(fake, f"ready in {env}", first)
                    if final is None or run.finished_at is None:
                        lags[env] = None
                        continue
                    ended = run.finished_at.replace(tzinfo=run.finished_at.tzinfo or UTC)
                    landed = datetime.fromtimestamp(final.at + wall, UTC)
                    lags[env] = round((landed - ended).total_seconds(), 2)
                calls = fake.calls[first:]
    finally:
        fake.stop()
    updates = [c for c in calls if c.method == "chat.update" and c.status == 200]
    window = profile.slack_minute_s
    return {
        "seconds": round(took, 1),
        "limited": sum(1 for c in calls if c.status == 429),
        "chat_update": len(updates),
        "chat_update_busiest_minute": _busiest(updates, window),
        "final_lag_s": lags,
        "ready": ready,
        "dms": sum(1 for c in calls if c.status == 200 and c.params.get("channel") in cohort),
    }


def _busiest(calls: list[Call], window: float) -> int:
    stamps = sorted(c.at for c in calls)
    most = first = 0
    for last, at in enumerate(stamps):
        while at - stamps[first] >= window:
            first += 1
        most = max(most, last - first + 1)
    return most


# ===================================================================== 3. the ack
def ack_under_429(profile: Profile, tmp: Path) -> dict[str, Any]:
    fake = FakeSlack(tiers=True, minute_s=profile.slack_minute_s).start()
    fake.group_members["SOPS"] = [GROUP_MEMBER]
    fake.rate_limit("usergroups.users.list", times=3, retry_after=5)
    try:
        with lab(20) as lb:
            settings = _settings(lb, tmp / "ack.db", fake, profile)
            with running_bot(settings, fake) as bot:
                started = time.monotonic()
                ack_ms = bot.command(fake, "deploy capture 1 as grouped", user=GROUP_MEMBER)
                answered = _wait(
                    lambda: next(
                        (
                            c
                            for c in fake.of("response_url")
                            if str(c.params.get("text", "")).startswith("Deploying")
                        ),
                        None,
                    ),
                    120,
                )
                _wait(lambda: _final(fake, "ready in grouped"), 120)
                bot.bot.wait_idle(60)
    finally:
        fake.stop()
    return {
        "ack_ms": round(ack_ms, 1),
        "answer_after_s": round(answered.at - started, 1),
        "usergroups_statuses": [c.status for c in fake.of("usergroups.users.list")],
    }


# ===================================================================== the report
def run(profile: Profile, out_dir: Path) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="clones-bench-") as tmp:
        first = hand_out(profile, Path(tmp))
        second = at_once(profile, Path(tmp))
        third = ack_under_429(profile, Path(tmp))
    scale = profile.slack_minute_s / 60.0
    lags = [v for v in second["final_lag_s"].values() if v is not None]
    worst_lag = max(lags) if lags else None
    targets: dict[str, dict[str, Any]] = {
        "handout_s": {
            "value": first["seconds"],
            "target": f"<= {HANDOUT_TARGET_S * scale:g} s",
            "met": first["seconds"] <= HANDOUT_TARGET_S * scale
            and first["reached"] == first["trainees"],
        },
        "handout_429s": {"value": first["limited"], "target": "0", "met": first["limited"] == 0},
        "again_per_member_calls": {
            "value": first["again_per_member_calls"],
            "target": "0",
            "met": first["again_per_member_calls"] == 0,
        },
        "chat_update_per_minute": {
            "value": second["chat_update_busiest_minute"],
            "target": f"< {UPDATES_PER_MINUTE_TARGET}",
            "met": second["chat_update_busiest_minute"] < UPDATES_PER_MINUTE_TARGET,
        },
        "at_once_429s": {"value": second["limited"], "target": "0", "met": second["limited"] == 0},
        "final_lag_s": {
            "value": worst_lag,
            "target": f"<= {FINAL_LAG_TARGET_S:g} s",
            "met": worst_lag is not None
            and len(lags) == profile.deployments
            and worst_lag <= FINAL_LAG_TARGET_S,
        },
        "ack_ms": {
            "value": third["ack_ms"],
            "target": f"< {ACK_TARGET_MS:g} ms",
            "met": third["ack_ms"] < ACK_TARGET_MS,
        },
    }
    minute = f"Slack's minute = {profile.slack_minute_s:g} s"
    t1 = Table(
        f"9a. Hand-out of {first['trainees']} trainees from a channel, freshly started bot "
        f"({minute})",
        ["figure", "value"],
    )
    t1.add("seconds to the trainer's final message", first["seconds"])
    t1.add("trainees reached", first["reached"])
    t1.add("429s received", first["limited"])
    t1.add("direct messages (posted to the member ID)", first["direct_messages"])
    t1.add("most DMs in one (scaled) second", first["dms_busiest_second"])
    t1.add("trainer told Slack is pacing it", first["trainer_told_of_pacing"])
    for method, n in sorted(first["calls"].items()):
        t1.add(f"calls: {method}", n)
    t1.add("again, nothing new: calls per member", first["again_per_member_calls"])
    t1.add("again: all calls", ", ".join(f"{m} {n}" for m, n in first["again_calls"].items()))
    t2 = Table(
        f"9b. {profile.deployments} deployments of {profile.deployment_clones} clones and a "
        f"hand-out of {profile.trainees}, at once ({minute})",
        ["figure", "value"],
    )
    t2.add("seconds until all ended", second["seconds"])
    t2.add("clones ready", " ".join(str(n) for n in second["ready"].values()))
    t2.add("chat.update in all", second["chat_update"])
    t2.add("chat.update, busiest minute", second["chat_update_busiest_minute"])
    t2.add("429s received", second["limited"])
    t2.add("direct messages", second["dms"])
    for env, lag in second["final_lag_s"].items():
        t2.add(f"{env}: final state landed after its end (s)", "none" if lag is None else lag)
    t3 = Table(
        f"9c. A group operator's command while usergroups.users.list answers 429 ({minute})",
        ["figure", "value"],
    )
    t3.add("ack (ms)", third["ack_ms"])
    t3.add("the answer followed after (s)", third["answer_after_s"])
    t3.add("usergroups.users.list answers", " ".join(map(str, third["usergroups_statuses"])))
    checks = targets_table(targets)
    for table in (t1, t2, t3, checks):
        print(table.render())
    data = {
        "params": {
            "slack_minute_s": profile.slack_minute_s,
            "trainees": profile.trainees,
            "deployments": profile.deployments,
            "deployment_clones": profile.deployment_clones,
            "deployment_latency_ms": profile.deployment_latency_ms,
        },
        "handout": first,
        "at_once": second,
        "ack": third,
        "targets": targets,
        "tables": [t.to_json() for t in (t1, t2, t3, checks)],
    }
    write_result("slackscale", profile, data, out_dir)
    return data
