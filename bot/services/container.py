"""`Services`: everything a front end reaches, built once by `bot.bootstrap`.

The front ends (terminal and Slack) hold one `Services` and go through `bot.services.dispatch`
for every command; they never see an adapter or the SQLite module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bot.ports import Chart, Clock, DatabaseCopier, Notifier, Repository, VCenter
from bot.services.admin import Admin
from bot.services.check import Checker
from bot.services.recovery import Recovery
from bot.services.usecases import UseCases
from bot.settings import Settings

if TYPE_CHECKING:
    from bot.services.schedules import ScheduleService


@dataclass
class Services:
    """The services over one vCenter and one repository (close() closes both)."""

    settings: Settings
    repo: Repository
    vcenter: VCenter
    use_cases: UseCases
    admin: Admin
    recovery: Recovery
    chart: Chart | None = None
    # `db copy` (terminal only): set by the composition root.
    databases: DatabaseCopier | None = field(default=None, repr=False)
    # The schedule service: the Slack bot's runs the scheduler; the terminal's records times.
    schedules: ScheduleService | None = field(default=None, repr=False)
    # Makes a schedule service on the scheduler adapter with a notifier and clock of the front
    # end's (the Slack bot's reports to Slack): set by the composition root.
    schedule_factory: Callable[[Notifier | None, Clock | None], ScheduleService] | None = field(
        default=None, repr=False
    )

    def schedules_for(
        self, *, notifier: Notifier | None = None, clock: Clock | None = None
    ) -> ScheduleService:
        if self.schedule_factory is None:  # pragma: no cover - bootstrap always sets it
            raise RuntimeError("no schedule factory: build Services with bot.bootstrap.build")
        return self.schedule_factory(notifier, clock)

    @property
    def checker(self) -> Checker:
        return Checker(self.use_cases)

    def close(self) -> None:
        self.vcenter.close()
        self.repo.close()
