"""Trainees: who holds which VM (`assign`, `unassign`), the hand-out message, and self-service
on one's own VM (`my`, `reset`, `power on|off`, `rebuild`).

- `people`: the `Directory` and `Messenger` ports as the composition root connects them, and
  turning @mentions, e-mail addresses and a channel into Slack member IDs;
- `assign`: one ready clone per trainee, stable across runs; the AssignedTo attribute;
- `handout`: the direct messages (hand-out, reminder, "your VM was removed") and their links;
- `desk`: the self-service commands, on the VM the assignment records only;
- `identity`: which VM such a command (or a button) names, and vCenter's proof it is that VM.

`Trainees` wires them over the services of `UseCases` (bot.services.core), which builds it; the
composition root connects the people (`connect`).
"""

from __future__ import annotations

from collections.abc import Callable

from bot.domain import grammar
from bot.domain.models import Environment
from bot.domain.trainees import (
    Assigned,
    HandedOut,
    MyVms,
    RebuildPlan,
    SelfService,
    Unassigned,
    VmRef,
)
from bot.ports import Directory, Messenger, ProgressCallback
from bot.services.core import Core
from bot.services.ownership import Ownership
from bot.services.power import Power
from bot.services.queries import Queries
from bot.services.refresh import Refresher, RefreshResult
from bot.services.trainees.assign import Assigner
from bot.services.trainees.desk import Desk
from bot.services.trainees.handout import HandOuts, OnHandOut
from bot.services.trainees.people import NO_PEOPLE, People

__all__ = ["OnHandOut", "People", "Trainees"]


class Trainees:
    """The trainee commands, over one core and the people the composition root connects."""

    def __init__(
        self,
        core: Core,
        *,
        queries: Queries,
        ownership: Ownership,
        power: Power,
        refresher: Refresher,
    ) -> None:
        self.repo = core.repo
        self.people = People()
        self.handouts = HandOuts(core, self.people)
        self.assigner = Assigner(core, self.people, queries, ownership, self.handouts)
        self.desk = Desk(
            core,
            queries=queries,
            ownership=ownership,
            power=power,
            refresher=refresher,
            handouts=self.handouts,
        )

    def connect(
        self,
        directory: Directory | None,
        messenger: Messenger | None,
        *,
        staff: Callable[[str], bool] | None = None,
        missing: str = NO_PEOPLE,
    ) -> None:
        """Use these to look people up and message them (None: there is no Slack here, and
        `missing` says why); `staff`: who runs the lab (never a trainee)."""
        self.people.directory = directory
        self.people.messenger = messenger
        if staff is not None:
            self.people.staff = staff
        self.people.missing = missing

    def holds_vm(self, user: str) -> bool:
        """True when `user` is a trainee: they hold an assignment."""
        return self.repo.holds_assignment(user)

    def held_ref(self, vm: str) -> VmRef | None:
        """The VM a trainee holds under the name `vm` (any case), by record id and instance
        UUID; None when nobody holds one of that name."""
        return self.desk.holdings.held_ref(vm)

    # ------------------------------------------------------------------ the commands
    def assign(
        self,
        command: grammar.Assign,
        *,
        actor: str,
        source: str = "cli",
        channel: str = "",
        on_progress: OnHandOut | None = None,
    ) -> Assigned:
        return self.assigner.assign(
            command, actor=actor, source=source, channel=channel, on_progress=on_progress
        )

    def handout(
        self,
        command: grammar.Handout,
        *,
        actor: str,
        source: str = "cli",
        channel: str = "",
        on_progress: OnHandOut | None = None,
    ) -> HandedOut:
        return self.assigner.hand_out_again(
            command, actor=actor, source=source, channel=channel, on_progress=on_progress
        )

    def unassign(
        self, command: grammar.Unassign, *, actor: str, source: str = "cli", channel: str = ""
    ) -> Unassigned:
        return self.assigner.unassign(command, actor=actor, source=source, channel=channel)

    def mine(self, user: str) -> MyVms:
        return self.desk.mine(user)

    def power(
        self,
        command: grammar.Reset | grammar.MyPower,
        *,
        actor: str,
        anyone: bool,
        source: str = "cli",
        channel: str = "",
    ) -> SelfService:
        return self.desk.power_mine(command, actor, anyone=anyone, source=source, channel=channel)

    def settle(
        self, command: grammar.Rebuild, *, actor: str, anyone: bool, source: str, channel: str = ""
    ) -> grammar.Rebuild:
        return self.desk.settle(command, actor, anyone=anyone, source=source, channel=channel)

    def rebuild_plan(self, command: grammar.Rebuild) -> RebuildPlan:
        return self.desk.rebuild_plan(command)

    def rebuild(
        self,
        command: grammar.Rebuild,
        *,
        actor: str,
        anyone: bool,
        source: str = "cli",
        channel: str = "",
        on_event: ProgressCallback | None = None,
    ) -> RefreshResult:
        return self.desk.rebuild(
            command,
            actor,
            anyone=anyone,
            source=source,
            channel=channel,
            on_event=on_event,
        )

    def relabel(self, environment: str) -> list[tuple[str, str]]:
        """AssignedTo written again on the environment's assigned clones (after a recovery
        re-created VMs), when the setting asks for it."""
        return self.assigner.relabel(environment)

    # ------------------------------------------------------------------ the course's end
    def tell_removed(self) -> int:
        """Tell trainees whose VM left them (a strip back removed it, it went missing, or a
        rebuild failed), once each."""
        return self.handouts.tell_removed()

    def remind(self, env: Environment) -> int:
        """The reminder before a scheduled strip back, to the trainees (if configured)."""
        return self.handouts.remind(env)
