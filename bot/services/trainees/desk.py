"""Self-service for trainees, on the VM their assignment records and nothing else: `my`,
`reset`, `power on|off` and `rebuild` (the refresh service for that one clone, so a crash
mid-rebuild is resumed like a refresh). Operators may act for any trainee. Which VM a command
acts on, and the proof that vCenter still has that VM, are `identity`'s: a VM not the asker's,
a stale button, or a VM vCenter does not show as recorded is refused, and the refusal audited."""

from __future__ import annotations

from dataclasses import replace

from bot.domain import grammar
from bot.domain.errors import ConflictError, NotFoundError, UsageError
from bot.domain.models import Clone, CloneState, RunState
from bot.domain.results import FailedClone
from bot.domain.trainees import MyVm, MyVms, RebuildPlan, SelfService, VmRef
from bot.ports import ProgressCallback
from bot.services.core import Core, OnCore
from bot.services.ownership import Ownership
from bot.services.power import Power
from bot.services.queries import Queries
from bot.services.refresh import Refresher, RefreshResult
from bot.services.trainees.handout import HandOuts
from bot.services.trainees.identity import Asker, Held, Holdings


class Desk(OnCore):
    """What a trainee may do with the VM they were given."""

    def __init__(
        self,
        core: Core,
        *,
        queries: Queries,
        ownership: Ownership,
        power: Power,
        refresher: Refresher,
        handouts: HandOuts,
    ) -> None:
        super().__init__(core)
        self.queries, self.power = queries, power
        self.refresher, self.handouts = refresher, handouts
        self.holdings = Holdings(core.repo, queries, ownership)

    # ------------------------------------------------------------------ reading
    def mine(self, user: str) -> MyVms:
        """The VMs `user` holds, with their state, links and identity (for their buttons)."""
        out = []
        for a in self.repo.assignments(trainee=user):
            clone = self.repo.get_clone(a.clone_id)
            env = self.queries.environment(a.environment)
            client, console = self.handouts.links(clone)
            out.append(
                MyVm(
                    a,
                    clone.type,
                    clone.state.value,
                    clone.power_state or "",
                    client,
                    console,
                    self.handouts.ends(env),
                    clone.instance_uuid or "",
                )
            )
        return MyVms(user, out)

    # ------------------------------------------------------------------ power
    def power_mine(
        self, command: grammar.Reset | grammar.MyPower, actor: str, *, anyone: bool,
        source: str = "cli", channel: str = "",
    ) -> SelfService:  # fmt: skip
        """Power-reset, or power on or off, the VMs the command names, once vCenter shows each
        is still the VM recorded (else nothing is done: refused, audited)."""
        action = "reset" if isinstance(command, grammar.Reset) else command.action
        asker = Asker(actor, source, channel, anyone)
        pairs = self.holdings.targets(command, asker)
        ours = self.holdings.prove(command, pairs, asker)
        failed = [FailedClone(c.name, c.type, _not_ready(c)) for _, c in pairs if c not in ours]
        problems = self.power.power_clones(ours, action)
        failed += problems
        done = [c.name for c in ours if c.name not in {f.name for f in problems}]
        self.repo.audit(
            actor=actor,
            source=source,
            channel=channel,
            command=f"{'reset' if action == 'reset' else 'power ' + action} "
            + ", ".join(c.name for _, c in pairs),
            result="ok" if not failed else "partial",
            detail=f"{len(done)} done, {len(failed)} failed",
        )
        return SelfService(action, done, failed)

    # ------------------------------------------------------------------ rebuild
    def settle(
        self, command: grammar.Rebuild, actor: str, *, anyone: bool, source: str, channel: str
    ) -> grammar.Rebuild:
        """The rebuild with its one VM named by identity (checked to be the actor's, or
        `anyone`), so the confirmation binds that VM and no other of the same name."""
        clone = self._one(command, Asker(actor, source, channel, anyone))[1]
        ref = VmRef(clone.id, clone.instance_uuid or "", clone.name)
        return replace(command, vm=clone.name, trainee=None, ref=ref)

    def _one(self, command: grammar.Rebuild, asker: Asker) -> Held:
        pairs = self.holdings.targets(command, asker)
        if len(pairs) > 1:
            names = ", ".join(c.name for _, c in pairs)
            raise UsageError(
                f"{len(pairs)} VMs are held ({names}): name the one to rebuild, e.g. "
                f'"rebuild {pairs[0][1].name}"'
            )
        return pairs[0]

    def rebuild_plan(self, command: grammar.Rebuild) -> RebuildPlan:
        """What the (settled) rebuild re-creates; nobody's VM but the one it names."""
        ref = command.ref or (self.holdings.held_ref(command.vm) if command.vm else None)
        held = self.repo.assignments(clone_ids=[ref.clone_id]) if ref else []
        if ref is None or not held:
            raise NotFoundError(f"{command.vm} is not assigned to anyone; nothing to rebuild.")
        a = held[0]
        clone = self.repo.get_clone(a.clone_id)
        if clone.instance_uuid != ref.instance_uuid:
            raise ConflictError(f"{clone.name} was rebuilt or replaced meanwhile: ask again.")
        if clone.state is not CloneState.READY:
            raise ConflictError(f"{clone.name} cannot be rebuilt now: {_not_ready(clone)}.")
        return RebuildPlan(clone.name, a.environment, clone.type, a.trainee, ref)

    def rebuild(
        self,
        command: grammar.Rebuild,
        actor: str,
        *,
        anyone: bool,
        source: str = "cli",
        channel: str = "",
        on_event: ProgressCallback | None = None,
    ) -> RefreshResult:
        """Destroy the VM the assignment records (proven still that VM) and clone it again from
        the current base snapshot, same name, host and attributes; the assignment stays (a
        rebuild that cannot make it again ends it: the clone is failed). Waits up to
        `[trainees] busy_wait_s` while the environment is busy (another rebuild)."""
        asker = Asker(actor, source, channel, anyone)
        a, clone = self._one(command, asker)
        if clone.state is CloneState.READY:  # else mid-rebuild: the refresh waits or refuses
            self.holdings.prove(command, [(a, clone)], asker)
        words = f"rebuild {clone.name}"
        from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_fixed

        for attempt in Retrying(
            retry=retry_if_exception(lambda exc: self._busy_for_now(exc, a.environment)),
            stop=stop_after_delay(self.settings.trainees.busy_wait_s),
            wait=wait_fixed(1.0),
            reraise=True,
        ):
            with attempt:
                return self.refresher.refresh(
                    grammar.Refresh(a.environment),
                    actor=actor,
                    source=source,
                    channel=channel,
                    on_event=on_event,
                    clone_ids=[clone.id],
                    words=words,
                )
        raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover

    def _busy_for_now(self, exc: BaseException, environment: str) -> bool:
        """Worth waiting for: the environment is busy with a run that is going somewhere. A
        run whose process died, or an interrupted one, clears only with `resume`: said at once."""
        if not isinstance(exc, ConflictError):
            return False
        blocking = self.repo.runs(
            environment=environment, states=[RunState.RUNNING, RunState.INTERRUPTED], limit=20
        )
        now = self.clock()
        return not any(
            r.state is RunState.INTERRUPTED or self.runs.owner_dead(r, now) for r in blocking
        )


def _not_ready(clone: Clone) -> str:
    if clone.state is CloneState.MISSING:
        return "it is gone from vCenter; ask your trainer"
    return f"it is {clone.state.value}, not ready"
