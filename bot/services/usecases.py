"""The deploy, strip back and query services, wired over one vCenter and one repository.

`UseCases` builds the use cases every front end and the other services use (`runs`, `queries`,
`history`, `placements`, `ownership`, `cloner`, `power`, `deploy_runs`, `deployer`, `trainees`,
`strip_back`); the routes (`bot.services.dispatch`) call them directly. It holds no logic and
forwards nothing: each operation lives in its own module.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from bot.ports import Repository, VCenter
from bot.services.cloning import Cloner
from bot.services.core import Core
from bot.services.deploy import Deployer
from bot.services.deploy_runs import DeployRuns
from bot.services.history import HistoryReader
from bot.services.limits import OpLimits
from bot.services.ownership import Ownership
from bot.services.placements import Placements
from bot.services.power import Power
from bot.services.queries import Queries
from bot.services.refresh import Refresher
from bot.services.runbook import RunBook
from bot.services.teardown import StripBack
from bot.services.trainees import Trainees
from bot.settings import Settings


class UseCases:
    """The use cases over one vCenter and one repository (each an attribute)."""

    def __init__(
        self,
        settings: Settings,
        repo: Repository,
        vcenter: VCenter,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        limits: OpLimits | None = None,
    ) -> None:
        """`limits`: the process's one operation limiter (`bot.bootstrap` builds it); a new
        one from `settings` when not given."""
        limits = limits or OpLimits.of(settings)
        runs = RunBook(repo, lease_s=settings.lease_s)
        runs.halt.hook(lambda: limits.halt(runs.halt.why))  # waiting operations never start
        self.core = Core(settings, repo, vcenter, clock, runs, limits)
        self.settings, self.repo, self.vcenter, self.clock = settings, repo, vcenter, clock
        self.runs = self.core.runs
        self.queries = Queries(self.core)
        self.history = HistoryReader(self.core, self.queries)
        self.placements = Placements(self.core)
        self.ownership = Ownership(self.core)
        self.cloner = Cloner(self.core)
        self.power = Power(self.core)
        self.deploy_runs = DeployRuns(self.core, self.cloner, self.queries)
        self.deployer = Deployer(self.core, self.placements, self.deploy_runs)
        self.trainees = Trainees(
            self.core,
            queries=self.queries,
            ownership=self.ownership,
            power=self.power,
            refresher=Refresher(
                self.core,
                queries=self.queries,
                ownership=self.ownership,
                cloner=self.cloner,
                power=self.power,
                placements=self.placements,
            ),
        )
        self.strip_back = StripBack(
            self.core, self.ownership, self.queries, after=self.trainees.tell_removed
        )

    @property
    def owner(self) -> str:
        """This process, as the runs it owns name it."""
        return self.runs.owner

    def halt(self, why: str) -> None:
        """The user stops this process (`why`: "Ctrl-C", "SIGTERM"): nothing new starts in
        vCenter; what is there finishes and is recorded; each run ends interrupted."""
        self.runs.halt.set(why)
