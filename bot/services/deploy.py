"""`deploy`: every check before anything is created (counts, parents, capacity, placement, the
pre-flight), the base snapshots, the names reserved in SQLite, then the clones."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from bot.domain import grammar
from bot.domain.capacity import DeltaEstimate
from bot.domain.errors import (
    CapacityError,
    NotFoundError,
    UsageError,
    VCenterError,
)
from bot.domain.models import Clone, ParentFacts, RunKind
from bot.domain.results import (
    CapacityNeed,
    DeployResult,
)
from bot.domain.savings import GIB
from bot.domain.vsphere import (
    CLONE_ATTRIBUTES,
    PROVENANCE_ATTRIBUTES,
)
from bot.ports import ProgressCallback
from bot.services.core import Core, OnCore
from bot.services.preflight import Needs, Preflight
from bot.services.runbook import LIVE_STATES
from bot.services.sizes import delta_estimate
from bot.settings import TypeSettings

if TYPE_CHECKING:
    from bot.services.deploy_runs import DeployRuns
    from bot.services.placements import Placements, TypePlacement

log = logging.getLogger(__name__)


class Deployer(OnCore):
    """Deploys linked clones into an environment."""

    def __init__(self, core: Core, placements: Placements, deploy_runs: DeployRuns) -> None:
        super().__init__(core)
        self.placements = placements
        self.deploy_runs = deploy_runs

    def deploy(
        self,
        command: grammar.Deploy,
        *,
        actor: str,
        source: str = "cli",
        channel: str = "",
        on_event: ProgressCallback | None = None,
    ) -> DeployResult:
        env_name = command.environment or self.default_environment(command)
        items = [(self.settings.type(i.type), i.count) for i in command.items]
        power_on = command.power_on or any(t.power_on for t, _ in items)
        self.check_counts(command)
        with self.runs.environment_lock(env_name):
            self._check_customization_specs(items)
            parents = self._prepare_parents(items)
            self._check_capacity(items, parents, power_on=power_on)
            placements = self.placements.placements_for([t for t, _ in items], power_on=power_on)
            self._preflight(items, parents, placements, power_on=power_on)
            self._snapshot_parents(items, parents)
            self.vcenter.ensure_attribute_definitions(self.attribute_names(items))
            env = self.repo.ensure_environment(env_name, owner=actor, channel=channel)
            total = sum(n for _, n in items)
            run = self.runs.start_run(
                environment=env.name,
                kind=RunKind.DEPLOY,
                requested_by=actor,
                requested=total,
                command=f"deploy {_items_text(items)} as {env.name}"
                + (" and power on" if power_on else ""),
                source=source,
                channel=channel,
                power_on=power_on,
            )
            planned: list[Clone] = []
            for t, n in items:
                self.repo.save_parent_facts(parents[t.name])
                reserved = self.repo.reserve_clones(
                    environment=env.name,
                    type=t.name,
                    parent=t.parent,
                    pattern=t.name_pattern,
                    count=n,
                    run_id=run.id,
                )
                placements[t.name] = placements[t.name].assign([c.name for c in reserved])
                planned += reserved
            return self.deploy_runs.run_clones(
                run.id, env, planned, actor, on_event, placements=placements, power_on=power_on
            )

    def default_environment(self, command: grammar.Deploy) -> str:
        first = command.items[0].type
        return f"{first}-{self.clock():%m%d}"

    def check_counts(self, command: grammar.Deploy) -> str:
        """UsageError when a count is over its type's max_count (the one limit, from the
        settings), counting the live clones the environment already has, or the environment
        would hold more than max_environment_clones; an unknown type is a UsageError too.
        Cheap (one SQLite read, no vCenter): Slack checks it before acknowledging. Returns the
        environment the deployment goes into."""
        environment = command.environment or self.default_environment(command)
        items = [(self.settings.type(i.type), i.count) for i in command.items]
        existing = self.repo.clones(environment=environment, states=LIVE_STATES)
        live = Counter(c.type for c in existing)
        for t, count in items:
            have = live[t.name]
            if have + count <= t.max_count:
                continue
            room = max(t.max_count - have, 0)
            already = f" ({have} already in {environment})" if have else ""
            advice = (
                f'ask for at most {room}, e.g. "deploy {t.name} {room} as {environment}"'
                if room
                else 'strip back some first, or deploy into another environment ("as NAME")'
            )
            raise UsageError(
                f"{count} {t.name} clones is more than the type's maximum of {t.max_count}"
                f"{already}; {advice}. (The maximum is the type's max_count setting.)"
            )
        total = len(existing) + sum(n for _, n in items)
        cap = self.settings.max_environment_clones
        if total > cap:
            raise UsageError(
                f"An environment holds at most {cap} clones (the max_environment_clones "
                f"setting); {environment} would have {total}. Split the cohort into two "
                "environments."
            )
        return environment

    def _prepare_parents(self, items: Sequence[tuple[TypeSettings, int]]) -> dict[str, ParentFacts]:
        """Check every parent before anything is created (snapshots come after every check)."""
        facts: dict[str, ParentFacts] = {}
        for t, _ in items:
            f = self.vcenter.parent_facts(t.parent, t.snapshot)
            if f.snapshot is None and f.powered_on:
                raise VCenterError(
                    f'Parent "{t.parent}" of type {t.name} is powered on and has no base snapshot '
                    f'"{t.snapshot}". Shut it down cleanly, then deploy again (the bot snapshots '
                    "a parent only while it is powered off)."
                )
            facts[t.name] = f
        return facts

    def _preflight(
        self,
        items: Sequence[tuple[TypeSettings, int]],
        parents: dict[str, ParentFacts],
        placements: dict[str, TypePlacement],
        *,
        power_on: bool,
    ) -> None:
        """The cheap part of `clones check`, before anything changes: each type's folder,
        pool and datastore exist, and the account holds what this deployment uses."""
        needs = [
            (
                t,
                Needs(
                    snapshot=parents[t.name].snapshot is None,
                    confine=bool(placements[t.name].group),
                    power_on=power_on,
                ),
            )
            for t, _ in items
        ]
        Preflight(self.settings, self.vcenter).before_deploy(needs, self.attribute_names(items))

    def _snapshot_parents(
        self, items: Sequence[tuple[TypeSettings, int]], facts: dict[str, ParentFacts]
    ) -> None:
        """Create the base snapshot of each parent that has none (checked: powered off)."""
        for t, _ in items:
            if facts[t.name].snapshot is None:
                self.vcenter.ensure_base_snapshot(t.parent, t.snapshot)
                self.repo.audit(
                    actor="clones",
                    source="service",
                    command=f"snapshot {t.parent}",
                    result="ok",
                    detail=f'created base snapshot "{t.snapshot}"',
                )

    def _check_capacity(
        self,
        items: Sequence[tuple[TypeSettings, int]],
        parents: dict[str, ParentFacts],
        *,
        power_on: bool,
    ) -> None:
        for need in self.capacity_needs(items, parents, power_on=power_on):
            if need.free_bytes < need.needed_bytes + need.headroom_bytes:
                swap = (
                    f" including {need.swap_bytes / GIB:.2f} GB of swap for powered-on clones"
                    if need.swap_bytes
                    else ""
                )
                raise CapacityError(
                    f"Datastore {need.datastore} has {need.free_bytes / GIB:.2f} GB free; the "
                    f"linked clones need about {need.needed_bytes / GIB:.2f} GB{swap}, plus "
                    f"{need.headroom_bytes / GIB:.2f} GB headroom. Free some space, deploy fewer "
                    "clones, or lower capacity_headroom_gb."
                )

    def capacity_needs(
        self,
        items: Sequence[tuple[TypeSettings, int]],
        parents: dict[str, ParentFacts],
        *,
        power_on: bool,
    ) -> list[CapacityNeed]:
        """Estimated new space per datastore: each clone's delta, plus RAM-sized swap files
        when the clones will be powered on (vSphere creates one per running VM)."""
        needed: Counter[str] = Counter()
        swap: Counter[str] = Counter()
        for t, n in items:
            needed[t.datastore] += n * self.delta_estimate(t)
            if power_on:
                swap[t.datastore] += n * parents[t.name].memory_mb * 2**20
        headroom = int(self.settings.capacity_headroom_gb * GIB)
        return [
            CapacityNeed(
                datastore=ds,
                free_bytes=self.vcenter.datastore_free_bytes(ds),
                needed_bytes=needed[ds] + swap[ds],
                swap_bytes=swap[ds],
                headroom_bytes=headroom,
            )
            for ds in needed
        ]

    def _check_customization_specs(self, items: Sequence[tuple[TypeSettings, int]]) -> None:
        for t, _ in items:
            spec = t.customization_spec
            if spec and not self.vcenter.customization_spec_exists(spec):
                raise NotFoundError(
                    f'Customization spec "{spec}" of type {t.name} does not exist in vCenter; '
                    "create it (Policies and Profiles) or fix the type's customization_spec."
                )

    def attribute_names(self, items: Sequence[tuple[TypeSettings, int]]) -> list[str]:
        names = list(CLONE_ATTRIBUTES)
        if self.settings.provenance_attributes:
            names += PROVENANCE_ATTRIBUTES
        for t, _ in items:
            names += [k for k in t.attributes if k not in names]
        return names

    def delta_estimate(self, t: TypeSettings) -> int:
        """Expected delta per new clone (bytes): see `delta_basis`."""
        return self.delta_basis(t).bytes

    def delta_basis(self, t: TypeSettings) -> DeltaEstimate:
        """Expected delta per new clone, and where it comes from: a high percentile of the
        largest sizes the type's clones that lived a day reached, never below the type's
        delta_estimate_gb; else that figure (else 1 GB)."""
        return delta_estimate(self.repo, t)


def _items_text(items: Iterable[tuple[TypeSettings, int]]) -> str:
    return " ".join(f"{t.name} {n}" for t, n in items)
