"""Orphans: VMs carrying this bot's ManagedBy attribute that no live clone record claims.

Only those whose instance UUID the bot itself chose (it has a row for them, e.g. a clone recorded
as failed whose reply was lost) may be adopted or removed; any other VM with the attribute is
foreign (the attribute can be set by anyone) and is only reported.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from bot.domain.errors import ClonesError, ConflictError
from bot.domain.models import Clone, CloneState
from bot.domain.results import FailedClone
from bot.domain.vsphere import ATTR_ENVIRONMENT, ATTR_MANAGED_BY, VmFacts
from bot.services.runs import LIVE_STATES, Core


@dataclass(frozen=True)
class Orphan:
    vm: VmFacts
    clone: Clone | None  # the bot's own (not live) record of it; None: foreign

    @property
    def ours(self) -> bool:
        return self.clone is not None


class Orphans:
    """Finds, adopts and removes the bot's orphans (never a foreign VM)."""

    def __init__(self, core: Core) -> None:
        self.settings, self.repo, self.vcenter = core.settings, core.repo, core.vcenter

    def orphans(self) -> list[Orphan]:
        """VMs carrying ManagedBy = this bot that no live clone row claims."""
        tagged = [  # what vCenter shows: a VM it would not show is never adopted or removed
            vm
            for vm in self.vcenter.find_vms(None).values()
            if vm.attributes.get(ATTR_MANAGED_BY) == self.settings.managed_by
        ]
        live = {c.instance_uuid for c in self.repo.clones(states=LIVE_STATES) if c.instance_uuid}
        unclaimed = [vm for vm in tagged if vm.instance_uuid not in live]
        rows = self.repo.clones_by_instance_uuid(vm.instance_uuid for vm in unclaimed)
        return [Orphan(vm, rows.get(vm.instance_uuid)) for vm in unclaimed]

    def adopt(self, orphan: Orphan, *, actor: str) -> Clone:
        """Record one of the bot's own orphans as a live clone again (same row, same name)."""
        if orphan.clone is None:
            raise ConflictError(
                f"{orphan.vm.name} carries {ATTR_MANAGED_BY}={self.settings.managed_by} but was "
                "not made by this bot (its instance UUID is unknown); it is left alone."
            )
        if not orphan.vm.linked:
            raise ConflictError(f"{orphan.vm.name} is not a linked clone; it is left alone.")
        clone = self.repo.update_clone(
            orphan.clone.id,
            state=CloneState.READY,
            moref=orphan.vm.moref,
            host=orphan.vm.host or None,
            delta_bytes=orphan.vm.unshared_bytes or orphan.vm.committed_bytes,
            power_state="poweredOn" if orphan.vm.powered_on else "poweredOff",
            error=None,
        )
        self.repo.audit(
            actor=actor,
            source="recovery",
            command=f"orphans adopt {orphan.vm.name}",
            result="ok",
            detail=f"{orphan.vm.moref} into {clone.environment}",
        )
        return clone

    def remove(self, orphan: Orphan, *, actor: str) -> FailedClone | None:
        """Destroy one of the bot's own orphans (never a foreign VM); None when done."""
        if orphan.clone is None:
            return FailedClone(
                orphan.vm.name, "", "not made by this bot (unknown instance UUID): left alone"
            )
        env = orphan.vm.attributes.get(ATTR_ENVIRONMENT, "")
        try:
            self.vcenter.destroy(orphan.vm.moref, expected_uuid=orphan.vm.instance_uuid)
        except ClonesError as exc:
            return FailedClone(orphan.vm.name, orphan.clone.type, str(exc))
        self.repo.update_clone(orphan.clone.id, state=CloneState.DESTROYED, error=None)
        self.repo.audit(
            actor=actor,
            source="recovery",
            command=f"orphans remove {orphan.vm.name}",
            result="ok",
            detail=f"{orphan.vm.moref} (Environment={env})",
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
