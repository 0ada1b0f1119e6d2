"""Schedules: deploy ahead, strip back after, remind once, extend; survive restarts. On both
storage backends (a SQLite file and a PostgreSQL database of the session's server).

The clock is a controllable object and the APScheduler scheduler is started paused: tests look at
its job table (ids, next run times) and run due jobs with `ScheduleService.run_due()`, which calls
the same job function with the same arguments the scheduler would. Nothing sleeps.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from bot import bootstrap
from bot.adapters.lab import LabProcess
from bot.adapters.scheduler import JOB_FUNC, Scheduler, run_job
from bot.adapters.vcenter.client import VCenter
from bot.bootstrap import App
from bot.domain import grammar
from bot.domain.errors import ConflictError, NotFoundError, UsageError
from bot.domain.models import CloneState, Environment, RunKind, RunState
from bot.domain.results import DeployResult, TeardownResult
from bot.ports import Notifier, ProgressCallback, ScheduledJob
from bot.services.leadership import Leadership
from bot.services.schedules import ScheduleService, StartReport
from bot.services.usecases import UseCases
from bot.settings import Settings, settings_from_dict
from storage import Repository
from tests.faults import wait_until
from tests.helpers import Clock, lab_app, lab_config, set_state
from tests.rawdb import BOTH_BACKENDS

pytestmark = BOTH_BACKENDS

LONDON = "Europe/London"
# Thursday 26 November 2026, 10:00 GMT.
START = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


@dataclass
class Notes:
    """A notifier that records what it would say."""

    messages: list[tuple[str, str]] = field(default_factory=list)
    reminders: list[tuple[str, str, datetime]] = field(default_factory=list)
    progress_for: list[tuple[str, RunKind]] = field(default_factory=list)

    def notify(self, environment: Environment, text: str) -> None:
        self.messages.append((environment.name, text))

    def remind(self, environment: Environment, owner: str, ends_at: datetime) -> None:
        self.reminders.append((environment.name, owner, ends_at))

    def progress(self, environment: Environment, action: RunKind) -> ProgressCallback | None:
        self.progress_for.append((environment.name, action))
        return None

    def text(self) -> str:
        return "\n".join(t for _, t in self.messages)


if TYPE_CHECKING:  # mypy proves the double implements its port (docs/architecture.md)
    _notifier: Notifier = Notes()


class RecordingService(UseCases):
    """The real use cases, except deploy and strip back are recorded instead of sent to vCenter
    (the end-to-end tests below use the real ones against the lab)."""

    def __init__(self, settings: Settings, repo: Repository) -> None:
        super().__init__(settings, repo, VCenter(settings.vcenter))
        self.calls: list[tuple[str, str, str]] = []
        self.busy = False  # strip backs refused as if another run held the environment
        self.deployer = _Recorded(self.deployer, deploy=self._deploy)  # type: ignore[assignment]
        self.strip_back = _Recorded(self.strip_back, teardown=self._teardown)  # type: ignore[assignment]

    def _deploy(self, command: grammar.Deploy, **kwargs: Any) -> DeployResult:
        assert command.environment is not None
        self.calls.append(("deploy", command.environment, kwargs["source"]))
        return DeployResult(0, command.environment, 0, [], [], 0.0, RunState.SUCCEEDED)

    def _teardown(self, environment: str, **kwargs: Any) -> TeardownResult:
        if self.busy:
            raise ConflictError(f"{environment} is busy with another deployment or strip back.")
        self.calls.append(("teardown", environment, kwargs["source"]))
        for c in self.repo.clones(environment=environment):
            set_state(self.repo, c.id, CloneState.DESTROYED)
        return TeardownResult(0, environment, [], [], [], [], 0, 0.0, RunState.SUCCEEDED)


class _Recorded:
    """A use case with some of its operations replaced (the rest are the real one's)."""

    def __init__(self, real: object, **replaced: Any) -> None:
        self._real = real
        self.__dict__.update(replaced)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


@dataclass
class World:
    tmp: Path
    clock: Clock
    notes: Notes
    settings: Settings
    started: list[ScheduleService] = field(default_factory=list)
    repos: list[Repository] = field(default_factory=list)

    def scheduler(self, *, start: bool = True) -> ScheduleService:
        """A schedule service over the shared database: a 'bot process' (new repo, new lock)."""
        repo = Repository(self.settings.database)
        self.repos.append(repo)
        svc = ScheduleService(
            self.settings, repo, RecordingService(self.settings, repo),
            bootstrap.scheduler(self.settings, repo), notifier=self.notes, clock=self.clock,
        )  # fmt: skip
        if start:
            svc.start(paused=True)
        self.started.append(svc)
        return svc

    def add_clones(self, svc: ScheduleService, env: str, n: int = 2) -> None:
        svc.repo.ensure_environment(env, owner="UOWNER", channel="CTRAIN")
        for c in svc.repo.reserve_clones(
            environment=env, type="capture", parent="Capture", pattern=f"{env}-{{n}}",
            count=n, run_id=None,
        ):  # fmt: skip
            set_state(svc.repo, c.id, CloneState.READY)


def make_settings(tmp: Path, database: str | None = None, **schedule: Any) -> Settings:
    raw = lab_config(None, database or tmp / "clones.db", timezone=LONDON)
    raw["schedule"] = schedule
    return settings_from_dict(raw, env={})


MakeWorld = Callable[..., World]


@pytest.fixture
def make_world(tmp_path: Path, database: str) -> Iterator[MakeWorld]:
    """`make_world(now=START, **schedule)`: a world at `now` with those `[schedule]` settings;
    its schedulers are shut down and its repositories closed after the test."""
    made: list[World] = []

    def make(now: datetime = START, **schedule: Any) -> World:
        made.append(
            World(tmp_path, Clock(now), Notes(), make_settings(tmp_path, database, **schedule))
        )
        return made[-1]

    yield make
    for w in made:
        for svc in w.started:
            svc.shutdown(wait=False)
        for repo in w.repos:
            repo.close()


@pytest.fixture
def world(make_world: MakeWorld) -> World:
    return make_world()


def sched_jobs(svc: ScheduleService) -> dict[str, datetime]:
    return {
        j.id: j.run_at
        for j in svc.scheduler.jobs()
        if j.id.split(":")[0] in ("deploy", "teardown", "remind")
    }


def fire(svc: ScheduleService, kind: str, env: str, planned: str, missed: bool = False) -> None:
    """Call the job function as APScheduler would, with a job's plain arguments."""
    assert isinstance(svc.scheduler, Scheduler)
    run_job(svc.scheduler.key, f"{kind}:{env}", kind, env, planned, missed)


def schedule(svc: ScheduleService, text: str) -> None:
    command = grammar.parse(text)
    assert isinstance(command, grammar.Schedule)
    svc.schedule(command, actor="UOWNER")


def calls(svc: ScheduleService) -> list[tuple[str, str, str]]:
    assert isinstance(svc.use_cases, RecordingService)
    return svc.use_cases.calls


# ===================================================================== the job table
def test_schedule_makes_fixed_id_jobs_with_aware_times(world: World) -> None:
    svc = world.scheduler()
    world.add_clones(svc, "nov")
    schedule(svc, "schedule nov until fri 17:00")
    end = datetime(2026, 11, 27, 17, 0, tzinfo=UTC)
    assert sched_jobs(svc) == {"teardown:nov": end, "remind:nov": end - timedelta(hours=1)}
    assert isinstance(svc.scheduler, Scheduler)  # APScheduler, through the adapter
    job = svc.scheduler.backend.get_job("teardown:nov")
    assert job.func_ref == JOB_FUNC == "bot.adapters.scheduler.jobs:run_job"
    assert job.misfire_grace_time is None
    assert all(isinstance(a, str | bool) for a in job.args)
    assert job.next_run_time.tzinfo is not None
    assert svc.next_event("nov") == ("teardown", end)
    assert svc.next_event_text("nov") == "strip back Fri 27 Nov 17:00 GMT (in 1 d 7 h)"
    assert svc.next_events() == {"nov": ("teardown", end)}
    env = svc.repo.get_environment("nov")
    assert env is not None and env.ends_at == end


def test_a_schedule_survives_a_restart(world: World) -> None:
    first = world.scheduler()
    world.add_clones(first, "nov")
    schedule(first, "schedule nov until fri 17:00")
    before = sched_jobs(first)
    first.shutdown()

    second = world.scheduler()  # a new bot process: new repository, new scheduler
    assert sched_jobs(second) == before
    world.clock.now = datetime(2026, 11, 27, 17, 0, tzinfo=UTC)
    assert second.run_due() == ["remind:nov", "teardown:nov"]
    assert calls(second) == [("teardown", "nov", "scheduler")]
    assert "when no bot was running schedules" not in world.notes.text()
    assert sched_jobs(second) == {}
    assert second.next_event("nov") is None


def test_a_teardown_missed_while_down_runs_at_the_next_start_and_says_so(world: World) -> None:
    first = world.scheduler()
    world.add_clones(first, "nov")
    schedule(first, "schedule nov until fri 17:00")
    first.shutdown()

    world.clock.now = datetime(2026, 11, 27, 19, 0, tzinfo=UTC)  # two hours late
    second = world.scheduler(start=False)
    report = second.start(paused=True)
    assert report.active
    assert report.missed == ["strip back of nov due Fri 27 Nov 17:00 GMT (2 h ago)"]
    assert "fell due while no bot was running schedules" in report.message
    # One line for the channel, without the server's paths (they are in the log).
    assert "\n" not in report.message and str(world.tmp) not in report.message
    assert ".lock" not in report.message
    assert sched_jobs(second) == {"teardown:nov": datetime(2026, 11, 27, 17, 0, tzinfo=UTC)}
    assert second.run_due() == ["teardown:nov"]
    assert calls(second) == [("teardown", "nov", "scheduler")]
    assert "when no bot was running schedules" in world.notes.text()
    assert world.notes.reminders == []  # the end has passed: no reminder after the fact


def test_a_missed_scheduled_deploy_runs_at_start(world: World) -> None:
    first = world.scheduler()
    command = grammar.parse("deploy capture 3 as dec at mon 08:00 until fri 17:00")
    assert isinstance(command, grammar.Deploy)
    result = first.schedule_deploy(command, actor="UOWNER", channel="CTRAIN")
    assert result.starts_at == datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    assert result.ends_at == datetime(2026, 12, 4, 17, 0, tzinfo=UTC)
    # No reminder before the deployment has run: it is scheduled once there are clones.
    assert set(sched_jobs(first)) == {"deploy:dec", "teardown:dec"}
    first.shutdown()

    world.clock.now = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    second = world.scheduler(start=False)
    report = second.start(paused=True)
    assert [m.split(" due")[0] for m in report.missed] == ["deployment of dec"]
    assert second.run_due() == ["deploy:dec"]
    assert calls(second) == [("deploy", "dec", "scheduler")]
    assert world.notes.progress_for == [("dec", RunKind.DEPLOY)]
    assert "deploy capture 3 as dec" in world.notes.text()
    # Run once: the start is claimed, so neither a restart nor a stray job deploys again.
    assert second.repo.get_environment("dec").starts_at is None  # type: ignore[union-attr]
    fire(second, "deploy", "dec", "2026-11-30T08:00:00+00:00", True)
    second.shutdown()
    third = world.scheduler()
    assert set(sched_jobs(third)) == {"teardown:dec", "remind:dec"}
    assert calls(second) == [("deploy", "dec", "scheduler")]


def test_extend_moves_the_teardown_and_the_reminder(world: World) -> None:
    svc = world.scheduler()
    world.add_clones(svc, "nov")
    schedule(svc, "schedule nov until fri 17:00")
    result = svc.extend("nov", "2h", actor="UOWNER")
    end = datetime(2026, 11, 27, 19, 0, tzinfo=UTC)
    assert result.ends_at == end
    assert "now strips back Fri 27 Nov 19:00 GMT" in result.message
    assert sched_jobs(svc) == {"teardown:nov": end, "remind:nov": end - timedelta(hours=1)}
    # The old time does nothing, even if a job for it were still around.
    world.clock.now = datetime(2026, 11, 27, 17, 0, tzinfo=UTC)
    fire(svc, "teardown", "nov", "2026-11-27T17:00:00+00:00")
    assert svc.run_due() == []
    assert calls(svc) == []
    # The default extension is 2 h.
    assert svc.extend("nov", None, actor="UOWNER").ends_at == end + timedelta(hours=2)


def test_a_reminder_fires_exactly_once_per_scheduled_end(world: World) -> None:
    svc = world.scheduler()
    world.add_clones(svc, "nov")
    schedule(svc, "schedule nov until fri 17:00")
    end = datetime(2026, 11, 27, 17, 0, tzinfo=UTC)
    world.clock.now = end - timedelta(hours=1)
    assert svc.run_due() == ["remind:nov"]
    assert world.notes.reminders == [("nov", "UOWNER", end)]
    # Again, directly, and after a restart: nothing more.
    fire(svc, "remind", "nov", end.isoformat())
    assert svc.run_due() == []
    svc.shutdown()
    again = world.scheduler()
    assert sched_jobs(again) == {"teardown:nov": end}
    assert again.run_due() == []
    assert len(world.notes.reminders) == 1
    # A new end (extend) earns a new reminder, once.
    again.extend("nov", "3h", actor="UOWNER")
    world.clock.now = end + timedelta(hours=2)
    assert again.run_due() == ["remind:nov"]
    assert world.notes.reminders[-1] == ("nov", "UOWNER", end + timedelta(hours=3))
    assert len(world.notes.reminders) == 2


def test_an_end_set_inside_the_lead_is_not_reminded(world: World) -> None:
    svc = world.scheduler()
    world.add_clones(svc, "nov")
    schedule(svc, "schedule nov until in 30m")
    assert set(sched_jobs(svc)) == {"teardown:nov"}
    # A reminder due within a minute of the reply would arrive with it (or before it): none.
    schedule(svc, "schedule nov until in 61m")
    assert set(sched_jobs(svc)) == {"teardown:nov"}
    schedule(svc, "schedule nov until in 62m")
    assert set(sched_jobs(svc)) == {"teardown:nov", "remind:nov"}


def test_reminder_lead_is_configurable(make_world: MakeWorld) -> None:
    w = make_world(reminder_lead_min=15)
    svc = w.scheduler()
    w.add_clones(svc, "nov")
    schedule(svc, "schedule nov until fri 17:00")
    assert sched_jobs(svc)["remind:nov"] == datetime(2026, 11, 27, 16, 45, tzinfo=UTC)


def test_cancel_removes_jobs_and_keeps_clones(world: World) -> None:
    svc = world.scheduler()
    world.add_clones(svc, "nov")
    schedule(svc, "schedule nov until fri 17:00")
    result = svc.cancel("nov", actor="UOWNER")
    assert "Cancelled the strip back Fri 27 Nov 17:00 GMT" in result.message
    assert sched_jobs(svc) == {}
    assert svc.next_event("nov") is None
    assert len(svc.repo.clones(environment="nov", states=[CloneState.READY])) == 2
    assert not svc.cancel("nov", actor="UOWNER").changed


def test_cancelling_a_scheduled_deploy_of_a_new_environment_removes_it(world: World) -> None:
    svc = world.scheduler()
    command = grammar.parse("deploy capture 3 as dec at mon 08:00")
    assert isinstance(command, grammar.Deploy)
    svc.schedule_deploy(command, actor="UOWNER")
    svc.cancel("dec", actor="UOWNER")
    assert svc.repo.get_environment("dec") is None
    assert sched_jobs(svc) == {}


def test_a_schedule_set_by_another_process_is_picked_up_by_sync(world: World) -> None:
    bot = world.scheduler()
    world.add_clones(bot, "nov")
    cli = world.scheduler(start=False)  # like `clones schedule ...` in a terminal
    schedule(cli, "schedule nov until fri 17:00")
    assert sched_jobs(cli) == {}  # the CLI only writes SQLite
    assert sched_jobs(bot) == {}
    bot.sync()
    assert set(sched_jobs(bot)) == {"teardown:nov", "remind:nov"}


# ===================================================================== one course, in order
def _deploy_at(svc: ScheduleService, text: str) -> None:
    command = grammar.parse(text)
    assert isinstance(command, grammar.Deploy)
    svc.schedule_deploy(command, actor="UOWNER", channel="CTRAIN")


def test_a_course_missed_entirely_creates_nothing_even_when_its_strip_back_fires_first(
    world: World,
) -> None:
    """Both jobs of a course fell due while no bot ran: whichever the scheduler's threads start
    first, the deployment is skipped (its course is over), nothing is left without an end."""
    first = world.scheduler()
    _deploy_at(first, "deploy capture 2 as s3r at 10:24 until 10:25")
    first.shutdown()

    world.clock.now = datetime(2026, 11, 26, 10, 25, 10, tzinfo=UTC)
    second = world.scheduler(start=False)
    report = second.start(paused=True)
    assert [m.split(" due")[0] for m in report.missed] == ["deployment of s3r", "strip back of s3r"]
    starts, ends = report.missed[0].split(" due ")[1], report.missed[1].split(" due ")[1]
    # The worst order: the strip back's thread runs before the deployment's.
    second.run("teardown", "s3r", datetime(2026, 11, 26, 10, 25, tzinfo=UTC), missed=True)
    assert calls(second) == []  # it waits for its deployment: nothing claimed
    second.run("deploy", "s3r", datetime(2026, 11, 26, 10, 24, tzinfo=UTC), missed=True)
    assert calls(second) == []  # no deployment, no strip back of nothing
    assert second.repo.get_environment("s3r") is None  # made only to hold the schedule
    assert sched_jobs(second) == {} and second.run_due() == []
    [(env, text)] = world.notes.messages
    assert env == "s3r"
    assert text == (
        "The scheduled deployment of s3r (deploy capture 2 as s3r) did not run: it was due "
        f"{starts} and its course ended {ends}, while no bot was running schedules. "
        "Nothing was created."
    )
    [entry] = [e for e in second.repo.audit_entries() if e.result == "skipped"]
    assert entry.source == "scheduler" and entry.command == "deploy capture 2 as s3r"


def test_missed_jobs_run_in_time_order(world: World) -> None:
    first = world.scheduler()
    _deploy_at(first, "deploy capture 2 as s3r at 10:24 until 10:25")
    first.shutdown()
    world.clock.now = datetime(2026, 11, 26, 10, 30, tzinfo=UTC)
    second = world.scheduler()
    assert second.run_due() == ["deploy:s3r"]  # the strip back went with the skipped deploy
    assert calls(second) == [] and second.repo.get_environment("s3r") is None


def test_a_skipped_deployment_still_strips_back_earlier_clones(world: World) -> None:
    first = world.scheduler()
    world.add_clones(first, "nov")
    _deploy_at(first, "deploy capture 2 as nov at 10:24 until 10:25")
    first.shutdown()
    world.clock.now = datetime(2026, 11, 26, 11, 0, tzinfo=UTC)
    second = world.scheduler()
    assert second.run_due() == ["deploy:nov", "teardown:nov"]
    assert calls(second) == [("teardown", "nov", "scheduler")]
    assert "Its 2 earlier clones are stripped back now, as scheduled." in world.notes.text()
    assert second.next_event("nov") is None


def test_a_late_deployment_whose_course_is_still_on_runs_and_keeps_its_strip_back(
    world: World,
) -> None:
    first = world.scheduler()
    _deploy_at(first, "deploy capture 2 as late at 10:24 until 17:00")
    first.shutdown()
    world.clock.now = datetime(2026, 11, 26, 10, 40, tzinfo=UTC)
    second = world.scheduler()
    end = datetime(2026, 11, 26, 17, 0, tzinfo=UTC)
    assert second.run_due() == ["deploy:late"]
    assert calls(second) == [("deploy", "late", "scheduler")]
    assert "(it was due Thu 26 Nov 10:24 GMT (16 min ago), when no bot was running schedules)" in (
        world.notes.text()
    )
    assert sched_jobs(second) == {"teardown:late": end, "remind:late": end - timedelta(hours=1)}
    assert second.repo.get_environment("late").ends_at == end  # type: ignore[union-attr]


def test_a_strip_back_due_during_its_deployment_waits_for_it(world: World) -> None:
    """The jobs of one environment run one at a time: a strip back that falls due while its
    deployment is still running (a short course, a slow vCenter) runs right after it."""
    import threading

    svc = world.scheduler()
    _deploy_at(svc, "deploy capture 2 as short at 10:24 until 10:25")
    service = svc.use_cases
    assert isinstance(service, RecordingService)
    deploying, release = threading.Event(), threading.Event()
    real_deploy = service.deployer.deploy

    def slow_deploy(command: grammar.Deploy, **kwargs: Any) -> DeployResult:
        deploying.set()
        release.wait(30)
        world.add_clones(svc, "short")
        return real_deploy(command, **kwargs)

    service.deployer.deploy = slow_deploy  # type: ignore[method-assign]
    world.clock.now = datetime(2026, 11, 26, 10, 24, tzinfo=UTC)
    planned = datetime(2026, 11, 26, 10, 24, tzinfo=UTC)
    deploy = threading.Thread(target=svc.run, args=("deploy", "short", planned))
    deploy.start()
    assert deploying.wait(30)
    world.clock.now = datetime(2026, 11, 26, 10, 25, tzinfo=UTC)
    end = datetime(2026, 11, 26, 10, 25, tzinfo=UTC)
    teardown = threading.Thread(target=svc.run, args=("teardown", "short", end))
    teardown.start()
    wait_until(lambda: svc.waiting("short") == 1)  # held back by the deployment
    assert calls(svc) == [] and svc.repo.get_environment("short").ends_at == end  # type: ignore[union-attr]
    release.set()
    deploy.join(30)
    teardown.join(30)
    assert calls(svc) == [("deploy", "short", "scheduler"), ("teardown", "short", "scheduler")]
    assert svc.next_event("short") is None


def test_the_reminder_of_a_short_lease_comes_after_its_deployment(world: World) -> None:
    """With a lease shorter than the reminder lead the reminder is due before the start: it is
    not scheduled until the deployment ran, and then comes right after it."""
    svc = world.scheduler()
    command = grammar.parse("deploy capture 2 as brief at in 1h until in 1h30m")
    assert isinstance(command, grammar.Deploy)
    result = svc.schedule_deploy(command, actor="UOWNER", channel="CTRAIN")
    assert result.message == (
        "brief deploys Thu 26 Nov 11:00 GMT (in 1 h) and strips back Thu 26 Nov 11:30 GMT "
        "(in 1 h 30 min); the owner is reminded once the deployment is done."
    )
    assert set(sched_jobs(svc)) == {"deploy:brief", "teardown:brief"}
    world.clock.advance(minutes=59, seconds=14)
    assert svc.run_due() == []
    assert svc.describe(datetime(2026, 11, 26, 11, 0, tzinfo=UTC)).endswith("(in 46 s)")
    world.clock.advance(seconds=46)
    assert svc.run_due() == ["deploy:brief", "remind:brief"]
    assert world.notes.reminders == [
        ("brief", "UOWNER", datetime(2026, 11, 26, 11, 30, tzinfo=UTC))
    ]
    texts = [t for _, t in world.notes.messages]
    assert texts[0].startswith("Scheduled deployment starting") and len(texts) == 2


def test_a_strip_back_meeting_a_busy_environment_waits_and_runs_once_it_is_free(
    world: World,
) -> None:
    svc = world.scheduler()
    world.add_clones(svc, "nov")
    schedule(svc, "schedule nov until in 30m")  # inside the reminder lead: no reminder
    service = svc.use_cases
    assert isinstance(service, RecordingService)
    service.busy = True
    world.clock.advance(minutes=30)
    assert svc.run_due() == ["teardown:nov"]
    assert calls(svc) == []
    assert "Scheduled strip back of nov waits: nov is busy" in world.notes.text()
    assert "tried every 30 s" in world.notes.text()
    assert sched_jobs(svc) == {"teardown:nov": world.clock.now + timedelta(seconds=30)}
    world.clock.advance(seconds=30)
    assert svc.run_due() == ["teardown:nov"]  # still busy: tried again, said once
    assert sum("waits" in t for _, t in world.notes.messages) == 1
    svc.sync()  # a re-sync keeps the retry
    assert set(sched_jobs(svc)) == {"teardown:nov"}
    service.busy = False
    world.clock.advance(seconds=30)
    assert svc.run_due() == ["teardown:nov"]
    assert calls(svc) == [("teardown", "nov", "scheduler")]
    assert sched_jobs(svc) == {} and svc.next_event("nov") is None
    assert svc.repo.get_schedule("nov") is None


# ===================================================================== failover and promises
def test_a_standing_bot_takes_over_when_the_holder_stops(world: World) -> None:
    holder = world.scheduler()
    world.add_clones(holder, "nov")
    schedule(holder, "schedule nov until fri 17:00")
    reports: list[StartReport] = []
    standby = world.scheduler(start=False)
    standby.on_takeover = reports.append
    assert not standby.start(paused=True).active
    assert standby.sync() == [] and reports == []
    holder.shutdown()  # the kernel does the same when the holder is SIGKILLed (see tests/slack)

    world.clock.now = datetime(2026, 11, 27, 17, 30, tzinfo=UTC)  # the end passed meanwhile
    missed = standby.sync()
    assert standby.active
    assert missed == ["strip back of nov due Fri 27 Nov 17:00 GMT (30 min ago)"]
    [report] = reports
    assert report.took_over and report.active
    assert report.message.startswith("Took the schedules over from a bot that stopped")
    assert standby.run_due() == ["teardown:nov"]
    assert calls(standby) == [("teardown", "nov", "scheduler")] and calls(holder) == []
    text = world.notes.text()
    assert "when no bot was running schedules" in text
    assert "while the bot was not running" not in text  # the standing bot was running
    assert standby.sync() == [] and len(reports) == 1


def test_replies_never_promise_a_time_that_no_scheduler_keeps(world: World) -> None:
    cli = world.scheduler(start=False)  # the terminal: writes SQLite, runs no scheduler
    world.add_clones(cli, "nov")
    lonely = cli.schedule(grammar.Schedule("nov", until="fri 17:00"), actor="UOWNER")
    assert lonely.message.endswith(
        "No bot is running the scheduler for this database right now, so nothing runs at "
        "that time until one starts (`python -m bot`); it then runs anything due, late if need be."
    )
    holder = world.scheduler()
    kept = cli.extend("nov", "1h", actor="UOWNER")
    assert "No bot" not in kept.message
    standby = world.scheduler()
    holder.shutdown()
    waiting = cli.extend("nov", "1h", actor="UOWNER")
    assert waiting.message.endswith(
        "No bot holds the scheduler for this database at this moment; the bot standing by "
        "takes it over within 40 s and runs anything due, late if need be."
    )
    # The bot standing by, asked itself, takes the scheduler over there and then.
    assert not standby.active
    reply = standby.extend("nov", "1h", actor="UOWNER")
    assert standby.active and "No bot" not in reply.message
    assert set(sched_jobs(standby)) == {"teardown:nov", "remind:nov"}


def test_a_deploy_past_the_cap_suggests_a_deploy_that_fits(make_world: MakeWorld) -> None:
    w = make_world(max_lease_hours=3)
    svc = w.scheduler()
    command = grammar.parse("deploy capture 1 as s6b until in 4h")
    assert isinstance(command, grammar.Deploy)
    with pytest.raises(UsageError) as caught:
        svc.deploy_times(command)
    message = str(caught.value)
    assert 'e.g. "deploy capture 1 as s6b until 2026-11-26 13:00"' in message
    assert "schedule s6b" not in message
    fits = grammar.parse("deploy capture 1 as s6b until 2026-11-26 13:00")
    assert isinstance(fits, grammar.Deploy)
    assert svc.deploy_times(fits).ends_at == datetime(2026, 11, 26, 13, 0, tzinfo=UTC)
    ahead = grammar.parse("deploy capture 1 as s6b at in 1h until in 5h")
    assert isinstance(ahead, grammar.Deploy)
    with pytest.raises(
        UsageError, match='"deploy capture 1 as s6b at in 1h until 2026-11-26 14:00"'
    ):
        svc.deploy_times(ahead)
    far = grammar.parse("deploy capture 1 as s6b until in 400d")
    assert isinstance(far, grammar.Deploy)
    with pytest.raises(UsageError, match="at most a year ahead"):
        svc.deploy_times(far)
    assert svc.repo.list_environments() == []


# ===================================================================== daylight saving
def test_schedule_across_spring_forward(make_world: MakeWorld) -> None:
    w = make_world(datetime(2026, 3, 27, 12, 0, tzinfo=UTC))
    svc = w.scheduler()
    w.add_clones(svc, "spring")
    schedule(svc, "schedule spring until mon 08:00")
    end = datetime(2026, 3, 30, 7, 0, tzinfo=UTC)  # 08:00 BST
    assert sched_jobs(svc) == {
        "teardown:spring": end,
        "remind:spring": end - timedelta(hours=1),
    }
    assert svc.next_event_text("spring") == "strip back Mon 30 Mar 08:00 BST (in 2 d 19 h)"
    w.clock.now = end - timedelta(minutes=1)
    assert svc.run_due() == ["remind:spring"]
    w.clock.now = end
    assert svc.run_due() == ["teardown:spring"]


def test_extend_across_fall_back_is_elapsed_time(make_world: MakeWorld) -> None:
    w = make_world(datetime(2026, 10, 24, 12, 0, tzinfo=UTC))
    svc = w.scheduler()
    w.add_clones(svc, "autumn")
    schedule(svc, "schedule autumn until sun 00:30")  # 00:30 BST = Sat 23:30 UTC
    result = svc.extend("autumn", "2h", actor="UOWNER")
    assert result.ends_at == datetime(2026, 10, 25, 1, 30, tzinfo=UTC)
    # Two real hours later the clocks say 01:30 GMT, one hour later on the wall.
    assert "Sun 25 Oct 01:30 GMT" in result.message
    assert sched_jobs(svc)["teardown:autumn"] == datetime(2026, 10, 25, 1, 30, tzinfo=UTC)


# ===================================================================== one scheduler per database
def test_a_second_scheduler_on_the_same_database_refuses(world: World) -> None:
    first = world.scheduler()
    world.add_clones(first, "nov")
    schedule(first, "schedule nov until fri 17:00")
    second = world.scheduler(start=False)
    report = second.start(paused=True)
    assert not report.active
    assert report.message == (
        "Standing by: another bot runs the schedules for this database; this one takes them "
        "over within 40 s if that one stops."
    )
    assert not second.active and sched_jobs(second) == {}
    assert second.sync() == []  # the first still holds the lock: nothing changes
    assert not second.active and sched_jobs(second) == {}
    world.clock.now = datetime(2026, 11, 27, 17, 0, tzinfo=UTC)
    assert second.run_due() == []
    assert first.run_due() == ["remind:nov", "teardown:nov"]
    assert calls(first) == [("teardown", "nov", "scheduler")] and calls(second) == []
    # A third bot also stands by; once the first stops, one of them (the next to try) takes
    # over, and the other keeps standing by.
    third = world.scheduler()
    assert not third.active
    first.shutdown()
    assert second.sync() == [] and second.active
    assert third.sync() == [] and not third.active


def test_racing_jobs_run_once(world: World) -> None:
    """Even if two schedulers fired one job, the SQLite claim lets only one act."""
    a = world.scheduler()
    b = world.scheduler(start=False)
    world.add_clones(a, "nov")
    schedule(a, "schedule nov until fri 17:00")
    world.clock.now = datetime(2026, 11, 27, 17, 0, tzinfo=UTC)
    planned = datetime(2026, 11, 27, 17, 0, tzinfo=UTC)
    a.run("teardown", "nov", planned)
    b.run("teardown", "nov", planned)
    assert calls(a) + calls(b) == [("teardown", "nov", "scheduler")]
    a.run("remind", "nov", planned)
    b.run("remind", "nov", planned)
    assert world.notes.reminders == []  # the end was claimed: no reminder after it


def test_the_lease_is_refused_to_another_process(world: World) -> None:
    svc = world.scheduler()
    assert svc.active
    code = (
        "import sys; from storage import Repository; "
        "from bot.services.leadership import Leadership; "
        "lease = Leadership(Repository(sys.argv[1])); "
        "print(lease.acquire(), lease.is_held_elsewhere())"
    )
    db = str(world.settings.database)
    out = subprocess.run(
        [sys.executable, "-c", code, db], capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["False", "True"]
    svc.shutdown()  # gives the lease up: another takes it at once, under a new epoch
    out = subprocess.run(
        [sys.executable, "-c", code, db], capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["True", "False"]
    with Repository(world.settings.database) as repo:
        lease = repo.get_lease("scheduler")
    assert lease is not None and lease.epoch == 2


# ===================================================================== the scheduler adapter
def test_the_scheduler_adapter_keeps_plain_one_shot_jobs(tmp_path: Path) -> None:
    """The port as the schedule service uses it: fixed ids replaced, the tick kept out of the
    table, a job run in this thread once, in flight while it runs, and idle after."""
    sched = Scheduler(Leadership(Repository(tmp_path / "clones.db")), timezone=LONDON)
    ran: list[tuple[str, tuple[str | bool, ...], set[str]]] = []
    sched.start(lambda jid, args: ran.append((jid, args, sched.in_flight())))
    try:
        at = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
        sched.put("remind:x", at, ("remind", "x", at.isoformat(), False))
        later = at + timedelta(hours=1)
        sched.put("remind:x", later, ("remind", "x", later.isoformat(), True))  # replaces it
        sched.every(30, lambda: None)
        assert sched.jobs() == [
            ScheduledJob("remind:x", later, ("remind", "x", later.isoformat(), True))
        ]
        assert sched.get("remind:x") == sched.jobs()[0] and sched.get("tick") is None
        assert not sched.idle()  # due by the wall clock
        assert sched.run_now("remind:x")
        assert ran == [("remind:x", ("remind", "x", later.isoformat(), True), {"remind:x"})]
        assert not sched.run_now("remind:x") and sched.jobs() == []
        sched.remove("remind:x")  # absent: nothing to do
        assert sched.in_flight() == set() and sched.idle()
    finally:
        sched.shutdown(wait=False)


def test_the_services_load_no_scheduler_library() -> None:
    """APScheduler (and the lock file) live in bot.adapters.scheduler only: the schedule service
    and the Slack rendering load neither."""
    code = (
        "import sys, bot.services.schedules, handlers.blocks.runs, handlers.blocks.schedules; "
        "print([m for m in sys.modules if m.startswith(('apscheduler', 'bot.adapters'))])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ===================================================================== bad input changes nothing
def _snapshot(svc: ScheduleService) -> tuple[Any, ...]:
    return (
        svc.repo.list_environments(),
        [svc.repo.get_schedule(e.name) for e in svc.repo.list_environments()],
        sched_jobs(svc),
        len(svc.repo.audit_entries(limit=1000)),
    )


BAD: list[tuple[str, type[Exception], list[str]]] = [
    ("schedule nov until today 09:00", UsageError, ["has passed", "e.g."]),
    ("schedule nov until 2026-11-01 09:00", UsageError, ["has passed"]),
    ("schedule nov until whenever", UsageError, ['could not read "whenever"', "fri 17:00"]),
    ("schedule nov until fri", UsageError, ["add a time of day"]),
    ("schedule nov until 2027-06-01 09:00", UsageError, ["at most 336 h", "earlier end"]),
    ("schedule nov at mon 08:00 until fri 17:00", UsageError, ["no scheduled deployment"]),
    ("schedule nope until fri 17:00", NotFoundError, ['No environment named "nope"', "status"]),
    ("schedule nob until fri 17:00", NotFoundError, ['Did you mean "nov"']),
    ("schedule empty until fri 17:00", UsageError, ["no clones", "deploy capture 25 as empty"]),
]


@pytest.mark.parametrize(("text", "error", "words"), BAD)
def test_bad_schedules_change_nothing(
    world: World, text: str, error: type[Exception], words: list[str]
) -> None:
    svc = world.scheduler()
    world.add_clones(svc, "nov")
    svc.repo.ensure_environment("empty", owner="UOWNER")
    schedule(svc, "schedule nov until fri 17:00")
    before = _snapshot(svc)
    with pytest.raises(error) as caught:
        schedule(svc, text)
    for word in words:
        assert word in str(caught.value)
    assert _snapshot(svc) == before


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("deploy capture 3 as dec at 2026-12-02 09:00 until 2026-12-01 17:00", ["must be after"]),
        ("deploy capture 3 as dec at today 08:00", ["has passed"]),
        ("deploy capture 3 as dec at mon 08:00 until 2027-01-01 09:00", ["at most 336 h"]),
        ("deploy capture 300 as dec at mon 08:00", ["maximum of 100"]),
        ("deploy nosuch 3 as dec at mon 08:00", ['Unknown type "nosuch"']),
        ("deploy capture 3 as nov at mon 08:00", []),  # sets up the conflict below
    ],
)
def test_bad_scheduled_deploys_change_nothing(world: World, text: str, words: list[str]) -> None:
    svc = world.scheduler()
    command = grammar.parse(text)
    assert isinstance(command, grammar.Deploy)
    if not words:
        svc.schedule_deploy(command, actor="UOWNER")
        before = _snapshot(svc)
        with pytest.raises(ConflictError, match="already has a deployment scheduled"):
            svc.schedule_deploy(command, actor="UOWNER")
        assert _snapshot(svc) == before
        return
    before = _snapshot(svc)
    with pytest.raises(Exception) as caught:
        svc.schedule_deploy(command, actor="UOWNER")
    for word in words:
        assert word in str(caught.value)
    assert _snapshot(svc) == before


def test_extension_past_the_cap_is_explained_and_changes_nothing(make_world: MakeWorld) -> None:
    w = make_world(max_lease_hours=48)
    svc = w.scheduler()
    w.add_clones(svc, "nov")
    schedule(svc, "schedule nov until in 40h")
    before = _snapshot(svc)
    with pytest.raises(UsageError) as caught:
        svc.extend("nov", "10h", actor="UOWNER")
    message = str(caught.value)
    assert "at most 48 h" in message
    assert "max_lease_hours" in message
    assert "Sat 28 Nov 10:00 GMT" in message  # the latest allowed end
    assert 'Extend by at most 8 h, e.g. "extend nov 8h"' in message
    assert _snapshot(svc) == before
    svc.extend("nov", "8h", actor="UOWNER")
    with pytest.raises(UsageError, match="at the cap already"):
        svc.extend("nov", "1m", actor="UOWNER")


def test_extend_without_an_end_or_environment(world: World) -> None:
    svc = world.scheduler()
    world.add_clones(svc, "nov")
    with pytest.raises(UsageError, match='"schedule nov until fri 17:00"'):
        svc.extend("nov", "2h", actor="UOWNER")
    with pytest.raises(NotFoundError):
        svc.extend("nope", "2h", actor="UOWNER")
    with pytest.raises(NotFoundError):
        svc.cancel("nope", actor="UOWNER")


def test_schedule_settings_are_validated(tmp_path: Path) -> None:
    from bot.domain.errors import ConfigError

    for bad in ({"reminder_lead_min": -1}, {"max_lease_hours": 0}, {"bogus": 1},
                {"default_extension_min": 600, "max_lease_hours": 2},
                {"resync_s": 0}, {"resync_s": 7200}, {"resync_s": "fast"}):  # fmt: skip
        with pytest.raises(ConfigError, match=r"\[schedule\]"):
            make_settings(tmp_path, **bad)
    s = make_settings(tmp_path).schedule
    assert (s.reminder_lead_min, s.max_lease_hours, s.default_extension_min) == (60, 336, 120)
    assert s.resync_s == 30.0
    assert make_settings(tmp_path, resync_s=0.5).schedule.resync_s == 0.5


# ===================================================================== end to end against the lab
@pytest.fixture
def lab_world(
    lab: LabProcess, database: str
) -> Iterator[tuple[App, ScheduleService, Clock, Notes]]:
    app = lab_app(lab, database, timezone=LONDON)
    clock, notes = Clock(datetime.now(UTC)), Notes()
    svc = bootstrap.schedule_service(app, notifier=notes, clock=clock)
    svc.start(paused=True)
    yield app, svc, clock, notes
    svc.shutdown(wait=False)
    app.close()


@pytest.mark.lab
def test_scheduled_deploy_then_strip_back_of_real_clones(
    lab_world: tuple[App, ScheduleService, Clock, Notes],
) -> None:
    app, svc, clock, notes = lab_world
    command = grammar.parse("deploy capture 2 packaging 1 as e2e at in 1h until in 3h")
    assert isinstance(command, grammar.Deploy)
    svc.schedule_deploy(command, actor="UOWNER", channel="CTRAIN")
    assert app.repo.clones(environment="e2e") == []

    clock.advance(hours=1)
    assert svc.run_due() == ["deploy:e2e"]
    ready = app.repo.clones(environment="e2e", states=[CloneState.READY])
    assert len(ready) == 3
    facts = app.vcenter.vm_facts([c.moref for c in ready if c.moref])
    assert len(facts.seen) == 3

    clock.advance(hours=1)
    assert svc.run_due() == ["remind:e2e"]
    clock.advance(hours=1)
    assert svc.run_due() == ["teardown:e2e"]
    assert [c.state for c in app.repo.clones(environment="e2e")] == [CloneState.DESTROYED] * 3
    gone = app.vcenter.vm_facts([c.moref for c in ready if c.moref])
    assert not gone.seen and not gone.unseen  # every one gone
    text = notes.text()
    assert "Scheduled deployment of e2e done: 3 of 3 ready" in text
    assert "Scheduled strip back of e2e done: 3 clones destroyed" in text
    kinds = [r.kind for r in app.repo.runs(environment="e2e")]
    assert kinds == [RunKind.TEARDOWN, RunKind.DEPLOY]
    assert {e.source for e in app.repo.audit_entries()} >= {"scheduler"}
    assert svc.next_event("e2e") is None


@pytest.mark.lab
def test_missed_strip_back_of_real_clones_runs_at_restart(lab: LabProcess, database: str) -> None:
    app = lab_app(lab, database, timezone=LONDON)
    clock, notes = Clock(datetime.now(UTC)), Notes()
    try:
        command = grammar.parse("deploy capture 2 as late")
        assert isinstance(command, grammar.Deploy)
        app.use_cases.deployer.deploy(command, actor="UOWNER", source="cli")
        first = bootstrap.schedule_service(app, notifier=notes, clock=clock)
        first.start(paused=True)
        schedule(first, "schedule late until in 2h")
        first.shutdown()
        clock.advance(hours=5)
        second = bootstrap.schedule_service(app, notifier=notes, clock=clock)
        report = second.start(paused=True)
        try:
            assert len(report.missed) == 1 and report.missed[0].startswith("strip back of late")
            assert second.run_due() == ["teardown:late"]
        finally:
            second.shutdown(wait=False)
        assert [c.state for c in app.repo.clones(environment="late")] == [CloneState.DESTROYED] * 2
        assert "when no bot was running schedules" in notes.text()
    finally:
        app.close()


@pytest.mark.lab
def test_the_terminal_says_once_when_no_bot_runs_the_scheduler(
    lab: LabProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    from tests.terminal import Terminal

    term = Terminal(tmp_path, monkeypatch, capsys)
    term.configure(lab)
    note = "No bot is running the scheduler for this database right now"
    deployed = term("deploy", "capture", "1", "as", "cli-env", "until", "fri", "17:00")
    assert deployed.code == 0, deployed.err
    assert deployed.out.count(note) == 1
    moved = term("schedule", "cli-env", "until", "fri", "18:00")
    assert moved.code == 0 and moved.out.count(note) == 1
    assert moved.out.startswith("cli-env strips back Fri")
    shown = term("extend", "cli-env", "1h", "--json")
    assert shown.json["scheduler_running"] is False and note in shown.json["message"]
    # With a bot holding the scheduler (its lock, here held by the test), nothing to warn about.
    lock = Leadership(Repository(term.database))
    assert lock.acquire()
    try:
        held = term("extend", "cli-env", "1h")
        assert held.code == 0 and "No bot" not in held.out
    finally:
        lock.release()
