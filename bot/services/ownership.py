"""Is this VM the one the bot recorded? Moref, instance UUID and the ManagedBy/Environment
labels must all agree before anything is destroyed, refreshed or powered."""

from __future__ import annotations

import logging

from bot.domain.models import Clone, Environment
from bot.domain.provenance import read_provenance
from bot.domain.vsphere import (
    ATTR_ENVIRONMENT,
    ATTR_MANAGED_BY,
    VmFacts,
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
        self, env: Environment, clones: list[Clone]
    ) -> tuple[list[tuple[Clone, VmFacts]], list[Clone], list[tuple[Clone, str]]]:
        """Split recorded clones into (verified in vCenter, already gone, not provably ours).

        A VM is destroyed only when its moref, instance UUID and the ManagedBy/Environment
        attributes all match what was recorded. Clones without a moref (a crash mid-clone) are
        looked up by the instance UUID the bot chose before cloning; such a VM may not carry
        its attributes yet, and then its Notes (written by the clone call itself) must name
        this bot and environment instead.
        """
        with_moref = [c for c in clones if c.moref]
        facts = dict(
            zip(
                [c.id for c in with_moref],
                self.vcenter.vm_facts([c.moref for c in with_moref if c.moref]),
                strict=True,
            )
        )
        without = [c for c in clones if not c.moref and c.instance_uuid]
        by_uuid: dict[str, VmFacts] = {}
        if without:
            folders = {
                self.settings.types[c.type].folder for c in without if c.type in self.settings.types
            }
            for folder in folders:
                for vm in self.vcenter.find_vms(folder):
                    by_uuid[vm.instance_uuid] = vm
        verified: list[tuple[Clone, VmFacts]] = []
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

    def _not_ours(self, clone: Clone, vm: VmFacts, environment: str) -> list[str]:
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
