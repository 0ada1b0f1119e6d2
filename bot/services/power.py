"""Power for recorded clones, in batches, and waiting for guest customization after a power-on."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from bot.domain.models import Clone
from bot.domain.results import (
    FailedClone,
)
from bot.services.runs import Core, Emitter

log = logging.getLogger(__name__)


class Power:
    """Powers clones on, off or reset, and waits for their customization."""

    def __init__(self, core: Core) -> None:
        self.settings = core.settings
        self.repo = core.repo
        self.vcenter = core.vcenter
        self.clock = core.clock
        self.runs = core.runs

    def power_clones(
        self, clones: Sequence[Clone], action: str, *, emit: Emitter | None = None
    ) -> list[FailedClone]:
        """Power clones on, off or reset in batches of `concurrency` tasks at a time."""
        state = {"on": "poweredOn", "off": "poweredOff", "reset": "poweredOn"}[action]
        failed: list[FailedClone] = []
        batch = self.settings.concurrency
        for i in range(0, len(clones), batch):
            chunk = [c for c in clones[i : i + batch] if c.moref]
            errors = self.vcenter.power([c.moref for c in chunk if c.moref], action)
            for clone, error in zip(chunk, errors, strict=True):
                if error is None:
                    self.repo.update_clone(clone.id, power_state=state)
                else:
                    failed.append(FailedClone(clone.name, clone.type, str(error)))
        if emit is not None and failed:
            for f in failed:
                emit("clone_retry", clone=f.name, message=f"power {action} failed: {f.error}")
        return failed

    def await_customization(self, clones: Sequence[Clone], since: datetime, emit: Emitter) -> None:
        custom = [c for c in clones if self.settings.types[c.type].customization_spec and c.moref]
        if not custom:
            return
        for c in custom:
            self.repo.update_clone(c.id, customization="pending")
        outcomes = self.vcenter.wait_for_customization(
            [c.moref for c in custom if c.moref],
            since=since,
            timeout_s=self.settings.customization_timeout_s,
        )
        for c in custom:
            outcome = outcomes.get(c.moref or "")
            if outcome is not None and outcome.ok:
                self.repo.update_clone(c.id, customization="succeeded")
            else:
                why = outcome.message if outcome else "no result"
                self.repo.update_clone(
                    c.id, customization="failed", error=f"guest customization failed: {why}"
                )
                emit("clone_retry", clone=c.name, message=f"customization failed: {why}")
