"""Crash recovery and orphans: SQLite is reconciled with vCenter so nothing is lost or doubled.

A deployment records each clone's name and the instance UUID it asks vCenter to use before the
clone task is issued. If the process dies (SIGKILL, power cut) or vCenter goes away mid-run, the
next start finds the run (its owning process is gone, or it was interrupted), looks each unfinished
clone up in vCenter by that instance UUID, adopts the ones that exist and verify as linked clones,
re-creates the missing ones under the same names, and finishes the run. Never a duplicate (a name
and a UUID are reserved once), never an orphan (every VM the bot made has a row).

Orphans (`bot.services.orphans`) are VMs carrying the bot's ManagedBy (attribute or Notes) that
no live clone row claims. Only the bot's own may be adopted or removed: those whose instance UUID
it chose (it has a row for them), and, when records are lost, those whose Notes carry its
provenance and that are linked clones of the parent the Notes name; any other VM with the
attribute is foreign (the attribute can be set by anyone) and is only reported.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, assert_never

from bot.domain.errors import CannotSee, ClonesError, Fenced, VCenterUnreachable
from bot.domain.models import Clone, CloneState, Fence, Run, RunKind, RunState
from bot.domain.results import (
    DEPLOYING,
    REFRESHING,
    DeployResult,
    ProgressLabel,
    TeardownResult,
)
from bot.domain.vsphere import Visibility, VmFacts, VmReading
from bot.ports import ProgressCallback, Repository, VCenter
from bot.services.core import Core, OnCore
from bot.services.orphans import Orphans
from bot.services.ownership import locate
from bot.services.usecases import UseCases

if TYPE_CHECKING:
    from bot.services.cloning import Cloner
    from bot.services.deploy_runs import DeployRuns
    from bot.services.placements import Placements
    from bot.services.queries import Queries
    from bot.services.teardown import StripBack
    from bot.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ResumedRun:
    run_id: int  # the new run that took the abandoned one over
    environment: str
    kind: RunKind
    adopted: list[str] = field(default_factory=list)  # found in vCenter and verified
    recreated: list[str] = field(default_factory=list)  # not found: cloned again, same name
    state: RunState = RunState.SUCCEEDED
    message: str = ""
    previous_run_id: int | None = None  # the abandoned run, now superseded
    # (name, why) of the run's clones that are not done: failed, or interrupted again
    problems: list[tuple[str, str]] = field(default_factory=list)

    @property
    def text(self) -> str:
        was = f"run {self.previous_run_id}" if self.previous_run_id is not None else "a run"
        head = f"Resumed {self.kind.value} {was} of {self.environment} as run {self.run_id}: "
        if self.kind is RunKind.TEARDOWN:
            body = self.message or "nothing left to strip back"
        else:
            body = f"{len(self.adopted)} clones adopted, {len(self.recreated)} re-created"
            if self.message:
                body += f" ({self.message})"
        return head + body + f", finished {self.state.value}."


@dataclass(frozen=True)
class RecoveryReport:
    resumed: list[ResumedRun]
    left: list[tuple[int, str]]  # (run id, why it was not resumed)
    missing: list[Clone] = field(default_factory=list)  # ready records whose VM is gone
    unchecked: str = ""  # why records could not be compared with vCenter
    # ready records whose VM vCenter would not show: left as they were ("cannot see VM X: ...")
    unseen: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """True when every resumed run succeeded, none was left and records were checked."""
        return (
            not self.left
            and not self.unchecked
            and not self.unseen
            and all(r.state is RunState.SUCCEEDED for r in self.resumed)
        )

    @property
    def text(self) -> str:
        if not (self.resumed or self.left or self.missing or self.unchecked or self.unseen):
            return "Nothing to recover."
        lines = [r.text for r in self.resumed]
        for r in self.resumed:
            lines += [f"  {name}: {why}" for name, why in r.problems]
        lines += [f"Run {run_id} not resumed: {why}" for run_id, why in self.left]
        if self.missing:
            names = ", ".join(c.name for c in self.missing[:20])
            more = f" and {len(self.missing) - 20} more" if len(self.missing) > 20 else ""
            lines.append(
                f"{len(self.missing)} clones recorded as ready are gone from vCenter (deleted "
                f"outside the bot): {names}{more}. Recorded as missing."
            )
        if self.unseen:
            lines.append(
                f"{len(self.unseen)} clones recorded as ready cannot be seen in vCenter, left as "
                "recorded (grant the bot's account the privilege named, then resume again):"
            )
            lines += [f"  {why}" for why in self.unseen]
        if self.unchecked:
            lines.append(f"Records not checked against vCenter: {self.unchecked}")
        return "\n".join(lines)


class Recovery(OnCore):
    """Finishes runs whose process died or lost vCenter, and reconciles records with vCenter."""

    def __init__(
        self,
        core: Core,
        *,
        queries: Queries,
        placements: Placements,
        cloner: Cloner,
        deploy_runs: DeployRuns,
        strip_back: StripBack,
        clock: Callable[[], datetime] | None = None,
        relabel: Callable[[str], object] | None = None,
    ) -> None:
        super().__init__(core)
        self.queries, self.placements, self.cloner = queries, placements, cloner
        self.deploy_runs, self.strip_back = deploy_runs, strip_back
        self.orphan_finder = Orphans(core)
        self.clock = clock or (lambda: datetime.now(UTC))
        # After a deployment or refresh is finished: labels kept outside the deployment (the
        # trainees' AssignedTo) written again on the VMs it re-created.
        self.relabel = relabel

    @classmethod
    def over(cls, service: UseCases, *, clock: Callable[[], datetime] | None = None) -> Recovery:
        """Recovery over the services `service` wires."""
        return cls(
            service.core,
            queries=service.queries,
            placements=service.placements,
            cloner=service.cloner,
            deploy_runs=service.deploy_runs,
            strip_back=service.strip_back,
            clock=clock,
            relabel=service.trainees.relabel,
        )

    # ================================================================= abandoned runs
    def abandoned(self) -> list[Run]:
        """Runs that say they are running but whose process is gone, and interrupted runs."""
        out = []
        for run in self.repo.runs(states=[RunState.RUNNING, RunState.INTERRUPTED], limit=1000):
            if run.state is RunState.INTERRUPTED or self._owner_dead(run):
                out.append(run)
        return sorted(out, key=lambda r: r.id)

    def _owner_dead(self, run: Run) -> bool:
        return self.runs.owner_dead(run, self.clock())

    def recover(
        self,
        *,
        actor: str = "clones",
        on_event: ProgressCallback | None = None,
        fence: Fence | None = None,
    ) -> RecoveryReport:
        """Resume every abandoned run, then record ready clones whose VM is gone as missing.
        Each is taken over atomically (`RunBook.take_over`: ended superseded in the transaction
        that starts its successor, once its lease expired or its owner died, and with `fence`,
        the leader's recovery, only while this process leads): resumed once, by one process."""
        resumed: list[ResumedRun] = []
        left: list[tuple[int, str]] = []
        lost = False  # vCenter stopped answering: records are not judged by it now
        for run in self.abandoned():
            if self.runs.halt():  # the user stopped this process: the rest wait for next time
                left.append((run.id, f"stopped by {self.runs.halt.why} before it was resumed"))
                continue
            try:
                new = self.runs.take_over(run, fence=fence, now=self.clock())
            except Fenced as exc:  # another bot leads now: the runs are its to resume
                log.warning("fenced: recovery stopped: %s", exc)
                break
            if new is None:
                continue  # another process took it over first, it ended, or it beat again
            self.runs.track_run(new.id)
            try:
                resumed.append(self._resume(run, new, actor, on_event))
            except Fenced as exc:  # taken over in turn (this process hung meanwhile)
                log.warning("fenced: resuming run %s: %s", run.id, exc)
            except VCenterUnreachable as exc:
                self._end_if_running(new.id, RunState.INTERRUPTED, str(exc))
                left.append((run.id, str(exc)))
                lost = True
            except CannotSee as exc:  # nothing decided on what it cannot see: resumable later
                self._end_if_running(new.id, RunState.INTERRUPTED, str(exc))
                left.append((run.id, str(exc)))
            except ClonesError as exc:
                self._end_if_running(new.id, RunState.FAILED, str(exc))
                left.append((run.id, str(exc)))
        missing: list[Clone] = []
        unseen: list[str] = []
        unchecked = "vCenter stopped answering" if lost else ""
        if self.runs.halt():
            unchecked = f"stopped by {self.runs.halt.why}"
        elif not lost:
            try:
                missing, unseen = self.reconcile()
            except VCenterUnreachable as exc:
                unchecked = str(exc)
        report = RecoveryReport(resumed, left, missing, unchecked, unseen)
        if resumed or left or missing or unseen:
            self.repo.audit(
                actor=actor, source="recovery", command="recover", result="ok", detail=report.text
            )
        return report

    def _resume(
        self, run: Run, new: Run, actor: str, on_event: ProgressCallback | None
    ) -> ResumedRun:
        """Resume `run` as `new`, the way its kind is resumed. Every kind named: a new kind of
        run fails mypy here until it is given its own way (never resumed as a clone run)."""
        match run.kind:
            case RunKind.TEARDOWN:
                return self._resume_teardown(run, new, on_event)
            case RunKind.DEPLOY:
                return self._resume_clones(run, new, actor, on_event, DEPLOYING)
            case RunKind.REFRESH:
                return self._resume_clones(run, new, actor, on_event, REFRESHING)
            case _:
                assert_never(run.kind)

    def reconcile(self) -> tuple[list[Clone], list[str]]:
        """Ready records whose VM vCenter no longer has become missing; those whose VM it
        would not show are left as they were. Returns (missing, "cannot see VM X: ..." of the
        unseen). Environments with a run in progress are left to it.

        A record whose instance UUID is not in the listing of every VM in the datacenter is
        asked for by its moref too, and recorded missing only when vCenter says that VM does
        not exist: a VM the account may no longer see may be left out of a listing, and
        unseen is never gone."""
        read_at = self.clock()
        busy = {r.environment for r in self.repo.runs(states=[RunState.RUNNING], limit=1000)}
        ready = [
            c for c in self.repo.clones(states=[CloneState.READY]) if c.environment not in busy
        ]
        if not ready:
            return [], []  # nothing to compare: no vCenter call
        present = {vm.instance_uuid for vm in self.vcenter.sightings().values()}
        absent = [c for c in ready if c.instance_uuid not in present]
        asked = self.vcenter.sightings([c.moref for c in absent if c.moref])
        gone, unseen = [], []
        for c in absent:
            seen = asked.visibility(c.moref) if c.moref else Visibility.GONE
            if seen is Visibility.UNSEEN:
                unseen.append(asked.unseen[c.moref or ""].cannot_see(c.name))
            elif seen is Visibility.GONE or asked.seen[c.moref or ""].instance_uuid != (
                c.instance_uuid
            ):
                gone.append(c.id)
        missing = self.repo.mark_missing(gone, unchanged_since=read_at) if gone else []
        return missing, unseen

    def _end_if_running(self, run_id: int, state: RunState, message: str) -> None:
        if self.repo.get_run(run_id).state is RunState.RUNNING:
            self.runs.finish_run(run_id, state=state, succeeded=0, failed=0, message=message)

    def _resume_clones(
        self,
        old: Run,
        run: Run,
        actor: str,
        on_event: ProgressCallback | None,
        label: ProgressLabel,
    ) -> ResumedRun:
        """Finish a deployment or refresh: adopt what exists under the recorded instance UUID,
        re-create what does not (same names), report on every clone the run owns."""
        env = self.queries.environment(run.environment)
        with self.runs.environment_lock(env.name):
            clones = self.repo.clones(run_id=run.id)
            kept = _settle_refresh(self.repo, self.vcenter, clones)
            clones = self.repo.clones(run_id=run.id)
            unfinished = [c for c in clones if c.state in (CloneState.CLONING, CloneState.PLANNED)]
            adopted, to_clone = self._adopt_or_replan(unfinished, env.name, actor, run.id)
            placements = {}
            for type_name in {c.type for c in to_clone}:
                t = self.settings.type(type_name)
                placements[type_name] = self.placements.placement_for(t).assign(
                    [c.name for c in to_clone if c.type == type_name]
                )
            result: DeployResult = self.deploy_runs.run_clones(
                run.id,
                env,
                self.repo.clones(run_id=run.id),  # the whole run: the report counts all of it
                actor,
                on_event,
                placements=placements,
                power_on=run.power_on,  # "and power on" holds for the clones made before too
                todo=to_clone,
                label=label,
            )
        if self.relabel is not None and to_clone:
            try:
                self.relabel(env.name)
            except Exception:  # the clones are back either way; a label is extra
                log.exception("relabelling %s after recovery", env.name)
        message = f"{len(kept)} left as they were, refresh them again" if kept else ""
        return ResumedRun(
            run_id=run.id,
            environment=env.name,
            kind=run.kind,
            adopted=sorted(adopted),
            recreated=sorted(c.name for c in to_clone),
            state=result.state,
            message=", ".join(m for m in (message, result.message) if m),
            previous_run_id=old.id,
            problems=[(f.name, f.error) for f in result.failed]
            + [(name, "interrupted again") for name in result.interrupted],
        )

    def _adopt_or_replan(
        self, unfinished: list[Clone], environment: str, actor: str, run_id: int
    ) -> tuple[list[str], list[Clone]]:
        """Each unfinished clone: adopted when vCenter has it under the recorded instance UUID
        (and linked), else planned again (a full copy made under our UUID is destroyed first:
        it defeats the savings). Returns (adopted names, clones to clone). CannotSee, before
        anything is decided, when one may be among VMs vCenter would not show: re-creating it
        could make a second."""
        listings = _listings(self.settings, self.vcenter, unfinished)
        found: dict[str, VmFacts] = {}
        for c in unfinished:
            t = self.settings.types.get(c.type)
            listing = listings.get(t.folder) if t is not None else None
            if listing is None:
                continue
            seen, vm = locate(listing, c)
            if seen is Visibility.UNSEEN:
                unseen = next(iter(listing.unseen.values()))
                raise CannotSee(
                    f"{unseen.cannot_see(unseen.moref)}: {c.name} may be that VM, so it is "
                    "neither adopted nor made again. Grant the bot's account that privilege on "
                    "the clones' folder, then resume."
                )
            if vm is not None:
                found[c.instance_uuid or ""] = vm
        adopted: list[str] = []
        to_clone: list[Clone] = []
        fence = self.runs.fence(run_id)  # every write: refused once another took the run over
        for c in unfinished:
            vm = found.get(c.instance_uuid or "")
            if vm is not None and vm.linked:
                self.repo.update_clone(
                    c.id,
                    fence=fence,
                    state=CloneState.READY,
                    moref=vm.moref,
                    host=vm.host or None,
                    delta_bytes=vm.unshared_bytes or vm.committed_bytes,
                    power_state="poweredOn" if vm.powered_on else "poweredOff",
                    error=None,
                )
                # Its attributes are written here (idempotent): through the pipeline it would
                # be cloned again.
                self._finish_adopted(c, vm, environment, actor)
                adopted.append(c.name)
                continue
            if vm is not None:
                self.runs.assert_owned(run_id)  # a full copy: destroyed by the run's owner only
                self.vcenter.destroy(vm.moref, expected_uuid=vm.instance_uuid)
            to_clone.append(self.repo.update_clone(c.id, fence=fence, state=CloneState.PLANNED))
        return adopted, to_clone

    def _finish_adopted(self, clone: Clone, vm: VmFacts, environment: str, actor: str) -> None:
        t = self.settings.type(clone.type)
        request = self.cloner.clone_request(clone, t, environment, actor, vm.attributes)
        try:
            self.vcenter.finish_clone(vm, request)
        except ClonesError as exc:
            self.repo.update_clone(clone.id, error=f"adopted, but: {exc}")

    def _resume_teardown(self, old: Run, run: Run, on_event: ProgressCallback | None) -> ResumedRun:
        """Finish a strip back over the clones it recorded when it started, and nothing else:
        clones deployed into the environment name since are not its own."""
        env = self.queries.environment(run.environment)
        with self.runs.environment_lock(env.name):
            # Mid-destroy when the process died: strip_run re-verifies each one.
            for c in self.repo.clones(run_id=run.id, states=[CloneState.DESTROYING]):
                self.repo.update_clone(c.id, state=CloneState.READY)
            result: TeardownResult = self.strip_back.strip_run(run.id, env, on_event)
        parts = [f"{len(result.destroyed)} destroyed"]
        if result.already_gone:
            parts.append(f"{len(result.already_gone)} already gone")
        if result.cleared:
            parts.append(f"{len(result.cleared)} failed records cleared")
        return ResumedRun(
            run_id=run.id,
            environment=env.name,
            kind=RunKind.TEARDOWN,
            state=result.state,
            message=", ".join(parts),
            previous_run_id=old.id,
            problems=[(f.name, f.error) for f in result.failed + result.skipped + result.unseen],
        )


def _listings(
    settings: Settings, vcenter: VCenter, clones: list[Clone]
) -> dict[str, VmReading[VmFacts]]:
    """Every VM of the folders these clones go in, by folder."""
    folders = {settings.types[c.type].folder for c in clones if c.type in settings.types}
    return {folder: vcenter.find_vms(folder) for folder in sorted(folders)}


def _settle_refresh(repo: Repository, vcenter: VCenter, clones: list[Clone]) -> list[str]:
    """A refresh killed between destroying an old VM and cloning its successor: where the
    old VM (recorded moref and UUID) still exists it stays, as it was; where it is gone,
    the clone is re-created. Returns the names left as they were."""
    destroying = [c for c in clones if c.state is CloneState.DESTROYING]
    if not destroying:
        return []
    reading = vcenter.vm_facts([c.moref or "" for c in destroying])
    _cannot_see(reading, destroying)  # before anything is decided
    kept = []
    for c in destroying:
        vm = reading.seen.get(c.moref or "")
        if vm is not None and vm.instance_uuid == c.instance_uuid:
            repo.update_clone(c.id, state=CloneState.READY)
            kept.append(c.name)
        else:
            repo.update_clone(c.id, state=CloneState.PLANNED, moref=None)
    return kept


def _cannot_see(reading: VmReading[VmFacts], clones: list[Clone]) -> None:
    """CannotSee naming the first of these clones vCenter would not show (none: returns)."""
    for c in clones:
        unseen = reading.unseen.get(c.moref or "")
        if unseen is not None:
            raise CannotSee(
                f"{unseen.cannot_see(c.name)}; its refresh is left as it was. Grant the bot's "
                "account that privilege on it, then resume."
            )
