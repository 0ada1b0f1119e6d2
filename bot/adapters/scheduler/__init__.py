"""The scheduler adapter: APScheduler 3 and the single-scheduler lock (the only place apscheduler
and fcntl are imported). `Scheduler` implements `bot.ports.Scheduler`, `SchedulerLock` implements
`bot.ports.SchedulerLock`; `bot.bootstrap` builds them for the schedule service."""

from bot.adapters.scheduler.jobs import JOB_FUNC, TICK_FUNC, TICK_ID, Scheduler, run_job, tick_job
from bot.adapters.scheduler.lock import SchedulerLock, lock_path_for

__all__ = [
    "JOB_FUNC",
    "TICK_FUNC",
    "TICK_ID",
    "Scheduler",
    "SchedulerLock",
    "lock_path_for",
    "run_job",
    "tick_job",
]
