"""Keeping the schedules: the scheduler's job table derived from the database, in the one bot
that leads (holds the database's `scheduler` lease: bot/services/leadership.py); the bots standing
by, which take it over once the leader's lease expires (it died, hung or was cut off); the
start-up (or takeover) report, and the note that no scheduler keeps a time right now. A leader
that loses the lease empties its job table, and every claim a job makes is fenced by the epoch it
led under (`fence`), so a leader that comes back after another took over writes nothing.

The job table is rebuilt from SQLite at start-up and re-synced every `[schedule] resync_s` (default
30 s), so schedules set from the terminal, in another process, are picked up. Jobs have fixed ids
(`deploy:<env>`, `teardown:<env>`, `remind:<env>`) and plain arguments (kind, environment, planned
time, whether it was missed), and are handed to `run` (see `runners.py`).
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Literal

from bot.domain.models import Environment, Fence, ScheduleRecord
from bot.host import release_freed_memory
from bot.ports import JobArgs, Repository, Scheduler
from bot.services.schedules.results import StartReport
from bot.services.schedules.times import TimeRules, seconds
from bot.settings import Settings

log = logging.getLogger("clones.schedule")

JobKind = Literal["deploy", "teardown", "remind"]
JOB_KINDS: tuple[JobKind, ...] = ("deploy", "teardown", "remind")
RunJob = Callable[[str, str, datetime, bool], None]  # kind, environment, planned, missed


def job_id(kind: JobKind, environment: str) -> str:
    return f"{kind}:{environment}"


def kind_of(jid: str) -> str:
    return jid.split(":", 1)[0]


class Keeper:
    """The job table of one process's scheduler, and who keeps the times (the lease)."""

    def __init__(
        self,
        settings: Settings,
        repo: Repository,
        rules: TimeRules,
        scheduler: Scheduler,
        run: RunJob,
        resync_s: float,
    ) -> None:
        self.settings = settings
        self.repo = repo
        self.rules = rules
        self.scheduler = scheduler
        self.lock = scheduler.lock
        self.resync_s = resync_s
        self._run = run
        # Called (in the scheduler's thread) after this process took the scheduler over from
        # one that stopped; the Slack bot reports it and recovers the runs the other left.
        self.on_takeover: Callable[[StartReport], None] | None = None
        # Called after each periodic re-sync by the leader: work another process left the bot
        # (trainees to tell their VM was removed by a strip back from a tokenless terminal).
        self.after_resync: Callable[[], object] | None = None
        # Also after each re-sync, in the holder only: pruning history at the quiet hour.
        self.housekeeping: Callable[[], object] | None = None
        self._sync_lock = threading.Lock()
        self._started = False  # start() ran: this process holds the scheduler or stands by
        self._guard = threading.Lock()  # _retry_at
        self._retry_at: dict[str, datetime] = {}  # strip backs that met a busy environment

    @property
    def active(self) -> bool:
        """True while this process runs the scheduler for its database."""
        return self.lock.held and self.scheduler.running

    # ------------------------------------------------------------------ who keeps the times
    def keeper_note(self) -> str:
        """ "" when a scheduler will run what was just scheduled (this process, or the leader
        elsewhere); else a sentence saying that no scheduler runs right now. A bot standing by
        takes the scheduler over here and now when it is free, so its reply never promises a
        time that nobody keeps."""
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
                f"by takes it over within {seconds(self.takeover_s)} and runs anything due, late "
                "if need be."
            )
        return (
            "No bot is running the scheduler for this database right now, so nothing runs at "
            "that time until one starts (`python -m bot`); it then runs anything due, late if "
            "need be."
        )

    @property
    def takeover_s(self) -> float:
        """A standby's takeover time: the lease runs out, then its next try (lease/3 or re-sync)."""
        lease = self.lock.lease_s
        return math.ceil(lease + min(lease / 3.0, self.resync_s if self.resync_s > 0 else lease))

    def fence(self) -> Fence | None:
        """What the jobs' claims are checked against: the lease led under (None: never started)."""
        return self.lock.fence() if self._started else None

    def running_anywhere(self) -> bool:
        """True while a scheduler runs for this database (here, or in a bot holding the lock)."""
        return self.active or self.lock.is_held_elsewhere()

    # ------------------------------------------------------------------ lifecycle
    def start(self, *, paused: bool = False) -> StartReport:
        """Take the single-scheduler lock, rebuild jobs from SQLite and start the scheduler; or,
        when another bot holds the lock, stand by and take it over once that bot stops.

        Missed deploys and strip backs run at once and say so in their channel. With `paused`
        the scheduler holds its jobs without running them (tests drive `run_due` and `sync`).
        """
        self.scheduler.start(self._on_job)
        self.lock.on_lost = self._lost
        self.lock.on_vacant = self._vacant
        self._started = True
        self.lock.mark_bot()
        if self.lock.acquire():
            report = self._start_report(self._sync_jobs(catch_up=True), took_over=False)
        else:
            log.warning(
                "Scheduler %s is held by %s: standing by, taking it over within %s if it stops",
                self.lock.where,
                self.lock.holder() or "another bot",
                seconds(self.takeover_s),
            )
            report = StartReport(
                False,
                "Standing by: another bot runs the schedules for this database; this one takes "
                f"them over within {seconds(self.takeover_s)} if that one stops.",
            )
        if self.resync_s > 0:
            # The holder re-reads SQLite; a bot standing by tries the lock (see `sync`).
            self.scheduler.every(self.resync_s, self.resync)
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
            "%s [database %s, %s]",
            message,
            self.settings.database,
            self.lock.where,
        )
        return StartReport(True, message + ".", jobs, missed, took_over=took_over)

    def shutdown(self, wait: bool = True) -> None:
        self._started = False
        self.scheduler.shutdown(wait=wait)
        self.lock.release()

    def _vacant(self) -> None:
        """The lease thread, standing by: try the lease (`sync` takes the scheduler over)."""
        if self._started:
            self.sync()

    def _lost(self, reason: str) -> None:
        """Another bot leads now: this job table runs nothing more (a running job is fenced)."""
        with self._sync_lock:
            for job in self.scheduler.jobs():
                if kind_of(job.id) in JOB_KINDS:
                    self.scheduler.remove(job.id)
        log.warning("the schedules are another bot's now; this one stands by (%s)", reason)

    def job_ids(self) -> list[str]:
        return sorted(j.id for j in self.scheduler.jobs())

    # ------------------------------------------------------------------ the job table
    def resync(self) -> None:
        """The periodic job: `sync`, then `after_resync` and `housekeeping` when this process
        holds the scheduler (a failure is logged; the next re-sync tries again). Every bot also
        hands back the memory its allocator kept after frees (`release_freed_memory`)."""
        self.sync()
        release_freed_memory()
        if not self.lock.held:
            return
        for hook in (self.after_resync, self.housekeeping):
            if hook is None:
                continue
            try:
                hook()
            except Exception:
                log.exception("after the schedules' re-sync")

    def sync(self, *, startup: bool = False) -> list[str]:
        """Make the job table match SQLite; return what fell due while no scheduler ran.

        In a bot standing by (started without the lock), try the lock first: when the holder
        has stopped, take the scheduler over (jobs rebuilt, missed work run now and reported to
        `on_takeover`). A process that never started a scheduler (the CLI) does nothing here.
        """
        with self._sync_lock:
            if self.lock.held:
                return self._sync_jobs(catch_up=startup)
            before = self.lock.fence().epoch
            if not self._started or not self.lock.acquire():
                return []
            if before and self.lock.fence().epoch == before:  # renewed late: nobody else led
                return self._sync_jobs(catch_up=startup)
            report = self._start_report(self._sync_jobs(catch_up=True), took_over=True)
        if self.on_takeover is not None:
            try:
                self.on_takeover(report)
            except Exception:  # reporting must not undo the takeover
                log.exception("reporting the scheduler takeover failed")
        return report.missed

    def _sync_jobs(self, *, catch_up: bool) -> list[str]:
        now = self.rules.clock()
        wanted: dict[str, tuple[datetime, JobArgs]] = {}
        missed: list[str] = []
        busy = self.scheduler.in_flight()
        for env, record in self.repo.scheduled_environments():
            for kind, planned, run_at in self.jobs_for(env, record, now, catch_up):
                jid = job_id(kind, env.name)
                if jid in busy:  # running (or waiting for its environment) already
                    continue
                late = catch_up and planned <= now
                wanted[jid] = (run_at, (kind, env.name, planned.isoformat(), late))
                if late and kind != "remind":
                    what = "deployment" if kind == "deploy" else "strip back"
                    missed.append(f"{what} of {env.name} due {self.rules.describe(planned)}")
        for job in self.scheduler.jobs():
            if kind_of(job.id) in JOB_KINDS and job.id not in wanted:
                self.scheduler.remove(job.id)
        for jid, (run_at, args) in wanted.items():
            existing = self.scheduler.get(jid)
            if existing is not None and existing.args == args:
                continue
            self.scheduler.put(jid, run_at, args)
        return missed

    def jobs_for(
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
            lead = self.rules.lead
            if lead and env.starts_at is None and reminded != env.ends_at and env.ends_at > now:
                jobs.append(("remind", env.ends_at, env.ends_at - lead))
        elif record is not None and record.stripping_for_end is not None:
            retry = self._retry_at.get(env.name)
            if retry is not None:  # the environment was busy: try again then
                jobs.append(("teardown", record.stripping_for_end, retry))
            elif catch_up:  # claimed by a scheduler that stopped before it finished
                jobs.append(("teardown", record.stripping_for_end, record.stripping_for_end))
        return jobs

    def resync_one(self, environment: str) -> None:
        if self.active:  # the CLI (no scheduler) only writes SQLite; the bot's sync picks it up
            self.sync()

    def drop(self, kind: JobKind, environment: str) -> None:
        self.scheduler.remove(job_id(kind, environment))

    # ------------------------------------------------------------------ strip backs to retry
    def retry_teardown(self, name: str, planned: datetime) -> float:
        """Run a busy environment's claimed strip back again in a while; returns how long."""
        every = max(self.resync_s, 1.0)
        retry = self.rules.clock() + timedelta(seconds=every)
        with self._guard:
            self._retry_at[name] = retry
        if self.lock.held:
            self.scheduler.put(
                job_id("teardown", name), retry, ("teardown", name, planned.isoformat(), False)
            )
        return every

    def retrying(self, name: str) -> bool:
        with self._guard:
            return name in self._retry_at

    def forget_retry(self, name: str) -> None:
        with self._guard:
            self._retry_at.pop(name, None)

    # ------------------------------------------------------------------ running jobs
    def _on_job(self, jid: str, args: JobArgs) -> None:
        """The scheduler's handler: a due job's plain arguments back into a call of `run`."""
        kind, environment, planned, missed = args
        self._run(str(kind), str(environment), datetime.fromisoformat(str(planned)), bool(missed))

    def run_due(self, limit: int = 100) -> list[str]:
        """Run, in this thread and in time order, every job due by `clock()`; return their ids.

        For tests and tools with a controlled clock (and a paused scheduler): the same job
        functions with the same arguments the scheduler would call, without waiting on wall time.
        """
        ran: list[str] = []
        for _ in range(limit):
            now = self.rules.clock()
            due = [
                j for j in self.scheduler.jobs() if kind_of(j.id) in JOB_KINDS and j.run_at <= now
            ]
            if not due:
                break
            job = min(due, key=lambda j: (j.run_at, JOB_KINDS.index(kind_of(j.id))))
            if self.scheduler.run_now(job.id):
                ran.append(job.id)
        return ran

    def idle(self) -> bool:
        """True when no job is running or waiting for a thread, and none is due by the wall
        clock (the running scheduler's time): what tests wait for instead of sleeping."""
        return self.scheduler.idle()
