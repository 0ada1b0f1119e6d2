"""`plan`: what a deployment would take (thick, thin and linked) and whether the datastores have
room, without creating anything."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bot.domain import grammar
from bot.domain.capacity import DeltaEstimate
from bot.domain.results import CapacityNeed
from bot.domain.savings import Savings, estimate
from bot.services.core import Core

if TYPE_CHECKING:
    from bot.services.deploy import Deployer


@dataclass(frozen=True)
class PlanResult:
    estimate: Savings
    needs: list[CapacityNeed]
    power_on: bool
    # Each type's expected delta per clone and where it comes from (plan says it).
    deltas: dict[str, DeltaEstimate] = field(default_factory=dict)

    @property
    def fits(self) -> bool:
        return all(n.fits for n in self.needs)


class Planner:
    """Estimates deployments."""

    def __init__(self, core: Core, deployer: Deployer) -> None:
        self.settings, self.vcenter = core.settings, core.vcenter
        self.deployer = deployer

    def plan(self, command: grammar.Plan) -> PlanResult:
        items = [(self.settings.type(i.type), i.count) for i in command.items]
        parents = {t.name: self.vcenter.parent_facts(t.parent, t.snapshot) for t, _ in items}
        deltas = {t.name: self.deployer.delta_basis(t) for t, _ in items}
        estimates = [estimate(parents[t.name], n, deltas[t.name].bytes) for t, n in items]
        total = Savings(
            clones=sum(e.clones for e in estimates),
            thick_bytes=sum(e.thick_bytes for e in estimates),
            thin_bytes=sum(e.thin_bytes for e in estimates),
            linked_bytes=sum(e.linked_bytes for e in estimates),
            by_parent=tuple(p for e in estimates for p in e.by_parent),
        )
        needs = self.deployer.capacity_needs(items, parents, power_on=command.power_on)
        return PlanResult(total, needs, command.power_on, deltas)
