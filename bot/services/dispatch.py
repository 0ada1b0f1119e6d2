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
from typing import Any, Generic, TypeVar

from bot.domain import grammar
from bot.domain.errors import ClonesError, UsageError
from bot.domain.models import Fence
from bot.domain.results import DeployResult
from bot.domain.trainees import SelfService
from bot.ports import ProgressCallback
from bot.services.bulk import BulkResult
from bot.services.container import Services
from bot.services.databases import copy_database
from bot.services.orphans import act_on_orphans
from bot.services.recovery import RecoveryReport
from bot.services.schedules import ScheduleResult, ScheduleService
from bot.services.trainees import Assigned, HandedOut, OnHandOut

log = logging.getLogger(__name__)

C = TypeVar("C")
R = TypeVar("R")


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


AUDIT_SHOWN = 40  # audit entries a Slack answer shows (the terminal's --csv has them all)


def _schedules(s: Services) -> ScheduleService:
    if s.schedules is None:  # pragma: no cover - bootstrap always provides one
        raise UsageError("Schedules are not available here.")
    return s.schedules


def _deploy_later(s: Services, c: grammar.Deploy, i: Invocation) -> ScheduleResult:
    return _schedules(s).schedule_deploy(c, actor=i.actor, source=i.source, channel=i.channel)


def _deploy(s: Services, c: grammar.Deploy, i: Invocation) -> Deployed:
    # `until` alone: checked (and the lease cap) before anything is created, recorded after.
    times = _schedules(s).deploy_times(c) if c.until else None
    result = s.use_cases.deployer.deploy(
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
    return s.use_cases.trainees.power(
        c, actor=i.actor, anyone=i.anyone, source=i.source, channel=i.channel
    )


@dataclass(frozen=True)
class Route(Generic[C, R]):
    """A command's route: the use case it calls, typed by its result (`run(route, ...)` returns
    an `R`: a front end that needs the result's type asks the route, no isinstance), and, when
    its spec says it destroys, what it would do, shown before confirming (the front end renders
    the plan and asks; terminal: type the name or --yes; Slack: Confirm / Cancel)."""

    call: Callable[[Services, C, Invocation], R]
    plan: Callable[[Services, C], object] | None = None


# The routes a front end runs for a typed result (the rest are looked up in ROUTES).
DEPLOY_NOW: Route[grammar.Deploy, Deployed] = Route(_deploy)
DEPLOY_LATER: Route[grammar.Deploy, ScheduleResult] = Route(_deploy_later)  # `deploy ... at`
EXTEND: Route[grammar.Extend, ScheduleResult] = Route(_extend)
RESUME: Route[grammar.Resume, RecoveryReport] = Route(
    lambda s, c, i: s.recovery.recover(actor=i.actor, on_event=i.on_event, fence=i.fence)
)
ASSIGN: Route[grammar.Assign, Assigned] = Route(
    lambda s, c, i: s.use_cases.trainees.assign(
        c, actor=i.actor, source=i.source, channel=i.channel, on_progress=i.on_handout
    )
)
HANDOUT: Route[grammar.Handout, HandedOut] = Route(
    lambda s, c, i: s.use_cases.trainees.handout(
        c, actor=i.actor, source=i.source, channel=i.channel, on_progress=i.on_handout
    )
)


# The services' one registry: a route per command class (a test checks each class has one, and
# a plan exactly when its spec destroys), except a bulk verb's (`route_for`).
ROUTES: dict[type[Any], Route[Any, Any]] = {
    grammar.Deploy: Route(lambda s, c, i: (DEPLOY_LATER if c.at else DEPLOY_NOW).call(s, c, i)),
    grammar.Teardown: Route(
        lambda s, c, i: s.use_cases.strip_back.teardown(
            c.environment, actor=i.actor, source=i.source, channel=i.channel, on_event=i.on_event
        ),
        plan=lambda s, c: s.use_cases.strip_back.teardown_plan(c.environment),
    ),
    grammar.Refresh: Route(
        lambda s, c, i: s.admin.refresher.refresh(
            c, actor=i.actor, source=i.source, channel=i.channel, on_event=i.on_event
        ),
        plan=lambda s, c: s.admin.refresher.plan(c.environment),
    ),
    grammar.Status: Route(
        lambda s, c, i: s.use_cases.queries.status(c.environment, everything=c.everything)
    ),
    grammar.History: Route(lambda s, c, i: s.use_cases.history.history(c.environment)),
    # The terminal exports every entry (--csv); Slack shows the newest.
    grammar.Audit: Route(
        lambda s, c, i: s.use_cases.history.audit(
            c.since, limit=None if i.source == "cli" else AUDIT_SHOWN
        )
    ),
    grammar.Savings: Route(lambda s, c, i: s.use_cases.queries.savings(c.environment)),
    grammar.Types: Route(lambda s, c, i: s.use_cases.queries.types()),
    grammar.Plan: Route(lambda s, c, i: s.admin.planner.plan(c)),
    grammar.Inventory: Route(lambda s, c, i: s.admin.inventory_reader.inventory(c.environment)),
    grammar.Prepare: Route(
        lambda s, c, i: s.admin.preparer.prepare(c, actor=i.actor, source=i.source)
    ),
    grammar.Power: Route(
        lambda s, c, i: s.admin.power_command.power_environment(c, actor=i.actor, source=i.source)
    ),
    grammar.Schedule: Route(_schedule),
    grammar.Extend: EXTEND,
    grammar.CancelSchedule: Route(_cancel),
    grammar.Resume: RESUME,
    grammar.Orphans: Route(
        lambda s, c, i: act_on_orphans(
            s.recovery.orphan_finder, c.action, actor=i.actor, only=i.only
        ),
        plan=lambda s, c: s.recovery.orphan_finder.orphans() if c.action else None,
    ),
    grammar.Check: Route(lambda s, c, i: s.checker.run()),
    grammar.Help: Route(lambda s, c, i: grammar.usage(c.topic)),
    grammar.Assign: ASSIGN,
    grammar.Handout: HANDOUT,
    grammar.Unassign: Route(
        lambda s, c, i: s.use_cases.trainees.unassign(
            c, actor=i.actor, source=i.source, channel=i.channel
        )
    ),
    grammar.My: Route(lambda s, c, i: s.use_cases.trainees.mine(i.actor)),
    grammar.Reset: Route(_power_mine),
    grammar.MyPower: Route(_power_mine),
    grammar.Rebuild: Route(
        lambda s, c, i: s.use_cases.trainees.rebuild(
            c,
            actor=i.actor,
            anyone=i.anyone,
            source=i.source,
            channel=i.channel,
            on_event=i.on_event,
        ),
        plan=lambda s, c: s.use_cases.trainees.rebuild_plan(c),  # settled: its VM named
    ),
    grammar.DbCopy: Route(lambda s, c, i: copy_database(s.databases, c)),
}


def _on_each_clone(s: Services, c: Any, i: Invocation) -> BulkResult:
    """Every bulk verb's route: its spec's task on each ready, provably ours clone."""
    bulk = grammar.spec_of(c).each_clone
    assert bulk is not None  # route_for gives this route to bulk verbs only
    task = bulk.task(c, i.actor, i.source)
    return s.admin.each_clone.run(
        c.environment,
        lambda clone: s.vcenter.vm_tasks([clone.moref or ""], task)[0],
        action=bulk.said(bulk.action, c),
        doing=bulk.said(bulk.doing, c),
        label=bulk.said(bulk.label, c),
        progress=bulk.progress,
        words=bulk.audited(c),
        actor=i.actor,
        source=i.source,
        on_event=i.on_event,
    )


ON_EACH_CLONE: Route[Any, BulkResult] = Route(_on_each_clone)


def route_for(cls: type[Any]) -> Route[Any, Any] | None:
    """A command class's route: its entry in ROUTES, or, for a bulk verb (its spec names
    `each_clone`), the one route every bulk verb shares."""
    spec = grammar.SPECS.get(cls)
    if cls not in ROUTES and spec is not None and spec.each_clone is not None:
        return ON_EACH_CLONE
    return ROUTES.get(cls)


def dispatch(services: Services, command: object, invocation: Invocation) -> object:
    """Carry `command` out (already confirmed, when it needs confirming) and return its result."""
    route = route_for(type(command))
    if route is None:  # every command class has a route; a test checks it
        raise UsageError(f'"{getattr(command, "verb", command)}" cannot be run here.')
    return run(route, services, command, invocation)


def run(route: Route[C, R], services: Services, command: C, invocation: Invocation) -> R:
    """Carry `command` out by `route` and return its result, typed."""
    try:
        result = route.call(services, command, invocation)
    except ClonesError:  # it may have changed things before it stopped
        _tell_trainees(services)
        raise
    _tell_trainees(services)
    return result


def _tell_trainees(services: Services) -> None:
    """Trainees whose VM left them during the command (a strip back, a VM found missing, a
    rebuild that failed: the assignment ended in the same write) are told now, once each."""
    try:
        services.use_cases.trainees.tell_removed()
    except ClonesError as exc:  # the database busy, ...: the next command or re-sync tells them
        log.warning("trainees not told yet: %s", exc)


def resolve_target(services: Services, command: object, invocation: Invocation) -> object:
    """The command with what it acts on named, before it is planned and confirmed: `rebuild`
    names the one VM (the actor's own, checked; a refusal is audited); `power off TRN-CAP-001`
    (a name that is no environment but a trainee's VM) becomes that one VM's power command.
    Either names the VM by identity (its record and instance UUID): what runs later acts on
    that VM alone, never on another that took its name meanwhile."""
    if isinstance(command, grammar.Power):
        name = command.environment
        queries, trainees = services.use_cases.queries, services.use_cases.trainees
        ref = trainees.held_ref(name) if queries.find_environment(name) is None else None
        if ref is not None:
            if command.action == "reset":
                return grammar.Reset(vm=ref.name, ref=ref)
            return grammar.MyPower(command.action, vm=ref.name, ref=ref)
    if isinstance(command, grammar.Rebuild):
        return services.use_cases.trainees.settle(
            command,
            actor=invocation.actor,
            anyone=invocation.anyone,
            source=invocation.source,
            channel=invocation.channel,
        )
    return command


def plan_for(services: Services, command: object) -> object | None:
    """What a destructive command would do, to show before confirming; None: no confirming."""
    route = route_for(type(command))
    return route.plan(services, command) if route is not None and route.plan else None
