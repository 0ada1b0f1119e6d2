"""One table from each command of the grammar to the service call that carries it out, used by
the terminal and by Slack alike: parse, check access, confirm (a front end's own dialogue, fed
by `plan_for`), then `dispatch`, then render the result.

Each route returns the service's own result (a `DeployResult`, a list of statuses, ...), except
where a command is more than one call: a deploy with `until` also schedules its strip back
(`Deployed`), and `orphans` lists, adopts or removes (`OrphansOutcome`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from bot.domain import grammar
from bot.domain.errors import ClonesError, UsageError
from bot.domain.models import Fence
from bot.domain.results import DeployResult
from bot.domain.trainees import SelfService
from bot.ports import ProgressCallback
from bot.services.container import Services
from bot.services.databases import copy_database
from bot.services.orphans import act_on_orphans
from bot.services.schedules import ScheduleResult, ScheduleService
from bot.services.trainees import OnHandOut

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Invocation:
    """Who runs a command, from where, and where its progress goes."""

    actor: str
    source: str  # "cli", "slack", "scheduler"
    channel: str = ""
    on_event: ProgressCallback | None = None
    # `orphans remove`: only these morefs (the set the confirmation showed); None: all ours.
    only: Collection[str] | None = None
    # Self-service commands (reset, rebuild, power on|off without ENV): may the actor act on
    # any trainee's VM (an operator; the terminal), or only on the VM they were given?
    anyone: bool = False
    # `assign`: the hand-out's progress, after each trainee.
    on_handout: OnHandOut | None = None
    # `resume` run by the leader: its run takeovers are fenced by the leader's lease.
    fence: Fence | None = None


@dataclass(frozen=True)
class Deployed:
    """A deployment's result, and (for `deploy ... until`) what became of its strip back."""

    result: DeployResult
    end_note: str = ""


Route = Callable[[Services, Any, Invocation], object]

AUDIT_SHOWN = 40  # audit entries a Slack answer shows (the terminal's --csv has them all)


def _schedules(s: Services) -> ScheduleService:
    if s.schedules is None:  # pragma: no cover - bootstrap always provides one
        raise UsageError("Schedules are not available here.")
    return s.schedules


def _deploy(s: Services, c: grammar.Deploy, i: Invocation) -> Deployed | ScheduleResult:
    if c.at:
        return _schedules(s).schedule_deploy(c, actor=i.actor, source=i.source, channel=i.channel)
    # `until` alone: checked (and the lease cap) before anything is created, recorded after.
    times = _schedules(s).deploy_times(c) if c.until else None
    result = s.service.deploy(
        c, actor=i.actor, source=i.source, channel=i.channel, on_event=i.on_event
    )
    note = ""
    if times is not None and times.ends_at is not None and result.ready:
        try:
            ended = _schedules(s).set_end(
                result.environment, times.ends_at, actor=i.actor, source=i.source
            )
            note = ended.message
        except ClonesError as exc:
            note = f"The strip back could not be scheduled: {exc}"
    return Deployed(result, note)


def _schedule(s: Services, c: grammar.Schedule, i: Invocation) -> ScheduleResult:
    return _schedules(s).schedule(c, actor=i.actor, source=i.source, channel=i.channel)


def _extend(s: Services, c: grammar.Extend, i: Invocation) -> ScheduleResult:
    return _schedules(s).extend(
        c.environment, c.by, actor=i.actor, source=i.source, channel=i.channel
    )


def _cancel(s: Services, c: grammar.CancelSchedule, i: Invocation) -> ScheduleResult:
    return _schedules(s).cancel(c.environment, actor=i.actor, source=i.source, channel=i.channel)


def _power_mine(s: Services, c: grammar.Reset | grammar.MyPower, i: Invocation) -> SelfService:
    return s.service.trainees.power(
        c, actor=i.actor, anyone=i.anyone, source=i.source, channel=i.channel
    )


ROUTES: dict[type[Any], Route] = {
    grammar.Deploy: _deploy,
    grammar.Teardown: lambda s, c, i: s.service.teardown(
        c.environment, actor=i.actor, source=i.source, channel=i.channel, on_event=i.on_event
    ),
    grammar.Refresh: lambda s, c, i: s.admin.refresh(
        c, actor=i.actor, source=i.source, channel=i.channel, on_event=i.on_event
    ),
    grammar.Status: lambda s, c, i: s.service.status(c.environment, everything=c.everything),
    grammar.History: lambda s, c, i: s.service.history.history(c.environment),
    # The terminal exports every entry (--csv); Slack shows the newest.
    grammar.Audit: lambda s, c, i: s.service.history.audit(
        c.since, limit=None if i.source == "cli" else AUDIT_SHOWN
    ),
    grammar.Savings: lambda s, c, i: s.service.savings(c.environment),
    grammar.Types: lambda s, c, i: s.service.types(),
    grammar.Plan: lambda s, c, i: s.admin.plan(c),
    grammar.Inventory: lambda s, c, i: s.admin.inventory(c.environment),
    grammar.Prepare: lambda s, c, i: s.admin.prepare(c, actor=i.actor, source=i.source),
    grammar.Power: lambda s, c, i: s.admin.power(c, actor=i.actor, source=i.source),
    grammar.Schedule: _schedule,
    grammar.Extend: _extend,
    grammar.CancelSchedule: _cancel,
    grammar.Resume: lambda s, c, i: s.recovery.recover(
        actor=i.actor, on_event=i.on_event, fence=i.fence
    ),
    grammar.Orphans: lambda s, c, i: act_on_orphans(
        s.recovery.orphan_finder, c.action, actor=i.actor, only=i.only
    ),
    grammar.Check: lambda s, c, i: s.checker.run(),
    grammar.Help: lambda s, c, i: grammar.usage(c.topic),
    grammar.Assign: lambda s, c, i: s.service.trainees.assign(
        c, actor=i.actor, source=i.source, channel=i.channel, on_progress=i.on_handout
    ),
    grammar.Handout: lambda s, c, i: s.service.trainees.handout(
        c, actor=i.actor, source=i.source, channel=i.channel, on_progress=i.on_handout
    ),
    grammar.Unassign: lambda s, c, i: s.service.trainees.unassign(
        c, actor=i.actor, source=i.source, channel=i.channel
    ),
    grammar.My: lambda s, c, i: s.service.trainees.mine(i.actor),
    grammar.Reset: _power_mine,
    grammar.MyPower: _power_mine,
    grammar.Rebuild: lambda s, c, i: s.service.trainees.rebuild(
        c,
        actor=i.actor,
        anyone=i.anyone,
        source=i.source,
        channel=i.channel,
        on_event=i.on_event,
    ),
    grammar.DbCopy: lambda s, c, i: copy_database(s.databases, c),
}

# Destructive commands show what they would do, and act only once confirmed: the front end
# renders the plan and asks (terminal: type the name or --yes; Slack: Confirm / Cancel).
PLANS: dict[type[Any], Callable[[Services, Any], object]] = {
    grammar.Teardown: lambda s, c: s.service.teardown_plan(c.environment),
    grammar.Refresh: lambda s, c: s.admin.refresher.plan(c.environment),
    grammar.Orphans: lambda s, c: s.recovery.orphan_finder.orphans() if c.action else None,
    grammar.Rebuild: lambda s, c: s.service.trainees.rebuild_plan(c),  # settled: its VM named
}


def dispatch(services: Services, command: object, invocation: Invocation) -> object:
    """Carry `command` out (already confirmed, when it needs confirming) and return its result."""
    route = ROUTES.get(type(command))
    if route is None:  # every command class has a route; a test checks it
        raise UsageError(f'"{getattr(command, "verb", command)}" cannot be run here.')
    try:
        result = route(services, command, invocation)
    except ClonesError:  # it may have changed things before it stopped
        _tell_trainees(services)
        raise
    _tell_trainees(services)
    return result


def _tell_trainees(services: Services) -> None:
    """Trainees whose VM left them during the command (a strip back, a VM found missing, a
    rebuild that failed: the assignment ended in the same write) are told now, once each."""
    try:
        services.service.trainees.tell_removed()
    except ClonesError as exc:  # the database busy, ...: the next command or re-sync tells them
        log.warning("trainees not told yet: %s", exc)


def settled(services: Services, command: object, invocation: Invocation) -> object:
    """The command with what it acts on named, before it is planned and confirmed: `rebuild`
    names the one VM (the actor's own, checked; a refusal is audited); `power off TRN-CAP-001`
    (a name that is no environment but a trainee's VM) becomes that one VM's power command.
    Either names the VM by identity (its record and instance UUID): what runs later acts on
    that VM alone, never on another that took its name meanwhile."""
    if isinstance(command, grammar.Power):
        name = command.environment
        queries, trainees = services.service.queries, services.service.trainees
        ref = trainees.held_ref(name) if queries.find_environment(name) is None else None
        if ref is not None:
            if command.action == "reset":
                return grammar.Reset(vm=ref.name, ref=ref)
            return grammar.MyPower(command.action, vm=ref.name, ref=ref)
    if isinstance(command, grammar.Rebuild):
        return services.service.trainees.settle(
            command,
            actor=invocation.actor,
            anyone=invocation.anyone,
            source=invocation.source,
            channel=invocation.channel,
        )
    return command


def plan_for(services: Services, command: object) -> object | None:
    """What a destructive command would do, to show before confirming; None: no confirming."""
    plan = PLANS.get(type(command))
    return plan(services, command) if plan is not None else None
