"""Is this VM the one the bot recorded? Moref, instance UUID and the ManagedBy/Environment
labels must all agree before anything is destroyed, refreshed or powered."""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import replace

from bot.domain.models import Clone, Environment
from bot.domain.provenance import read_provenance
from bot.domain.vsphere import (
    ATTR_ENVIRONMENT,
    ATTR_MANAGED_BY,
    VmSighting,
)
from bot.services.runs import Core

log = logging.getLogger(__name__)


class Ownership:
    """Splits recorded clones into verified, gone and not provably ours."""

    def __init__(self, core: Core) -> None:
        self.settings = core.settings
        self.repo = core.repo
        self.vcenter = core.vcenter
        self.clock = core.clock
        self.runs = core.runs

    def verify_ours(
        self, env: Environment, clones: list[Clone], *, also: Collection[str] = ()
    ) -> tuple[list[tuple[Clone, VmSighting]], list[Clone], list[tuple[Clone, str]]]:
        """Split recorded clones into (verified in vCenter, already gone, not provably ours).

        A VM is destroyed only when its moref, instance UUID and the ManagedBy/Environment
        attributes all match what was recorded. Clones without a moref (a crash mid-clone) are
        looked up by the instance UUID the bot chose before cloning; such a VM may not carry
        its attributes yet, and then its Notes (written by the clone call itself) must name
        this bot and environment instead.

        One narrow read for all of them (identity, power, labels, and the extras in `also`
        the caller will use: strip back wants "storage", refresh "host" and "notes"), never
        their device lists; the Notes of VMs without labels are read afterwards, for those
        alone.
        """
        with_moref = {c.moref: c for c in clones if c.moref}
        seen = {vm.moref: vm for vm in self.vcenter.sightings(list(with_moref), also=also)}
        facts = {c.id: seen[m] for m, c in with_moref.items() if m in seen}
        without = [c for c in clones if not c.moref and c.instance_uuid]
        by_uuid: dict[str, VmSighting] = {}
        if without:
            folders = {
                self.settings.types[c.type].folder for c in without if c.type in self.settings.types
            }
            for folder in folders:
                for vm in self.vcenter.find_vms(folder):
                    by_uuid[vm.instance_uuid] = vm.sighting()
        facts = self._with_notes(facts, also)
        verified: list[tuple[Clone, VmSighting]] = []
        gone: list[Clone] = []
        skipped: list[tuple[Clone, str]] = []
        for c in clones:
            f = facts.get(c.id) if c.moref else by_uuid.get(c.instance_uuid or "")
            if f is None:
                gone.append(c)
                continue
            problems = self._not_ours(c, f, env.name)
            if problems:
                skipped.append((c, "not touched: " + ", ".join(problems)))
            else:
                verified.append((c, f))
        return verified, gone, skipped

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
        for vm in self.vcenter.sightings(list(bare), also=("notes",)):
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
