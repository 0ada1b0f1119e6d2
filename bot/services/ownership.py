"""Is this VM the one the bot recorded? Moref, instance UUID and the ManagedBy/Environment
labels must all agree before anything is destroyed, refreshed or powered; and a VM vCenter
would not show is neither ours nor gone: it is left as it was, and the caller says so."""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass, field, replace

from bot.domain.models import Clone, Environment
from bot.domain.provenance import read_provenance
from bot.domain.vsphere import (
    ATTR_ENVIRONMENT,
    ATTR_MANAGED_BY,
    Unseen,
    Visibility,
    VmFacts,
    VmReading,
    VmSighting,
)
from bot.services.core import OnCore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Checked:
    """Recorded clones as vCenter answered for them: each in exactly one list."""

    verified: list[tuple[Clone, VmSighting]] = field(default_factory=list)  # ours: act on them
    gone: list[Clone] = field(default_factory=list)  # vCenter says there is no such VM
    skipped: list[tuple[Clone, str]] = field(default_factory=list)  # not provably ours: why
    unseen: list[tuple[Clone, Unseen]] = field(default_factory=list)  # vCenter would not show

    @property
    def left_alone(self) -> list[tuple[Clone, str]]:
        """Every clone not acted on and not gone, with why: not provably ours, or "cannot
        see VM X: NoPermission, privilege System.Read"."""
        return self.skipped + [(c, u.cannot_see(c.name)) for c, u in self.unseen]


def locate(reading: VmReading[VmFacts], clone: Clone) -> tuple[Visibility, VmFacts | None]:
    """Where a recorded clone is in a listing (every VM of a folder): seen under its instance
    UUID; unseen when it is not found but the listing holds VMs vCenter would not show (it may
    be one of them); gone otherwise."""
    for vm in reading.seen.values():
        if clone.instance_uuid and vm.instance_uuid == clone.instance_uuid:
            return Visibility.SEEN, vm
    if reading.unseen:
        return Visibility.UNSEEN, None
    return Visibility.GONE, None


class Ownership(OnCore):
    """Splits recorded clones into verified, gone, not provably ours, and unseen."""

    def verify_ours(
        self, env: Environment, clones: list[Clone], *, also: Collection[str] = ()
    ) -> Checked:
        """Split recorded clones into verified in vCenter, gone, not provably ours, unseen.

        A VM is destroyed only when its moref, instance UUID and the ManagedBy/Environment
        attributes all match what was recorded. Clones without a moref (a crash mid-clone) are
        looked up by the instance UUID the bot chose before cloning; such a VM may not carry
        its attributes yet, and then its Notes (written by the clone call itself) must name
        this bot and environment instead. A VM vCenter answers with a fault for (NoPermission)
        is unseen: neither acted on nor gone.

        One narrow read for all of them (identity, power, labels, and the extras in `also`
        the caller will use: strip back wants "storage", refresh "host" and "notes"), never
        their device lists; the Notes of VMs without labels are read afterwards, for those
        alone.
        """
        with_moref = {c.moref: c for c in clones if c.moref}
        reading = self.vcenter.sightings(list(with_moref), also=also)
        facts = {c.id: reading.seen[m] for m, c in with_moref.items() if m in reading.seen}
        facts = self._with_notes(facts, also)
        without = [c for c in clones if not c.moref and c.instance_uuid]
        listings: dict[str, VmReading[VmFacts]] = {}
        for folder in sorted(
            {self.settings.types[c.type].folder for c in without if c.type in self.settings.types}
        ):
            listings[folder] = self.vcenter.find_vms(folder)
        checked = Checked()
        for c in clones:
            if c.moref:
                seen, found = reading.visibility(c.moref), facts.get(c.id)
                unseen = reading.unseen.get(c.moref)
            else:
                seen, found, unseen = self._by_uuid(c, listings)
            if seen is Visibility.UNSEEN and unseen is not None:
                checked.unseen.append((c, unseen))
            elif found is None:
                checked.gone.append(c)
            elif problems := self._not_ours(c, found, env.name):
                checked.skipped.append((c, "not touched: " + ", ".join(problems)))
            else:
                checked.verified.append((c, found))
        return checked

    def _by_uuid(
        self, clone: Clone, listings: dict[str, VmReading[VmFacts]]
    ) -> tuple[Visibility, VmSighting | None, Unseen | None]:
        """A clone without a moref, in its folder's listing, by its instance UUID."""
        t = self.settings.types.get(clone.type)
        listing = listings.get(t.folder) if t is not None else None
        if listing is None:
            return Visibility.GONE, None, None
        seen, vm = locate(listing, clone)
        unseen = next(iter(listing.unseen.values()), None)
        return seen, (vm.sighting() if vm is not None else None), unseen

    def _with_notes(
        self, facts: dict[int, VmSighting], also: Collection[str]
    ) -> dict[int, VmSighting]:
        """The Notes of VMs that carry neither label (made, not yet labelled: a crash
        mid-clone), read for those alone, so `_not_ours` can check them."""
        if "notes" in also:
            return facts
        bare = {
            vm.moref: cid
            for cid, vm in facts.items()
            if ATTR_MANAGED_BY not in vm.attributes and ATTR_ENVIRONMENT not in vm.attributes
        }
        if not bare:
            return facts
        out = dict(facts)
        for vm in self.vcenter.sightings(list(bare), also=("notes",)).values():
            cid = bare[vm.moref]
            out[cid] = replace(out[cid], notes=vm.notes)
        return out

    def _not_ours(self, clone: Clone, vm: VmSighting, environment: str) -> list[str]:
        """Why a VM found for a recorded clone cannot be proven the bot's (empty: it is)."""
        if vm.instance_uuid != clone.instance_uuid:
            return ["instance UUID differs"]
        labels = vm.attributes
        if ATTR_MANAGED_BY not in labels and ATTR_ENVIRONMENT not in labels:
            labels = read_provenance(vm.notes)  # made, not yet labelled (a crash mid-clone)
        problems = []
        if labels.get(ATTR_MANAGED_BY) != self.settings.managed_by:
            problems.append(f"{ATTR_MANAGED_BY} is not {self.settings.managed_by!r}")
        if labels.get(ATTR_ENVIRONMENT) != environment:
            problems.append(f"{ATTR_ENVIRONMENT} is not {environment!r}")
        return problems
