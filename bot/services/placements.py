"""Where a type's clones go: its cluster, and the DRS host group that keeps a parent's clones on
at most `max_hosts_per_base_disk` hosts (the host limit for a shared base disk); and, when more
clones run at once than `max_ops_per_host` allows on one host, the host of each clone, so the
pool can keep to that limit (bot/services/limits.py)."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from bot.domain.placement import Host, drs_prefix, plan_confinement, spread
from bot.domain.vsphere import HostInfo
from bot.services.limits import may_crowd_a_host
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
    # Not confined, but more clones at once than one host may take: the bot spreads them over
    # the cluster's usable hosts, least loaded first (live clones of every type on each host,
    # and this deployment's, shared by the deployment's types).
    spread_load: Counter[str] | None = None

    def assign(self, names: Sequence[str]) -> TypePlacement:
        if not self.group:
            if self.spread_load is not None:
                return replace(self, assignments=spread(names, self.hosts, self.spread_load))
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

    def placements_for(
        self, types: Sequence[TypeSettings], *, power_on: bool = False
    ) -> dict[str, TypePlacement]:
        """Each type's placement for a deployment (that powers its clones on as they are made,
        when `power_on`); the hosts of a resource pool several types share are read once."""
        seen: dict[str, tuple[Any, list[HostInfo]]] = {}
        everyone = self._host_load(power_on=power_on)
        return {t.name: self.placement_for(t, seen, everyone) for t in types}

    def _host_load(self, *, power_on: bool = False) -> Counter[str] | None:
        """Live clones (of every type) per host, when the bot places clones on hosts itself:
        more operations run at once than one host may take."""
        if not may_crowd_a_host(self.settings, power_on=power_on):
            return None
        return Counter(c.host for c in self.repo.clones(states=LIVE_STATES) if c.host)

    def placement_for(
        self,
        t: TypeSettings,
        seen: dict[str, tuple[Any, list[HostInfo]]] | None = None,
        everyone: Counter[str] | None = None,
    ) -> TypePlacement:
        """Check the host limit for a shared base disk before anything is created."""
        if everyone is None:
            everyone = self._host_load()
        if seen is not None and t.resource_pool in seen:
            cluster, hosts = seen[t.resource_pool]
        else:
            cluster, hosts = self.vcenter.cluster_hosts(t.resource_pool)
            if seen is not None:
                seen[t.resource_pool] = (cluster, hosts)
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
        usable = sum(h.usable for h in plain_hosts)
        spreading = everyone is not None and not confinement.group and usable > 1
        return TypePlacement(
            cluster=cluster,
            prefix=prefix,
            hosts=plain_hosts,
            group=confinement.group,
            load=load,
            limit=limit,
            parent=t.parent,
            spread_load=everyone if spreading else None,
        )
