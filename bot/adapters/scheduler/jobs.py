"""APScheduler 3 behind `bot.ports.Scheduler`: a `BackgroundScheduler` whose one-shot jobs are
handed to the schedule service's handler in a pool of 10 threads.

APScheduler's traps, avoided here:

- jobs name an importable module-level function (`run_job` below) with plain arguments (this
  scheduler's key, the job id, the caller's strings and booleans), never a bound method;
- fixed ids chosen by the caller, with `replace_existing=True`;
- `misfire_grace_time=None`: a job that fell due while the process was busy (or down) still runs;
  `coalesce=True` and `max_instances=1`;
- explicit time zones: the team zone for the scheduler, aware datetimes everywhere;
- APScheduler removes a one-shot job from its store and hands it to a thread in one step: the job
  counts as in flight from that moment until its handler returns, so `idle()` and a re-sync never
  miss a job that is between the two.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, tzinfo
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.job import Job
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.date import DateTrigger

from bot.ports import JobArgs, JobHandler, Leadership, ScheduledJob

log = logging.getLogger("clones.schedule")

JOB_FUNC = "bot.adapters.scheduler.jobs:run_job"
TICK_FUNC = "bot.adapters.scheduler.jobs:tick_job"
TICK_ID = "tick"  # the periodic re-sync; never a job of the port's table
MAX_WORKERS = 10

_LIVE: dict[str, Scheduler] = {}  # started schedulers by key (what `run_job` calls)
_LIVE_LOCK = threading.Lock()


def _live(key: str) -> Scheduler | None:
    with _LIVE_LOCK:
        return _LIVE.get(key)


def run_job(key: str, job_id: str, *args: str | bool) -> None:
    """APScheduler's entry point for one-shot jobs: plain arguments naming the scheduler and the
    work."""
    scheduler = _live(key)
    if scheduler is None:
        log.warning("job %s for a stopped scheduler ignored", job_id)
        return
    scheduler._run(job_id, tuple(args))


def tick_job(key: str) -> None:
    """APScheduler's entry point for the periodic tick (the schedule service's re-sync)."""
    scheduler = _live(key)
    if scheduler is not None:
        scheduler._tick()


class _TrackingExecutor(ThreadPoolExecutor):
    """APScheduler's thread pool, telling the scheduler when it is handed a job."""

    def __init__(self, owner: Scheduler, max_workers: int = MAX_WORKERS) -> None:
        super().__init__(max_workers)
        self._owner = owner

    def submit_job(self, job: Job, run_times: list[datetime]) -> None:
        ours = job.id != TICK_ID
        if ours:
            self._owner._taken(job.id)
        try:
            super().submit_job(job, run_times)
        except BaseException:  # not handed over (e.g. max instances): not in flight either
            if ours:
                self._owner._done(job.id)
            raise


class Scheduler:
    """`bot.ports.Scheduler` on APScheduler's `BackgroundScheduler`, with the database's
    leadership (`bot.services.leadership.Leadership`: who may run it)."""

    def __init__(
        self,
        lock: Leadership,
        *,
        timezone: tzinfo | str = "UTC",
        max_workers: int = MAX_WORKERS,
        backend: BaseScheduler | None = None,
    ) -> None:
        self.key = uuid.uuid4().hex
        self.timezone = timezone
        self._lock = lock
        self.backend = backend or BackgroundScheduler(
            timezone=timezone, executors={"default": _TrackingExecutor(self, max_workers)}
        )
        self._handler: JobHandler | None = None
        self._tick_fn: Callable[[], Any] | None = None
        self._guard = threading.Lock()
        self._inflight: dict[str, int] = {}  # job id -> handed to a thread, not finished

    @property
    def lock(self) -> Leadership:
        return self._lock

    @property
    def running(self) -> bool:
        return bool(self.backend.running)

    # ------------------------------------------------------------------ lifecycle
    def start(self, handler: JobHandler) -> None:
        self._handler = handler
        with _LIVE_LOCK:
            _LIVE[self.key] = self
        if not self.backend.running:
            self.backend.start(paused=True)

    def every(self, seconds: float, tick: Callable[[], Any]) -> None:
        self._tick_fn = tick
        self.backend.add_job(
            TICK_FUNC,
            "interval",
            seconds=seconds,
            args=[self.key],
            id=TICK_ID,
            replace_existing=True,
            coalesce=True,
            max_instances=1,
        )

    def resume(self) -> None:
        self.backend.resume()

    def shutdown(self, wait: bool = True) -> None:
        with _LIVE_LOCK:
            _LIVE.pop(self.key, None)
        if self.backend.running:
            self.backend.shutdown(wait=wait)

    # ------------------------------------------------------------------ the job table
    def put(self, job_id: str, run_at: datetime, args: JobArgs) -> None:
        self.backend.add_job(
            JOB_FUNC,
            trigger=DateTrigger(run_date=run_at, timezone=self.timezone),
            args=[self.key, job_id, *args],
            id=job_id,
            name=job_id,
            replace_existing=True,
            misfire_grace_time=None,
            coalesce=True,
            max_instances=1,
        )

    def remove(self, job_id: str) -> None:
        with contextlib.suppress(JobLookupError):  # ran or removed meanwhile
            self.backend.remove_job(job_id)

    def get(self, job_id: str) -> ScheduledJob | None:
        job = self.backend.get_job(job_id)
        return None if job is None or job.id == TICK_ID else _view(job)

    def jobs(self) -> list[ScheduledJob]:
        return [_view(j) for j in self.backend.get_jobs() if j.id != TICK_ID]

    def run_now(self, job_id: str) -> bool:
        """Take the job out of the table and run it in this thread, as a pool thread would."""
        job = self.backend.get_job(job_id)
        if job is None or job.id == TICK_ID:
            return False
        try:
            self.backend.remove_job(job_id)
        except JobLookupError:  # a pool thread took it first
            return False
        self._taken(job_id)
        self._run(job_id, tuple(job.args[2:]))
        return True

    # ------------------------------------------------------------------ in flight
    def in_flight(self) -> set[str]:
        with self._guard:
            return {jid for jid, n in self._inflight.items() if n > 0}

    def idle(self) -> bool:
        if self.in_flight():
            return False
        now = datetime.now(UTC)
        return not any(j.run_at <= now for j in self.jobs())

    def _taken(self, job_id: str) -> None:
        with self._guard:
            self._inflight[job_id] = self._inflight.get(job_id, 0) + 1

    def _done(self, job_id: str) -> None:
        with self._guard:
            left = self._inflight.get(job_id, 0) - 1
            if left > 0:
                self._inflight[job_id] = left
            else:
                self._inflight.pop(job_id, None)

    def _run(self, job_id: str, args: JobArgs) -> None:
        try:
            if self._handler is None:
                log.warning("job %s before the scheduler started ignored", job_id)
                return
            self._handler(job_id, args)
        except Exception:  # a job must not take a pool thread down with it
            log.exception("scheduled job %s failed", job_id)
        finally:
            self._done(job_id)  # counted in when it was handed to a thread

    def _tick(self) -> None:
        if self._tick_fn is not None:
            self._tick_fn()


def _view(job: Job) -> ScheduledJob:
    # A job added before start() has no next_run_time yet: its trigger's date is when it runs.
    run_at = getattr(job, "next_run_time", None) or job.trigger.run_date
    return ScheduledJob(job.id, run_at, tuple(job.args[2:]))
