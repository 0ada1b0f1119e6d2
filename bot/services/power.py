"""Power for recorded clones, each operation taking its room from the process's limiter, and
waiting for guest customization after a power-on."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from bot.domain import grammar
from bot.domain.errors import NotFoundError, VCenterError
from bot.domain.models import Clone, CloneState
from bot.domain.results import (
    FailedClone,
)
from bot.services.limits import clone_host
from bot.services.pipeline import Stop, run_per_clone
from bot.services.runs import Core, Emitter

if TYPE_CHECKING:
    from bot.services.ownership import Ownership
    from bot.services.queries import Queries

log = logging.getLogger(__name__)


class Power:
    """Powers clones on, off or reset, and waits for their customization."""

    def __init__(self, core: Core) -> None:
        self.core = core
        self.settings = core.settings
        self.repo = core.repo
        self.vcenter = core.vcenter
        self.clock = core.clock
        self.runs = core.runs

    def power_clones(
        self, clones: Sequence[Clone], action: str, *, emit: Emitter | None = None
    ) -> list[FailedClone]:
        """Power clones on, off or reset, `concurrency` tasks at a time at most, and at most
        `max_ops_per_host` on one host (a clone's recorded host; a clone the bot did not place
        counts on its type's resource pool as one host), counted with every other run of the
        process. Stopped by the user (Ctrl-C), those not started are failed as not done."""
        state = {"on": "poweredOn", "off": "poweredOff", "reset": "poweredOn"}[action]
        owner = object()  # this command's operations, for fair shares beside the runs

        def power_one(clone: Clone, stop: Stop) -> VCenterError | None:
            assert clone.moref
            ticket = self.core.limits.host_op(
                clone_host(self.settings, clone),
                owner=emit.run_id if emit is not None else owner,
                on_queued=emit.queued if emit is not None else None,
            )
            with ticket:
                [error] = self.vcenter.power([clone.moref], action)
            if error is None:
                self.repo.update_clone(clone.id, power_state=state)
            return error

        per = run_per_clone(
            [c for c in clones if c.moref],
            power_one,
            workers=self.settings.concurrency,
            name="power",
            halt=self.core.halt,
        )
        failed = [FailedClone(c.name, c.type, str(e)) for c, e in per.results if e is not None]
        if per.lost is not None:
            raise per.lost
        if per.halted:
            why = f"not powered {action}: stopped by {per.halted} before it started"
            failed += [FailedClone(c.name, c.type, why) for c in per.not_started]
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


@dataclass(frozen=True)
class PowerResult:
    environment: str
    action: str
    done: list[str]
    failed: list[FailedClone]
    skipped: list[FailedClone]


class PowerCommand:
    """`power on|off|reset ENV`: the environment's ready clones that are verifiably ours."""

    def __init__(self, core: Core, power: Power, ownership: Ownership, queries: Queries) -> None:
        self.repo = core.repo
        self.runs = core.runs
        self.power_clones = power.power_clones
        self.ownership = ownership
        self.queries = queries

    def power_environment(
        self, command: grammar.Power, *, actor: str, source: str = "cli"
    ) -> PowerResult:
        env = self.queries.environment(command.environment)
        clones = self.repo.clones(environment=env.name, states=[CloneState.READY])
        if not clones:
            raise NotFoundError(
                f"Environment {env.name} has no ready clones to power {command.action}."
            )
        with self.runs.environment_lock(env.name):
            checked = self.ownership.verify_ours(env, clones)
            ours, gone = [c for c, _ in checked.verified], checked.gone
            failed = self.power_clones(ours, command.action)
            for c in gone:  # nobody asked the bot to destroy them: recorded as missing
                self.repo.update_clone(c.id, state=CloneState.MISSING, error="missing from vCenter")
        failed_names = {f.name for f in failed}
        result = PowerResult(
            environment=env.name,
            action=command.action,
            done=[c.name for c in ours if c.name not in failed_names],
            failed=failed + [FailedClone(c.name, c.type, "missing from vCenter") for c in gone],
            skipped=[FailedClone(c.name, c.type, why) for c, why in checked.left_alone],
        )
        self.repo.audit(
            actor=actor,
            source=source,
            command=f"power {command.action} {env.name}",
            result="ok" if not result.failed else "partial",
            detail=f"{len(result.done)} done, {len(result.failed)} failed",
        )
        return result
