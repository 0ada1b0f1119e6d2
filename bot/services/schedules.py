"""Schedules: deploy ahead, strip back after training, remind the owner first, extend.

SQLite is the truth: an environment's `starts_at` (a scheduled deploy) and `ends_at` (a scheduled
strip back) plus its `schedules` row (the deploy command, the lease start, which end was already
reminded). The APScheduler 3 `BackgroundScheduler` only holds jobs derived from that, and they are
rebuilt from it at start-up and re-synced every `[schedule] resync_s` (default 30 s), so schedules
set from the terminal, in another process, are picked up. APScheduler's traps, avoided here:

- jobs name an importable module-level function (`bot.services.schedules:run_job`) with plain
  arguments;
- fixed ids `deploy:<env>`, `teardown:<env>`, `remind:<env>` with `replace_existing=True`;
- `misfire_grace_time=None`: a job that fell due while the process was busy still runs;
- explicit time zones: the team zone for the scheduler, aware datetimes everywhere;
- one scheduler per database: an exclusive `flock` on `<database>.scheduler.lock`. The kernel
  drops it when the process dies (no stale lease to wait out after a crash). A second bot on the
  same database stands by: every `resync_s` it tries the lock, and takes the scheduler over (jobs
  rebuilt from SQLite, missed work run late and said so) as soon as the holder is gone. Every
  started bot also holds a shared `flock` on `<database>.scheduler.lock.bots`, so a process
  without a scheduler (the CLI) can tell "a bot stands by" from "no bot at all".

Jobs also *claim* their work in SQLite before acting (compare-and-set on the planned time), so a
job that was moved, cancelled or already run does nothing, and even two schedulers racing could
not both run it. Deploys are claimed before they start (at most once: a crash mid-deploy leaves
the run for the engine's own recovery, never a second set of clones); strip backs are claimed
into `stripping_for_end` and finished afterwards, so one interrupted by a crash or by vCenter
going away is resumed at the next start (strip back is idempotent).

One course's jobs keep their order even when they all fall due at once (after downtime): the jobs
of one environment run one at a time, a strip back never runs while its environment's deploy is
still pending (it is put back once the deploy ran), a reminder is only scheduled once the
deployment it is about has run, and a deploy whose course has already ended creates nothing.
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import sys
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, Literal, Protocol, TextIO

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.job import Job
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.date import DateTrigger

from bot.domain import grammar
from bot.domain.errors import ClonesError, ConflictError, NotFoundError, UsageError, VCenterError
from bot.domain.models import CloneState, Environment, RunKind, ScheduleRecord
from bot.domain.results import ProgressEvent
from bot.domain.timeparse import (
    describe_delta,
    describe_time,
    format_duration,
    parse_duration,
    parse_time,
    zone_of,
)
from bot.ports import Repository
from bot.services.core import ProgressCallback, Service
from bot.settings import Settings

log = logging.getLogger("clones.schedule")

JobKind = Literal["deploy", "teardown", "remind"]
EventKind = Literal["deploy", "teardown"]
JOB_KINDS: tuple[JobKind, ...] = ("deploy", "teardown", "remind")
JOB_FUNC = "bot.services.schedules:run_job"
SYNC_JOB_ID = "sync:schedules"
LIVE_STATES = tuple(s for s in CloneState if s.live)
_TIME_EXAMPLE = '"fri 17:00" or "in 3h"'
_JUST_SEEN = timedelta(minutes=1)  # a reminder due this soon after setting the end is not sent


def job_id(kind: JobKind, environment: str) -> str:
    return f"{kind}:{environment}"


# ============================================================================ notifier
class Notifier(Protocol):
    """Where scheduled work reports. Slack posts to the environment's channel; the default logs.

    A notifier may also offer `progress(environment, action) -> ProgressCallback | None` to
    render scheduled deploys and strip backs with the same live progress as manual ones, or
    `run_report(environment, action, requester, text, late) -> RunReport | None` to show each run
    from its start to its outcome as one message of its own (Slack edits one message in place).
    """

    def notify(self, environment: Environment, text: str) -> None: ...

    def remind(self, environment: Environment, owner: str, ends_at: datetime) -> None: ...


class RunReport(Protocol):
    """One scheduled run as a notifier shows it: progress events, then exactly one outcome."""

    on_event: ProgressCallback | None

    def finished(self, result: object, text: str) -> None:
        """The run ended with a result (a DeployResult or TeardownResult); `text` says it."""

    def stopped(self, text: str) -> None:
        """The run ended without a result (refused, nothing to do, interrupted)."""


class _SayReport:
    """The default RunReport: one `notify` line at the start and one at the end."""

    def __init__(self, svc: ScheduleService, env: Environment, action: RunKind, text: str) -> None:
        self._svc, self._env = svc, env
        svc._say(env, text)
        self.on_event = svc._progress(env, action)

    def finished(self, result: object, text: str) -> None:
        self._svc._say(self._env, text)

    def stopped(self, text: str) -> None:
        self._svc._say(self._env, text)


class _LazyReport:
    """A RunReport made only when there is something to show (its first event or outcome)."""

    def __init__(self, make: Callable[[], RunReport]) -> None:
        self._make = make
        self._real: RunReport | None = None
        self.on_event: ProgressCallback | None = self._forward

    def _get(self) -> RunReport:
        if self._real is None:
            self._real = self._make()
        return self._real

    def _forward(self, event: ProgressEvent) -> None:
        callback = self._get().on_event
        if callback is not None:
            callback(event)

    def finished(self, result: object, text: str) -> None:
        self._get().finished(result, text)

    def stopped(self, text: str) -> None:
        self._get().stopped(text)


class LogNotifier:
    """The default notifier: log every message, and print it when given a stream."""

    def __init__(self, zone: str = "UTC", stream: TextIO | None = None) -> None:
        self.zone = zone
        self.stream = stream

    def _say(self, text: str) -> None:
        log.info("%s", text)
        if self.stream is not None:
            print(text, file=self.stream, flush=True)

    def notify(self, environment: Environment, text: str) -> None:
        where = f" [{environment.channel}]" if environment.channel else ""
        self._say(f"{environment.name}{where}: {text}")

    def remind(self, environment: Environment, owner: str, ends_at: datetime) -> None:
        when = describe_time(ends_at, datetime.now(UTC), self.zone)
        self._say(
            f"{environment.name}: reminder for {owner}: strip back at {when}; "
            f'"extend {environment.name} 2h" to keep it longer.'
        )


# ======================================================================= single-scheduler guard
def lock_path_for(database: Path) -> Path:
    return database.with_name(database.name + ".scheduler.lock")


class SchedulerLock:
    """An exclusive, non-blocking `flock` on a file next to the database.

    flock locks belong to the open file, so two SchedulerLocks conflict even inside one process
    (which is how the tests show two schedulers cannot both run). Linux/macOS only; a database
    on a network file system is unsafe for SQLite anyway.

    Beside it, `<lock>.bots` carries a shared lock of every started bot (holder or standing by):
    `bots_elsewhere()` tells a process without a scheduler whether any bot would take over.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.bots_path = path.with_name(path.name + ".bots")
        self._file: IO[str] | None = None
        self._bot_mark: IO[str] | None = None

    @property
    def held(self) -> bool:
        return self._file is not None

    def acquire(self) -> bool:
        if self._file is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        handle.seek(0)
        handle.truncate()
        started = datetime.now(UTC).isoformat(timespec="seconds")
        handle.write(f"pid {os.getpid()} on {socket.gethostname()} since {started}\n")
        handle.flush()
        self._file = handle
        return True

    def holder(self) -> str:
        """Who holds the lock, as its holder wrote it ("" when unknown)."""
        try:
            return self.path.read_text(encoding="utf-8").strip()
        except OSError:
            return ""

    def is_held_elsewhere(self) -> bool:
        """True while another open file (process or SchedulerLock) holds the lock."""
        if self._file is not None:
            return False
        return _locked(self.path)

    def mark_bot(self) -> None:
        """Say that a bot runs here (holding the scheduler or standing by to take it over)."""
        if self._bot_mark is not None:
            return
        self.bots_path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.bots_path.open("a+", encoding="utf-8")
        fcntl.flock(handle.fileno(), fcntl.LOCK_SH)  # shared: never waits for another bot
        self._bot_mark = handle

    def bots_elsewhere(self) -> bool:
        """True while a bot (other than this SchedulerLock's) is running on this database."""
        return self._bot_mark is None and _locked(self.bots_path)

    def release(self) -> None:
        for handle in (self._file, self._bot_mark):
            if handle is not None:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
                handle.close()
        self._file = None
        self._bot_mark = None


def _locked(path: Path) -> bool:
    """True while some open file holds a lock on `path` (an exclusive try fails)."""
    if not path.exists():
        return False
    with path.open("a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        return False


# ============================================================================ results
@dataclass(frozen=True)
class ScheduleResult:
    """What a schedule command did, with the sentence to show the user."""

    environment: str
    starts_at: datetime | None
    ends_at: datetime | None
    message: str
    changed: bool = True


@dataclass(frozen=True)
class DeployTimes:
    """The validated times of `deploy ... at WHEN until WHEN` (nothing recorded yet)."""

    environment: str
    starts_at: datetime | None
    ends_at: datetime | None


@dataclass(frozen=True)
class StartReport:
    """What starting (or taking over) the scheduler found. `message` is one line for the
    channel: no server paths (those go to the log)."""

    active: bool  # False: another process runs the scheduler; this one stands by
    message: str
    jobs: list[str] = field(default_factory=list)  # job ids in the scheduler after the rebuild
    missed: list[str] = field(default_factory=list)  # what fell due while no scheduler ran
    took_over: bool = False  # True: a standing-by bot took the scheduler over from one that stopped


# ============================================================================ job entry points
_SERVICES: dict[str, ScheduleService] = {}
_SERVICES_LOCK = threading.Lock()


def run_job(key: str, kind: str, environment: str, planned: str, missed: bool = False) -> None:
    """APScheduler's entry point: plain arguments naming the schedule service and the work."""
    with _SERVICES_LOCK:
        svc = _SERVICES.get(key)
    if svc is None:
        log.warning("job %s:%s for a stopped scheduler ignored", kind, environment)
        return
    try:
        svc.run(kind, environment, datetime.fromisoformat(planned), missed=missed)
    finally:
        svc._job_done(f"{kind}:{environment}")  # counted in when it was handed to a thread


def sync_job(key: str) -> None:
    """Periodic re-sync of the job table from SQLite (schedules set by another process)."""
    with _SERVICES_LOCK:
        svc = _SERVICES.get(key)
    if svc is not None:
        svc.sync()


class _TrackingExecutor(ThreadPoolExecutor):
    """APScheduler's thread pool, telling the schedule service when it is handed a job.

    APScheduler removes a one-shot job from its store and hands it to a thread in one step; the
    service counts it as in flight from that moment until `run_job` returns, so `idle()` and
    `sync()` never miss a job that is between the two.
    """

    def __init__(self, service: ScheduleService, max_workers: int = 10) -> None:
        super().__init__(max_workers)
        self._service = service

    def submit_job(self, job: Job, run_times: list[datetime]) -> None:
        ours = job.id.split(":", 1)[0] in JOB_KINDS
        if ours:
            self._service._job_submitted(job.id)
        try:
            super().submit_job(job, run_times)
        except BaseException:  # not handed over (e.g. max instances): not in flight either
            if ours:
                self._service._job_done(job.id)
            raise


# ============================================================================ the service
class ScheduleService:
    def __init__(
        self,
        settings: Settings,
        repo: Repository,
        service: Service,
        *,
        notifier: Notifier | None = None,
        clock: Callable[[], datetime] | None = None,
        scheduler: BaseScheduler | None = None,
        lock_path: Path | None = None,
        resync_s: float | None = None,
        on_takeover: Callable[[StartReport], None] | None = None,
    ) -> None:
        self.settings = settings
        self.repo = repo
        self.service = service
        self.zone = zone_of(settings.timezone)
        self.notifier: Notifier = notifier or LogNotifier(settings.timezone)
        self.clock = clock or service.clock
        self.scheduler = scheduler or BackgroundScheduler(
            timezone=self.zone, executors={"default": _TrackingExecutor(self)}
        )
        self.lock = SchedulerLock(lock_path or lock_path_for(settings.database))
        self.resync_s = settings.schedule.resync_s if resync_s is None else resync_s
        # Called (in the scheduler's thread) after this process took the scheduler over from
        # one that stopped; the Slack bot reports it and recovers the runs the other left.
        self.on_takeover = on_takeover
        self.key = uuid.uuid4().hex
        self._sync_lock = threading.Lock()
        self._started = False  # start() ran: this process holds the scheduler or stands by
        self._guard = threading.Lock()  # the fields below
        self._inflight: dict[str, int] = {}  # job id -> handed to a thread, not finished
        self._env_locks: dict[str, threading.Lock] = {}  # one course's jobs run one at a time
        self._waiting: dict[str, int] = {}  # environment -> jobs waiting for its lock
        self._retry_at: dict[str, datetime] = {}  # strip backs that met a busy environment

    @property
    def active(self) -> bool:
        """True while this process runs the scheduler for its database."""
        return self.lock.held and self.scheduler.running

    @property
    def lead(self) -> timedelta:
        return timedelta(minutes=self.settings.schedule.reminder_lead_min)

    @property
    def max_lease(self) -> timedelta:
        return timedelta(hours=self.settings.schedule.max_lease_hours)

    @property
    def default_extension(self) -> timedelta:
        return timedelta(minutes=self.settings.schedule.default_extension_min)

    # ------------------------------------------------------------------ showing times
    def describe(self, moment: datetime) -> str:
        """ "Fri 28 Nov 17:00 GMT (in 2 d 3 h)" in the team zone."""
        return describe_time(moment, self.clock(), self.zone)

    def next_event(self, environment: str) -> tuple[EventKind, datetime] | None:
        """The environment's next scheduled deploy or strip back, from SQLite."""
        env = self.repo.get_environment(environment)
        return _next_event(env) if env is not None else None

    def next_events(self) -> dict[str, tuple[EventKind, datetime]]:
        """Every environment's next scheduled event (one query; for status and App Home)."""
        out: dict[str, tuple[EventKind, datetime]] = {}
        for env, _ in self.repo.scheduled_environments():
            event = _next_event(env)
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

    # ------------------------------------------------------------------ validation helpers
    def _parse(self, text: str, what: str, after: datetime | None = None) -> datetime:
        now = self.clock()
        when = parse_time(text, now=now, zone=self.zone, after=after)
        if when <= now:
            raise UsageError(
                f'the {what} time "{text}" is {self.describe(when)}, which has passed; give a '
                f"time in the future, e.g. {_TIME_EXAMPLE}"
            )
        return when

    def _check_order(self, starts: datetime | None, ends: datetime | None, env: str) -> None:
        if starts is not None and ends is not None and ends <= starts:
            raise UsageError(
                f"the end ({self.describe(ends)}) must be after the start "
                f'({self.describe(starts)}), e.g. "schedule {env} at mon 08:00 until fri 17:00"'
            )

    def _check_cap(
        self,
        env: str,
        lease_from: datetime,
        ends: datetime,
        verb: str,
        deploy: Callable[[str], str] | None = None,
    ) -> None:
        """Refuse an end past the lease cap, suggesting one that fits: `deploy(until)` gives
        the deploy command to suggest (for a deploy, whose environment may not exist yet)."""
        limit = lease_from + self.max_lease
        if ends <= limit:
            return
        cap = f"{self.settings.schedule.max_lease_hours} h"
        room = limit - max(self.clock(), lease_from)
        head = (
            f"{env} cannot {verb} {self.describe(ends)}: an environment may run at most {cap} "
            f"(the [schedule] max_lease_hours setting) and {env}'s lease began "
            f"{self.describe(lease_from)}, so it must be stripped back by {self.describe(limit)}."
        )
        if verb == "be extended to":
            current = self.repo.get_environment(env)
            if current is not None and current.ends_at is not None:
                room = limit - current.ends_at
            if room >= timedelta(hours=1):
                room -= timedelta(minutes=(room // timedelta(minutes=1)) % 60)  # whole hours
            if room >= timedelta(minutes=1):
                raise UsageError(
                    f"{head} Extend by at most {describe_delta(room)}, e.g. "
                    f'"extend {env} {format_duration(room)}", or ask an admin to raise the cap.'
                )
            raise UsageError(f"{head} It is at the cap already; ask an admin to raise it.")
        until = f"{limit.astimezone(self.zone):%Y-%m-%d %H:%M}"  # minutes down: within the cap
        example = deploy(until) if deploy is not None else f"schedule {env} until {until}"
        raise UsageError(f'{head} Pick an earlier end, e.g. "{example}".')

    def _reminded_if_inside_lead(
        self, ends: datetime, starts: datetime | None = None
    ) -> datetime | None:
        """A user who sets an end inside the reminder lead has just seen it: no reminder. With a
        deployment still to run, the reminder comes after it (see `_jobs_for`), never before."""
        if starts is not None:
            return None
        # A reminder due within a minute would land next to (or before) the reply itself.
        return ends if ends - self.lead <= self.clock() + _JUST_SEEN else None

    def _when_text(self, env: str, starts: datetime | None, ends: datetime | None) -> str:
        parts = []
        if starts is not None:
            parts.append(f"deploys {self.describe(starts)}")
        if ends is not None:
            parts.append(f"strips back {self.describe(ends)}")
        text = f"{env} " + " and ".join(parts) if parts else f"{env} has nothing scheduled"
        if ends is not None and self.lead:
            if starts is not None and ends - self.lead <= starts:
                text += "; the owner is reminded once the deployment is done"
            elif ends - self.lead > self.clock() + _JUST_SEEN:
                text += f"; the owner is reminded {describe_delta(self.lead)} before"
        text += "."
        if parts:
            note = self.keeper_note()
            if note:
                text += f" {note}"
        return text

    # ------------------------------------------------------------------ who keeps the times
    def keeper_note(self) -> str:
        """ "" when a scheduler will run what was just scheduled (this process, or another bot
        holding the lock); else a sentence saying that no scheduler runs right now.

        A bot standing by takes the scheduler over here and now when it is free, so its reply
        never promises a time that nobody keeps.
        """
        if self.active:
            return ""
        if self._started:
            self.sync()  # stands by: takes over now if the holder is gone
            if self.active:
                return ""
        if self.lock.is_held_elsewhere():
            return ""
        if self.lock.bots_elsewhere():
            return (
                "No bot holds the scheduler for this database at this moment; the bot standing "
                f"by takes it over within {_seconds(self.resync_s)} and runs anything due, late "
                "if need be."
            )
        return (
            "No bot is running the scheduler for this database right now, so nothing runs at "
            "that time until one starts (`python -m bot`); it then runs anything due, late if "
            "need be."
        )

    # ------------------------------------------------------------------ commands
    def deploy_times(self, command: grammar.Deploy) -> DeployTimes:
        """Validate a deploy's `at`/`until` (and its types) without changing anything."""
        env_name = command.environment or self.service.default_environment(command)
        for item in command.items:
            t = self.settings.type(item.type)  # unknown type: ConfigError naming the known ones
            if item.count > t.max_count:
                raise UsageError(
                    f"{item.count} {t.name} clones is more than the type's maximum of "
                    f'{t.max_count}, e.g. "deploy {t.name} {min(t.max_count, 25)} as {env_name}"'
                )
        starts = self._parse(command.at, "start") if command.at else None
        ends = self._parse(command.until, "end", after=starts) if command.until else None
        self._check_order(starts, ends, env_name)
        if ends is not None:
            at = f" at {command.at}" if command.at else ""
            self._check_cap(
                env_name,
                starts or self.clock(),
                ends,
                "run until",
                deploy=lambda until: f"{_deploy_text(command, env_name)}{at} until {until}",
            )
        existing = self.repo.get_environment(env_name)
        if starts is not None and existing is not None and existing.starts_at is not None:
            raise ConflictError(
                f"{env_name} already has a deployment scheduled "
                f"{self.describe(existing.starts_at)}; "
                f'move it with "schedule {env_name} at ..." or drop it with '
                f'"cancel-schedule {env_name}".'
            )
        return DeployTimes(env_name, starts, ends)

    def schedule_deploy(
        self, command: grammar.Deploy, *, actor: str, source: str = "cli", channel: str = ""
    ) -> ScheduleResult:
        """Record `deploy ... at WHEN [until WHEN]`: the deploy runs at WHEN in the scheduler."""
        if not command.at:
            raise UsageError(
                'say when to deploy with "at", e.g. "deploy capture 25 as nov-cohort at mon 08:00"'
            )
        times = self.deploy_times(command)
        assert times.starts_at is not None
        text = _deploy_text(command, times.environment)
        with self.repo.transaction():
            self.repo.ensure_environment(times.environment, owner=actor, channel=channel)
            self.repo.update_environment(
                times.environment, starts_at=times.starts_at, ends_at=times.ends_at
            )
            self.repo.save_schedule(
                times.environment,
                deploy_command=text,
                requested_by=actor,
                lease_from=times.starts_at,
                reminded_for_end=None,
                stripping_for_end=None,
            )
            self.repo.audit(
                actor=actor,
                source=source,
                channel=channel,
                command=f"{text} at {command.at}"
                + (f" until {command.until}" if command.until else ""),
                result="scheduled",
                detail=_times_detail(times.starts_at, times.ends_at),
            )
        self._resync_one(times.environment)
        return ScheduleResult(
            times.environment,
            times.starts_at,
            times.ends_at,
            self._when_text(times.environment, times.starts_at, times.ends_at),
        )

    def set_end(
        self, environment: str, ends_at: datetime, *, actor: str, source: str = "cli"
    ) -> ScheduleResult:
        """Record the end of a deploy that ran now (`deploy ... until WHEN`), validated earlier by
        `deploy_times`; an end that passed during the deploy strips back at once."""
        env = self.service.environment(environment)
        with self.repo.transaction():
            self.repo.update_environment(env.name, ends_at=ends_at)
            self.repo.save_schedule(
                env.name,
                requested_by=actor,
                lease_from=self.clock(),
                reminded_for_end=self._reminded_if_inside_lead(ends_at),
                stripping_for_end=None,
            )
            self.repo.audit(
                actor=actor,
                source=source,
                channel=env.channel,
                command=f"schedule {env.name} until {ends_at.isoformat()}",
                result="ok",
                detail=_times_detail(None, ends_at),
            )
        self._resync_one(env.name)
        return ScheduleResult(env.name, None, ends_at, self._when_text(env.name, None, ends_at))

    def schedule(
        self, command: grammar.Schedule, *, actor: str, source: str = "cli", channel: str = ""
    ) -> ScheduleResult:
        """`schedule ENV [at WHEN] [until WHEN]`: set or move an environment's start and end."""
        env = self.service.environment(command.environment)
        record = self.repo.get_schedule(env.name)
        if record is not None and record.stripping_for_end is not None:
            raise ConflictError(f"{env.name} is being stripped back now; there is nothing to move.")
        if command.at and env.starts_at is None:
            raise UsageError(
                f'{env.name} has no scheduled deployment to move ("at" moves one made with '
                f'"deploy ... at"); to set its end use "schedule {env.name} until fri 17:00"'
            )
        if not command.at and not command.until:
            raise UsageError(f'say when, e.g. "schedule {env.name} until fri 17:00"')
        starts = self._parse(command.at, "start") if command.at else env.starts_at
        ends = self._parse(command.until, "end", after=starts) if command.until else env.ends_at
        self._check_order(starts, ends, env.name)
        if command.until and starts is None:
            live = self.repo.clones(environment=env.name, states=LIVE_STATES)
            if not live:
                raise UsageError(
                    f"{env.name} has no clones, so there is nothing to strip back; deploy "
                    f'with an end instead, e.g. "deploy capture 25 as {env.name} until fri 17:00"'
                )
        lease_from = starts or (
            record.lease_from
            if record is not None and record.lease_from is not None and env.ends_at is not None
            else self.clock()
        )
        if ends is not None:
            self._check_cap(env.name, lease_from, ends, "run until")
        with self.repo.transaction():
            self.repo.update_environment(env.name, starts_at=starts, ends_at=ends)
            self.repo.save_schedule(
                env.name,
                requested_by=actor,
                lease_from=lease_from,
                reminded_for_end=self._reminded_if_inside_lead(ends, starts) if ends else None,
            )
            self.repo.audit(
                actor=actor,
                source=source,
                channel=channel,
                command=_command_text(command),
                result="ok",
                detail=_times_detail(starts, ends),
            )
        self._resync_one(env.name)
        return ScheduleResult(env.name, starts, ends, self._when_text(env.name, starts, ends))

    def extend(
        self,
        environment: str,
        by: str | timedelta | None = None,
        *,
        actor: str,
        source: str = "cli",
        channel: str = "",
    ) -> ScheduleResult:
        """Move the scheduled strip back later by `by` (default: the configured extension)."""
        env = self.service.environment(environment)
        record = self.repo.get_schedule(env.name)
        if record is not None and record.stripping_for_end is not None:
            raise ConflictError(f"{env.name} is being stripped back now; it is too late to extend.")
        if env.ends_at is None:
            raise UsageError(
                f"{env.name} has no scheduled strip back to extend; set one with "
                f'"schedule {env.name} until fri 17:00"'
            )
        if by is None:
            delta = self.default_extension
        elif isinstance(by, str):
            delta = parse_duration(by)
        else:
            delta = by
        if delta <= timedelta(0):
            raise UsageError(f'extend by a positive length of time, e.g. "extend {env.name} 2h"')
        ends = env.ends_at + delta
        lease_from = (record.lease_from if record else None) or env.starts_at or self.clock()
        self._check_cap(env.name, lease_from, ends, "be extended to")
        with self.repo.transaction():
            self.repo.update_environment(env.name, ends_at=ends)
            self.repo.save_schedule(
                env.name,
                requested_by=actor,
                lease_from=lease_from,
                reminded_for_end=self._reminded_if_inside_lead(ends, env.starts_at),
            )
            self.repo.audit(
                actor=actor,
                source=source,
                channel=channel,
                command=f"extend {env.name} {format_duration(delta)}",
                result="ok",
                detail=_times_detail(None, ends),
            )
        self._resync_one(env.name)
        message = (
            f"{env.name} now strips back {self.describe(ends)}, {describe_delta(delta)} later; "
            f"the cap allows until {self.describe(lease_from + self.max_lease)}."
        )
        note = self.keeper_note()
        return ScheduleResult(env.name, env.starts_at, ends, f"{message} {note}".strip())

    def cancel(
        self, environment: str, *, actor: str, source: str = "cli", channel: str = ""
    ) -> ScheduleResult:
        """Drop the scheduled deploy, strip back and reminder; the clones stay."""
        env = self.service.environment(environment)
        record = self.repo.get_schedule(env.name)
        if record is not None and record.stripping_for_end is not None:
            raise ConflictError(f"{env.name} is being stripped back now; it cannot be cancelled.")
        if env.starts_at is None and env.ends_at is None:
            return ScheduleResult(
                env.name, None, None, f"{env.name} has nothing scheduled.", changed=False
            )
        with self.repo.transaction():
            self.repo.update_environment(env.name, starts_at=None, ends_at=None)
            self.repo.delete_schedule(env.name)
            self.repo.audit(
                actor=actor,
                source=source,
                channel=channel,
                command=f"cancel-schedule {env.name}",
                result="ok",
                detail=_times_detail(env.starts_at, env.ends_at),
            )
            # An environment made only to hold a scheduled deploy goes with it.
            if not self.repo.clones(environment=env.name) and not self.repo.runs(
                environment=env.name, limit=1
            ):
                self.repo.delete_environment(env.name)
        self._resync_one(env.name)
        dropped = []
        if env.starts_at is not None:
            dropped.append(f"the deployment {self.describe(env.starts_at)}")
        if env.ends_at is not None:
            dropped.append(f"the strip back {self.describe(env.ends_at)}")
        message = f"Cancelled {' and '.join(dropped)} of {env.name}."
        if env.ends_at is not None and env.starts_at is None:
            message += f' Its clones stay until "teardown {env.name}".'
        return ScheduleResult(env.name, None, None, message)

    # ------------------------------------------------------------------ scheduler lifecycle
    def start(self, *, paused: bool = False) -> StartReport:
        """Take the single-scheduler lock, rebuild jobs from SQLite and start the scheduler; or,
        when another bot holds the lock, stand by and take it over once that bot stops.

        Missed deploys and strip backs run at once and say so in their channel. With `paused`
        the scheduler holds its jobs without running them (tests drive `run_due` and `sync`).
        """
        with _SERVICES_LOCK:
            _SERVICES[self.key] = self
        self.lock.mark_bot()
        self.scheduler.start(paused=True)
        self._started = True
        if self.lock.acquire():
            missed = self._sync_jobs(catch_up=True)
            report = self._start_report(missed, took_over=False)
        else:
            holder = self.lock.holder() or "another process"
            log.warning(
                "Scheduler lock %s is held by %s: standing by, trying it every %s",
                self.lock.path,
                holder,
                _seconds(self.resync_s),
            )
            report = StartReport(
                False,
                "Standing by: another bot runs the schedules for this database; this one takes "
                f"them over within {_seconds(self.resync_s)} if that one stops.",
            )
        if self.resync_s > 0:
            # The holder re-reads SQLite; a bot standing by tries the lock (see `sync`).
            self.scheduler.add_job(
                "bot.services.schedules:sync_job",
                "interval",
                seconds=self.resync_s,
                args=[self.key],
                id=SYNC_JOB_ID,
                replace_existing=True,
                coalesce=True,
                max_instances=1,
            )
        if not paused:
            self.scheduler.resume()
        return report

    def _start_report(self, missed: list[str], *, took_over: bool) -> StartReport:
        jobs = self.job_ids()
        head = (
            "Took the schedules over from a bot that stopped" if took_over else "Scheduler running"
        )
        message = f"{head} (times in {self.settings.timezone}): {len(jobs)} scheduled job(s)"
        if missed:
            message += (
                f"; {len(missed)} fell due while no bot was running schedules, running now: "
                + "; ".join(missed)
            )
        log.log(
            logging.WARNING if took_over else logging.INFO,
            "%s [database %s, lock %s]",
            message,
            self.settings.database,
            self.lock.path,
        )
        return StartReport(True, message + ".", jobs, missed, took_over=took_over)

    def shutdown(self, wait: bool = True) -> None:
        with _SERVICES_LOCK:
            _SERVICES.pop(self.key, None)
        self._started = False
        if self.scheduler.running:
            self.scheduler.shutdown(wait=wait)
        self.lock.release()

    def job_ids(self) -> list[str]:
        return sorted(j.id for j in self.scheduler.get_jobs() if j.id != SYNC_JOB_ID)

    def sync(self, *, startup: bool = False) -> list[str]:
        """Make the job table match SQLite; return what fell due while no scheduler ran.

        In a bot standing by (started without the lock), try the lock first: when the holder
        has stopped, take the scheduler over (jobs rebuilt, missed work run now and reported to
        `on_takeover`). A process that never started a scheduler (the CLI) does nothing here.
        """
        report: StartReport | None = None
        with self._sync_lock:
            if not self.lock.held:
                if not self._started or not self.lock.acquire():
                    return []
                report = self._start_report(self._sync_jobs(catch_up=True), took_over=True)
            else:
                return self._sync_jobs(catch_up=startup)
        if self.on_takeover is not None:
            try:
                self.on_takeover(report)
            except Exception:  # reporting must not undo the takeover
                log.exception("reporting the scheduler takeover failed")
        return report.missed

    def _sync_jobs(self, *, catch_up: bool) -> list[str]:
        now = self.clock()
        wanted: dict[str, tuple[datetime, list[Any]]] = {}
        missed: list[str] = []
        with self._guard:
            busy = {jid for jid, n in self._inflight.items() if n > 0}
        for env, record in self.repo.scheduled_environments():
            for kind, planned, run_at in self._jobs_for(env, record, now, catch_up):
                jid = job_id(kind, env.name)
                if jid in busy:  # running (or waiting for its environment) already
                    continue
                late = catch_up and planned <= now
                wanted[jid] = (run_at, [self.key, kind, env.name, planned.isoformat(), late])
                if late and kind != "remind":
                    what = "deployment" if kind == "deploy" else "strip back"
                    missed.append(f"{what} of {env.name} due {self.describe(planned)}")
        for job in self.scheduler.get_jobs():
            if job.id.split(":", 1)[0] in JOB_KINDS and job.id not in wanted:
                self.scheduler.remove_job(job.id)
        for jid, (run_at, args) in wanted.items():
            existing = self.scheduler.get_job(jid)
            if existing is not None and list(existing.args) == args:
                continue
            self._add_job(jid, run_at, args)
        return missed

    def _add_job(self, jid: str, run_at: datetime, args: list[Any]) -> None:
        self.scheduler.add_job(
            JOB_FUNC,
            trigger=DateTrigger(run_date=run_at, timezone=self.zone),
            args=args,
            id=jid,
            name=f"{args[1]} {args[2]}",
            replace_existing=True,
            misfire_grace_time=None,
            coalesce=True,
            max_instances=1,
        )

    def _jobs_for(
        self, env: Environment, record: ScheduleRecord | None, now: datetime, catch_up: bool
    ) -> list[tuple[JobKind, datetime, datetime]]:
        """(kind, planned time, when to run) for one environment's pending work."""
        jobs: list[tuple[JobKind, datetime, datetime]] = []
        if env.starts_at is not None:
            jobs.append(("deploy", env.starts_at, env.starts_at))
        if env.ends_at is not None:
            # A strip back never runs before a deploy that is still pending.
            run_at = max(env.ends_at, env.starts_at) if env.starts_at else env.ends_at
            jobs.append(("teardown", env.ends_at, run_at))
            reminded = record.reminded_for_end if record is not None else None
            # The reminder is about clones: none before the deployment has run (a short lease
            # would otherwise remind before anything exists).
            if (
                self.lead
                and env.starts_at is None
                and reminded != env.ends_at
                and env.ends_at > now
            ):
                jobs.append(("remind", env.ends_at, env.ends_at - self.lead))
        elif record is not None and record.stripping_for_end is not None:
            retry = self._retry_at.get(env.name)
            if retry is not None:  # the environment was busy: try again then
                jobs.append(("teardown", record.stripping_for_end, retry))
            elif catch_up:  # claimed by a scheduler that stopped before it finished
                jobs.append(("teardown", record.stripping_for_end, record.stripping_for_end))
        return jobs

    def _resync_one(self, environment: str) -> None:
        if self.active:  # the CLI (no scheduler) only writes SQLite; the bot's sync picks it up
            self.sync()

    def run_due(self, limit: int = 100) -> list[str]:
        """Run, in this thread and in time order, every job due by `clock()`; return their ids.

        For tests and tools with a controlled clock (and a paused scheduler): the same job
        functions with the same arguments the scheduler would call, without waiting on wall time.
        """
        ran: list[str] = []
        for _ in range(limit):
            now = self.clock()
            due = [
                j
                for j in self.scheduler.get_jobs()
                if j.id.split(":", 1)[0] in JOB_KINDS
                and j.next_run_time is not None
                and j.next_run_time <= now
            ]
            if not due:
                break
            job = min(due, key=lambda j: (j.next_run_time, JOB_KINDS.index(j.id.split(":")[0])))
            self.scheduler.remove_job(job.id)
            self._job_submitted(job.id)
            job.func(*job.args, **job.kwargs)
            ran.append(job.id)
        return ran

    def idle(self) -> bool:
        """True when no job is running or waiting for a thread, and none is due by the wall
        clock (the running scheduler's time): what tests wait for instead of sleeping."""
        with self._guard:
            if any(n > 0 for n in self._inflight.values()):
                return False
        now = datetime.now(UTC)
        return not any(
            j.next_run_time is not None and j.next_run_time <= now
            for j in self.scheduler.get_jobs()
            if j.id.split(":", 1)[0] in JOB_KINDS
        )

    def _job_submitted(self, jid: str) -> None:
        with self._guard:
            self._inflight[jid] = self._inflight.get(jid, 0) + 1

    def _job_done(self, jid: str) -> None:
        with self._guard:
            left = self._inflight.get(jid, 0) - 1
            if left > 0:
                self._inflight[jid] = left
            else:
                self._inflight.pop(jid, None)

    def waiting(self, environment: str) -> int:
        """How many of `environment`'s jobs wait for another of its jobs to finish."""
        with self._guard:
            return self._waiting.get(environment, 0)

    def _environment_lock(self, environment: str) -> threading.Lock:
        with self._guard:
            return self._env_locks.setdefault(environment, threading.Lock())

    # ------------------------------------------------------------------ the jobs
    def run(self, kind: str, environment: str, planned: datetime, *, missed: bool = False) -> None:
        """Run one job; the jobs of one environment run one at a time, in the order they get
        here (a strip back due during its deployment waits for it)."""
        try:
            lock = self._environment_lock(environment)
            with self._guard:
                self._waiting[environment] = self._waiting.get(environment, 0) + 1
            lock.acquire()
            with self._guard:
                self._waiting[environment] -= 1
            try:
                if kind == "deploy":
                    try:
                        self._run_deploy(environment, planned, missed)
                    finally:
                        # Its strip back (put back if it fell due first) and its reminder, now
                        # that the deployment ran (or was skipped).
                        self.sync()
                elif kind == "teardown":
                    self._run_teardown(environment, planned, missed)
                elif kind == "remind":
                    self._run_remind(environment, planned)
                else:
                    log.error("unknown scheduled job kind %r for %s", kind, environment)
            finally:
                lock.release()
        except Exception:
            log.exception("scheduled %s of %s failed", kind, environment)

    def _say(self, env: Environment, text: str) -> None:
        try:
            self.notifier.notify(env, text)
        except Exception:  # a broken notifier must not stop the work
            log.exception("notifier failed for %s", env.name)

    def _progress(self, env: Environment, action: RunKind) -> ProgressCallback | None:
        hook = getattr(self.notifier, "progress", None)
        if hook is None:
            return None
        try:
            callback: ProgressCallback | None = hook(env, action)
        except Exception:
            log.exception("notifier progress hook failed for %s", env.name)
            return None
        return callback

    def _report(
        self, env: Environment, action: RunKind, requester: str, text: str, late: str = ""
    ) -> RunReport:
        """`late`: why the run starts after its time ("it was due ..., when ..."), or ""."""
        hook = getattr(self.notifier, "run_report", None)
        if hook is not None:
            try:
                report: RunReport | None = hook(env, action, requester, text, late)
            except Exception:
                log.exception("notifier run report failed for %s", env.name)
            else:
                if report is not None:
                    return report
        return _SayReport(self, env, action, text)

    def _retry_teardown(self, name: str, planned: datetime) -> float:
        """Run a busy environment's claimed strip back again in a while; returns how long."""
        every = max(self.resync_s, 1.0)
        retry = self.clock() + timedelta(seconds=every)
        with self._guard:
            self._retry_at[name] = retry
        if self.lock.held:
            args = [self.key, "teardown", name, planned.isoformat(), False]
            self._add_job(job_id("teardown", name), retry, args)
        return every

    def _late(self, planned: datetime, missed: bool) -> str:
        late = self._lateness(planned, missed)
        return f" ({late})" if late else ""

    def _lateness(self, planned: datetime, missed: bool) -> str:
        # "No bot was running schedules" holds after a restart and after a takeover alike (a
        # bot standing by was running, but not the schedules).
        return (
            f"it was due {self.describe(planned)}, when no bot was running schedules"
            if missed
            else ""
        )

    def _run_deploy(self, name: str, planned: datetime, missed: bool) -> None:
        record = self.repo.get_schedule(name)
        env_now = self.repo.get_environment(name)
        if (
            record is None
            or not record.deploy_command
            or env_now is None
            or env_now.starts_at != planned
        ):
            log.info("scheduled deploy of %s for %s: moved, cancelled or done", name, planned)
            return
        if env_now.ends_at is not None and env_now.ends_at <= self.clock():
            self._skip_deploy(env_now, record, planned, missed)
            return
        if not self.repo.claim_start(name, planned):
            log.info("scheduled deploy of %s for %s: moved, cancelled or done", name, planned)
            return
        self._deploy(name, record, planned, missed)

    def _deploy(self, name: str, record: ScheduleRecord, planned: datetime, missed: bool) -> None:
        assert record.deploy_command is not None
        command = grammar.parse(record.deploy_command)
        assert isinstance(command, grammar.Deploy)
        self.repo.save_schedule(name, deploy_command=None)
        env = self.service.environment(name)
        actor = record.requested_by or "scheduler"
        report = self._report(
            env,
            RunKind.DEPLOY,
            actor,
            f"Scheduled deployment starting: {record.deploy_command}{self._late(planned, missed)}.",
            self._lateness(planned, missed),
        )
        try:
            result = self.service.deploy(
                command,
                actor=actor,
                source="scheduler",
                channel=env.channel,
                on_event=report.on_event,
            )
        except ClonesError as exc:
            report.stopped(f"Scheduled deployment of {name} failed: {exc}")
            return
        text = (
            f"Scheduled deployment of {name} done: {len(result.ready)} of {result.requested} ready"
        )
        if result.failed:
            text += f", {len(result.failed)} failed"
        current = self.repo.get_environment(name)
        if current is not None and current.ends_at is not None:
            text += f"; strip back {self.describe(current.ends_at)}"
        report.finished(result, text + ".")

    def _skip_deploy(
        self, env: Environment, record: ScheduleRecord, planned: datetime, missed: bool
    ) -> None:
        """A deployment whose course has already ended creates nothing, and says why."""
        assert env.ends_at is not None
        if not self.repo.claim_start(env.name, planned):
            return
        ends = env.ends_at
        live = self.repo.clones(environment=env.name, states=LIVE_STATES)
        self.repo.save_schedule(env.name, deploy_command=None)
        if not live and self.repo.claim_end(env.name, ends):
            self._finish_teardown(env.name)  # nothing to strip back: the course is over
        self.repo.audit(
            actor="scheduler",
            source="scheduler",
            channel=env.channel,
            command=record.deploy_command or f"deploy as {env.name}",
            result="skipped",
            detail=f"course ended {_times_detail(planned, ends)}",
        )
        why = "while no bot was running schedules" if missed else "before it could run"
        text = (
            f"The scheduled deployment of {env.name} ({record.deploy_command}) did not run: it "
            f"was due {self.describe(planned)} and its course ended {self.describe(ends)}, "
            f"{why}. Nothing was created."
        )
        if live:
            text += f" Its {len(live)} earlier clones are stripped back now, as scheduled."
        elif not self.repo.runs(environment=env.name, limit=1):
            self.repo.delete_environment(env.name)  # made only to hold this deployment
        log.warning("%s", text)
        self._say(env, text)

    def _run_teardown(self, name: str, planned: datetime, missed: bool) -> None:
        pending = self.repo.get_environment(name)
        if pending is not None and pending.starts_at is not None:
            # Its deployment has not run yet (both fell due at once): it runs first, and puts
            # this strip back in the job table again, or drops it when the course is over.
            log.info("scheduled strip back of %s waits for its pending deployment", name)
            return
        claimed = self.repo.claim_end(name, planned)
        if not claimed:
            record = self.repo.get_schedule(name)
            resuming = (
                (missed or name in self._retry_at)
                and record is not None
                and record.stripping_for_end == planned
            )
            if not resuming:
                log.info(
                    "scheduled strip back of %s for %s: moved, cancelled or done", name, planned
                )
                return
        if self.scheduler.get_job(job_id("remind", name)) is not None:
            self.scheduler.remove_job(job_id("remind", name))
        env = self.service.environment(name)
        retrying = name in self._retry_at
        report: RunReport
        if not retrying:
            report = self._report(
                env,
                RunKind.TEARDOWN,
                "scheduler",
                f"Scheduled strip back of {name} starting{self._late(planned, missed)}.",
                self._lateness(planned, missed),
            )
        else:  # shown only once it does start: a retry that meets a busy environment is quiet
            report = _LazyReport(
                lambda: self._report(
                    env,
                    RunKind.TEARDOWN,
                    "scheduler",
                    f"Scheduled strip back of {name} starting now that {name} is free.",
                )
            )
        try:
            result = self.service.teardown(
                name,
                actor="scheduler",
                source="scheduler",
                channel=env.channel,
                on_event=report.on_event,
            )
        except NotFoundError as exc:
            report.stopped(f"Scheduled strip back of {name}: nothing to do ({exc}).")
        except ConflictError as exc:
            # Busy with another run (a deployment typed meanwhile, or one being resumed): the
            # claim stays, and the strip back is tried again until it can run.
            log.info("scheduled strip back of %s waits: %s", name, exc)
            every = self._retry_teardown(name, planned)
            if not retrying:  # said once
                report.stopped(
                    f"Scheduled strip back of {name} waits: {name} is busy with another "
                    f"deployment, strip back or refresh. It runs as soon as {name} is free "
                    f"(tried every {_seconds(every)}); nothing to do meanwhile."
                )
            return
        except VCenterError as exc:
            report.stopped(
                f"Scheduled strip back of {name} stopped: {exc}. It resumes when the bot next "
                f'starts; to retry now, "teardown {name}".'
            )
            with self._guard:
                self._retry_at.pop(name, None)
            return
        except ClonesError as exc:
            report.stopped(f"Scheduled strip back of {name} failed: {exc}")
        else:
            text = (
                f"Scheduled strip back of {name} done: {len(result.destroyed)} clones destroyed, "
                f"{result.reclaimed_gb:.2f} GB reclaimed"
            )
            problems = len(result.failed) + len(result.skipped)
            if problems:
                text += f'; {problems} left (see "status {name}")'
            report.finished(result, text + ".")
        self._finish_teardown(name)

    def _finish_teardown(self, name: str) -> None:
        with self._guard:
            self._retry_at.pop(name, None)
        with self.repo.transaction():
            env = self.repo.get_environment(name)
            if env is None:
                return
            if env.starts_at is None and env.ends_at is None:
                self.repo.delete_schedule(name)
            else:
                self.repo.save_schedule(name, stripping_for_end=None)

    def _run_remind(self, name: str, planned_end: datetime) -> None:
        env_now = self.repo.get_environment(name)
        if env_now is not None and env_now.starts_at is not None:
            log.info("reminder for %s: its deployment has not run yet", name)
            return
        if not self.repo.mark_reminded(name, planned_end):
            log.info("reminder for %s at %s: already sent, or the end moved", name, planned_end)
            return
        env = self.service.environment(name)
        try:
            self.notifier.remind(env, env.owner, planned_end)
        except Exception:
            log.exception("reminder for %s failed", name)


# ============================================================================ helpers
def _next_event(env: Environment) -> tuple[EventKind, datetime] | None:
    events: list[tuple[datetime, EventKind]] = []
    if env.starts_at is not None:
        events.append((env.starts_at, "deploy"))
    if env.ends_at is not None:
        events.append((env.ends_at, "teardown"))
    if not events:
        return None
    when, kind = min(events)
    return kind, when


def _deploy_text(command: grammar.Deploy, environment: str) -> str:
    """The grammar text of a deploy (without its times), which `grammar.parse` reads back."""
    items = " ".join(f"{i.type} {i.count}" for i in command.items)
    text = f"deploy {items} as {environment}" + (" and power on" if command.power_on else "")
    parsed = grammar.parse(text)
    assert isinstance(parsed, grammar.Deploy) and parsed.items == command.items
    return text


def _command_text(command: grammar.Schedule) -> str:
    text = f"schedule {command.environment}"
    if command.at:
        text += f" at {command.at}"
    if command.until:
        text += f" until {command.until}"
    return text


def _times_detail(starts: datetime | None, ends: datetime | None) -> str:
    parts = []
    if starts is not None:
        parts.append(f"starts_at={starts.astimezone(UTC).isoformat()}")
    if ends is not None:
        parts.append(f"ends_at={ends.astimezone(UTC).isoformat()}")
    return " ".join(parts)


def _seconds(value: float) -> str:
    """ "30 s", "2 min": the re-sync interval as a person reads it."""
    if value >= 60 and value % 60 == 0:
        return f"{int(value // 60)} min"
    return f"{value:g} s"


def default_notifier(settings: Settings, stream: TextIO | None = sys.stderr) -> LogNotifier:
    return LogNotifier(settings.timezone, stream)
