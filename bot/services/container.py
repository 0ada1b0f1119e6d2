"""`Services`: everything a front end reaches, built once by `bot.bootstrap`.

The front ends (terminal and Slack) hold one `Services` and go through `bot.services.dispatch`
for every command; they never see an adapter or the SQLite module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bot.ports import Chart, Repository, VCenter
from bot.services.admin import Admin
from bot.services.check import Checker
from bot.services.core import Service
from bot.services.recovery import Recovery
from bot.settings import Settings

if TYPE_CHECKING:
    from bot.services.schedules import ScheduleService


@dataclass
class Services:
    """The services over one vCenter and one repository (close() closes both)."""

    settings: Settings
    repo: Repository
    vcenter: VCenter
    service: Service
    admin: Admin
    recovery: Recovery
    chart: Chart | None = None
    # The schedule service: the Slack bot's runs the scheduler; the terminal's records times.
    schedules: ScheduleService | None = field(default=None, repr=False)

    @property
    def checker(self) -> Checker:
        return Checker(self.service)

    def close(self) -> None:
        self.vcenter.close()
        self.repo.close()
