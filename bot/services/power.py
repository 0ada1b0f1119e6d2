"""Power for recorded clones, each operation taking its room from the process's limiter, and
waiting for guest customization after a power-on."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from bot.domain import grammar
from bot.domain.errors import VCenterError
from bot.domain.models import Clone
from bot.domain.results import FailedClone, ProgressLabel
from bot.services.bulk import BulkResult, EachClone, each_clone
from bot.services.core import OnCore
from bot.services.runbook import Emitter

log = logging.getLogger(__name__)


class Power(OnCore):
    """Powers clones on, off or reset, and waits for their customization."""

    def power_clones(
        self, clones: Sequence[Clone], action: str, *, emit: Emitter | None = None
    ) -> list[FailedClone]:
        """Power clones on, off or reset, `concurrency` tasks at a time at most, and at most
        `max_ops_per_host` on one host (a clone's recorded host; a clone the bot did not place
        counts on its type's resource pool as one host), counted with every other run of the
        process. Stopped by the user (Ctrl-C), those not started are failed as not done."""
        failed = each_clone(
            self.core, clones, lambda c: self.power_one(c, action), name="power", emit=emit
        )
        if emit is not None and failed:
            for f in failed:
                emit("clone_retry", clone=f.name, message=f"power {action} failed: {f.error}")
        return failed

    def power_one(self, clone: Clone, action: str) -> VCenterError | None:
        """One clone's power operation (its ticket taken by the caller), recorded when done."""
        assert clone.moref
        [error] = self.vcenter.power([clone.moref], action)
        if error is None:
            state = {"on": "poweredOn", "off": "poweredOff", "reset": "poweredOn"}[action]
            self.repo.update_clone(clone.id, power_state=state)
        return error

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


class PowerCommand:
    """`power on|off|reset ENV`: the environment's ready clones that are verifiably ours."""

    def __init__(self, power: Power, each: EachClone) -> None:
        self.power = power
        self.each = each

    def power_environment(
        self, command: grammar.Power, *, actor: str, source: str = "cli"
    ) -> BulkResult:
        return self.each.run(
            command.environment,
            lambda clone: self.power.power_one(clone, command.action),
            action=command.action,
            doing=f"power {command.action}",
            label=f"Power {command.action}",
            progress=ProgressLabel(
                f"Powering {command.action}", f"power {command.action}", "of", "done"
            ),
            words=f"power {command.action} {command.environment}",
            actor=actor,
            source=source,
        )
