"""Self-service for trainees, on the VM their assignment records and nothing else: `my`,
`reset`, `power on|off` and `rebuild` (the refresh service for that one clone, so a crash
mid-rebuild is resumed like a refresh). Operators may act for any trainee. A trainee naming a
VM that is not theirs is refused, and the refusal is audited."""

from __future__ import annotations

from dataclasses import replace

from bot.domain import grammar
from bot.domain.errors import ConflictError, NotFoundError, PermissionDenied, UsageError
from bot.domain.models import Assignment, Clone, CloneState, RunState
from bot.domain.results import FailedClone
from bot.domain.trainees import MyVm, MyVms, RebuildPlan, SelfService
from bot.ports import ProgressCallback
from bot.services.ownership import Ownership
from bot.services.power import Power
from bot.services.queries import Queries
from bot.services.refresh import Refresher, RefreshResult
from bot.services.runs import Core
from bot.services.trainees.handout import HandOuts

Target = grammar.Reset | grammar.Rebuild | grammar.MyPower

NO_VM = (
    "You hold no training VM, so there is nothing to {verb}: your trainer gives you one with "
    '"assign". (For an environment\'s clones, operators type e.g. "power {action} nov-cohort".)'
)


class Desk:
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
        self.settings, self.repo = core.settings, core.repo
        self.runs, self.clock = core.runs, core.clock
        self.queries, self.ownership, self.power = queries, ownership, power
        self.refresher, self.handouts = refresher, handouts

    # ------------------------------------------------------------------ reading
    def mine(self, user: str) -> MyVms:
        """The VMs `user` holds, with their state and links."""
        held = self.repo.assignments(trainee=user)
        clones = {c.id: c for c in self._clones_of(held)}
        out = []
        for a in held:
            clone = clones[a.clone_id]
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
                )
            )
        return MyVms(user, out)

    def _clones_of(self, held: list[Assignment]) -> list[Clone]:
        return [self.repo.get_clone(a.clone_id) for a in held]

    # ------------------------------------------------------------------ whose VM
    def targets(
        self, command: Target, actor: str, *, anyone: bool, source: str, channel: str
    ) -> list[tuple[Assignment, Clone]]:
        """The assigned VMs a self-service command acts on: the actor's own, one of them by
        name, or (`anyone`: an operator) any trainee's. PermissionDenied, audited, otherwise."""
        verb = "power " + command.action if isinstance(command, grammar.MyPower) else command.verb
        said = " ".join(w for w in (verb, command.vm or command.trainee or "") if w)
        if command.vm is not None:
            held = [
                a for a in self.repo.assignments() if a.clone_name.lower() == command.vm.lower()
            ]
            if not anyone and (not held or held[0].trainee != actor):
                self._deny(actor, source, channel, said, command.vm)
            if not held:  # an operator naming a VM nobody holds
                raise NotFoundError(
                    f"{command.vm} is not assigned to anyone: {command.verb} is for trainees' "
                    'VMs (for an environment\'s clones use "power ENV" or "refresh ENV").'
                )
        elif command.trainee is not None and command.trainee != actor:
            if not anyone:
                self._deny(actor, source, channel, said, f"<@{command.trainee}>'s VM")
            held = self.repo.assignments(trainee=command.trainee)
            if not held:
                raise NotFoundError(f"{command.trainee} holds no training VM.")
        else:
            held = self.repo.assignments(trainee=actor)
            if not held:
                action = command.action if isinstance(command, grammar.MyPower) else "reset"
                raise NotFoundError(NO_VM.format(verb=verb, action=action))
        return list(zip(held, self._clones_of(held), strict=True))

    def _deny(self, actor: str, source: str, channel: str, said: str, what: str) -> None:
        self.repo.audit(
            actor=actor,
            source=source,
            channel=channel,
            command=said,
            result="denied",
            detail=f"not the actor's VM: {what}",
        )
        raise PermissionDenied(
            "That is not your VM: you may reset, rebuild and power only the VM you were given "
            '("my" shows it).'
        )

    # ------------------------------------------------------------------ power
    def power_mine(
        self, command: grammar.Reset | grammar.MyPower, actor: str, *, anyone: bool,
        source: str = "cli", channel: str = "",
    ) -> SelfService:  # fmt: skip
        """Power-reset, or power on or off, the VMs the command names (verified ours)."""
        action = "reset" if isinstance(command, grammar.Reset) else command.action
        pairs = self.targets(command, actor, anyone=anyone, source=source, channel=channel)
        done: list[str] = []
        failed: list[FailedClone] = []
        for environment in sorted({a.environment for a, _ in pairs}):
            env = self.queries.environment(environment)
            clones = [c for a, c in pairs if a.environment == environment]
            ready = [c for c in clones if c.state is CloneState.READY]
            failed += [FailedClone(c.name, c.type, _not_ready(c)) for c in clones if c not in ready]
            checked = self.ownership.verify_ours(env, ready)
            failed += [FailedClone(c.name, c.type, "missing from vCenter") for c in checked.gone]
            failed += [FailedClone(c.name, c.type, why) for c, why in checked.left_alone]
            ours = [c for c, _ in checked.verified]
            problems = self.power.power_clones(ours, action)
            failed += problems
            done += [c.name for c in ours if c.name not in {f.name for f in problems}]
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
        """The rebuild with its one VM named (checked to be the actor's, or `anyone`)."""
        pairs = self.targets(command, actor, anyone=anyone, source=source, channel=channel)
        if len(pairs) > 1:
            names = ", ".join(c.name for _, c in pairs)
            raise UsageError(
                f"{len(pairs)} VMs are held ({names}): name the one to rebuild, e.g. "
                f'"rebuild {pairs[0][1].name}"'
            )
        return replace(command, vm=pairs[0][1].name, trainee=None)

    def rebuild_plan(self, command: grammar.Rebuild) -> RebuildPlan:
        """What the (settled) rebuild re-creates; nobody's VM but the one named."""
        held = [a for a in self.repo.assignments() if a.clone_name == command.vm]
        if not held:
            raise NotFoundError(f"{command.vm} is not assigned to anyone; nothing to rebuild.")
        a = held[0]
        clone = self.repo.get_clone(a.clone_id)
        if clone.state is not CloneState.READY:
            raise ConflictError(f"{clone.name} cannot be rebuilt now: {_not_ready(clone)}.")
        return RebuildPlan(clone.name, a.environment, clone.type, a.trainee)

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
        """Destroy the VM the assignment records (verified ours) and clone it again from the
        current base snapshot, same name, host and attributes; the assignment stays. Waits up
        to `[trainees] busy_wait_s` while the environment is busy (another rebuild)."""
        settled = self.settle(command, actor, anyone=anyone, source=source, channel=channel)
        [(a, clone)] = self.targets(settled, actor, anyone=anyone, source=source, channel=channel)
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
