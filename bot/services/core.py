"""The service layer: deploy, strip back, status, savings and types, for every front end.

Front ends (the CLI, Slack handlers, the scheduler) build a command, call one method here and
render the result or the progress events. Nothing here knows about Slack or the terminal, and
nothing here speaks SQL (that is `storage/`) or pyVmomi (that is `bot.adapters.vcenter.client`).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from bot.domain import grammar
from bot.domain.errors import (
    CapacityError,
    ClonesError,
    ConflictError,
    LinkedCloneCheckFailed,
    NotFoundError,
    UsageError,
    VCenterError,
    VCenterFault,
    VCenterUnreachable,
)
from bot.domain.models import Clone, CloneState, Environment, ParentFacts, Run, RunKind, RunState
from bot.domain.placement import Host, drs_prefix, plan_confinement
from bot.domain.provenance import provenance_note, read_provenance
from bot.domain.results import (
    CapacityNeed,
    DeployResult,
    Drift,
    EnvironmentStatus,
    EventKind,
    FailedClone,
    ProgressEvent,
    TeardownPlan,
    TeardownResult,
)
from bot.domain.savings import Savings, compute_savings
from bot.domain.vsphere import (
    ATTR_DEPLOYED_AT,
    ATTR_DEPLOYED_BY,
    ATTR_DEPLOYED_FROM,
    ATTR_ENVIRONMENT,
    ATTR_MANAGED_BY,
    CLONE_ATTRIBUTES,
    PROVENANCE_ATTRIBUTES,
    CloneRequest,
    VmFacts,
)
from bot.host import process_owner
from bot.ports import Repository, VCenter
from bot.services.preflight import Needs, Preflight
from bot.settings import Settings, TypeSettings

log = logging.getLogger(__name__)

GIB = 2**30
HEARTBEAT_S = 15.0  # how often a running run says its process is alive
LIVE_STATES = tuple(s for s in CloneState if s.live)

ProgressCallback = Callable[[ProgressEvent], None]


@dataclass(frozen=True)
class TypeStatus:
    type: TypeSettings
    readiness: str  # ready / needs snapshot / powered on / parent missing
    parent: ParentFacts | None = None


class Service:
    def __init__(
        self,
        settings: Settings,
        repo: Repository,
        vcenter: VCenter,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.repo = repo
        self.vcenter = vcenter
        self.clock = clock
        # One deployment or strip back per environment at a time, within this process.
        self._env_locks: dict[str, threading.Lock] = {}
        self._env_locks_guard = threading.Lock()
        # Runs this process owns are marked with it and kept alive by a heartbeat, so that a
        # run whose process died can be told apart from one still in progress elsewhere.
        self.owner = process_owner()
        self._active_runs: set[int] = set()
        self._heartbeat: threading.Thread | None = None
        self._heartbeat_wake = threading.Event()

    # ================================================================= runs
    def start_run(
        self,
        *,
        environment: str,
        kind: RunKind,
        requested_by: str,
        requested: int,
        command: str,
        source: str,
        channel: str = "",
        clone_ids: Sequence[int] = (),
    ) -> Run:
        """Record a run owned by this process and the clones it owns (refused while the
        environment has another), and audit who started it."""
        run = self.repo.start_run(
            environment=environment,
            kind=kind,
            requested_by=requested_by,
            requested=requested,
            owner=self.owner,
            clone_ids=clone_ids,
        )
        self.track_run(run.id)
        self.repo.audit(
            actor=requested_by,
            source=source,
            channel=channel,
            command=command,
            result="started",
            detail=f"run {run.id}: {requested} clones",
        )
        return run

    def track_run(self, run_id: int) -> None:
        with self._env_locks_guard:
            self._active_runs.add(run_id)
            if self._heartbeat is None or not self._heartbeat.is_alive():
                self._heartbeat = threading.Thread(
                    target=self._beat, name="run-heartbeat", daemon=True
                )
                self._heartbeat.start()

    def finish_run(
        self, run_id: int, *, state: RunState, succeeded: int, failed: int, message: str = ""
    ) -> Run:
        try:
            return self.repo.finish_run(
                run_id, state=state, succeeded=succeeded, failed=failed, message=message
            )
        finally:
            with self._env_locks_guard:
                self._active_runs.discard(run_id)

    def _beat(self) -> None:
        while True:
            self._heartbeat_wake.wait(HEARTBEAT_S)
            with self._env_locks_guard:
                runs = list(self._active_runs)
                if not runs:
                    self._heartbeat = None
                    return
            for run_id in runs:
                try:
                    self.repo.heartbeat(run_id)
                except Exception:  # a missed beat only makes the run look stale sooner
                    log.exception("heartbeat of run %s failed", run_id)

    # ================================================================= deploy
    def deploy(
        self,
        command: grammar.Deploy,
        *,
        actor: str,
        source: str = "cli",
        channel: str = "",
        on_event: ProgressCallback | None = None,
    ) -> DeployResult:
        env_name = command.environment or self.default_environment(command)
        items = [(self.settings.type(i.type), i.count) for i in command.items]
        power_on = command.power_on or any(t.power_on for t, _ in items)
        self._check_counts(env_name, items)
        with self.environment_lock(env_name):
            self._check_customization_specs(items)
            parents = self._prepare_parents(items)
            self._check_capacity(items, parents, power_on=power_on)
            placements = {t.name: self.placement_for(t) for t, _ in items}
            self._preflight(items, parents, placements, power_on=power_on)
            self._snapshot_parents(items, parents)
            self.vcenter.ensure_attribute_definitions(self._attribute_names(items))
            env = self.repo.ensure_environment(env_name, owner=actor, channel=channel)
            total = sum(n for _, n in items)
            run = self.start_run(
                environment=env.name,
                kind=RunKind.DEPLOY,
                requested_by=actor,
                requested=total,
                command=f"deploy {_items_text(items)} as {env.name}"
                + (" and power on" if power_on else ""),
                source=source,
                channel=channel,
            )
            planned: list[Clone] = []
            for t, n in items:
                self._remember_parent(parents[t.name])
                reserved = self.repo.reserve_clones(
                    environment=env.name,
                    type=t.name,
                    parent=t.parent,
                    pattern=t.name_pattern,
                    count=n,
                    run_id=run.id,
                )
                placements[t.name] = placements[t.name].assign([c.name for c in reserved])
                planned += reserved
            return self.run_clones(
                run.id, env, planned, actor, on_event, placements=placements, power_on=power_on
            )

    def default_environment(self, command: grammar.Deploy) -> str:
        first = command.items[0].type
        return f"{first}-{self.clock():%m%d}"

    def _check_counts(self, env_name: str, items: Sequence[tuple[TypeSettings, int]]) -> None:
        existing = self.repo.clones(environment=env_name, states=LIVE_STATES)
        by_type = Counter(c.type for c in existing)
        for t, n in items:
            if by_type[t.name] + n > t.max_count:
                have = by_type[t.name]
                more = f" ({have} already in {env_name})" if have else ""
                raise UsageError(
                    f"{n} {t.name} clones is more than the type's maximum of {t.max_count}{more}; "
                    f'ask for at most {max(t.max_count - have, 0)}, e.g. "deploy {t.name} '
                    f'{max(min(t.max_count - have, 25), 1)} as {env_name}".'
                )
        total = len(existing) + sum(n for _, n in items)
        if total > self.settings.max_environment_clones:
            raise UsageError(
                f"An environment holds at most {self.settings.max_environment_clones} clones; "
                f"{env_name} would have {total}. Split the cohort into two environments."
            )

    def _prepare_parents(self, items: Sequence[tuple[TypeSettings, int]]) -> dict[str, ParentFacts]:
        """Check every parent before anything is created (snapshots come after every check)."""
        facts: dict[str, ParentFacts] = {}
        for t, _ in items:
            f = self.vcenter.parent_facts(t.parent, t.snapshot)
            if f.snapshot is None and f.powered_on:
                raise VCenterError(
                    f'Parent "{t.parent}" of type {t.name} is powered on and has no base snapshot '
                    f'"{t.snapshot}". Shut it down cleanly, then deploy again (the bot snapshots '
                    "a parent only while it is powered off)."
                )
            facts[t.name] = f
        return facts

    def _preflight(
        self,
        items: Sequence[tuple[TypeSettings, int]],
        parents: dict[str, ParentFacts],
        placements: dict[str, _TypePlacement],
        *,
        power_on: bool,
    ) -> None:
        """The cheap part of `clones check`, before anything changes: each type's folder,
        pool and datastore exist, and the account holds what this deployment uses."""
        needs = [
            (
                t,
                Needs(
                    snapshot=parents[t.name].snapshot is None,
                    confine=bool(placements[t.name].group),
                    power_on=power_on,
                ),
            )
            for t, _ in items
        ]
        Preflight(self.settings, self.vcenter).before_deploy(needs, self._attribute_names(items))

    def _snapshot_parents(
        self, items: Sequence[tuple[TypeSettings, int]], facts: dict[str, ParentFacts]
    ) -> None:
        """Create the base snapshot of each parent that has none (checked: powered off)."""
        for t, _ in items:
            if facts[t.name].snapshot is None:
                self.vcenter.ensure_base_snapshot(t.parent, t.snapshot)
                self.repo.audit(
                    actor="clones",
                    source="service",
                    command=f"snapshot {t.parent}",
                    result="ok",
                    detail=f'created base snapshot "{t.snapshot}"',
                )

    def _check_capacity(
        self,
        items: Sequence[tuple[TypeSettings, int]],
        parents: dict[str, ParentFacts],
        *,
        power_on: bool,
    ) -> None:
        for need in self.capacity_needs(items, parents, power_on=power_on):
            if need.free_bytes < need.needed_bytes + need.headroom_bytes:
                swap = (
                    f" including {need.swap_bytes / GIB:.2f} GB of swap for powered-on clones"
                    if need.swap_bytes
                    else ""
                )
                raise CapacityError(
                    f"Datastore {need.datastore} has {need.free_bytes / GIB:.2f} GB free; the "
                    f"linked clones need about {need.needed_bytes / GIB:.2f} GB{swap}, plus "
                    f"{need.headroom_bytes / GIB:.2f} GB headroom. Free some space, deploy fewer "
                    "clones, or lower capacity_headroom_gb."
                )

    def capacity_needs(
        self,
        items: Sequence[tuple[TypeSettings, int]],
        parents: dict[str, ParentFacts],
        *,
        power_on: bool,
    ) -> list[CapacityNeed]:
        """Estimated new space per datastore: each clone's delta, plus RAM-sized swap files
        when the clones will be powered on (vSphere creates one per running VM)."""
        needed: Counter[str] = Counter()
        swap: Counter[str] = Counter()
        for t, n in items:
            needed[t.datastore] += n * self.delta_estimate(t)
            if power_on:
                swap[t.datastore] += n * parents[t.name].memory_mb * 2**20
        headroom = int(self.settings.capacity_headroom_gb * GIB)
        return [
            CapacityNeed(
                datastore=ds,
                free_bytes=self.vcenter.datastore_free_bytes(ds),
                needed_bytes=needed[ds] + swap[ds],
                swap_bytes=swap[ds],
                headroom_bytes=headroom,
            )
            for ds in needed
        ]

    def _check_customization_specs(self, items: Sequence[tuple[TypeSettings, int]]) -> None:
        for t, _ in items:
            spec = t.customization_spec
            if spec and not self.vcenter.customization_spec_exists(spec):
                raise NotFoundError(
                    f'Customization spec "{spec}" of type {t.name} does not exist in vCenter; '
                    "create it (Policies and Profiles) or fix the type's customization_spec."
                )

    def placement_for(self, t: TypeSettings) -> _TypePlacement:
        """Check the host limit for a shared base disk before anything is created."""
        cluster, hosts = self.vcenter.cluster_hosts(t.resource_pool)
        limit = self.settings.max_hosts_per_base_disk
        prefix = drs_prefix(t.parent)
        current: list[str] = []
        if len(hosts) > limit:
            _, current, _ = self.vcenter.drs_confinement(cluster, prefix)
        live = self.repo.clones(type=t.name, states=LIVE_STATES)
        load = Counter(c.host for c in live if c.host)
        plain_hosts = [Host(h.moref, h.name, h.usable) for h in hosts]
        confinement = plan_confinement(
            parent=t.parent,
            names=[],
            hosts=plain_hosts,
            current_group=current,
            load=load,
            limit=limit,
            confine=self.settings.confine_hosts,
        )
        return _TypePlacement(
            cluster=cluster,
            prefix=prefix,
            hosts=plain_hosts,
            group=confinement.group,
            load=load,
            limit=limit,
            parent=t.parent,
        )

    def _attribute_names(self, items: Sequence[tuple[TypeSettings, int]]) -> list[str]:
        names = list(CLONE_ATTRIBUTES)
        if self.settings.provenance_attributes:
            names += PROVENANCE_ATTRIBUTES
        for t, _ in items:
            names += [k for k in t.attributes if k not in names]
        return names

    def delta_estimate(self, t: TypeSettings) -> int:
        """Expected delta per new clone: the average of this type's recorded clones, else the
        type's delta_estimate_gb, else 1 GB (a powered-off linked clone's delta starts small)."""
        seen = [
            c.delta_bytes
            for c in self.repo.clones(type=t.name, states=[CloneState.READY])
            if c.delta_bytes
        ]
        if seen:
            return int(sum(seen) / len(seen))
        if t.delta_estimate_gb is not None:
            return int(t.delta_estimate_gb * GIB)
        return GIB

    def _remember_parent(self, facts: ParentFacts) -> None:
        self.repo.save_parent_facts(facts)

    def run_clones(
        self,
        run_id: int,
        env: Environment,
        planned: list[Clone],
        actor: str,
        on_event: ProgressCallback | None,
        *,
        placements: dict[str, _TypePlacement] | None = None,
        power_on: bool = False,
        todo: list[Clone] | None = None,
    ) -> DeployResult:
        """Clone `todo` (default: all of `planned`) in the pool; report on all of `planned`."""
        work_list = planned if todo is None else todo
        started = time.monotonic()
        deployed_at = self.clock().isoformat(timespec="seconds")
        emit = Emitter(run_id, env.name, RunKind.DEPLOY, len(work_list), started, on_event)
        emit("started", message=f"Deploying {len(work_list)} linked clones into {env.name}")
        unreachable: list[VCenterUnreachable] = []
        stop = threading.Event()
        guard = FullCopyGuard()

        def skip(clone: Clone) -> Clone:
            done = self.repo.update_clone(
                clone.id, state=CloneState.FAILED, error=guard.not_attempted(clone.type)
            )
            emit("clone_failed", clone=done.name, ok=False, message=done.error or "")
            return done

        def work(clone: Clone) -> Clone:
            if stop.is_set():
                return clone
            turn = guard.enter(clone.type)
            if stop.is_set():  # vCenter was lost while this clone waited for its turn
                if turn is not None:
                    guard.leave(clone.type, turn, linked=False, name=clone.name)
                return clone
            if turn is None:  # this type stopped at a full copy: not attempted
                return skip(clone)
            host = placements[clone.type].host_for(clone.name) if placements else None
            copies: list[LinkedCloneCheckFailed] = []
            try:
                done = self.clone_one(
                    clone,
                    env,
                    actor,
                    deployed_at,
                    emit,
                    host=host,
                    slot=guard.slot(slots, clone.type),
                    on_full_copy=copies.append,
                )
            except TypeStopped:  # stopped while this clone waited for a slot
                guard.leave(clone.type, turn, linked=False, name=clone.name)
                return skip(clone)
            except BaseException as exc:  # the turn passes on, whatever happened
                guard.leave(clone.type, turn, linked=False, name=clone.name)
                if isinstance(exc, VCenterUnreachable):
                    unreachable.append(exc)
                    stop.set()
                raise
            if done.state is CloneState.READY:
                emit("clone_ready", clone=done.name, ok=True)
            else:
                emit("clone_failed", clone=done.name, ok=False, message=done.error or "")
            guard.leave(  # after the event: a full copy is reported before what it stopped
                clone.type,
                turn,
                linked=done.state is CloneState.READY,
                name=clone.name,
                full_copy=copies[0] if copies else None,
            )
            return done

        # `concurrency` clone tasks at once in vCenter (the slots); a clone frees its slot when
        # vCenter has made it, and is labelled and recorded while the next one clones.
        slots = threading.BoundedSemaphore(self.settings.concurrency)
        with ThreadPoolExecutor(
            max_workers=2 * self.settings.concurrency, thread_name_prefix="clone"
        ) as pool:
            # Each type's first clone first, so the types' probes run side by side.
            futures: list[Future[Clone]] = [pool.submit(work, c) for c in probes_first(work_list)]
            wait(futures, return_when=FIRST_EXCEPTION)
            if stop.is_set():
                for f in futures:
                    f.cancel()
        if not unreachable:
            try:
                self._after_clones(run_id, planned, placements or {}, power_on, emit)
            except VCenterUnreachable as exc:
                unreachable.append(exc)
        result = self._finish_deploy(run_id, env, planned, started, unreachable, emit)
        if guard.stopped:  # said once, for the run: the first copy's own error has the causes
            note = guard.summary()
            message = f"{result.message}. {note}" if result.message else note
            self.repo.update_run(run_id, message=message)
            result = replace(result, message=message)
        return result

    def _after_clones(
        self,
        run_id: int,
        planned: list[Clone],
        placements: dict[str, _TypePlacement],
        power_on: bool,
        emit: Emitter,
    ) -> None:
        """Confine each parent's clones to its host group, then power on and customise."""
        ids = {c.id for c in planned}
        ready = [
            c
            for c in self.repo.clones(run_id=run_id, states=[CloneState.READY])
            if c.id in ids and c.moref
        ]
        for placement in placements.values():
            if placement.group:
                members = [
                    c.moref
                    for c in self.repo.clones(states=[CloneState.READY])
                    if c.parent == placement.parent and c.host in placement.group and c.moref
                ]
                self.vcenter.ensure_drs_confinement(
                    placement.cluster, placement.prefix, members, placement.group
                )
        if power_on and ready:
            # Events are matched from shortly before the power-on (allowing for clock skew).
            since = self.clock() - timedelta(seconds=30)
            self.power_clones(ready, "on", emit=emit)
            self.await_customization(ready, since, emit)

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

    def clone_one(
        self,
        clone: Clone,
        env: Environment,
        actor: str,
        deployed_at: str,
        emit: Emitter,
        *,
        host: str | None = None,
        keep_attributes: Mapping[str, str] | None = None,
        new_uuid: bool = False,
        slot: AbstractContextManager[object] | None = None,
        on_full_copy: Callable[[LinkedCloneCheckFailed], None] | None = None,
    ) -> Clone:
        """Clone one VM (while holding `slot`, if given), then label it; record the outcome.

        A clone that comes out as a full copy is removed by the adapter; its removal is
        audited here, and `on_full_copy` hears of it (deploy stops the type there)."""
        t = self.settings.type(clone.type)
        attempts = 0
        try:
            with slot or nullcontext():
                instance_uuid = (None if new_uuid else clone.instance_uuid) or str(uuid.uuid4())
                # Record the instance UUID before asking vCenter, so a lost reply or a crash
                # can still find the VM again by it (and never make a second one).
                clone = self.repo.update_clone(
                    clone.id,
                    state=CloneState.CLONING,
                    instance_uuid=instance_uuid,
                    customization="",
                )
                request = self.clone_request(
                    clone, t, env.name, actor, keep_attributes, deployed_at=deployed_at, host=host
                )
                for attempt in self._retrying(emit, clone.name):
                    with attempt:
                        attempts += 1
                        facts = self._clone_or_adopt(request)
            # Labelling costs vCenter little: it happens after the slot is free, so the next
            # clone starts at once. Idempotent, so a transient fault just repeats it.
            for attempt in self._retrying(emit, clone.name):
                with attempt:
                    facts = self.vcenter.finish_clone(facts, request)
        except VCenterUnreachable:
            self.repo.update_clone(clone.id, attempts=attempts)
            raise
        except LinkedCloneCheckFailed as exc:
            self._record_full_copy(clone, exc)
            if on_full_copy is not None:
                on_full_copy(exc)
            return self.repo.update_clone(
                clone.id,
                state=CloneState.FAILED,
                error=str(exc),
                attempts=attempts,
                moref=None if exc.removed else exc.moref,
            )
        except ClonesError as exc:
            return self.repo.update_clone(
                clone.id, state=CloneState.FAILED, error=str(exc), attempts=attempts
            )
        return self.repo.update_clone(
            clone.id,
            state=CloneState.READY,
            moref=facts.moref,
            instance_uuid=facts.instance_uuid,
            delta_bytes=facts.unshared_bytes or facts.committed_bytes,
            error=None,
            attempts=attempts,
            host=facts.host or None,
            power_state="poweredOn" if facts.powered_on else "poweredOff",
        )

    def _record_full_copy(self, clone: Clone, exc: LinkedCloneCheckFailed) -> None:
        self.repo.audit(
            actor="clones",
            source="service",
            command=f"remove full copy {clone.name}",
            result="ok" if exc.removed else "error",
            detail=f"{exc.moref} in {clone.environment}: "
            + ("destroyed" if exc.removed else "NOT destroyed, remove it by hand"),
        )

    def _retrying(self, emit: Emitter, name: str) -> Retrying:
        """Retries with backoff for transient vCenter faults, each one reported as progress."""

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            emit("clone_retry", clone=name, message=str(exc))

        return Retrying(
            stop=stop_after_attempt(self.settings.retries + 1),
            wait=wait_exponential_jitter(
                multiplier=self.settings.retry_backoff_s,
                max=60,
                jitter=self.settings.retry_backoff_s,
            ),
            retry=retry_if_exception(lambda e: isinstance(e, VCenterFault) and e.transient),
            before_sleep=before_sleep,
            reraise=True,
        )

    def clone_request(
        self,
        clone: Clone,
        t: TypeSettings,
        environment: str,
        actor: str,
        keep_attributes: Mapping[str, str] | None = None,
        *,
        deployed_at: str | None = None,
        host: str | None = None,
    ) -> CloneRequest:
        """What to ask vCenter for one clone (also used to finish an adopted one)."""
        assert clone.instance_uuid, "the instance UUID is recorded before cloning"
        provenance = {
            ATTR_MANAGED_BY: self.settings.managed_by,
            ATTR_ENVIRONMENT: environment,
            ATTR_DEPLOYED_FROM: t.parent,
            "Snapshot": t.snapshot,
            ATTR_DEPLOYED_BY: actor,
            ATTR_DEPLOYED_AT: deployed_at or self.clock().isoformat(timespec="seconds"),
        }
        attributes = {k: provenance[k] for k in CLONE_ATTRIBUTES}
        if self.settings.provenance_attributes:
            attributes.update({k: provenance[k] for k in PROVENANCE_ATTRIBUTES})
        return CloneRequest(
            parent=t.parent,
            snapshot=t.snapshot,
            name=clone.name,
            instance_uuid=clone.instance_uuid,
            folder=t.folder,
            resource_pool=t.resource_pool,
            datastore=t.datastore,
            attributes={
                **attributes,
                **extra_attributes(t, clone.name, environment),
                **(keep_attributes or {}),
            },
            notes=provenance_note(provenance),
            host=host,
            customization_spec=t.customization_spec,
            disk_mode=t.disk_mode,
        )

    def _clone_or_adopt(self, request: CloneRequest) -> VmFacts:
        try:
            return self.vcenter.clone(request, finish=False)
        except VCenterFault as exc:
            if exc.fault != "DuplicateName":
                raise
            # A VM with this name exists. It is ours only if it carries the instance UUID we
            # recorded (an earlier attempt whose reply was lost); anything else is not touched.
            same_name = [
                vm for vm in self.vcenter.find_vms(request.folder) if vm.name == request.name
            ]
            mine = next(
                (vm for vm in same_name if vm.instance_uuid == request.instance_uuid and vm.linked),
                None,
            )
            if mine is not None:
                return mine
            if not same_name:
                raise VCenterFault(
                    f"vCenter refused the name {request.name} (DuplicateName), though no VM of "
                    f"that name is in folder {request.folder} now; nothing was created. Deploy "
                    "again to retry, or check the folder in vCenter.",
                    "DuplicateName",
                    transient=False,
                ) from None
            raise VCenterFault(
                f"A VM named {request.name} already exists in folder {request.folder} and was "
                "not made by this deployment; it was left alone. Rename or remove it, or "
                "change the type's name_pattern.",
                "DuplicateName",
                transient=False,
            ) from None

    def _finish_deploy(
        self,
        run_id: int,
        env: Environment,
        planned: list[Clone],
        started: float,
        unreachable: list[VCenterUnreachable],
        emit: Emitter,
    ) -> DeployResult:
        ids = {c.id for c in planned}
        clones = [c for c in self.repo.clones(run_id=run_id) if c.id in ids]
        # After a lost vCenter, clones not attempted stay planned and those mid-clone stay
        # cloning (with their instance UUID recorded): the run is interrupted and `resume`
        # finishes it. Otherwise, re-read what exists so the report counts exactly that.
        if not unreachable:
            clones = self._verify_ready(clones)
        ready = [c.name for c in clones if c.state is CloneState.READY]
        unfinished = (CloneState.PLANNED, CloneState.CLONING)
        interrupted = [c.name for c in clones if unreachable and c.state in unfinished]
        failed = [
            FailedClone(c.name, c.type, c.error or c.state.value)
            for c in clones
            if c.state is not CloneState.READY and c.name not in interrupted
        ]
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
        elif not failed:
            state, message = RunState.SUCCEEDED, ""
        elif ready:
            state, message = RunState.PARTIAL, f"{len(failed)} of {len(clones)} clones failed"
            if len(failed) > len(clones) - len(ready):
                message += " (including guest customization)"
        else:
            state, message = RunState.FAILED, "every clone failed"
        self.finish_run(
            run_id, state=state, succeeded=len(ready), failed=len(failed), message=message
        )
        elapsed = time.monotonic() - started
        savings = self._savings_or_none(env.name)
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

    def _verify_ready(self, clones: list[Clone]) -> list[Clone]:
        """Count exactly what exists: re-read every clone this run says is ready (one call)."""
        ready = [c for c in clones if c.state is CloneState.READY and c.moref]
        uuids = self.vcenter.instance_uuids([c.moref for c in ready if c.moref])
        out = {c.id: c for c in clones}
        for c, found in zip(ready, uuids, strict=True):
            if found is None or found != c.instance_uuid:
                out[c.id] = self.repo.update_clone(
                    c.id, state=CloneState.MISSING, error="missing from vCenter after deployment"
                )
        return [out[c.id] for c in clones]

    # ================================================================= strip back
    def teardown_plan(self, environment: str) -> TeardownPlan:
        env = self.environment(environment)
        clones = self.repo.clones(environment=env.name, states=LIVE_STATES)
        if not clones:
            raise NotFoundError(f"Environment {env.name} has no clones to strip back.")
        by_type = Counter(c.type for c in clones)
        return TeardownPlan(
            environment=env.name,
            by_type=dict(sorted(by_type.items())),
            clones=len(clones),
            reclaim_bytes=sum(c.delta_bytes or 0 for c in clones),
        )

    def teardown(
        self,
        environment: str,
        *,
        actor: str,
        source: str = "cli",
        channel: str = "",
        on_event: ProgressCallback | None = None,
    ) -> TeardownResult:
        """Strip back the environment's live clones as they are now: the run records that set
        when it starts and acts on it alone (its recovery too), never on clones deployed into
        the same environment name later."""
        env = self.environment(environment)
        with self.environment_lock(env.name):
            clones = self.repo.clones(environment=env.name, states=LIVE_STATES)
            if not clones:
                raise NotFoundError(f"Environment {env.name} has no clones to strip back.")
            run = self.start_run(
                environment=env.name,
                kind=RunKind.TEARDOWN,
                requested_by=actor,
                requested=len(clones),
                command=f"teardown {env.name}",
                source=source,
                channel=channel,
                clone_ids=[c.id for c in clones],
            )
            return self.strip_run(run.id, env, on_event)

    def strip_run(
        self, run_id: int, env: Environment, on_event: ProgressCallback | None
    ) -> TeardownResult:
        """Destroy the live clones that strip back run `run_id` owns (verified ours first)."""
        clones = self.repo.clones(run_id=run_id, states=LIVE_STATES)
        started = time.monotonic()
        emit = Emitter(run_id, env.name, RunKind.TEARDOWN, len(clones), started, on_event)
        emit("started", message=f"Stripping back {len(clones)} clones of {env.name}")
        verified, gone, skipped = self.verify_ours(env, clones)
        for c in gone:
            self.repo.update_clone(c.id, state=CloneState.DESTROYED, error=None)
            emit("clone_ready", clone=c.name, ok=True, message="already gone")
        for c, why in skipped:
            emit("clone_failed", clone=c.name, ok=False, message=why)
        destroyed: list[str] = []
        already_gone = [c.name for c in gone]
        failed: list[FailedClone] = []
        reclaimed = 0
        lock = threading.Lock()

        def work(item: tuple[Clone, VmFacts]) -> None:
            nonlocal reclaimed
            clone, facts = item
            self.repo.update_clone(clone.id, state=CloneState.DESTROYING, moref=facts.moref)
            try:
                for attempt in self._retrying(emit, clone.name):
                    with attempt:
                        outcome = self.vcenter.destroy(
                            facts.moref, expected_uuid=facts.instance_uuid, facts=facts
                        )
            except VCenterUnreachable:
                raise
            except ClonesError as exc:
                self.repo.update_clone(clone.id, state=CloneState.READY, error=str(exc))
                with lock:
                    failed.append(FailedClone(clone.name, clone.type, str(exc)))
                emit("clone_failed", clone=clone.name, ok=False, message=str(exc))
                return
            self.repo.update_clone(clone.id, state=CloneState.DESTROYED, error=None)
            with lock:
                if outcome.gone:
                    already_gone.append(clone.name)
                else:
                    destroyed.append(clone.name)
                    reclaimed += outcome.reclaimed_bytes
            emit("clone_ready", clone=clone.name, ok=True, message="already gone" * outcome.gone)

        error: VCenterUnreachable | None = None
        with ThreadPoolExecutor(
            max_workers=self.settings.concurrency, thread_name_prefix="strip"
        ) as pool:
            futures = [pool.submit(work, item) for item in verified]
            for f in futures:
                if f.cancelled():  # not started: vCenter was lost first (stays ready)
                    continue
                exc = f.exception()
                if isinstance(exc, VCenterUnreachable) and error is None:
                    error = exc
                    for other in futures:
                        other.cancel()
                elif exc is not None and not isinstance(exc, VCenterUnreachable):
                    raise exc
        if error is not None:
            # Whatever was mid-destroy goes back to ready; the resumed run re-verifies it.
            for c in self.repo.clones(run_id=run_id, states=[CloneState.DESTROYING]):
                self.repo.update_clone(c.id, state=CloneState.READY)
        problems = failed + [FailedClone(c.name, c.type, why) for c, why in skipped]
        if error is not None:
            state = RunState.INTERRUPTED
        elif problems:
            state = RunState.PARTIAL if destroyed or already_gone else RunState.FAILED
        else:
            state = RunState.SUCCEEDED
        message = str(error) if error else ""
        self.finish_run(
            run_id,
            state=state,
            succeeded=len(destroyed) + len(already_gone),
            failed=len(problems),
            message=message,
        )
        result = TeardownResult(
            run_id=run_id,
            environment=env.name,
            destroyed=sorted(destroyed),
            already_gone=sorted(already_gone),
            skipped=[FailedClone(c.name, c.type, why) for c, why in skipped],
            failed=failed,
            reclaimed_bytes=reclaimed,
            elapsed_s=time.monotonic() - started,
            state=state,
            renamed={c.name: f.name for c, f in verified if f.name != c.name},
            message=message,
        )
        emit("finished", message=f"{len(destroyed)} clones destroyed, {result.reclaimed_gb} GB")
        if error is not None:
            raise error
        return result

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

    # ================================================================= reading
    def environment(self, name: str) -> Environment:
        env = self.repo.get_environment(name)
        if env is None:
            known = [e.name for e in self.repo.list_environments()]
            hint = grammar.suggest(name, known)
            did = f' Did you mean "{hint}"?' if hint else ""
            listing = ", ".join(known[:10]) if known else "none yet"
            raise NotFoundError(
                f'No environment named "{name}".{did} Environments: {listing}. '
                'Type "status" to see them.'
            )
        return env

    def status(self, environment: str | None = None) -> list[EnvironmentStatus]:
        counts = self.repo.clone_counts()
        if environment is not None:
            env = self.environment(environment)
            clones = self.repo.clones(environment=env.name)
            by_type = {
                t: {s.value: n for s, n in states.items()}
                for t, states in counts.get(env.name, {}).items()
            }
            hosts: dict[str, set[str]] = {}
            for c in clones:
                if c.state.live and c.host:
                    hosts.setdefault(c.parent, set()).add(c.host)
            spread = {parent: len(h) for parent, h in sorted(hosts.items())}
            try:
                drift, unchecked = self.drift(env.name, clones), ""
            except VCenterError as exc:
                drift, unchecked = {}, str(exc)
            return [
                EnvironmentStatus(
                    env,
                    by_type,
                    clones,
                    hosts_by_parent=spread,
                    drift=drift,
                    checked=not unchecked,
                    unchecked=unchecked,
                )
            ]
        out = []
        for env in self.repo.list_environments():
            by_type = {
                t: {s.value: n for s, n in states.items()}
                for t, states in counts.get(env.name, {}).items()
            }
            status = EnvironmentStatus(env, by_type)
            if status.live or env.ends_at or env.starts_at:
                out.append(status)
        return out

    def drift(self, environment: str, clones: Sequence[Clone]) -> dict[int, Drift]:
        """Compare recorded clones that should exist with what vCenter holds, in one read."""
        settled = [
            c for c in clones if c.state in (CloneState.READY, CloneState.DESTROYING) and c.moref
        ]
        seen = self.vcenter.sightings([c.moref for c in settled if c.moref])
        by_moref = {vm.moref: vm for vm in seen}
        out: dict[int, Drift] = {}
        for c in settled:
            vm = by_moref.get(c.moref or "")
            if vm is None or vm.instance_uuid != c.instance_uuid:
                out[c.id] = Drift(missing=True)
                continue
            power = ""
            if c.power_state in ("poweredOn", "poweredOff"):
                recorded_on = c.power_state == "poweredOn"
                if vm.powered_on != recorded_on:
                    power = "on" if vm.powered_on else "off"
            labels = []
            for name, expected in (
                (ATTR_MANAGED_BY, self.settings.managed_by),
                (ATTR_ENVIRONMENT, environment),
            ):
                actual = vm.attributes.get(name)
                if actual != expected:
                    labels.append(f"{name} is {actual!r}" if actual else f"{name} removed")
            drift = Drift(
                renamed_to=vm.name if vm.name != c.name else "",
                power=power,
                relabelled=tuple(labels),
            )
            if drift.text:
                out[c.id] = drift
        return out

    def savings(self, environment: str | None = None) -> Savings:
        if environment is not None:
            self.environment(environment)
        deltas = self.repo.clone_deltas(environment=environment)
        parents = self.repo.parent_facts()
        missing = {parent for parent, _ in deltas} - set(parents)
        for name in missing:  # recorded before parent facts were kept: ask vCenter once
            t = next(t for t in self.settings.types.values() if t.parent == name)
            facts = self.vcenter.parent_facts(t.parent, t.snapshot)
            self._remember_parent(facts)
            parents[name] = facts
        return compute_savings(deltas, parents)

    def _savings_or_none(self, environment: str) -> Savings | None:
        try:
            return self.savings(environment)
        except ClonesError as exc:
            log.warning("savings for %s unavailable: %s", environment, exc)
            return None

    def types(self) -> list[TypeStatus]:
        # A connection that fails (TLS, login, network) is one error with its reason, not a
        # readiness of each type.
        self.vcenter.connect()
        out = []
        for t in self.settings.types.values():
            try:
                facts = self.vcenter.parent_facts(t.parent, t.snapshot)
            except NotFoundError:
                out.append(TypeStatus(t, "parent missing"))
                continue
            if facts.snapshot is not None:
                readiness = "ready"
            elif facts.powered_on:
                readiness = "powered on"
            else:
                readiness = "needs snapshot"
            out.append(TypeStatus(t, readiness, facts))
        return out

    # ================================================================= helpers
    def environment_lock(self, name: str) -> _TryLock:
        with self._env_locks_guard:
            lock = self._env_locks.setdefault(name, threading.Lock())
        return _TryLock(lock, name)


@dataclass(frozen=True)
class _TypePlacement:
    """A type's cluster and host group for one deployment, and each new clone's host."""

    cluster: Any
    prefix: str
    hosts: list[Host]
    group: tuple[str, ...]
    load: Counter[str]
    limit: int
    parent: str
    assignments: dict[str, str | None] = field(default_factory=dict)

    def assign(self, names: Sequence[str]) -> _TypePlacement:
        if not self.group:
            return replace(self, assignments={n: None for n in names})
        plan = plan_confinement(
            parent=self.parent,
            names=names,
            hosts=self.hosts,
            current_group=self.group,
            load=self.load,
            limit=self.limit,
            confine=True,
        )
        return replace(self, assignments=plan.assignments)

    def host_for(self, name: str) -> str | None:
        return self.assignments.get(name)


def extra_attributes(t: TypeSettings, name: str, environment: str) -> dict[str, str]:
    """The type's configured asset-inventory attributes, filled in for one clone."""
    digits = "".join(ch for ch in name if ch.isdigit())
    n = int(digits) if digits else 0
    return {
        key: pattern.format(name=name, n=n, type=t.name, environment=environment)
        for key, pattern in t.attributes.items()
    }


class FullCopyGuard:
    """Per type, one clone goes first (a probe); the others wait until vCenter has made a
    linked clone of that type, and a type whose clone comes out as a full copy stops there.

    An endpoint that ignores linked cloning (VMware's simulator, a parent with per-disk
    overrides) so writes one full copy, removed at once, instead of one per clone. A probe that
    fails for another reason hands the turn to the next clone; after PROBE_TRIES such failures
    the type runs in parallel anyway (a full copy among those still stops what has not started).
    """

    PROBE_TRIES = 3

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._state: dict[str, str] = {}  # type -> "probing", "open" or "stopped"
        self._failed_probes: Counter[str] = Counter()
        self._first_copy: dict[str, tuple[str, bool]] = {}  # type -> (full copy, removed?)
        self._skipped: Counter[str] = Counter()  # clones not attempted, by type

    def enter(self, type_name: str) -> str | None:
        """Wait for this clone's turn: "probe", "go", or None when the type has stopped."""
        with self._cond:
            while True:
                state = self._state.get(type_name)
                if state is None:
                    self._state[type_name] = "probing"
                    return "probe"
                if state == "open":
                    return "go"
                if state == "stopped":
                    return None
                self._cond.wait()

    def leave(
        self,
        type_name: str,
        turn: str,
        *,
        linked: bool,
        name: str,
        full_copy: LinkedCloneCheckFailed | None = None,
    ) -> None:
        with self._cond:
            if full_copy is not None:
                self._state[type_name] = "stopped"
                self._first_copy.setdefault(type_name, (name, full_copy.removed))
            elif turn == "probe" and self._state.get(type_name) == "probing":
                if linked:
                    self._state[type_name] = "open"
                else:
                    self._failed_probes[type_name] += 1
                    if self._failed_probes[type_name] >= self.PROBE_TRIES:
                        self._state[type_name] = "open"
                    else:
                        del self._state[type_name]  # the next clone probes
            self._cond.notify_all()

    @property
    def stopped(self) -> bool:
        with self._cond:
            return bool(self._first_copy)

    def slot(self, slots: threading.BoundedSemaphore, type_name: str) -> _TypeSlot:
        return _TypeSlot(self, slots, type_name)

    def proven(self, type_name: str) -> None:
        """A clone of the type came out linked: the others go (if it was the probe)."""
        with self._cond:
            if self._state.get(type_name) == "probing":
                self._state[type_name] = "open"
                self._cond.notify_all()

    def halt(self, type_name: str) -> None:
        """Stop the type now for clones waiting for a slot; those waiting for their turn hear
        of it from `leave`, once the full copy is recorded."""
        with self._cond:
            self._state[type_name] = "stopped"

    def has_stopped(self, type_name: str) -> bool:
        with self._cond:
            return self._state.get(type_name) == "stopped"

    def not_attempted(self, type_name: str, what: str = "not attempted") -> str:
        """The error of a clone skipped because its type stopped (and count it)."""
        with self._cond:
            self._skipped[type_name] += 1
            first = self._first_copy.get(type_name, ("?", True))[0]
        return (
            f"{what}: {type_name} stopped at its first full copy ({first}); that clone's error "
            "says why."
        )

    def summary(self, what: str = "not attempted") -> str:
        with self._cond:
            parts = []
            for t, (name, removed) in sorted(self._first_copy.items()):
                fate = "removed" if removed else "NOT removed"
                skipped = self._skipped[t]
                rest = f"{skipped} {t} clone{'' if skipped == 1 else 's'} {what}"
                parts.append(f"{t} stopped at its first full copy ({name}, {fate}); {rest}")
        return "; ".join(parts) + "."


class TypeStopped(Exception):
    """A clone's type stopped at a full copy while the clone waited for a slot."""


class _TypeSlot:
    """A clone slot that, once had, checks the clone's type has not stopped meanwhile (a
    clone waiting for a slot has not started: it must not start after a full copy)."""

    def __init__(
        self, guard: FullCopyGuard, slots: threading.BoundedSemaphore, type_name: str
    ) -> None:
        self.guard = guard
        self.slots = slots
        self.type_name = type_name

    def __enter__(self) -> None:
        self.slots.acquire()
        if self.guard.has_stopped(self.type_name):
            self.slots.release()
            raise TypeStopped(self.type_name)

    def __exit__(self, kind: object, exc: object, tb: object) -> None:
        if exc is None:  # vCenter made it and it is linked: the type's others may start now,
            self.guard.proven(self.type_name)  # while this one is labelled
        elif isinstance(exc, LinkedCloneCheckFailed):  # stop the type before the slot is free
            self.guard.halt(self.type_name)
        self.slots.release()


def probes_first(clones: Sequence[Clone]) -> list[Clone]:
    """The first clone of each type, then the rest, each in their order."""
    seen: set[str] = set()
    first: list[Clone] = []
    rest: list[Clone] = []
    for c in clones:
        (rest if c.type in seen else first).append(c)
        seen.add(c.type)
    return first + rest


class _TryLock:
    """Refuse (rather than queue) a second deployment or strip back of one environment."""

    def __init__(self, lock: threading.Lock, name: str) -> None:
        self.lock = lock
        self.name = name

    def __enter__(self) -> None:
        if not self.lock.acquire(blocking=False):
            raise ConflictError(
                f"{self.name} is busy with another deployment or strip back; wait for it to "
                f'finish (see "status {self.name}") and try again.'
            )

    def __exit__(self, *exc: object) -> None:
        self.lock.release()


class Emitter:
    """Counts progress and forwards events; a failing renderer never stops the work."""

    def __init__(
        self,
        run_id: int,
        environment: str,
        action: RunKind,
        total: int,
        started: float,
        callback: ProgressCallback | None,
    ) -> None:
        self.run_id = run_id
        self.environment = environment
        self.action = action
        self.total = total
        self.started = started
        self.callback = callback
        self.done = 0
        self.failed = 0
        self.lock = threading.Lock()

    def __call__(
        self,
        kind: EventKind,
        *,
        clone: str | None = None,
        ok: bool | None = None,
        message: str = "",
    ) -> None:
        with self.lock:
            if ok is True:
                self.done += 1
            elif ok is False:
                self.failed += 1
            elapsed = time.monotonic() - self.started
            finished = self.done + self.failed
            remaining = self.total - finished
            eta = elapsed / finished * remaining if finished else None
            event = ProgressEvent(
                kind=kind,
                run_id=self.run_id,
                environment=self.environment,
                action=self.action,
                total=self.total,
                done=self.done,
                failed=self.failed,
                elapsed_s=elapsed,
                eta_s=eta,
                clone=clone,
                message=message,
            )
        if self.callback is not None:
            try:
                self.callback(event)
            except Exception:  # a broken progress display must not abort a deployment
                log.exception("progress callback failed")


def _items_text(items: Iterable[tuple[TypeSettings, int]]) -> str:
    return " ".join(f"{t.name} {n}" for t, n in items)
