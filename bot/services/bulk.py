"""An operation on each of an environment's ready clones that are provably the bot's: `power
on|off|reset ENV`, `snapshot ENV NAME`, and any bulk verb after them.

`EachClone.run` takes the environment's lock, proves each ready clone ours (moref, instance UUID
and labels: `Ownership.verify_ours`), runs the operation on those, `concurrency` at a time and
within the process's per-host limits (`each_clone`), records the clones vCenter says are gone as
missing (never destroyed: nobody asked for that), leaves alone the ones not provably ours and
the ones vCenter would not show (a failed or faulted read is unseen, never gone), reports
progress, and audits what it did.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bot.domain.errors import NotFoundError, VCenterError
from bot.domain.models import Clone, CloneState
from bot.domain.results import FailedClone, ProgressLabel
from bot.ports import ProgressCallback, Repository
from bot.services.core import Core, OnCore
from bot.services.limits import clone_host
from bot.services.ownership import Ownership
from bot.services.pipeline import Stop, run_per_clone
from bot.services.queries import Queries
from bot.services.runbook import Emitter

log = logging.getLogger(__name__)

VmOperation = Callable[[Clone], VCenterError | None]  # one clone's operation: its error or None


@dataclass(frozen=True)
class BulkResult:
    """What became of each ready clone of an environment: done, failed (gone ones too: they are
    recorded missing), or left alone (not provably ours, or vCenter would not show it)."""

    environment: str
    action: str  # "on", "off", "reset"; a snapshot's name
    done: list[str]
    failed: list[FailedClone]
    skipped: list[FailedClone]
    label: str = ""  # the sentence's start, before the environment: "Power on", ...


def each_clone(
    core: Core,
    clones: Sequence[Clone],
    operation: VmOperation,
    *,
    name: str,
    emit: Emitter | None = None,
) -> list[FailedClone]:
    """Run `operation` on each clone (with a moref), `concurrency` at a time at most and at most
    `max_ops_per_host` on one host (a clone's recorded host; a clone the bot did not place counts
    on its type's resource pool as one host), counted with every other run of the process.
    Stopped by the user (Ctrl-C), those not started are failed as not done."""
    owner = object()  # this command's operations, for fair shares beside the runs

    def one(clone: Clone, stop: Stop) -> VCenterError | None:
        ticket = core.limits.host_op(
            clone_host(core.settings, clone),
            owner=emit.run_id if emit is not None else owner,
            on_queued=emit.queued if emit is not None else None,
        )
        with ticket:
            return operation(clone)

    per = run_per_clone(
        [c for c in clones if c.moref],
        one,
        workers=core.settings.concurrency,
        name=name,
        halt=core.halt,
    )
    failed = [FailedClone(c.name, c.type, str(e)) for c, e in per.results if e is not None]
    if per.lost is not None:
        raise per.lost
    if per.halted:
        why = f"not done: stopped by {per.halted} before it started"
        failed += [FailedClone(c.name, c.type, why) for c in per.not_started]
    return failed


def record_missing(repo: Repository, gone: Sequence[Clone]) -> list[FailedClone]:
    """Clones vCenter says are gone, when nobody asked the bot to destroy them: missing."""
    for c in gone:
        repo.update_clone(c.id, state=CloneState.MISSING, error="missing from vCenter")
    return [FailedClone(c.name, c.type, "missing from vCenter") for c in gone]


class EachClone(OnCore):
    """An operation on each ready, provably ours clone of an environment (see the module)."""

    def __init__(self, core: Core, ownership: Ownership, queries: Queries) -> None:
        super().__init__(core)
        self.ownership = ownership
        self.queries = queries

    def run(
        self,
        environment: str,
        operation: VmOperation,
        *,
        action: str,
        doing: str,
        label: str,
        progress: ProgressLabel,
        words: str,
        actor: str,
        source: str,
        on_event: ProgressCallback | None = None,
    ) -> BulkResult:
        """`doing` says what is done to each clone ("power on"), `label` starts the result's
        sentence ("Power on"), `progress` is what its progress events say (`SNAPSHOTTING`),
        `words` are the command as the audit log shows it."""
        env = self.queries.environment(environment)
        clones = self.repo.clones(environment=env.name, states=[CloneState.READY])
        if not clones:
            raise NotFoundError(f"Environment {env.name} has no ready clones to {doing}.")
        with self.core.runs.environment_lock(env.name):
            checked = self.ownership.verify_ours(env, clones)
            ours = [c for c, _ in checked.verified]
            emit = Emitter(0, env.name, progress, len(ours), time.monotonic(), on_event)
            emit("started", message=f"{label} {env.name}: {len(ours)} clones")

            def counted(clone: Clone) -> VCenterError | None:
                error = operation(clone)
                emit(
                    "clone_failed" if error else "clone_ready",
                    clone=clone.name,
                    ok=error is None,
                    message=str(error or ""),
                )
                return error

            failed = each_clone(self.core, ours, counted, name=doing.split()[0])
            failed += record_missing(self.repo, checked.gone)
            emit("finished")
        failed_names = {f.name for f in failed}
        result = BulkResult(
            environment=env.name,
            action=action,
            done=[c.name for c in ours if c.name not in failed_names],
            failed=failed,
            skipped=[FailedClone(c.name, c.type, why) for c, why in checked.left_alone],
            label=label,
        )
        self.repo.audit(
            actor=actor,
            source=source,
            command=words,
            result="ok" if not result.failed else "partial",
            detail=f"{len(result.done)} done, {len(result.failed)} failed",
        )
        return result
