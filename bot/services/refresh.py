"""`refresh ENV`: re-create each clone from the parent's newest base snapshot, keeping its name,
host, attributes, deployer and power state (DeployedAt becomes the new VM's time)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING

from bot.domain import grammar
from bot.domain.errors import (
    NotFoundError,
    UsageError,
    VCenterError,
    VCenterUnreachable,
)
from bot.domain.models import Clone, CloneState, Environment, RunKind, RunState
from bot.domain.provenance import deployed_by_and_at
from bot.domain.results import REFRESHING, FailedClone
from bot.domain.vsphere import ATTR_DEPLOYED_AT, VmSighting
from bot.ports import ProgressCallback
from bot.services.bulk import record_missing
from bot.services.core import Core, OnCore
from bot.services.fullcopy import FullCopyGuard
from bot.services.limits import OpLimits, clone_datastore, clone_host
from bot.services.pipeline import NotStarted, Stop, run_per_clone
from bot.services.runbook import Emitter, outcome_state, stopped_message
from bot.services.sizes import record_seen

if TYPE_CHECKING:
    from bot.services.cloning import Cloner
    from bot.services.ownership import Ownership
    from bot.services.placements import Placements
    from bot.services.power import Power
    from bot.services.queries import Queries


@dataclass(frozen=True)
class RefreshResult:
    run_id: int
    environment: str
    refreshed: list[str]
    failed: list[FailedClone]
    skipped: list[FailedClone]
    elapsed_s: float
    state: RunState
    message: str = ""  # why it is not done, and how to finish it (interrupted)


@dataclass
class _Refreshing:
    """One refresh in flight: what each clone's work needs, and the type guard."""

    run_id: int
    env: Environment
    actor: str
    deployed_at: str
    emit: Emitter
    # Each clone's destroy, clone and power-on take one clone slot of the process's limiter.
    limits: OpLimits
    guard: FullCopyGuard = field(default_factory=FullCopyGuard)


@dataclass(frozen=True)
class _Outcome:
    """What refreshing one clone came to."""

    clone: Clone
    refreshed: bool
    error: str = ""
    kept: bool = False  # not refreshed: its type stopped at a full copy (left as it was)
    powered: bool = False  # re-created and powered on again: customised on boot


@dataclass(frozen=True)
class RefreshPlan:
    """What a refresh would re-create, shown before the user confirms."""

    environment: str
    by_type: dict[str, int]

    @property
    def clones(self) -> int:
        return sum(self.by_type.values())


class Refresher(OnCore):
    """Re-creates an environment's clones from the current base snapshot."""

    def __init__(
        self,
        core: Core,
        *,
        queries: Queries,
        ownership: Ownership,
        cloner: Cloner,
        power: Power,
        placements: Placements,
    ) -> None:
        super().__init__(core)
        self.queries, self.ownership, self.cloner = queries, ownership, cloner
        self.power, self.placements = power, placements

    def plan(self, environment: str) -> RefreshPlan:
        """The ready clones a refresh of `environment` would destroy and re-create."""
        env = self.queries.environment(environment)
        ready = self.repo.clones(environment=env.name, states=[CloneState.READY])
        if not ready:
            raise NotFoundError(f"Environment {env.name} has no ready clones to refresh.")
        by_type = dict(sorted(Counter(c.type for c in ready).items()))
        return RefreshPlan(env.name, by_type)

    def refresh(
        self,
        command: grammar.Refresh,
        *,
        actor: str,
        source: str = "cli",
        channel: str = "",
        on_event: ProgressCallback | None = None,
        clone_ids: Collection[int] | None = None,
        words: str = "",
    ) -> RefreshResult:
        """Re-create each clone from the current base snapshot, keeping name and attributes.

        One clone at a time per worker: destroy the old VM (verified ours), clone the new one
        on the same host, restore its power state. DeployedAt is the new VM's time; who
        deployed it and every attribute keep their values. `clone_ids`: only these of the
        environment's ready clones (a trainee's `rebuild`, said as `words` in the audit).
        """
        env = self.queries.environment(command.environment)
        with self.runs.environment_lock(env.name):
            clones = self.repo.clones(environment=env.name, states=[CloneState.READY])
            if clone_ids is not None:
                clones = [c for c in clones if c.id in clone_ids]
                if not clones:
                    raise NotFoundError(
                        f"{words or 'The clone'}: the VM is not ready (being rebuilt, or "
                        "gone); nothing was done."
                    )
            if not clones:
                raise NotFoundError(f"Environment {env.name} has no ready clones to refresh.")
            for t in {c.type for c in clones}:
                ts = self.settings.type(t)
                facts = self.vcenter.parent_facts(ts.parent, ts.snapshot)
                if facts.snapshot is None:
                    raise UsageError(
                        f'Parent "{ts.parent}" has no base snapshot "{ts.snapshot}"; run '
                        f'"prepare {t}" first.'
                    )
            self.vcenter.forget_snapshots()  # use each parent's newest base snapshot
            checked = self.ownership.verify_ours(env, clones, also=("host", "notes", "storage"))
            # Unseen clones are left as they were, with the not provably ours: never "missing".
            verified, gone, skipped = checked.verified, checked.gone, checked.left_alone
            record_seen(self.repo, verified)  # how far they grew, for the next estimate
            run = self.runs.start_run(
                environment=env.name,
                kind=RunKind.REFRESH,
                requested_by=actor,
                requested=len(verified),
                command=words or f"refresh {env.name}",
                source=source,
                channel=channel,
                clone_ids=[c.id for c, _ in verified],
            )
            return self._refresh(run.id, env, verified, gone, skipped, actor, on_event)

    # Kept whole: the refresh's one sequence (pool, customization, confinement, outcome).
    def _refresh(
        self,
        run_id: int,
        env: Environment,
        verified: list[tuple[Clone, VmSighting]],
        gone: list[Clone],
        skipped: list[tuple[Clone, str]],
        actor: str,
        on_event: ProgressCallback | None,
    ) -> RefreshResult:
        started = time.monotonic()
        emit = Emitter(run_id, env.name, REFRESHING, len(verified), started, on_event)
        emit("started", message=f"Refreshing {len(verified)} clones of {env.name}")
        job = _Refreshing(
            run_id, env, actor, self.clock().isoformat(timespec="seconds"), emit, self.core.limits
        )
        since = self.clock() - timedelta(seconds=30)
        per = run_per_clone(
            verified,
            lambda item, stop: self._refresh_one(job, item, stop),
            workers=self.settings.concurrency,
            name="refresh",
            halt=self.core.halt,
        )
        outcomes = [o for _, o in per.results]
        lost = per.lost
        halted = per.halted
        refreshed = [o.clone.name for o in outcomes if o.refreshed]
        failed = [
            FailedClone(o.clone.name, o.clone.type, o.error)
            for o in outcomes
            if not o.refreshed and not o.kept
        ]
        kept = [FailedClone(o.clone.name, o.clone.type, o.error) for o in outcomes if o.kept]
        powered = [o.clone for o in outcomes if o.powered]
        if powered and lost is None and not self.core.halt():
            try:
                self.power.await_customization(powered, since, emit)
            except VCenterUnreachable as exc:
                lost = exc
            for c in self.repo.clones(environment=env.name, states=[CloneState.READY]):
                if c.name in refreshed and c.customization == "failed":
                    refreshed.remove(c.name)
                    failed.append(FailedClone(c.name, c.type, c.error or "customization failed"))
        if refreshed and lost is None:
            try:
                self._confine({c.type for c, _ in verified})
            except VCenterUnreachable as exc:
                lost = exc
        problems = failed + record_missing(self.repo, gone)
        state = outcome_state(
            len(refreshed),
            len(problems) + len(skipped) + len(kept),
            lost=lost is not None or bool(halted),
        )
        message = str(lost) if lost else ""
        if halted and lost is None:  # the rest are left as they were: `resume` refreshes them
            message = stopped_message(
                halted, f"{len(per.not_started)} clones not refreshed yet", "refresh"
            )
        message = " ".join(m for m in (message, job.guard.summary("not refreshed")) if m)
        self.runs.finish_run(
            run_id, state=state, succeeded=len(refreshed), failed=len(problems), message=message
        )
        emit("finished", message=f"{len(refreshed)} clones refreshed in {env.name}")
        if lost is not None:
            raise lost
        return RefreshResult(
            run_id=run_id,
            environment=env.name,
            refreshed=sorted(refreshed),
            failed=problems,
            skipped=[FailedClone(c.name, c.type, why) for c, why in skipped] + kept,
            elapsed_s=time.monotonic() - started,
            state=state,
            message=message,
        )

    def _refresh_one(
        self, job: _Refreshing, item: tuple[Clone, VmSighting], stop: Stop
    ) -> _Outcome:
        """Destroy one old VM and clone its successor. Each type's first clone goes alone; a
        full copy stops the type with its other clones untouched (an endpoint that ignores
        linked cloning must not cost them all)."""
        clone, vm = item
        turn = job.guard.enter(clone.type)
        if stop():  # vCenter was lost, or the user stopped, while it waited its turn
            if turn is not None:
                job.guard.leave(clone.type, turn, linked=False)
            raise NotStarted
        if turn is None:
            why = job.guard.not_attempted(clone.type, "not refreshed, left as it was")
            job.emit("clone_failed", clone=clone.name, ok=False, message=why)
            return _Outcome(clone, refreshed=False, error=why, kept=True)
        done, linked, powered = clone, False, False
        try:  # destroy, clone and power on, one after the other on the VM's host
            host = clone_host(self.settings, clone, vm.host)
            slot = job.limits.clone(
                host,
                clone_datastore(self.settings, clone),
                owner=job.run_id,
                on_queued=job.emit.queued,
            )
            with slot:
                keep = {k: v for k, v in vm.attributes.items() if k != ATTR_DEPLOYED_AT}
                # Recorded with the destroy: a successor made after a crash carries them too.
                self.repo.update_clone(
                    clone.id,
                    fence=self.runs.fence(job.emit.run_id),  # not for a run another bot took over
                    state=CloneState.DESTROYING,
                    kept_attributes=keep,
                )
                self.vcenter.destroy(vm.moref, expected_uuid=vm.instance_uuid)
                done = self.cloner.clone_one(
                    clone,
                    job.env,
                    deployed_by_and_at(vm.attributes, vm.notes)[0] or job.actor,
                    job.deployed_at,
                    job.emit,
                    host=vm.host or None,
                    keep_attributes=keep,
                    new_uuid=True,
                    on_full_copy=partial(job.guard.full_copy, clone.type, clone.name),
                )
                linked = done.state is CloneState.READY
                if linked and vm.powered_on and done.moref:
                    done, powered = self._power_on(done, job.emit.run_id)
        except VCenterUnreachable:
            raise
        except VCenterError as exc:
            done = self.repo.update_clone(clone.id, state=CloneState.READY, error=str(exc))
        finally:
            job.guard.leave(clone.type, turn, linked=linked)
        if done.state is CloneState.READY and not done.error:
            job.emit("clone_ready", clone=done.name, ok=True)
            return _Outcome(done, refreshed=True, powered=powered)
        job.emit("clone_failed", clone=done.name, ok=False, message=done.error or "")
        return _Outcome(done, refreshed=False, error=done.error or done.state)

    def _power_on(self, done: Clone, run_id: int) -> tuple[Clone, bool]:
        """The refreshed clone of a VM that was on, powered on (left off on an error), by the
        run's owner only (Fenced once another bot took the run over)."""
        self.runs.assert_owned(run_id)
        if self.vcenter.power([done.moref or ""], "on")[0] is not None:
            return done, False
        return self.repo.update_clone(done.id, power_state="poweredOn"), True

    def _confine(self, types: set[str]) -> None:
        """Refreshed clones are new VMs: put them in their parent's DRS VM group (host limit)."""
        if not self.settings.confine_hosts:
            return
        for name in sorted(types):
            placement = self.placements.placement_for(self.settings.type(name))
            if not placement.group:
                continue
            members = [
                c.moref
                for c in self.repo.clones(states=[CloneState.READY])
                if c.parent == placement.parent and c.host in placement.group and c.moref
            ]
            self.vcenter.ensure_drs_confinement(
                placement.cluster, placement.prefix, members, placement.group
            )
