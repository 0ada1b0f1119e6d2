"""Schedules: deploy ahead, strip back after training, remind the owner first, extend.

SQLite is the truth: an environment's `starts_at` (a scheduled deploy) and `ends_at` (a scheduled
strip back) plus its `schedules` row (the deploy command, the lease start, which end was already
reminded). The scheduler (the `bot.ports.Scheduler` port: APScheduler in the bot, see
`bot.adapters.scheduler`) only holds jobs derived from that, rebuilt from it at start-up and
re-synced every `[schedule] resync_s` (default 30 s), so schedules set from the terminal, in
another process, are picked up. One scheduler per database: the port's lock (a `flock` the kernel
drops when its process dies); a second bot stands by, tries the lock every `resync_s` and takes the
scheduler over (jobs rebuilt from SQLite, missed work run late and said so) once the holder is gone.

The parts: `times` (parse, caps, describe), `commands` (the schedule commands), `keeper` (job
table, lock, failover, start-up report), `runners` (the jobs, one course at a time and in order),
`notify` (what the work says), wired together by `service.ScheduleService`.
"""

from bot.ports import Notifier, RunReport
from bot.services.schedules.keeper import JOB_KINDS, JobKind, job_id
from bot.services.schedules.notify import LogNotifier, default_notifier
from bot.services.schedules.results import DeployTimes, ScheduleResult, StartReport
from bot.services.schedules.service import ScheduleService
from bot.services.schedules.times import EventKind

__all__ = [
    "JOB_KINDS",
    "DeployTimes",
    "EventKind",
    "JobKind",
    "LogNotifier",
    "Notifier",
    "RunReport",
    "ScheduleResult",
    "ScheduleService",
    "StartReport",
    "default_notifier",
    "job_id",
]
