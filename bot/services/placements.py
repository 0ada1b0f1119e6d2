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

from bot.domain.models import Clone
from bot.domain.placement import Host, drs_prefix, plan_confinement, spread
from bot.domain.vsphere import HostInfo
from bot.services.core import OnCore
from bot.services.limits import may_crowd_a_host
from bot.services.runbook import LIVE_STATES
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


class Placements(OnCore):
    """Each type's placement for a deployment, checked before anything is created."""

    def placements_for(
        self, types: Sequence[TypeSettings], *, power_on: bool = False
    ) -> dict[str, TypePlacement]:
        """Each type's placement for a deployment (that powers its clones on as they are made,
        when `power_on`); the hosts of a resource pool several types share are read once, and
        each parent's host group counts the groups chosen before it (`Groups`)."""
        seen: dict[str, tuple[Any, list[HostInfo]]] = {}
        everyone = self._host_load(power_on=power_on)
        groups = Groups()
        return {t.name: self.placement_for(t, seen, everyone, groups) for t in types}

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
        groups: Groups | None = None,
    ) -> TypePlacement:
        """Check the host limit for a shared base disk before anything is created. `groups`:
        the host groups of the parents placed before this one (by `placements_for`, or a
        check going through every type), which this parent's group avoids where it can."""
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
        if groups is None or groups.live is None:
            live = self.repo.clones(states=LIVE_STATES)
            if groups is not None:
                groups.live = live
        else:
            live = groups.live
        load = Counter(c.host for c in live if c.host and c.parent == t.parent)
        plain_hosts = [Host(h.moref, h.name, h.usable) for h in hosts]
        current: list[str] = []
        others: Counter[str] = Counter()
        if len(hosts) > limit:
            groups = groups if groups is not None else Groups()
            current = self._current_group(cluster, plain_hosts, t.parent, load, groups)
            others = self._other_groups(cluster, plain_hosts, t.parent, live, groups)
        confinement = plan_confinement(
            parent=t.parent,
            names=[],
            hosts=plain_hosts,
            current_group=current,
            load=load,
            limit=limit,
            confine=self.settings.confine_hosts,
            others=others,
            busy=Counter(c.host for c in live if c.host),
        )
        if confinement.group and groups is not None:
            groups.chosen[(_key(plain_hosts), t.parent)] = confinement.group
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

    def _current_group(
        self, cluster: Any, hosts: Sequence[Host], parent: str, load: Counter[str], groups: Groups
    ) -> list[str]:
        """The parent's host group to keep: the one chosen earlier in this deployment (two
        types of one parent), else its DRS host group while it has clones. A parent without
        clones takes a new group, so the parents spread over the cluster."""
        chosen = groups.chosen.get((_key(hosts), parent))
        if chosen is not None:
            return list(chosen)
        if not load:
            return []
        return self._drs_group(cluster, hosts, parent, groups)

    def _other_groups(
        self,
        cluster: Any,
        hosts: Sequence[Host],
        parent: str,
        live: Sequence[Clone],
        groups: Groups,
    ) -> Counter[str]:
        """How many other parents' host groups use each host of the cluster: those chosen in
        this deployment, and those of parents with clones on the cluster's hosts (their DRS
        host group, else the hosts their clones are on)."""
        on_cluster = {h.moref for h in hosts}
        here = _key(hosts)
        placed = {p for (where, p) in groups.chosen if where == here}
        clone_hosts: dict[str, set[str]] = {}
        for c in live:
            if c.parent != parent and c.parent not in placed and c.host in on_cluster:
                clone_hosts.setdefault(c.parent, set()).add(c.host)
        used: Counter[str] = Counter()
        for (where, p), group in groups.chosen.items():
            if where == here and p != parent:
                used.update(set(group))
        for other, on in sorted(clone_hosts.items()):
            used.update(set(self._drs_group(cluster, hosts, other, groups)) or on)
        return used

    def _drs_group(
        self, cluster: Any, hosts: Sequence[Host], parent: str, groups: Groups
    ) -> list[str]:
        """The parent's DRS host group in the cluster, read once per placement."""
        key = (_key(hosts), parent)
        if key not in groups.read:
            _, group, _ = self.vcenter.drs_confinement(cluster, drs_prefix(parent))
            groups.read[key] = group
        return groups.read[key]


_Cluster = frozenset[str]  # a cluster, known by its hosts' morefs (its object is opaque here)


@dataclass
class Groups:
    """The host groups of the parents placed so far, (cluster, parent) -> host morefs, and the
    DRS host groups read from vCenter, so one deployment (or check) reads each once."""

    chosen: dict[tuple[_Cluster, str], tuple[str, ...]] = field(default_factory=dict)
    read: dict[tuple[_Cluster, str], list[str]] = field(default_factory=dict)
    live: list[Clone] | None = None  # the live clones, read once


def _key(hosts: Sequence[Host]) -> _Cluster:
    return frozenset(h.moref for h in hosts)
