"""Host-limit placement for a shared base disk (pure functions).

On VMFS3 at most 8 hosts may open one shared base disk (32 on VMFS5+ with vSphere 5.1+), so when
a cluster has more hosts than that, every clone of one parent must stay on one group of at most
that many hosts. The bot keeps that group stable between deployments while the parent has clones
(they stay put), spreads new clones across it, least loaded first, and chooses the groups of
several parents in one cluster so that together they use the whole cluster: a new group takes the
hosts fewest other parents use first.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bot.domain.errors import CapacityError, ConfigError


@dataclass(frozen=True)
class Host:
    moref: str
    name: str
    usable: bool = True


@dataclass(frozen=True)
class Confinement:
    """A parent's host group, and the host chosen for each new clone."""

    group: tuple[str, ...]  # host morefs; empty: no confinement needed
    assignments: dict[str, str | None]  # clone name -> host moref (None: let vCenter choose)

    @property
    def confined(self) -> bool:
        return bool(self.group)


def drs_prefix(parent: str) -> str:
    """Prefix of the bot's DRS groups and rule for one parent (clones-<parent>-vms ...)."""
    slug = re.sub(r"[^A-Za-z0-9]+", "-", parent.rsplit("/", 1)[-1]).strip("-").lower()
    return f"clones-{slug or 'parent'}"


def choose_group(
    hosts: Sequence[Host],
    current_group: Iterable[str],
    limit: int,
    load: Counter[str],
    others: Counter[str] | None = None,
) -> tuple[str, ...]:
    """Keep the usable hosts of the current group, fill up to `limit` with the hosts that the
    fewest other parents' groups use (`others`: host moref -> how many), then the least loaded,
    then by name: with several parents in one cluster, their groups spread over all of it."""
    usable = {h.moref: h for h in hosts if h.usable}
    group = [m for m in current_group if m in usable][:limit]
    used = others or Counter()
    spare = sorted(
        (h for m, h in usable.items() if m not in group),
        key=lambda h: (used[h.moref], load[h.moref], h.name),
    )
    group += [h.moref for h in spare[: max(limit - len(group), 0)]]
    if not group:
        raise CapacityError("No usable host (connected, not in maintenance mode) in the cluster.")
    return tuple(sorted(group, key=lambda m: usable[m].name))


def plan_confinement(
    *,
    parent: str,
    names: Sequence[str],
    hosts: Sequence[Host],
    current_group: Iterable[str],
    load: Counter[str],
    limit: int,
    confine: bool,
    others: Counter[str] | None = None,
    busy: Counter[str] | None = None,
) -> Confinement:
    """Decide where a deployment's clones of one parent go.

    `load` counts the live clones of this parent already on each host; `others`, for each host,
    how many other parents' groups use it, and `busy` the live clones of every parent on it
    (both rank the hosts a new or growing group takes: `choose_group`). With a cluster of at
    most `limit` hosts nothing needs confining and vCenter (DRS) places the clones.
    """
    usable = [h for h in hosts if h.usable]
    if len(hosts) <= limit:
        return Confinement((), {n: None for n in names})
    if not confine:
        raise ConfigError(
            f'The cluster for parent "{parent}" has {len(hosts)} hosts but at most {limit} may '
            "share one base disk (max_hosts_per_base_disk), and confine_hosts is off. Turn "
            "confine_hosts on so the bot keeps these clones on a DRS host group, raise "
            "max_hosts_per_base_disk if your datastore allows more (32 on VMFS5+), or deploy "
            "into a smaller cluster."
        )
    if not usable:
        raise CapacityError(f'No usable host in the cluster for parent "{parent}".')
    group = choose_group(hosts, current_group, limit, load if busy is None else busy, others)
    counts = Counter({m: load[m] for m in group})
    assignments: dict[str, str | None] = {}
    for name in names:
        host = min(group, key=lambda m: (counts[m], group.index(m)))
        counts[host] += 1
        assignments[name] = host
    return Confinement(group, assignments)


def spread(
    names: Sequence[str], hosts: Sequence[Host], load: Counter[str]
) -> dict[str, str | None]:
    """Each new clone on the least loaded usable host (then by name), counting the clones placed
    before it; `load` (live clones per host moref) is updated in place, so several types of one
    deployment spread over the hosts together."""
    usable = sorted((h for h in hosts if h.usable), key=lambda h: h.name)
    if not usable:
        return {n: None for n in names}
    out: dict[str, str | None] = {}
    for name in names:
        host = min(usable, key=lambda h: load[h.moref])  # min keeps the first (by name) of ties
        load[host.moref] += 1
        out[name] = host.moref
    return out
