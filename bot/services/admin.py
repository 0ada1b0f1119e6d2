"""What the admin used to do by hand: prepare parents, power, plan, inventory and refresh.

`Admin` wires one service per task (`bot.services.prepare`, `plan`, `inventory`, `power`,
`refresh`) over the same repository, vCenter, locks and safety checks as deploy and strip back
(a clone is touched only when it is verifiably ours), and offers them to the commands.
"""

from __future__ import annotations

from bot.domain import grammar
from bot.ports import ProgressCallback
from bot.services.bulk import BulkResult, EachClone
from bot.services.core import Service
from bot.services.inventory import Inventory, InventoryRow
from bot.services.plan import Planner, PlanResult
from bot.services.power import PowerCommand
from bot.services.prepare import Finding, Preparer, PrepareReport
from bot.services.refresh import Refresher, RefreshResult

__all__ = [
    "Admin",
    "BulkResult",
    "Finding",
    "InventoryRow",
    "PlanResult",
    "PrepareReport",
    "RefreshResult",
]


class Admin:
    """The admin's tasks, over the services of `service`."""

    def __init__(self, service: Service) -> None:
        core = service.core
        self.settings = service.settings
        self.preparer = Preparer(core)
        self.planner = Planner(core, service.deployer)
        self.inventory_reader = Inventory(core, service.queries)
        # An operation on each ready, provably ours clone of an environment (power, snapshot).
        self.each_clone = EachClone(core, service.ownership, service.queries)
        self.power_command = PowerCommand(service.power, self.each_clone)
        self.refresher = Refresher(
            core,
            queries=service.queries,
            ownership=service.ownership,
            cloner=service.cloner,
            power=service.power,
            placements=service.placements,
        )

    def prepare(
        self, command: grammar.Prepare, *, actor: str, source: str = "cli"
    ) -> PrepareReport:
        return self.preparer.prepare(command, actor=actor, source=source)

    def plan(self, command: grammar.Plan) -> PlanResult:
        return self.planner.plan(command)

    def inventory(self, environment: str | None = None) -> list[InventoryRow]:
        return self.inventory_reader.inventory(environment)

    def power(self, command: grammar.Power, *, actor: str, source: str = "cli") -> BulkResult:
        return self.power_command.power_environment(command, actor=actor, source=source)

    def refresh(
        self,
        command: grammar.Refresh,
        *,
        actor: str,
        source: str = "cli",
        channel: str = "",
        on_event: ProgressCallback | None = None,
    ) -> RefreshResult:
        return self.refresher.refresh(
            command, actor=actor, source=source, channel=channel, on_event=on_event
        )
