"""The scheduler adapter: APScheduler 3 and the single-scheduler lock (the only place apscheduler
and fcntl are imported). `Scheduler` implements `bot.ports.Scheduler`, `SchedulerLock` implements
`bot.ports.SchedulerLock`; `bot.bootstrap` builds them for the schedule service.

The lock is light; the APScheduler side (`jobs`) is imported when one of its names is first used,
so a process that only records times (the terminal) never imports APScheduler.
"""

from typing import Any

from bot.adapters.scheduler.lock import SchedulerLock, lock_path_for

_JOBS = ("JOB_FUNC", "TICK_FUNC", "TICK_ID", "Scheduler", "run_job", "tick_job")


def __getattr__(name: str) -> Any:
    if name in _JOBS:
        from bot.adapters.scheduler import jobs

        return getattr(jobs, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
