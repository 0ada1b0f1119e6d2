"""Fixtures: the real Bolt app on the real service layer, against the lab vCenter, a SQLite file,
and local fake Slack servers (Web API over HTTP, Socket Mode over WebSocket)."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from bot import bootstrap
from bot.adapters.lab import LabProcess
from bot.settings import (
    BUNDLED_LAB_CONFIG,
    DatabaseUrl,
    ScheduleSettings,
    SlackSettings,
    TraineeSettings,
    VCenterSettings,
    load_settings,
)
from handlers.app import SlackBot, SlackTokens, create_bot, http_server
from handlers.jobs import Jobs
from handlers.pacing import Pacer
from tests.helpers import Clock

from .fake_api import FakeSlack
from .signing import (
    SECRET,
    action_body,
    action_payload,
    sign,
    slash_body,
)

OPERATOR = "UOPERATOR"
ADMIN = "UADMIN"
STRANGER = "USTRANGER"
GROUP_MEMBER = "UGROUPIE"
CHANNEL = "CTRAINING"


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    """The fake Slack Web API keeping Slack's rate tiers (with Slack's minute): whatever the
    bot does in a test, it does within them, or Slack's 429 says so."""
    fake = FakeSlack(tiers=True).start()
    yield fake
    fake.stop()


@dataclass
class Reply:
    status: int
    body: str
    elapsed_s: float

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.body) if self.body else {}

    @classmethod
    def of_post(cls, url: str, body: str, headers: dict[str, str]) -> Reply:
        """POST `body` to `url` as Slack would: the status, body and time of the answer."""
        request = urllib.request.Request(url, data=body.encode(), headers=headers)
        started = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return cls(response.status, response.read().decode(), time.monotonic() - started)
        except urllib.error.HTTPError as exc:
            return cls(exc.code, exc.read().decode(), time.monotonic() - started)


@dataclass
class SlackHarness:
    """The app under test, and ways to poke it like Slack would."""

    bot: SlackBot
    core: bootstrap.App
    fake: FakeSlack
    lab: LabProcess
    url: str
    db_path: Path | str  # a SQLite file, or a PostgreSQL URL
    secret: str = SECRET
    _clicks: int = field(default=0)

    def post(self, body: str, headers: dict[str, str]) -> Reply:
        return Reply.of_post(self.url, body, headers)

    def command(self, text: str, user: str = OPERATOR, channel: str = CHANNEL) -> Reply:
        body = slash_body(text, user, channel, self.fake.response_url("cmd"))
        return self.post(body, sign(body, self.secret))

    def deploy(self, text: str, timeout: float = 120.0) -> None:
        """Send `text` (a deployment) as a slash command; return once its chart is posted (the
        run has ended)."""
        before = len(self.fake.ok_calls("files.completeUploadExternal"))
        assert self.command(text).status == 200
        self.fake.wait_for(
            lambda: self.fake.ok_calls("files.completeUploadExternal")[before:], timeout=timeout
        )

    def click(
        self, action_id: str, value: str, user: str, ts: str, channel: str = CHANNEL
    ) -> Reply:
        self._clicks += 1
        payload = action_payload(
            action_id, value, user, channel, ts, self.fake.response_url(f"click{self._clicks}")
        )
        body = action_body(payload)
        return self.post(body, sign(body, self.secret))

    def event(self, event: dict[str, Any]) -> Reply:
        body = json.dumps(
            {
                "token": "x",
                "team_id": "T1",
                "api_app_id": "A1",
                "type": "event_callback",
                "event_id": f"Ev{time.time_ns()}",  # unique, as Slack's (repeats are dropped)
                "event_time": int(time.time()),
                "event": event,
            }
        )
        headers = sign(body, self.secret)
        headers["Content-Type"] = "application/json"
        return self.post(body, headers)

    def idle(self, timeout: float = 60.0) -> None:
        """Wait until every request sent so far is handled and every job it started has
        finished: how a test waits for "nothing happened" without sleeping."""
        assert self.bot.wait_idle(timeout), f"the bot was still busy after {timeout} s"

    def ephemeral_texts(self) -> list[str]:
        return [str(c.params.get("text", "")) for c in self.fake.of("response_url")]


def lab_settings(
    lab: LabProcess,
    db: Path | str,
    slack: SlackSettings,
    schedule: ScheduleSettings | None = None,
    trainees: TraineeSettings | None = None,
) -> Any:
    settings = load_settings(BUNDLED_LAB_CONFIG)
    info = lab.info
    vc = VCenterSettings(
        url=info.url,
        user=info.user,
        password=info.password,
        insecure=True,
        timeout_s=20.0,
        task_timeout_s=60.0,
    )
    return replace(
        settings,
        vcenter=vc,
        database=DatabaseUrl(db) if str(db).startswith("postgresql://") else Path(db),
        slack=slack,
        concurrency=4,
        retry_backoff_s=0.1,
        schedule=schedule or settings.schedule,
        trainees=trainees or settings.trainees,
    )


@pytest.fixture
def make_harness(
    lab: LabProcess, fake_slack: FakeSlack, tmp_path: Path
) -> Iterator[Callable[..., SlackHarness]]:
    started: list[tuple[SlackHarness, Any]] = []

    def make(
        *,
        clock: Clock | None = None,
        schedule: ScheduleSettings | None = None,
        trainees: TraineeSettings | None = None,
        paused: bool = True,
        lease_s: float | None = None,
        warm_groups: bool = True,
        pacer: Pacer | None = None,
        jobs: Jobs | None = None,
        database: Path | str | None = None,
        **slack_overrides: Any,
    ) -> SlackHarness:
        """The bot with its scheduler started paused: tests run due jobs with `run_due()`
        (`paused=False`: the real scheduler, running jobs on the wall clock). `warm_groups`:
        wait until the background refresh has read the operator groups (else a command may
        meet them unread, and be decided after its ack); `pacer`: the bot's (one whose minute
        is the fake's, when the fake's is shorter); `database`: where the database is (the
        `database` fixture's: a SQLite file or a PostgreSQL URL); by default the test's SQLite
        file, which the bots of one test share."""
        slack = SlackSettings(
            **{
                "admins": (ADMIN,),
                "operators": (OPERATOR,),
                "operator_groups": ("SOPS",),
                "progress_interval_s": 1.0,
                "api_url": fake_slack.api_url,
                **slack_overrides,
            }
        )
        fake_slack.group_members["SOPS"] = [GROUP_MEMBER]
        db: Path | str = tmp_path / "clones.db" if database is None else database
        settings = lab_settings(lab, db, slack, schedule, trainees)
        if lease_s is not None:
            settings = replace(settings, lease_s=lease_s)
        core = bootstrap.build(settings, start_lab=False)
        if pacer is None and fake_slack.minute_s != 60.0:
            pacer = Pacer(scale=fake_slack.minute_s / 60.0)
        tokens = SlackTokens("xoxb-test", SECRET, "", 0)
        bot = create_bot(core, tokens, clock=clock, pacer=pacer, jobs=jobs)
        bot.start(paused=paused)
        if warm_groups:
            fake_slack.wait_for(lambda: bot.ctx.access.stale_in() > 0)
        server = http_server(bot.app, "127.0.0.1", 0, ops=bot.ops)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        port = server.server_address[1]
        harness = SlackHarness(
            bot, core, fake_slack, lab, f"http://127.0.0.1:{port}/slack/events", db
        )
        started.append((harness, server))
        return harness

    yield make
    for harness, server in started:
        server.shutdown()
        harness.bot.close(wait=True)
        harness.core.close()


@pytest.fixture
def harness(make_harness: Callable[..., SlackHarness]) -> SlackHarness:
    return make_harness()
