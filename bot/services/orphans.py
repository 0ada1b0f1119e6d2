"""Orphans: VMs that say they are this bot's (its ManagedBy attribute, or the provenance the
clone call wrote in their Notes) that no live clone record claims.

A VM is the bot's own when the bot chose its instance UUID (it has a row for it: a clone
recorded failed whose reply was lost, or whose destroy was refused), or, when the records are
lost (a database deleted or restored from an old backup), when its Notes carry the bot's
provenance (ManagedBy, Environment, DeployedFrom) and it is a linked clone of the parent they
name (its base disks are that parent's). `orphans adopt` takes the bot's own back: a row is
made ready again, or a lost one recorded anew (ready, in the environment its Notes name, with
its instance UUID) when it matches a configured type's parent and name pattern. `orphans
remove` destroys the bot's own, each proved again (instance UUID, provenance) just before.
Any other VM, with the attribute or not, is foreign: listed, never touched.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

from bot.domain.errors import ClonesError, ConflictError
from bot.domain.models import Clone, CloneState
from bot.domain.provenance import made_by, named_by, read_provenance
from bot.domain.results import FailedClone
from bot.domain.vsphere import (
    ATTR_DEPLOYED_BY,
    ATTR_DEPLOYED_FROM,
    ATTR_ENVIRONMENT,
    ATTR_MANAGED_BY,
    VmFacts,
)
from bot.services.core import OnCore
from bot.services.runbook import LIVE_STATES


@dataclass(frozen=True)
class Orphan:
    vm: VmFacts
    clone: Clone | None  # the bot's own (not live) record of it; None: none is left
    # No record: the provenance in its Notes, when they prove it the bot's ({}: foreign), the
    # configured type it matches (adopt takes it back as one; "": remove only) or why a VM
    # that claims to be the bot's is not proved so.
    noted: Mapping[str, str] = field(default_factory=dict)
    type: str = ""
    why_not: str = ""

    @property
    def ours(self) -> bool:
        return self.clone is not None or bool(self.noted)

    @property
    def recorded(self) -> bool:
        return self.clone is not None

    @property
    def environment(self) -> str:
        if self.clone is not None:
            return self.clone.environment
        return self.noted.get(ATTR_ENVIRONMENT) or self.vm.attributes.get(ATTR_ENVIRONMENT, "")


class Orphans(OnCore):
    """Finds, adopts and removes the bot's orphans (never a foreign VM)."""

    def orphans(self) -> list[Orphan]:
        """VMs carrying ManagedBy = this bot (attribute or Notes) that no live row claims."""
        # What vCenter shows: a VM it would not show is never adopted or removed.
        vms = self.vcenter.find_vms(None).values()
        mine = self.settings.managed_by
        claiming = [
            vm
            for vm in vms
            if vm.attributes.get(ATTR_MANAGED_BY) == mine
            or read_provenance(vm.notes).get(ATTR_MANAGED_BY) == mine
        ]
        live = {c.instance_uuid for c in self.repo.clones(states=LIVE_STATES) if c.instance_uuid}
        unclaimed = [vm for vm in claiming if vm.instance_uuid not in live]
        rows = self.repo.clones_by_instance_uuid(vm.instance_uuid for vm in unclaimed)
        out = []
        for vm in unclaimed:
            row = rows.get(vm.instance_uuid)
            if row is not None:
                out.append(Orphan(vm, row))
                continue
            noted, why_not = self._proven(vm, vms)
            out.append(Orphan(vm, None, noted, self._type_for(vm, noted), why_not))
        return out

    def _proven(self, vm: VmFacts, vms: Sequence[VmFacts]) -> tuple[dict[str, str], str]:
        """(Its provenance, "") when its Notes prove a VM the bot's clone; else ({}, why not)."""
        mine = self.settings.managed_by
        noted = made_by(vm.notes, mine)
        if not noted:
            if read_provenance(vm.notes).get(ATTR_MANAGED_BY) == mine:
                return {}, "its Notes name this bot, but not the environment and parent"
            return {}, f"carries {ATTR_MANAGED_BY} but was not made by this bot"
        parent = noted[ATTR_DEPLOYED_FROM]
        if not vm.linked:
            return {}, f"its Notes name this bot, but it is not a linked clone of {parent}"
        leaf = parent.rsplit("/", 1)[-1]
        parents = [p for p in vms if p.name == leaf and p.moref != vm.moref]
        if not vm.base_disks or not any(set(vm.base_disks) <= set(p.disk_files) for p in parents):
            return {}, f"its Notes name this bot, but it is not a linked clone of {parent}"
        return noted, ""

    def _type_for(self, vm: VmFacts, noted: Mapping[str, str]) -> str:
        """The configured type whose parent the Notes name and whose name pattern makes the
        VM's name ("" when none does)."""
        parent = noted.get(ATTR_DEPLOYED_FROM)
        for t in self.settings.types.values():
            if parent and t.parent == parent and named_by(t.name_pattern, vm.name):
                return t.name
        return ""

    def adopt(self, orphan: Orphan, *, actor: str) -> Clone:
        """Record one of the bot's own orphans as a live clone again: its row made ready (same
        name), or, its record lost, a new ready row in the environment its Notes name."""
        if not orphan.ours:
            raise ConflictError(
                f"{orphan.vm.name} carries {ATTR_MANAGED_BY}={self.settings.managed_by} but was "
                "not made by this bot (its instance UUID is unknown); it is left alone."
            )
        if not orphan.vm.linked:
            raise ConflictError(f"{orphan.vm.name} is not a linked clone; it is left alone.")
        if orphan.clone is not None:
            clone = self.repo.update_clone(
                orphan.clone.id,
                state=CloneState.READY,
                moref=orphan.vm.moref,
                host=orphan.vm.host or None,
                delta_bytes=orphan.vm.unshared_bytes or orphan.vm.committed_bytes,
                power_state="poweredOn" if orphan.vm.powered_on else "poweredOff",
                error=None,
            )
        else:
            clone = self._record_lost(orphan, actor)
        self.repo.audit(
            actor=actor,
            source="recovery",
            command=f"orphans adopt {orphan.vm.name}",
            result="ok",
            detail=f"{orphan.vm.moref} (instance UUID {orphan.vm.instance_uuid}) into "
            f"{clone.environment}" + ("" if orphan.recorded else " (its record was lost)"),
        )
        return clone

    def _record_lost(self, orphan: Orphan, actor: str) -> Clone:
        if not orphan.type:
            parent = orphan.noted.get(ATTR_DEPLOYED_FROM, "?")
            raise ConflictError(
                f"{orphan.vm.name} matches no configured type (none clones {parent} under a "
                'name pattern that makes this name); it was left alone. "orphans remove" '
                "removes it, or configure its type again and adopt it."
            )
        t = self.settings.type(orphan.type)
        environment = orphan.noted[ATTR_ENVIRONMENT]
        self.repo.ensure_environment(environment, orphan.noted.get(ATTR_DEPLOYED_BY) or actor)
        vm = orphan.vm
        return self.repo.record_found_clone(
            environment=environment,
            type=t.name,
            parent=t.parent,
            name=vm.name,
            moref=vm.moref,
            instance_uuid=vm.instance_uuid,
            host=vm.host or None,
            delta_bytes=vm.unshared_bytes or vm.committed_bytes,
            power_state="poweredOn" if vm.powered_on else "poweredOff",
        )

    def remove(self, orphan: Orphan, *, actor: str) -> FailedClone | None:
        """Destroy one of the bot's own orphans (never a foreign VM); None when done."""
        if not orphan.ours:
            return FailedClone(
                orphan.vm.name, "", "not made by this bot (unknown instance UUID): left alone"
            )
        kind = orphan.clone.type if orphan.clone is not None else orphan.type
        facts: VmFacts | None = None
        if orphan.clone is None:
            # No record: prove it again, just before, by its instance UUID and its Notes.
            reading = self.vcenter.vm_facts([orphan.vm.moref])
            unseen = reading.unseen.get(orphan.vm.moref)
            if unseen is not None:  # it may still be that VM: never read as gone
                return FailedClone(orphan.vm.name, kind, unseen.cannot_see(orphan.vm.name))
            facts = reading.seen.get(orphan.vm.moref)
            if facts is not None and (
                facts.instance_uuid != orphan.vm.instance_uuid
                or made_by(facts.notes, self.settings.managed_by) != dict(orphan.noted)
                or not facts.linked
            ):
                return FailedClone(
                    orphan.vm.name,
                    kind,
                    "changed since it was listed (instance UUID, Notes or disks): left alone",
                )
        try:
            self.vcenter.destroy(
                orphan.vm.moref, expected_uuid=orphan.vm.instance_uuid, facts=facts
            )
        except ClonesError as exc:
            return FailedClone(orphan.vm.name, kind, str(exc))
        if orphan.clone is not None:
            self.repo.update_clone(orphan.clone.id, state=CloneState.DESTROYED, error=None)
        self.repo.audit(
            actor=actor,
            source="recovery",
            command=f"orphans remove {orphan.vm.name}",
            result="ok",
            detail=f"{orphan.vm.moref} (instance UUID {orphan.vm.instance_uuid}, "
            f"Environment={orphan.environment})"
            + ("" if orphan.recorded else ", proved the bot's by its Notes"),
        )
        return None


@dataclass(frozen=True)
class OrphansOutcome:
    """`orphans [adopt|remove]`: what was found, and what was done to the bot's own."""

    orphans: list[Orphan]
    action: str | None = None
    adopted: list[tuple[str, str]] = field(default_factory=list)  # (VM name, environment)
    removed: list[str] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (VM name, why)

    @property
    def ours(self) -> list[Orphan]:
        return [o for o in self.orphans if o.ours]

    @property
    def foreign(self) -> list[Orphan]:
        return [o for o in self.orphans if not o.ours]


def act_on_orphans(
    finder: Orphans, action: str | None, *, actor: str, only: Collection[str] | None = None
) -> OrphansOutcome:
    """List the orphans; with "adopt" or "remove", do that to each of the bot's own (only those
    whose moref is in `only`, when given: the set a confirmation showed), never a foreign VM."""
    orphans = finder.orphans()
    outcome = OrphansOutcome(orphans, action)
    for o in outcome.ours:
        if action is None or (only is not None and o.vm.moref not in only):
            continue
        if action == "adopt":
            try:
                clone = finder.adopt(o, actor=actor)
            except ClonesError as exc:
                outcome.problems.append((o.vm.name, str(exc)))
            else:
                outcome.adopted.append((o.vm.name, clone.environment))
        else:
            failure = finder.remove(o, actor=actor)
            if failure is None:
                outcome.removed.append(o.vm.name)
            else:
                outcome.problems.append((o.vm.name, failure.error))
    return outcome
