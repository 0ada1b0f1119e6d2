"""Where a type's clones go: its cluster, and the DRS host group that keeps a parent's clones on
at most `max_hosts_per_base_disk` hosts (the host limit for a shared base disk)."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from bot.domain.placement import Host, drs_prefix, plan_confinement
from bot.services.runs import LIVE_STATES, Core
from bot.settings import TypeSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TypePlacement:
    """A type's cluster and host group for one deployment, and each new clone's host."""

    cluster: Any
    prefix: str
    hosts: list[Host]
    group: tuple[str, ...]
    load: Counter[str]
    limit: int
    parent: str
    assignments: dict[str, str | None] = field(default_factory=dict)

    def assign(self, names: Sequence[str]) -> TypePlacement:
        if not self.group:
            return replace(self, assignments={n: None for n in names})
        plan = plan_confinement(
            parent=self.parent,
            names=names,
            hosts=self.hosts,
            current_group=self.group,
            load=self.load,
            limit=self.limit,
            confine=True,
        )
        return replace(self, assignments=plan.assignments)

    def host_for(self, name: str) -> str | None:
        return self.assignments.get(name)


class Placements:
    """Each type's placement for a deployment, checked before anything is created."""

    def __init__(self, core: Core) -> None:
        self.settings = core.settings
        self.repo = core.repo
        self.vcenter = core.vcenter
        self.clock = core.clock
        self.runs = core.runs

    def placement_for(self, t: TypeSettings) -> TypePlacement:
        """Check the host limit for a shared base disk before anything is created."""
        cluster, hosts = self.vcenter.cluster_hosts(t.resource_pool)
        limit = self.settings.max_hosts_per_base_disk
        prefix = drs_prefix(t.parent)
        current: list[str] = []
        if len(hosts) > limit:
            _, current, _ = self.vcenter.drs_confinement(cluster, prefix)
        live = self.repo.clones(type=t.name, states=LIVE_STATES)
        load = Counter(c.host for c in live if c.host)
        plain_hosts = [Host(h.moref, h.name, h.usable) for h in hosts]
        confinement = plan_confinement(
            parent=t.parent,
            names=[],
            hosts=plain_hosts,
            current_group=current,
            load=load,
            limit=limit,
            confine=self.settings.confine_hosts,
        )
        return TypePlacement(
            cluster=cluster,
            prefix=prefix,
            hosts=plain_hosts,
            group=confinement.group,
            load=load,
            limit=limit,
            parent=t.parent,
        )
