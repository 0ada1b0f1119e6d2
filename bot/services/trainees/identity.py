"""Which VM a trainee's self-service command acts on, and the proof that it is still that VM.

A VM is its instance UUID; the name is a label that comes back for another clone once a VM is
gone (missing, failed, destroyed). So:
- a button (and a command settled before it is confirmed or queued) names the clone's record id
  and the instance UUID it had when it was shown (`VmRef`): it acts only while that record is
  held by the asker (an operator: by anyone) and still carries that UUID;
- a name the asker types is looked for among the *active* assignments of the asker only (an
  operator: among all active ones, whose clones are live, so the name is unique);
- before anything is powered or rebuilt, vCenter must agree: the recorded moref locates a VM
  with the recorded instance UUID and the bot's labels.
Anything else is refused with a sentence saying why, and audited as denied.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from bot.domain import grammar
from bot.domain.errors import NotFoundError, PermissionDenied
from bot.domain.models import Assignment, Clone, CloneState
from bot.domain.trainees import VmRef
from bot.ports import Repository
from bot.services.ownership import Ownership
from bot.services.queries import Queries

Target = grammar.Reset | grammar.Rebuild | grammar.MyPower
Held = tuple[Assignment, Clone]

NO_VM = (
    "You hold no training VM, so there is nothing to {verb}: your trainer gives you one with "
    '"assign". (For an environment\'s clones, operators type e.g. "power {action} nov-cohort".)'
)
NOT_YOURS = (
    "That is not your VM: you may reset, rebuild and power only the VM you were given "
    '("my" shows it).'
)
GONE_BY = (
    "{vm} is no longer assigned to anyone (its VM went, or was given back), so nothing was done: "
    '"status ENV" shows what is there now.'
)
STALE = (
    "That button is for {vm} as it was when the button was shown; the VM has been rebuilt or "
    'replaced since, so nothing was done. "my" shows your VM with fresh buttons.'
)
NOT_PROVEN = (
    "Nothing was done: {vm} in vCenter is not provably the VM that was assigned ({why}). {advice}"
)


@dataclass(frozen=True)
class Asker:
    """Who asks, from where, in which words (for the audit), and whether they may act on any
    trainee's VM (an operator; the terminal)."""

    actor: str
    source: str
    channel: str
    anyone: bool

    def words(self, command: Target, vm: str = "") -> str:
        """The command as the audit shows it: "power off TRN-CAP-001", "reset U02" (`vm`: the
        VM it came to, when it named none)."""
        verb = "power " + command.action if isinstance(command, grammar.MyPower) else command.verb
        what = command.vm or (command.ref.name if command.ref else "") or command.trainee or vm
        return " ".join(w for w in (verb, what) if w)


class Holdings:
    """Resolves a self-service command to the assignments it acts on, and proves their VMs."""

    def __init__(self, repo: Repository, queries: Queries, ownership: Ownership) -> None:
        self.repo, self.queries, self.ownership = repo, queries, ownership

    # ------------------------------------------------------------------ the records
    def held_ref(self, name: str) -> VmRef | None:
        """The VM some trainee holds under `name` now (any case), by identity; None when nobody
        does. (Active assignments hold live clones only, whose names are unique.)"""
        held = [a for a in self.repo.assignments() if a.clone_name.lower() == name.lower()]
        if len(held) != 1:
            return None
        clone = self.repo.get_clone(held[0].clone_id)
        return VmRef(clone.id, clone.instance_uuid or "", clone.name)

    def targets(self, command: Target, asker: Asker) -> list[Held]:
        """The assigned VMs a self-service command acts on: the one its `ref` names, the asker's
        own (one of them by name), or (an operator) any trainee's. PermissionDenied, audited,
        otherwise."""
        if command.ref is not None:
            return [self._by_ref(command, command.ref, asker)]
        if command.vm is not None:
            mine = None if asker.anyone else asker.actor
            pool = self.repo.assignments() if mine is None else self.repo.assignments(trainee=mine)
            held = [a for a in pool if a.clone_name.lower() == command.vm.lower()]
            if not held and not asker.anyone:
                self.deny(command, asker, f"not the actor's VM: {command.vm}", NOT_YOURS)
            if not held:  # an operator naming a VM nobody holds
                raise NotFoundError(
                    f"{command.vm} is not assigned to anyone: {command.verb} is for trainees' "
                    'VMs (for an environment\'s clones use "power ENV" or "refresh ENV").'
                )
        elif command.trainee is not None and command.trainee != asker.actor:
            if not asker.anyone:
                what = f"not the actor's VM: <@{command.trainee}>'s VM"
                self.deny(command, asker, what, NOT_YOURS)
            held = self.repo.assignments(trainee=command.trainee)
            if not held:
                raise NotFoundError(f"{command.trainee} holds no training VM.")
        else:
            held = self.repo.assignments(trainee=asker.actor)
            if not held:
                verb = asker.words(command)
                action = command.action if isinstance(command, grammar.MyPower) else "reset"
                raise NotFoundError(NO_VM.format(verb=verb, action=action))
        return [(a, self.repo.get_clone(a.clone_id)) for a in held]

    def _by_ref(self, command: Target, ref: VmRef, asker: Asker) -> Held:
        """The assignment of the record `ref` names, if the asker may act on it and the record
        still carries the instance UUID the button was shown with."""
        held = self.repo.assignments(clone_ids=[ref.clone_id])
        if not held or (not asker.anyone and held[0].trainee != asker.actor):
            what = f"not the actor's VM: {ref.name or '?'} (clone record {ref.clone_id})"
            sentence = GONE_BY.format(vm=ref.name or "That VM") if asker.anyone else NOT_YOURS
            self.deny(command, asker, what, sentence)
        clone = self.repo.get_clone(ref.clone_id)
        recorded = (clone.instance_uuid or "").lower()
        if not ref.instance_uuid or recorded != ref.instance_uuid.lower():
            what = (
                f"a stale button: {clone.name} (clone record {clone.id}) was shown with instance "
                f"UUID {ref.instance_uuid}, recorded now {clone.instance_uuid}"
            )
            self.deny(command, asker, what, STALE.format(vm=clone.name))
        return held[0], clone

    # ------------------------------------------------------------------ vCenter's word
    def prove(self, command: Target, held: list[Held], asker: Asker) -> list[Clone]:
        """The ready clones of `held` whose VM vCenter shows as the one recorded (the moref
        locates a VM with the recorded instance UUID and the bot's labels). Any that is not, or
        is gone: nothing is done, the refusal audited as denied."""
        by_env: dict[str, list[Clone]] = defaultdict(list)
        for a, clone in held:
            if clone.state is CloneState.READY:
                by_env[a.environment].append(clone)
        proven: list[Clone] = []
        refused: list[tuple[Clone, str]] = []
        for environment, clones in sorted(by_env.items()):
            env = self.queries.environment(environment)
            checked = self.ownership.verify_ours(env, clones)
            proven += [c for c, _ in checked.verified]
            refused += [(c, "it is gone from vCenter") for c in checked.gone]
            refused += [(c, why.removeprefix("not touched: ")) for c, why in checked.left_alone]
        if refused:
            clone, why = refused[0]
            advice = (
                f'"status {clone.environment}" shows what differs.'
                if asker.anyone
                else "Ask your trainer to look at it."
            )
            detail = "; ".join(f"{c.name} (clone record {c.id}): {w}" for c, w in refused)
            self.deny(
                command,
                asker,
                f"not the recorded VM: {detail}",
                NOT_PROVEN.format(vm=clone.name, why=why, advice=advice),
                vm=", ".join(c.name for c, _ in refused),
            )
        return proven

    def deny(
        self, command: Target, asker: Asker, detail: str, sentence: str, *, vm: str = ""
    ) -> None:
        """Audit the refusal and raise it (PermissionDenied, `sentence` for the user)."""
        self.repo.audit(
            actor=asker.actor,
            source=asker.source,
            channel=asker.channel,
            command=asker.words(command, vm),
            result="denied",
            detail=detail,
        )
        raise PermissionDenied(sentence)
