"""Strip back: power off and destroy an environment's clones, the set recorded when the run
starts and nothing else (its recovery acts on the same set). Stopped by the user (Ctrl-C), it
destroys nothing more, records the destroys vCenter finishes, and ends interrupted for
`resume`."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from bot.domain.errors import (
    ClonesError,
    Interrupted,
    NotFoundError,
    VCenterUnreachable,
)
from bot.domain.models import Clone, CloneState, Environment, RunKind
from bot.domain.results import (
    FAILURE_STATES,
    STRIPPING_BACK,
    FailedClone,
    TeardownPlan,
    TeardownResult,
)
from bot.domain.vsphere import Destroyed, VmSighting
from bot.ports import ProgressCallback
from bot.services.core import Core, OnCore
from bot.services.limits import clone_datastore, clone_host, may_crowd_a_host
from bot.services.pipeline import NotStarted, PerClone, Stop, retrying, run_per_clone
from bot.services.runbook import LIVE_STATES, Emitter, outcome_state, stopped_message
from bot.services.sizes import record_seen

# A strip back's records: live clones, and those that failed or went missing (cleared).
STRIPPABLE = (*LIVE_STATES, *FAILURE_STATES)

if TYPE_CHECKING:
    from bot.services.ownership import Checked, Ownership
    from bot.services.queries import Queries

log = logging.getLogger(__name__)


class StripBack(OnCore):
    """Strips environments back. `after` runs once each strip back has ended (its trainees are
    told their VM was removed: `bot.services.trainees`); it never fails the strip back."""

    def __init__(
        self,
        core: Core,
        ownership: Ownership,
        queries: Queries,
        *,
        after: Callable[[], object] | None = None,
    ) -> None:
        super().__init__(core)
        self.after = after
        self.ownership = ownership
        self.queries = queries

    def teardown_plan(self, environment: str) -> TeardownPlan:
        env = self.queries.environment(environment)
        clones = self._strippable(env.name)
        live = [c for c in clones if c.state.live]
        by_type = Counter(c.type for c in live)
        return TeardownPlan(
            environment=env.name,
            by_type=dict(sorted(by_type.items())),
            clones=len(live),
            reclaim_bytes=sum(c.delta_bytes or 0 for c in live),
            failed_records=len(clones) - len(live),
        )

    def _strippable(self, environment: str) -> list[Clone]:
        """What a strip back of `environment` acts on: its live clones, and its records of
        clones that failed or went missing (cleared when no VM is left of them)."""
        clones = self.repo.clones(environment=environment, states=STRIPPABLE)
        if not clones:
            raise NotFoundError(
                f"Environment {environment} has no clones to strip back and no failed records "
                "to clear."
            )
        return clones

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
        env = self.queries.environment(environment)
        with self.runs.environment_lock(env.name):
            clones = self._strippable(env.name)
            run = self.runs.start_run(
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
        """Destroy the live clones that strip back run `run_id` owns (verified ours first), and
        clear its failed records: those with no VM in vCenter are recorded destroyed, and a VM
        left of one is destroyed like a live clone's (only when provably the bot's)."""
        clones = self.repo.clones(run_id=run_id, states=STRIPPABLE)
        started = time.monotonic()
        emit = Emitter(run_id, env.name, STRIPPING_BACK, len(clones), started, on_event)
        emit("started", message=f"Stripping back {len(clones)} clones of {env.name}")
        checked = self.ownership.verify_ours(env, clones, also=self._extras())
        verified, gone, skipped = checked.verified, checked.gone, checked.skipped
        record_seen(self.repo, verified)  # how far they grew, for the next estimate
        cleared, unseen = self._not_to_destroy(checked, emit)
        per = self._destroy_all(run_id, emit, verified)
        error = per.lost
        done = [(c, r) for (c, _), r in per.results if isinstance(r, Destroyed)]
        destroyed = [c.name for c, r in done if not r.gone]
        already_gone = [c.name for c in gone if c.state.live]
        already_gone += [c.name for c, r in done if r.gone]
        reclaimed = sum(r.reclaimed_bytes for _, r in done)
        failed = [r for _, r in per.results if isinstance(r, FailedClone)]
        problems = failed + [FailedClone(c.name, c.type, why) for c, why in skipped] + unseen
        ended = len(destroyed) + len(already_gone) + len(cleared)
        state = outcome_state(ended, len(problems), lost=bool(error or per.halted))
        message = str(error) if error else ""
        if per.halted:  # the rest stay ready, recorded: `resume` destroys them
            message = stopped_message(
                per.halted, f"{len(per.not_started)} clones not destroyed", "strip back"
            )
        self.runs.finish_run(
            run_id, state=state, succeeded=ended, failed=len(problems), message=message
        )
        result = TeardownResult(
            run_id=run_id,
            environment=env.name,
            destroyed=sorted(destroyed),
            already_gone=sorted(already_gone),
            skipped=[FailedClone(c.name, c.type, why) for c, why in skipped],
            failed=failed,
            unseen=unseen,
            reclaimed_bytes=reclaimed,
            elapsed_s=time.monotonic() - started,
            state=state,
            renamed={c.name: f.name for c, f in verified if f.name != c.name},
            message=message,
            cleared=sorted(cleared),
        )
        emit("finished", message=f"{len(destroyed)} clones destroyed, {result.reclaimed_gb} GB")
        self._ended()
        if error is not None:
            raise error
        return result

    def _not_to_destroy(
        self, checked: Checked, emit: Emitter
    ) -> tuple[list[str], list[FailedClone]]:
        """Record and report the clones not to destroy: those gone are recorded destroyed (a
        live clone already gone; a failed record with no VM: cleared, returned by name); those
        not provably ours, and those vCenter would not show, are left as they were (unseen is
        never gone, and the run is not a success: returned as "cannot see VM X: ...")."""
        cleared: list[str] = []
        for c in checked.gone:
            self.repo.update_clone(c.id, state=CloneState.DESTROYED, error=None)
            if c.state.live:
                emit("clone_ready", clone=c.name, ok=True, message="already gone")
            else:
                cleared.append(c.name)
                emit("clone_ready", clone=c.name, ok=True, message="no VM in vCenter: cleared")
        for c, why in checked.skipped:
            emit("clone_failed", clone=c.name, ok=False, message=why)
        unseen = [FailedClone(c.name, c.type, u.cannot_see(c.name)) for c, u in checked.unseen]
        for f in unseen:
            emit("clone_failed", clone=f.name, ok=False, message=f.error)
        return cleared, unseen

    def _destroy_all(
        self, run_id: int, emit: Emitter, verified: list[tuple[Clone, VmSighting]]
    ) -> PerClone[tuple[Clone, VmSighting], Destroyed | FailedClone]:
        """The pool of destroys. Not started (vCenter was lost, or the user stopped the run)
        stays ready; mid-destroy when vCenter was lost goes back to ready: the resumed run
        re-verifies both."""
        per = run_per_clone(
            verified,
            partial(self._destroy_one, run_id, emit),
            workers=self.settings.concurrency,
            name="strip",
            halt=self.core.halt,
        )
        if per.lost is not None:
            for c in self.repo.clones(run_id=run_id, states=[CloneState.DESTROYING]):
                self.repo.update_clone(c.id, state=CloneState.READY)
        return per

    def _extras(self) -> tuple[str, ...]:
        """What strip back's check reads beside identity and labels: the storage each clone
        frees, and where it runs when more destroys run at once than one host may take (each
        destroy counts on its host against `max_ops_per_host`)."""
        return ("storage", "host") if may_crowd_a_host(self.settings) else ("storage",)

    def _ended(self) -> None:
        if self.after is None:
            return
        try:
            self.after()
        except Exception:  # the clones are gone either way; telling people is extra
            log.exception("after the strip back")

    def _destroy_one(
        self, run_id: int, emit: Emitter, item: tuple[Clone, VmSighting], stop: Stop
    ) -> Destroyed | FailedClone:
        """Destroy one verified clone (retrying transient faults); record and report it."""
        if stop():
            raise NotStarted
        clone, facts = item
        # A live clone is recorded destroying; a failed record keeps its state (and why) until
        # its VM is gone: its run owns it, so a crash before then acts on it again.
        marked = CloneState.DESTROYING if clone.state.live else clone.state
        # Fenced: refused (and nothing destroyed) once another bot took the run over.
        self.repo.update_clone(
            clone.id, fence=self.runs.fence(emit.run_id), state=marked, moref=facts.moref
        )
        try:
            for attempt in retrying(self.settings, emit, clone.name, self.runs.halt):
                host = clone_host(self.settings, clone, facts.host)
                ticket = self.core.limits.host_op(
                    host,
                    clone_datastore(self.settings, clone),
                    owner=run_id,
                    on_queued=emit.queued,
                )
                with attempt, ticket:
                    outcome = self.vcenter.destroy(
                        facts.moref, expected_uuid=facts.instance_uuid, facts=facts
                    )
        except VCenterUnreachable:
            raise
        except Interrupted:  # stopped while it waited for room: never asked, still ready
            self.repo.update_clone(clone.id, state=CloneState.READY)
            raise
        except ClonesError as exc:
            if clone.state.live:
                self.repo.update_clone(clone.id, state=CloneState.READY, error=str(exc))
            emit("clone_failed", clone=clone.name, ok=False, message=str(exc))
            return FailedClone(clone.name, clone.type, str(exc))
        self.repo.update_clone(clone.id, state=CloneState.DESTROYED, error=None)
        emit("clone_ready", clone=clone.name, ok=True, message="already gone" * outcome.gone)
        return outcome
