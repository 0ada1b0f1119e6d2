"""`inventory`: the asset database the origin kept in custom attributes, read back from vCenter
(attributes, who deployed each clone and when, power, storage, host), and who holds each clone
(the assignments in SQLite)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bot.domain.errors import ClonesError
from bot.domain.models import Clone, CloneState
from bot.domain.provenance import deployed_by_and_at
from bot.domain.savings import GIB
from bot.domain.vsphere import PROVENANCE_ATTRIBUTES, Unseen, VmFacts
from bot.services.core import Core
from bot.services.runbook import LIVE_STATES
from bot.services.sizes import record_seen

if TYPE_CHECKING:
    from bot.services.queries import Queries


@dataclass(frozen=True)
class InventoryRow:
    name: str
    type: str
    parent: str
    environment: str
    state: str
    deployed_by: str
    deployed_at: str
    power_state: str
    committed_gb: float
    host: str
    attributes: dict[str, str] = field(default_factory=dict)
    assigned_to: str = ""  # the trainee (Slack user ID) who holds it


class Inventory:
    """Reads the bot's clones as vCenter holds them."""

    def __init__(self, core: Core, queries: Queries) -> None:
        self.settings, self.repo, self.vcenter = core.settings, core.repo, core.vcenter
        self.queries = queries

    def inventory(self, environment: str | None = None) -> list[InventoryRow]:
        if environment is not None:
            self.queries.environment(environment)
        clones = self.repo.clones(environment=environment, states=LIVE_STATES)
        folders = {
            self.settings.types[c.type].folder for c in clones if c.type in self.settings.types
        }
        live: dict[str, VmFacts] = {}
        unseen: dict[str, Unseen] = {}
        for folder in sorted(folders):
            listing = self.vcenter.find_vms(folder)
            live.update(listing.seen)
            unseen.update(listing.unseen)
        record_seen(self.repo, ((c, live[c.moref]) for c in clones if c.moref in live))
        hosts = self._host_names()
        held = {a.clone_id: a.trainee for a in self.repo.assignments(environment=environment)}
        rows = []
        for c in clones:
            vm = live.get(c.moref or "")
            attributes = dict(vm.attributes) if vm else {}
            deployed_by, deployed_at = (
                deployed_by_and_at(vm.attributes, vm.notes) if vm else ("", "")
            )
            for name in PROVENANCE_ATTRIBUTES:
                attributes.pop(name, None)
            rows.append(
                InventoryRow(
                    name=c.name,
                    type=c.type,
                    parent=c.parent,
                    environment=c.environment,
                    state=_state(c, vm, unseen.get(c.moref or "")),
                    deployed_by=deployed_by,
                    deployed_at=deployed_at,
                    power_state=(("poweredOn" if vm.powered_on else "poweredOff") if vm else ""),
                    committed_gb=round(vm.committed_bytes / GIB, 2) if vm else 0.0,
                    host=hosts.get(vm.host, vm.host) if vm else "",
                    attributes=attributes,
                    assigned_to=held.get(c.id, ""),
                )
            )
        return rows

    def _host_names(self) -> dict[str, str]:
        names: dict[str, str] = {}
        for t in self.settings.types.values():
            try:
                _, hosts = self.vcenter.cluster_hosts(t.resource_pool)
            except ClonesError:
                continue
            names.update({h.moref: h.name for h in hosts})
        return names


def _state(clone: Clone, vm: VmFacts | None, unseen: Unseen | None) -> str:
    """The record's state, as vCenter bears it out: "missing" only where it is gone (not in
    its folder's listing), "cannot see (NoPermission, privilege System.Read)" where vCenter
    would not show it."""
    if vm is not None or clone.state is not CloneState.READY:
        return clone.state.value
    return f"cannot see ({unseen.reason})" if unseen is not None else "missing"
