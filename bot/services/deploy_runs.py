"""A deployment's clones through the pool: each type's first clone first (a full copy stops the
type), at most `concurrency` clone tasks in vCenter (and `max_ops_per_host`, `max_ops_per_datastore`
on any one host or datastore) for the whole process, each clone powered on as soon as it is made
when the deployment powers on (customization watched meanwhile: bot/services/bringup.py), then DRS
confinement, and a report counting exactly what exists. Stopped by the user (Ctrl-C), it starts
nothing more, records what vCenter finishes, and ends interrupted for `resume`."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING

from bot.domain.errors import Fenced, VCenterUnreachable
from bot.domain.models import Clone, CloneState, Environment, RunState
from bot.domain.results import (
    DEPLOYING,
    DeployResult,
    FailedClone,
    ProgressLabel,
)
from bot.domain.vsphere import Visibility
from bot.ports import ProgressCallback, Repository, VCenter
from bot.services.bringup import BringUp
from bot.services.core import Core, OnCore
from bot.services.fullcopy import FullCopyGuard, TypeStopped, probes_first
from bot.services.limits import OpLimits, place_key
from bot.services.pipeline import NotStarted, PerClone, Stop, run_per_clone
from bot.services.runbook import Emitter, stopped_message

if TYPE_CHECKING:
    from bot.services.cloning import Cloner
    from bot.services.placements import TypePlacement
    from bot.services.queries import Queries

log = logging.getLogger(__name__)


@dataclass
class _Batch:
    """One deployment's clones in flight: what each needs to clone, and its type's guard."""

    run_id: int
    env: Environment
    actor: str
    deployed_at: str
    emit: Emitter
    placements: dict[str, TypePlacement]
    guard: FullCopyGuard
    limits: OpLimits
    bringup: BringUp | None  # powers each clone on as it is made (a deployment that powers on)


class DeployRuns(OnCore):
    """Runs a deployment's (or a resumed one's) clones and reports on the whole run."""

    def __init__(self, core: Core, cloner: Cloner, queries: Queries) -> None:
        super().__init__(core)
        self.cloner = cloner
        self.queries = queries

    def run_clones(
        self,
        run_id: int,
        env: Environment,
        planned: list[Clone],
        actor: str,
        on_event: ProgressCallback | None,
        *,
        placements: dict[str, TypePlacement] | None = None,
        power_on: bool = False,
        todo: list[Clone] | None = None,
        label: ProgressLabel = DEPLOYING,
    ) -> DeployResult:
        """Clone `todo` (default: all of `planned`) in the pool; report on all of `planned`
        (progress events say `label`: a resumed refresh says it refreshes)."""
        work_list = planned if todo is None else todo
        started = time.monotonic()
        emit = Emitter(run_id, env.name, label, len(work_list), started, on_event)
        emit(
            "started",
            message=f"{label.doing} {len(work_list)} linked clones {label.where} {env.name}",
        )
        bringup = self._bringup(run_id, planned, work_list, emit) if power_on else None
        batch = _Batch(
            run_id=run_id,
            env=env,
            actor=actor,
            deployed_at=self.clock().isoformat(timespec="seconds"),
            emit=emit,
            placements=placements or {},
            guard=FullCopyGuard(),
            # `concurrency` clone tasks at once in vCenter, `max_ops_per_host` on one host...
            # for the whole process: a clone frees its ticket when vCenter has made it, and is
            # labelled, recorded (and powered on) while the next one clones.
            limits=self.limits,
            bringup=bringup,
        )
        # Each type's first clone first, so the types' probes run side by side.
        per = self._clone_all(batch, work_list)
        unreachable: list[VCenterUnreachable] = [per.lost] if per.lost else []
        halted, not_up = self._after_cloning(per.halted, unreachable, placements, bringup)
        result = self._finish_deploy(
            run_id, env, planned, started, unreachable, emit, halted=halted, not_up=not_up
        )
        guard = batch.guard
        note = guard.summary()  # said once, for the run: each copy's own error has the causes
        if note:
            message = f"{result.message}. {note}" if result.message else note
            self.repo.update_run(run_id, message=message)
            result = replace(result, message=message)
        return result

    def _clone_all(self, batch: _Batch, work_list: list[Clone]) -> PerClone[Clone, Clone]:
        try:
            return run_per_clone(
                probes_first(work_list),
                partial(self._clone_in_turn, batch),
                workers=2 * self.settings.concurrency,
                name="clone",
                halt=self.core.halt,
            )
        except Fenced:  # another bot took the run over: it powers on and finishes, not us
            if batch.bringup is not None:
                batch.bringup.abandon()
            raise

    def _after_cloning(
        self,
        halted: str,
        unreachable: list[VCenterUnreachable],
        placements: dict[str, TypePlacement] | None,
        bringup: BringUp | None,
    ) -> tuple[str, int]:
        """DRS confinement, then the end of bring-up (all of it unless vCenter was lost or the
        user stopped the run); adds a loss of vCenter to `unreachable`. Returns what stopped the
        run ("Ctrl-C", or "") and how many clones it left to power on or customize."""
        if not unreachable and not halted:
            try:
                confine(self.repo, self.vcenter, placements or {})
            except VCenterUnreachable as exc:
                unreachable.append(exc)
        if bringup is None:
            return halted, 0
        if unreachable or halted:
            bringup.abandon()
        elif (lost := bringup.finish()) is not None:
            unreachable.append(lost)
        if halted or bringup.halted:
            return halted or bringup.halted, bringup.left + bringup.watch.dropped
        return "", 0

    def _clone_in_turn(self, b: _Batch, clone: Clone, stop: Stop) -> Clone:
        """One clone of the batch, in its type's turn (the type's first clone probes alone; a
        full copy stops the type), while holding a clone slot."""
        turn = b.guard.enter(clone.type)
        if stop():  # vCenter was lost, or the user stopped, while this clone waited its turn
            if turn is not None:
                b.guard.leave(clone.type, turn, linked=False)
            raise NotStarted
        if turn is None:  # this type stopped at a full copy: not attempted
            return self._skip(b, clone)
        placement = b.placements.get(clone.type)
        host = placement.host_for(clone.name) if placement else None
        t = self.settings.type(clone.type)
        ticket = b.limits.clone(
            place_key(host, t.resource_pool), t.datastore, owner=b.run_id, on_queued=b.emit.queued
        )
        try:
            done = self.cloner.clone_one(
                clone,
                b.env,
                b.actor,
                b.deployed_at,
                b.emit,
                host=host,
                slot=b.guard.slot(ticket, clone.type),
                on_full_copy=partial(b.guard.full_copy, clone.type, clone.name),
            )
        except TypeStopped:  # stopped while this clone waited for a slot
            b.guard.leave(clone.type, turn, linked=False)
            return self._skip(b, clone)
        except BaseException:  # the turn passes on, whatever happened
            b.guard.leave(clone.type, turn, linked=False)
            raise
        if done.state is CloneState.READY:
            b.emit("clone_ready", clone=done.name, ok=True)
            if b.bringup is not None:
                b.bringup.add(done)
        else:
            b.emit("clone_failed", clone=done.name, ok=False, message=done.error or "")
        # After the event: a full copy is reported before what it stopped.
        b.guard.leave(clone.type, turn, linked=done.state is CloneState.READY)
        return done

    def _skip(self, b: _Batch, clone: Clone) -> Clone:
        done = self.repo.update_clone(
            clone.id, state=CloneState.FAILED, error=b.guard.not_attempted(clone.type)
        )
        b.emit("clone_failed", clone=done.name, ok=False, message=done.error or "")
        return done

    def _bringup(
        self, run_id: int, planned: list[Clone], todo: list[Clone], emit: Emitter
    ) -> BringUp:
        """The power-on and customization stage of this run, told of the clones a resumed run
        made before: those not recorded on are powered on now, those on whose customization
        was still awaited are watched again; the run's new clones as each is made."""
        customizing = sum(1 for c in planned if self.settings.type(c.type).customization_spec)
        making = {c.id for c in todo}
        ids = {c.id for c in planned} - making
        earlier = [
            c
            for c in (self.repo.clones(run_id=run_id, states=[CloneState.READY]) if ids else [])
            if c.id in ids and c.moref
        ]
        emit.stages(customizing=customizing, made_before=len(earlier))
        on = [c for c in earlier if c.power_state == "poweredOn"]
        awaited = [c for c in on if c.customization == "pending"]
        # Events are matched from shortly before the first power-on (allowing for clock skew);
        # for customizations awaited since before a crash, from when those clones were recorded.
        since = min(
            [self.clock(), *(c.created_at for c in awaited if c.created_at is not None)]
        ) - timedelta(seconds=30)
        bringup = BringUp(self.core, run_id, emit, since)
        for c in earlier:
            if c.power_state != "poweredOn":
                bringup.add(c)
                continue
            emit("clone_powered_on", clone=c.name)  # on before the crash: counted, not asked
            if c in awaited:
                bringup.watch.add(c)
            elif c.customization in ("succeeded", "failed"):
                why = "" if c.customization == "succeeded" else "customization failed"
                emit("clone_customized", clone=c.name, message=why)
        return bringup

    # Kept whole: a run's outcome in order: re-read, classify, finish the run, savings.
    def _finish_deploy(
        self,
        run_id: int,
        env: Environment,
        planned: list[Clone],
        started: float,
        unreachable: list[VCenterUnreachable],
        emit: Emitter,
        *,
        halted: str = "",
        not_up: int = 0,
    ) -> DeployResult:
        ids = {c.id for c in planned}
        clones = [c for c in self.repo.clones(run_id=run_id) if c.id in ids]
        # After a lost vCenter, clones not attempted stay planned and those mid-clone stay
        # cloning (with their instance UUID recorded); stopped by the user, clones not started
        # stay planned (those vCenter was making are made and recorded): the run is interrupted
        # and `resume` finishes it. Otherwise, re-read what exists so the report counts exactly
        # that.
        unseen: dict[int, str] = {}
        if not unreachable:
            clones = self._verify_ready(clones, unseen)
        ready = [c.name for c in clones if c.state is CloneState.READY and c.id not in unseen]
        unfinished = (CloneState.PLANNED, CloneState.CLONING)
        stopped = bool(unreachable or halted)
        interrupted = [c.name for c in clones if stopped and c.state in unfinished]
        failed = [
            FailedClone(c.name, c.type, c.error or c.state.value)
            for c in clones
            if c.state is not CloneState.READY and c.name not in interrupted
        ]
        failed += [FailedClone(c.name, c.type, unseen[c.id]) for c in clones if c.id in unseen]
        # A clone whose guest customization failed exists and is linked, but is not usable as
        # a training machine yet: the run reports it as a failure (it stays recorded as ready).
        failed += [
            FailedClone(c.name, c.type, c.error or "guest customization failed")
            for c in clones
            if c.state is CloneState.READY and c.customization == "failed"
        ]
        if unreachable:
            state = RunState.INTERRUPTED
            message = (
                f"{unreachable[0]} {len(interrupted)} clones are not finished; once vCenter "
                'answers, run "resume" to finish them.'
            )
        elif halted:
            state = RunState.INTERRUPTED
            left = [f"{len(interrupted)} clones not started"] if interrupted else []
            if not_up:
                left.append(f"{not_up} clones not powered on or customized yet")
            message = stopped_message(halted, ", ".join(left), "deployment")
        elif not failed:
            state, message = RunState.SUCCEEDED, ""
        elif ready:
            state, message = RunState.PARTIAL, f"{len(failed)} of {len(clones)} clones failed"
            if len(failed) > len(clones) - len(ready):
                message += " (including guest customization)"
        else:
            state, message = RunState.FAILED, "every clone failed"
        self.runs.finish_run(
            run_id, state=state, succeeded=len(ready), failed=len(failed), message=message
        )
        elapsed = time.monotonic() - started
        savings = self.queries.savings_or_none(env.name)
        result = DeployResult(
            run_id=run_id,
            environment=env.name,
            requested=len(planned),
            ready=ready,
            failed=failed,
            elapsed_s=elapsed,
            state=state,
            savings=savings,
            message=message,
            interrupted=interrupted,
        )
        emit("finished", message=message or f"{len(ready)} clones ready in {env.name}")
        return result

    def _verify_ready(
        self, clones: list[Clone], unseen: dict[int, str] | None = None
    ) -> list[Clone]:
        """Count exactly what exists: re-read every clone this run says is ready (one call).
        Those vCenter would not show stay ready; `unseen` gets why, by clone id."""
        unseen = {} if unseen is None else unseen
        ready = [c for c in clones if c.state is CloneState.READY and c.moref]
        uuids = self.vcenter.instance_uuids([c.moref for c in ready if c.moref])
        out = {c.id: c for c in clones}
        for c in ready:
            moref = c.moref or ""
            seen = uuids.visibility(moref)
            if seen is Visibility.UNSEEN:  # made and recorded: never counted gone, but said
                unseen[c.id] = uuids.unseen[moref].cannot_see(c.name)
            elif seen is Visibility.GONE or uuids.seen[moref] != c.instance_uuid:
                out[c.id] = self.repo.update_clone(
                    c.id, state=CloneState.MISSING, error="missing from vCenter after deployment"
                )
        return [out[c.id] for c in clones]


def confine(repo: Repository, vcenter: VCenter, placements: dict[str, TypePlacement]) -> None:
    """Confine each parent's clones to its host group (made on its hosts, and powered on
    there: a power-on keeps a VM on the host it is registered on)."""
    for placement in placements.values():
        if placement.group:
            members = [
                c.moref
                for c in repo.clones(states=[CloneState.READY])
                if c.parent == placement.parent and c.host in placement.group and c.moref
            ]
            vcenter.ensure_drs_confinement(
                placement.cluster, placement.prefix, members, placement.group
            )
