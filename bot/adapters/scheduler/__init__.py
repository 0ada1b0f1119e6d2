"""The scheduler adapter: APScheduler 3 (the only place apscheduler is imported). `Scheduler`
implements `bot.ports.Scheduler` with the database's leadership (`bot.ports.Leadership`, a lease
row: bot/services/leadership.py); `bot.bootstrap` builds them for the schedule service.

The APScheduler side (`jobs`) is imported when one of its names is first used, so a process that
only records times (the terminal) never imports APScheduler.
"""

from typing import Any

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
    "run_job",
    "tick_job",
]
