"""What the schedule commands and the scheduler's start report back to the front ends."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


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
