"""What the admin used to do by hand: prepare parents, power, plan, inventory and refresh.

`Admin` wires one use case per task (`preparer`, `planner`, `inventory_reader`, `each_clone`,
`power_command`, `refresher`) over the same repository, vCenter, locks and safety checks as
deploy and strip back (a clone is touched only when it is verifiably ours); the routes call them
directly.
"""

from __future__ import annotations

from bot.services.bulk import BulkResult, EachClone
from bot.services.inventory import Inventory, InventoryRow
from bot.services.plan import Planner, PlanResult
from bot.services.power import PowerCommand
from bot.services.prepare import Finding, Preparer, PrepareReport
from bot.services.refresh import Refresher, RefreshResult
from bot.services.usecases import UseCases

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

    def __init__(self, service: UseCases) -> None:
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
