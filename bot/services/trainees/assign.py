"""`assign` and `unassign`: one ready clone per trainee, stable across runs (existing pairs are
kept, new trainees get the next free clones by name), recorded in SQLite, optionally written on
the clone as the AssignedTo custom attribute, then handed out."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence

from bot.domain import grammar
from bot.domain.errors import CapacityError, ClonesError
from bot.domain.models import Assignment, Clone, CloneState, Environment
from bot.domain.trainees import ASSIGNED_TO, Assigned, HandedOut, Person, Unassigned
from bot.services.core import Core, OnCore
from bot.services.ownership import Ownership
from bot.services.queries import Queries
from bot.services.trainees.handout import HandOuts, OnHandOut
from bot.services.trainees.people import People, resolve

log = logging.getLogger(__name__)


class Assigner(OnCore):
    """Pairs trainees with ready clones and takes them back."""

    def __init__(
        self,
        core: Core,
        people: People,
        queries: Queries,
        ownership: Ownership,
        handouts: HandOuts,
    ) -> None:
        super().__init__(core)
        self.people, self.queries, self.ownership = people, queries, ownership
        self.handouts = handouts

    def assign(
        self,
        command: grammar.Assign,
        *,
        actor: str,
        source: str = "cli",
        channel: str = "",
        on_progress: OnHandOut | None = None,
    ) -> Assigned:
        """Pair each trainee named with a ready clone (kept pairs stay), then hand out to those
        new and to those never reached. Refused, with nothing changed, when there are fewer
        free ready clones than trainees who need one."""
        env = self.queries.environment(command.environment)
        named = resolve(self.people, command)
        ready = self.repo.clones(environment=env.name, states=[CloneState.READY])
        ready_ids = {c.id for c in ready}
        active = {a.trainee: a for a in self.repo.assignments(environment=env.name)}
        kept = [active[u] for u in named.users if u in active and active[u].clone_id in ready_ids]
        replaced = [active[u] for u in named.users if u in active and active[u] not in kept]
        needing = [u for u in named.users if u not in active or active[u] in replaced]
        held = {a.clone_id for a in active.values() if a not in replaced}
        free = sorted((c for c in ready if c.id not in held), key=lambda c: (c.name, c.id))
        if len(free) < len(needing):
            raise CapacityError(self._short(env, ready, len(needing), len(free)))
        new = self.repo.assign(
            environment=env.name,
            pairs=[(u, c.id) for u, c in zip(needing, free, strict=False)],
            assigned_by=actor,
            replacing=[a.id for a in replaced],
        )
        self.repo.audit(
            actor=actor,
            source=source,
            channel=channel,
            command=f"assign {env.name}",
            result="ok",
            detail=f"{len(new)} new, {len(kept)} kept, {len(replaced)} replaced: "
            + ", ".join(f"{a.trainee}={a.clone_name}" for a in new),
        )
        problems = self._label(env, [(a, named.persons.get(a.trainee)) for a in new])
        problems += self._label(env, [(a, None) for a in replaced], clear=True)
        # Those never reached before are handed out again with the new ones.
        waiting = [a for a in self.repo.assignments(environment=env.name) if not a.handed_out_at]
        wanted = set(named.users)
        report = self.handouts.send(env, [a for a in waiting if a.trainee in wanted], on_progress)
        return Assigned(env.name, new, kept, replaced, named.left_out, report, problems)

    def hand_out_again(
        self,
        command: grammar.Handout,
        *,
        actor: str,
        source: str = "cli",
        channel: str = "",
        on_progress: OnHandOut | None = None,
    ) -> HandedOut:
        """The hand-out to the environment's trainees not reached yet (only to them)."""
        env = self.queries.environment(command.environment)
        waiting = self.handouts.waiting(env)
        report = self.handouts.send(env, waiting, on_progress)
        self.repo.audit(
            actor=actor,
            source=source,
            channel=channel,
            command=f"handout {env.name}",
            result="ok" if not report.failed and not report.not_sent else "partial",
            detail=f"{len(report.sent)} reached, {len(report.failed)} not reached "
            f"of {len(waiting)} waiting",
        )
        return HandedOut(env.name, report, len(waiting))

    def _short(self, env: Environment, ready: list[Clone], needed: int, free: int) -> str:
        """The refusal when too few ready clones are free, naming the deployment to type."""
        by_type = Counter(c.type for c in self.repo.clones(environment=env.name))
        kind = by_type.most_common(1)[0][0] if by_type else next(iter(self.settings.types))
        short = needed - free
        return (
            f"{needed} trainees need a VM in {env.name} but only {free} of its {len(ready)} "
            f'ready clones are free: deploy {short} more first, e.g. "deploy {kind} {short} as '
            f'{env.name}", then assign again. Nothing was assigned.'
        )

    def unassign(
        self, command: grammar.Unassign, *, actor: str, source: str = "cli", channel: str = ""
    ) -> Unassigned:
        """End the named trainees' assignments in the environment (their VMs stay as they are)."""
        env = self.queries.environment(command.environment)
        named = resolve(self.people, command)
        active = {a.trainee: a for a in self.repo.assignments(environment=env.name)}
        ended = self.repo.end_assignments(
            [active[u].id for u in named.users if u in active], reason="unassigned"
        )
        missing = [u for u in named.users if u not in active]
        self.repo.audit(
            actor=actor,
            source=source,
            channel=channel,
            command=f"unassign {env.name}",
            result="ok",
            detail=", ".join(f"{a.trainee}={a.clone_name}" for a in ended) or "nobody held one",
        )
        self._label(env, [(a, None) for a in ended], clear=True)
        return Unassigned(env.name, ended, missing)

    def relabel(self, environment: str) -> list[tuple[str, str]]:
        """Write AssignedTo again on the environment's assigned ready clones (a recovery
        re-created some under the same names: a new VM carries only the deployment's
        attributes). Returns (vm, why) for those not written."""
        env = self.repo.get_environment(environment)
        if env is None or not self.settings.trainees.assigned_to_attribute:
            return []
        ready = {c.id for c in self.repo.clones(environment=env.name, states=[CloneState.READY])}
        held = [a for a in self.repo.assignments(environment=env.name) if a.clone_id in ready]
        return self._label(env, [(a, None) for a in held])

    def _label(
        self,
        env: Environment,
        held: Sequence[tuple[Assignment, Person | None]],
        *,
        clear: bool = False,
    ) -> list[tuple[str, str]]:
        """Write (or clear) AssignedTo on each clone, one SetField each, when the setting asks
        for it; only on clones verified ours. Returns (vm, why) for those not written."""
        if not self.settings.trainees.assigned_to_attribute or not held:
            return []
        if not clear:  # who they are, in one batch (the directory keeps whom it read)
            held = self._named(held)
        clones = {c.id: c for c in self.repo.clones(environment=env.name)}
        mine = [clones[a.clone_id] for a, _ in held if a.clone_id in clones]
        try:
            checked = self.ownership.verify_ours(env, mine)
        except ClonesError as exc:
            return [(a.clone_name, str(exc)) for a, _ in held]
        facts = {c.id: vm for c, vm in checked.verified}
        problems = [(c.name, "missing from vCenter") for c in checked.gone]
        problems += [(c.name, why) for c, why in checked.left_alone]
        for a, who in held:
            vm = facts.get(a.clone_id)
            if vm is None:
                continue
            value = "" if clear else self._label_of(a.trainee, who)
            try:
                self.vcenter.set_attributes(vm.moref, {ASSIGNED_TO: value})
            except ClonesError as exc:
                problems.append((a.clone_name, str(exc)))
        return problems

    def _named(
        self, held: Sequence[tuple[Assignment, Person | None]]
    ) -> list[tuple[Assignment, Person | None]]:
        unknown = [a.trainee for a, who in held if who is None]
        if not unknown or self.people.directory is None:
            return list(held)
        try:
            found = self.people.directory.persons(unknown)
        except ClonesError as exc:
            log.info("no names for %d trainee(s): %s", len(unknown), exc)
            return list(held)
        return [(a, who or found.get(a.trainee)) for a, who in held]

    def _label_of(self, trainee: str, who: Person | None) -> str:
        if who is None and self.people.directory is not None:
            try:
                who = self.people.directory.person(trainee)
            except ClonesError as exc:
                log.info("no name for %s: %s", trainee, exc)
        return who.label if who is not None else trainee
