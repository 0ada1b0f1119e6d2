"""`Core`: what every use case shares (settings, the vCenter and repository ports, the clock,
the run book, the process's one operation limiter). `bot.services.usecases.UseCases` builds one
and hands it to each use case."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from bot.ports import Repository, VCenter
from bot.services.limits import OpLimits
from bot.services.runbook import Halt, RunBook
from bot.settings import Settings


@dataclass
class Core:
    """What every service shares: settings, the two ports, the clock, the run book, and the
    process's one operation limiter (every run's room in vCenter)."""

    settings: Settings
    repo: Repository
    vcenter: VCenter
    clock: Callable[[], datetime]
    runs: RunBook
    limits: OpLimits

    @property
    def halt(self) -> Halt:
        return self.runs.halt


class OnCore:
    """A use case over the `Core`: its settings, ports, clock, run book and limiter are the
    core's, as attributes (`self.repo`, `self.vcenter`, ...), set in one place."""

    def __init__(self, core: Core) -> None:
        self.core = core
        self.settings = core.settings
        self.repo = core.repo
        self.vcenter = core.vcenter
        self.clock = core.clock
        self.runs = core.runs
        self.limits = core.limits
