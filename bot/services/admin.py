"""What the admin used to do by hand: prepare parents, power, plan, inventory and refresh.

Built on the service layer (`bot.services.core.Service`): the same repository, vCenter adapter,
locks, progress events and safety checks (a clone is touched only when it is verifiably ours).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta

from bot.domain import grammar
from bot.domain.errors import (
    ClonesError,
    LinkedCloneCheckFailed,
    NotFoundError,
    UsageError,
    VCenterError,
    VCenterUnreachable,
)
from bot.domain.models import Clone, CloneState, Environment, RunKind, RunState
from bot.domain.provenance import read_provenance
from bot.domain.results import CapacityNeed, FailedClone
from bot.domain.savings import GIB, Savings, estimate
from bot.domain.vsphere import (
    ATTR_DEPLOYED_AT,
    ATTR_DEPLOYED_BY,
    PROVENANCE_ATTRIBUTES,
    ParentReport,
    VmFacts,
)
from bot.ports import ProgressCallback
from bot.services.core import Service
from bot.services.fullcopy import FullCopyGuard
from bot.services.runs import LIVE_STATES, Emitter


@dataclass(frozen=True)
class Finding:
    level: str  # "ok", "advice", "problem", "done"
    text: str


@dataclass(frozen=True)
class PrepareReport:
    type: str
    parent: str
    ready: bool
    findings: list[Finding]
    used_bytes: int
    provisioned_bytes: int


@dataclass(frozen=True)
class PowerResult:
    environment: str
    action: str
    done: list[str]
    failed: list[FailedClone]
    skipped: list[FailedClone]


@dataclass(frozen=True)
class PlanResult:
    estimate: Savings
    needs: list[CapacityNeed]
    power_on: bool

    @property
    def fits(self) -> bool:
        return all(n.fits for n in self.needs)


@dataclass(frozen=True)
class InventoryRow:
    name: str
    type: str
    parent: str
    environment: str
    state: str
    deployed_by: str
    deployed_at: str
    power_state: str
    committed_gb: float
    host: str
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RefreshResult:
    run_id: int
    environment: str
    refreshed: list[str]
    failed: list[FailedClone]
    skipped: list[FailedClone]
    elapsed_s: float
    state: RunState


class Admin:
    def __init__(self, service: Service) -> None:
        self.service = service
        self.settings = service.settings
        self.repo = service.repo
        self.vcenter = service.vcenter

    # ================================================================= prepare
    def prepare(
        self, command: grammar.Prepare, *, actor: str, source: str = "cli"
    ) -> PrepareReport:
        t = self.settings.type(command.type)
        report = self.vcenter.parent_report(t.parent, t.snapshot)
        findings: list[Finding] = []
        if report.powered_on and command.power_off:
            self.vcenter.shut_down(t.parent)
            findings.append(Finding("done", f"{t.parent} was shut down."))
            report = self.vcenter.parent_report(t.parent, t.snapshot)
        findings += _disk_findings(report)
        blocked = any(f.level == "problem" for f in findings)
        if report.snapshots_named > 1:
            findings.append(
                Finding(
                    "advice",
                    f'{t.parent} has {report.snapshots_named} snapshots named "{t.snapshot}"; '
                    "clones use the newest. Remove an older one only when no clones depend on it.",
                )
            )
        if report.snapshots_named:
            findings.append(Finding("ok", f'Base snapshot "{t.snapshot}" is in place.'))
        elif report.powered_on:
            blocked = True
            findings.append(
                Finding(
                    "problem",
                    f'{t.parent} is powered on and has no base snapshot "{t.snapshot}". Shut it '
                    f'down cleanly, or run "prepare {t.name} power-off".',
                )
            )
        elif not blocked:
            self.vcenter.ensure_base_snapshot(t.parent, t.snapshot)
            findings.append(Finding("done", f'Created base snapshot "{t.snapshot}" of {t.parent}.'))
            report = self.vcenter.parent_report(t.parent, t.snapshot)
        provisioned = sum(d.capacity_bytes for d in report.disks)
        self.repo.audit(
            actor=actor,
            source=source,
            command=f"prepare {t.name}" + (" power-off" if command.power_off else ""),
            result="ok" if not blocked else "blocked",
            detail="; ".join(f.text for f in findings)[:2000],
        )
        return PrepareReport(
            type=t.name,
            parent=t.parent,
            ready=not blocked and report.snapshots_named > 0,
            findings=findings,
            used_bytes=report.used_bytes,
            provisioned_bytes=provisioned,
        )

    # ================================================================= power
    def power(self, command: grammar.Power, *, actor: str, source: str = "cli") -> PowerResult:
        env = self.service.environment(command.environment)
        clones = self.repo.clones(environment=env.name, states=[CloneState.READY])
        if not clones:
            raise NotFoundError(
                f"Environment {env.name} has no ready clones to power {command.action}."
            )
        with self.service.runs.environment_lock(env.name):
            verified, gone, skipped = self.service.ownership.verify_ours(env, clones)
            ours = [c for c, _ in verified]
            failed = self.service.power.power_clones(ours, command.action)
            for c in gone:  # nobody asked the bot to destroy them: recorded as missing
                self.repo.update_clone(c.id, state=CloneState.MISSING, error="missing from vCenter")
        failed_names = {f.name for f in failed}
        result = PowerResult(
            environment=env.name,
            action=command.action,
            done=[c.name for c in ours if c.name not in failed_names],
            failed=failed + [FailedClone(c.name, c.type, "missing from vCenter") for c in gone],
            skipped=[FailedClone(c.name, c.type, why) for c, why in skipped],
        )
        self.repo.audit(
            actor=actor,
            source=source,
            command=f"power {command.action} {env.name}",
            result="ok" if not result.failed else "partial",
            detail=f"{len(result.done)} done, {len(result.failed)} failed",
        )
        return result

    # ================================================================= plan
    def plan(self, command: grammar.Plan) -> PlanResult:
        items = [(self.settings.type(i.type), i.count) for i in command.items]
        parents = {t.name: self.vcenter.parent_facts(t.parent, t.snapshot) for t, _ in items}
        estimates = [
            estimate(parents[t.name], n, self.service.deployer.delta_estimate(t)) for t, n in items
        ]
        total = Savings(
            clones=sum(e.clones for e in estimates),
            thick_bytes=sum(e.thick_bytes for e in estimates),
            thin_bytes=sum(e.thin_bytes for e in estimates),
            linked_bytes=sum(e.linked_bytes for e in estimates),
            by_parent=tuple(p for e in estimates for p in e.by_parent),
        )
        needs = self.service.deployer.capacity_needs(items, parents, power_on=command.power_on)
        return PlanResult(total, needs, command.power_on)

    # ================================================================= inventory
    def inventory(self, environment: str | None = None) -> list[InventoryRow]:
        if environment is not None:
            self.service.environment(environment)
        clones = self.repo.clones(environment=environment, states=LIVE_STATES)
        folders = {
            self.settings.types[c.type].folder for c in clones if c.type in self.settings.types
        }
        live: dict[str, VmFacts] = {}
        for folder in sorted(folders):
            live.update({found.moref: found for found in self.vcenter.find_vms(folder)})
        hosts = self._host_names()
        rows = []
        for c in clones:
            vm = live.get(c.moref or "")
            attributes = dict(vm.attributes) if vm else {}
            deployed_by, deployed_at = _deployed(vm) if vm else ("", "")
            for name in PROVENANCE_ATTRIBUTES:
                attributes.pop(name, None)
            rows.append(
                InventoryRow(
                    name=c.name,
                    type=c.type,
                    parent=c.parent,
                    environment=c.environment,
                    state=c.state.value if vm or c.state is not CloneState.READY else "missing",
                    deployed_by=deployed_by,
                    deployed_at=deployed_at,
                    power_state=(("poweredOn" if vm.powered_on else "poweredOff") if vm else ""),
                    committed_gb=round(vm.committed_bytes / GIB, 2) if vm else 0.0,
                    host=hosts.get(vm.host, vm.host) if vm else "",
                    attributes=attributes,
                )
            )
        return rows

    def _confine(self, types: set[str]) -> None:
        """Refreshed clones are new VMs: put them in their parent's DRS VM group (host limit)."""
        if not self.settings.confine_hosts:
            return
        for name in sorted(types):
            placement = self.service.placements.placement_for(self.settings.type(name))
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

    def _host_names(self) -> dict[str, str]:
        names: dict[str, str] = {}
        for t in self.settings.types.values():
            try:
                _, hosts = self.vcenter.cluster_hosts(t.resource_pool)
            except ClonesError:
                continue
            names.update({h.moref: h.name for h in hosts})
        return names

    # ================================================================= refresh
    def refresh(
        self,
        command: grammar.Refresh,
        *,
        actor: str,
        source: str = "cli",
        channel: str = "",
        on_event: ProgressCallback | None = None,
    ) -> RefreshResult:
        """Re-create each clone from the current base snapshot, keeping name and attributes.

        One clone at a time per worker: destroy the old VM (verified ours), clone the new one
        on the same host, restore its power state. DeployedAt is the new VM's time; who
        deployed it and every attribute keep their values.
        """
        env = self.service.environment(command.environment)
        with self.service.runs.environment_lock(env.name):
            clones = self.repo.clones(environment=env.name, states=[CloneState.READY])
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
            verified, gone, skipped = self.service.ownership.verify_ours(env, clones)
            run = self.service.runs.start_run(
                environment=env.name,
                kind=RunKind.REFRESH,
                requested_by=actor,
                requested=len(verified),
                command=f"refresh {env.name}",
                source=source,
                channel=channel,
                clone_ids=[c.id for c, _ in verified],
            )
            return self._refresh(run.id, env, verified, gone, skipped, actor, on_event)

    def _refresh(
        self,
        run_id: int,
        env: Environment,
        verified: Sequence[tuple[Clone, VmFacts]],
        gone: Sequence[Clone],
        skipped: Sequence[tuple[Clone, str]],
        actor: str,
        on_event: ProgressCallback | None,
    ) -> RefreshResult:
        started = time.monotonic()
        emit = Emitter(run_id, env.name, RunKind.REFRESH, len(verified), started, on_event)
        emit("started", message=f"Refreshing {len(verified)} clones of {env.name}")
        deployed_at = self.service.clock().isoformat(timespec="seconds")
        refreshed: list[str] = []
        failed: list[FailedClone] = []
        lock = threading.Lock()
        unreachable: list[VCenterUnreachable] = []

        def work(item: tuple[Clone, VmFacts]) -> None:
            clone, vm = item
            if unreachable:
                return
            # Each type's first clone goes alone; a full copy stops the type with its other
            # clones untouched (an endpoint that ignores linked cloning must not cost them all).
            turn = guard.enter(clone.type)
            if turn is None:
                why = guard.not_attempted(clone.type, "not refreshed, left as it was")
                with lock:
                    kept.append(FailedClone(clone.name, clone.type, why))
                emit("clone_failed", clone=clone.name, ok=False, message=why)
                return
            copies: list[LinkedCloneCheckFailed] = []
            linked = False
            done = clone
            try:
                self.repo.update_clone(clone.id, state=CloneState.DESTROYING)
                self.vcenter.destroy(vm.moref, expected_uuid=vm.instance_uuid)
                keep = {k: v for k, v in vm.attributes.items() if k != ATTR_DEPLOYED_AT}
                done = self.service.cloner.clone_one(
                    clone,
                    env,
                    _deployed(vm)[0] or actor,
                    deployed_at,
                    emit,
                    host=vm.host or None,
                    keep_attributes=keep,
                    new_uuid=True,
                    on_full_copy=copies.append,
                )
                linked = done.state is CloneState.READY
                if done.state is CloneState.READY and vm.powered_on and done.moref:
                    errors = self.vcenter.power([done.moref], "on")
                    if errors[0] is None:
                        done = self.repo.update_clone(done.id, power_state="poweredOn")
                        with lock:
                            powered.append(done)
            except VCenterUnreachable as exc:
                unreachable.append(exc)
                return
            except VCenterError as exc:
                done = self.repo.update_clone(clone.id, state=CloneState.READY, error=str(exc))
            finally:
                guard.leave(
                    clone.type,
                    turn,
                    linked=linked,
                    name=clone.name,
                    full_copy=copies[0] if copies else None,
                )
            with lock:
                if done.state is CloneState.READY and not done.error:
                    refreshed.append(done.name)
                    emit("clone_ready", clone=done.name, ok=True)
                else:
                    failed.append(FailedClone(done.name, done.type, done.error or done.state))
                    emit("clone_failed", clone=done.name, ok=False, message=done.error or "")

        powered: list[Clone] = []  # re-created and powered on again: customised on boot
        guard = FullCopyGuard()
        kept: list[FailedClone] = []  # not refreshed (their type stopped at a full copy)
        since = self.service.clock() - timedelta(seconds=30)
        with ThreadPoolExecutor(
            max_workers=self.settings.concurrency, thread_name_prefix="refresh"
        ) as pool:
            list(pool.map(work, verified))
        if powered and not unreachable:
            try:
                self.service.power.await_customization(powered, since, emit)
            except VCenterUnreachable as exc:
                unreachable.append(exc)
            for c in self.repo.clones(environment=env.name, states=[CloneState.READY]):
                if c.name in refreshed and c.customization == "failed":
                    refreshed.remove(c.name)
                    failed.append(FailedClone(c.name, c.type, c.error or "customization failed"))
        if refreshed and not unreachable:
            try:
                self._confine({c.type for c, _ in verified})
            except VCenterUnreachable as exc:
                unreachable.append(exc)
        for c in gone:
            self.repo.update_clone(c.id, state=CloneState.MISSING, error="missing from vCenter")
        problems = failed + [FailedClone(c.name, c.type, "missing from vCenter") for c in gone]
        if unreachable:
            state = RunState.INTERRUPTED
        elif problems or skipped or kept:
            state = RunState.PARTIAL if refreshed else RunState.FAILED
        else:
            state = RunState.SUCCEEDED
        message = str(unreachable[0]) if unreachable else ""
        if guard.stopped:
            message = " ".join(m for m in (message, guard.summary("not refreshed")) if m)
        self.service.runs.finish_run(
            run_id,
            state=state,
            succeeded=len(refreshed),
            failed=len(problems),
            message=message,
        )
        emit("finished", message=f"{len(refreshed)} clones refreshed in {env.name}")
        if unreachable:
            raise unreachable[0]
        return RefreshResult(
            run_id=run_id,
            environment=env.name,
            refreshed=sorted(refreshed),
            failed=problems,
            skipped=[FailedClone(c.name, c.type, why) for c, why in skipped] + kept,
            elapsed_s=time.monotonic() - started,
            state=state,
        )


def _disk_findings(report: ParentReport) -> list[Finding]:
    findings: list[Finding] = []
    if not report.disks:
        findings.append(Finding("problem", f"{report.name} has no virtual disk to clone."))
    for d in report.disks:
        size = d.capacity_bytes / GIB
        if d.mode.startswith("independent"):
            findings.append(
                Finding(
                    "problem",
                    f"{d.label} of {report.name} is {d.mode}: independent disks cannot be "
                    "snapshotted, so they block linked clones. Set the parent's disk to "
                    "dependent (persistent); the bot sets the clones' disk mode after cloning.",
                )
            )
        if not d.thin:
            findings.append(
                Finding(
                    "advice",
                    f"{d.label} of {report.name} is thick ({size:.2f} GB provisioned). Converting "
                    "the parent to thin (Storage vMotion) after zeroing free space (SDelete) "
                    "shrinks the base disk every clone shares.",
                )
            )
    if report.disks and not any(f.level == "problem" for f in findings):
        findings.insert(
            0,
            Finding(
                "ok",
                f"{report.name}: {len(report.disks)} disk(s), "
                f"{report.used_bytes / GIB:.2f} GB used of "
                f"{sum(d.capacity_bytes for d in report.disks) / GIB:.2f} GB provisioned.",
            ),
        )
    return findings


def _deployed(vm: VmFacts) -> tuple[str, str]:
    """Who deployed a clone and when: its custom attributes where set (clones made with
    `provenance_attributes`, or by an earlier version), else its Notes."""
    noted = read_provenance(vm.notes)
    return (
        vm.attributes.get(ATTR_DEPLOYED_BY) or noted.get(ATTR_DEPLOYED_BY, ""),
        vm.attributes.get(ATTR_DEPLOYED_AT) or noted.get(ATTR_DEPLOYED_AT, ""),
    )
