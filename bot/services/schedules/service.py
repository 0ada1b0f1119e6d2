"""`ScheduleService`: the one object the front ends and the bot hold for schedules. It wires the
parts together and answers for them:

- `times.TimeRules`: parse, order, lease cap, describe;
- `commands.ScheduleCommands`: schedule, deploy-at, deploy-until's end, extend, cancel;
- `keeper.Keeper`: the job table from SQLite, the single-scheduler lock, failover, start-up report;
- `runners.Runners`: the deploy, strip back and reminder jobs, one course at a time;
- `notify.Reporter`: what the work says, through the `Notifier` port;
- `prune.Pruner`: history older than its window, pruned at the quiet hour by the holder.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from bot.domain import grammar
from bot.ports import Clock, Notifier, Repository, Scheduler
from bot.services.schedules.commands import ScheduleCommands
from bot.services.schedules.keeper import Keeper
from bot.services.schedules.notify import LogNotifier, Reporter
from bot.services.schedules.prune import Pruner
from bot.services.schedules.results import DeployTimes, ScheduleResult, StartReport
from bot.services.schedules.runners import Runners
from bot.services.schedules.times import EventKind, TimeRules, next_event
from bot.services.usecases import UseCases
from bot.settings import Settings


class ScheduleService:
    def __init__(
        self,
        settings: Settings,
        repo: Repository,
        service: UseCases,
        scheduler: Scheduler,
        *,
        notifier: Notifier | None = None,
        clock: Clock | None = None,
        resync_s: float | None = None,
        on_takeover: Callable[[StartReport], None] | None = None,
    ) -> None:
        self.settings = settings
        self.repo = repo
        self.use_cases = service
        self.scheduler = scheduler
        self.clock: Clock = clock or service.clock
        self.rules = TimeRules(settings, repo, self.clock)
        self.zone = self.rules.zone
        self.voice = Reporter(notifier or LogNotifier(settings.timezone))
        resync = settings.schedule.resync_s if resync_s is None else resync_s
        self.keeper = Keeper(settings, repo, self.rules, scheduler, self.run, resync)
        self.keeper.on_takeover = on_takeover
        self.keeper.after_resync = service.trainees.tell_removed
        self.pruner = Pruner(settings, repo, self.clock)
        self.keeper.housekeeping = self.pruner.tick
        self.commands = ScheduleCommands(settings, repo, service, self.rules, self.keeper)
        self.runners = Runners(repo, service, self.rules, self.keeper, self.voice)

    # ------------------------------------------------------------------ parts, as attributes
    @property
    def notifier(self) -> Notifier:
        return self.voice.notifier

    @notifier.setter
    def notifier(self, notifier: Notifier) -> None:
        self.voice.notifier = notifier

    @property
    def on_takeover(self) -> Callable[[StartReport], None] | None:
        """Called (in the scheduler's thread) after this process took the scheduler over from
        one that stopped; the Slack bot reports it and recovers the runs the other left."""
        return self.keeper.on_takeover

    @on_takeover.setter
    def on_takeover(self, callback: Callable[[StartReport], None] | None) -> None:
        self.keeper.on_takeover = callback

    @property
    def active(self) -> bool:
        """True while this process runs the scheduler for its database."""
        return self.keeper.active

    @property
    def resync_s(self) -> float:
        return self.keeper.resync_s

    @property
    def lead(self) -> timedelta:
        return self.rules.lead

    # ------------------------------------------------------------------ showing times
    def describe(self, moment: datetime) -> str:
        """ "Fri 28 Nov 17:00 GMT (in 2 d 3 h)" in the team zone."""
        return self.rules.describe(moment)

    def next_event(self, environment: str) -> tuple[EventKind, datetime] | None:
        """The environment's next scheduled deploy or strip back, from SQLite."""
        env = self.repo.get_environment(environment)
        return next_event(env) if env is not None else None

    def next_events(self) -> dict[str, tuple[EventKind, datetime]]:
        """Every environment's next scheduled event (one query; for status and App Home)."""
        out: dict[str, tuple[EventKind, datetime]] = {}
        for env, _ in self.repo.scheduled_environments():
            event = next_event(env)
            if event is not None:
                out[env.name] = event
        return out

    def next_event_text(self, environment: str) -> str | None:
        """ "strip back Fri 28 Nov 17:00 GMT (in 2 d 3 h)", or None when nothing is scheduled."""
        event = self.next_event(environment)
        if event is None:
            return None
        kind, when = event
        return f"{'deploy' if kind == 'deploy' else 'strip back'} {self.describe(when)}"

    def keeper_note(self) -> str:
        """ "" when a scheduler will keep what was just scheduled, else the sentence saying
        that none runs right now (a bot standing by takes the scheduler over first)."""
        return self.keeper.keeper_note()

    def scheduler_running(self) -> bool:
        """True while a scheduler runs for this database (here, or in a bot holding the lock)."""
        return self.keeper.running_anywhere()

    # ------------------------------------------------------------------ commands
    def deploy_times(self, command: grammar.Deploy) -> DeployTimes:
        return self.commands.deploy_times(command)

    def schedule_deploy(
        self, command: grammar.Deploy, *, actor: str, source: str = "cli", channel: str = ""
    ) -> ScheduleResult:
        return self.commands.schedule_deploy(command, actor=actor, source=source, channel=channel)

    def set_end(
        self, environment: str, ends_at: datetime, *, actor: str, source: str = "cli"
    ) -> ScheduleResult:
        return self.commands.set_end(environment, ends_at, actor=actor, source=source)

    def schedule(
        self, command: grammar.Schedule, *, actor: str, source: str = "cli", channel: str = ""
    ) -> ScheduleResult:
        return self.commands.schedule(command, actor=actor, source=source, channel=channel)

    def extend(
        self,
        environment: str,
        by: str | timedelta | None = None,
        *,
        actor: str,
        source: str = "cli",
        channel: str = "",
    ) -> ScheduleResult:
        return self.commands.extend(environment, by, actor=actor, source=source, channel=channel)

    def cancel(
        self, environment: str, *, actor: str, source: str = "cli", channel: str = ""
    ) -> ScheduleResult:
        return self.commands.cancel(environment, actor=actor, source=source, channel=channel)

    # ------------------------------------------------------------------ the scheduler
    def start(self, *, paused: bool = False) -> StartReport:
        """Hold the scheduler (jobs rebuilt from SQLite; missed work runs now and says so) or
        stand by to take it over; see `Keeper.start`."""
        return self.keeper.start(paused=paused)

    def shutdown(self, wait: bool = True) -> None:
        self.keeper.shutdown(wait=wait)

    def sync(self, *, startup: bool = False) -> list[str]:
        """Make the job table match SQLite (or take the scheduler over); see `Keeper.sync`."""
        return self.keeper.sync(startup=startup)

    def job_ids(self) -> list[str]:
        return self.keeper.job_ids()

    def run_due(self, limit: int = 100) -> list[str]:
        """Run, in this thread and in time order, every job due by `clock()` (tests)."""
        return self.keeper.run_due(limit)

    def idle(self) -> bool:
        """No job running or waiting for a thread, none due by the wall clock."""
        return self.keeper.idle()

    def run(self, kind: str, environment: str, planned: datetime, missed: bool = False) -> None:
        """Run one job now, in this thread (one course's jobs one at a time)."""
        self.runners.run(kind, environment, planned, missed=missed)

    def waiting(self, environment: str) -> int:
        """How many of `environment`'s jobs wait for another of its jobs to finish."""
        return self.runners.waiting(environment)
