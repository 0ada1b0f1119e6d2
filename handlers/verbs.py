"""Slack's one registry of commands: for each command class, what the slash command answers
within 3 s (`ack`) and what follows it: the result answered (`reply`), a step of its own (a
deployment's message, the hand-out), or Confirm / Cancel first (`flow`, destructive commands).

A test checks that every command of the grammar has an entry or is a bulk verb, whose entry is
derived from its spec (`in_slack`); a terminal-only one is refused before any of this, and
docs/slack.md's table of commands is generated from `shows`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bot.domain import grammar
from bot.domain.errors import UsageError
from handlers import confirming, handout, recovered, run_messages
from handlers.blocks import admin, plans, reads, trainees
from handlers.blocks.kit import Rendered, section
from handlers.blocks.runs import deploy_ack
from handlers.confirming import Flow
from handlers.context import Request
from handlers.replies import Answer, orphans_answer, schedule_answer, sees_trainees

Step = Callable[[Request], None]
Ack = Callable[[Request], str]
Replier = Callable[[Any, Request], Answer]


@dataclass(frozen=True)
class InSlack:
    """One command in Slack: `reply` or `step` says what follows the ack, and `flow` (instead,
    or for `orphans remove` besides) when it destroys."""

    shows: str  # what the person sees, for docs/slack.md
    ack: Ack | None = None  # None: a plain ack; the answer follows
    reply: Replier | None = None  # dispatch, then this rendering of the result
    step: Step | None = None  # a step of its own, which dispatches itself
    flow: Flow | None = None  # destructive: the plan with Confirm / Cancel first


# ===================================================================== the acks
def _deploy_ack(r: Request) -> str:
    command, ctx = r.command, r.ctx
    # Unknown types and counts over a type's max_count are answered in the ack, before the
    # "Deploying..." promise (one SQLite read; vCenter is asked only in the job).
    ctx.services.use_cases.deployer.check_counts(command)
    # Times are checked before anything is recorded or created: bad ones are answered here.
    times = ctx.schedules.deploy_times(command) if command.at or command.until else None
    if command.at:
        return ""
    by_type = dict(Counter({i.type: i.count for i in command.items}))
    answer = deploy_ack(by_type, command.environment)
    if times is not None and times.ends_at is not None:
        answer += (
            f" Strip back is set for {ctx.schedules.describe(times.ends_at)} once clones are ready."
        )
        note = ctx.schedules.keeper_note()  # never a promise that no scheduler keeps
        if note:
            answer += f" {note}"
    return answer


def _prepare_ack(r: Request) -> str:
    r.ctx.settings.type(r.command.type)  # an unknown type is answered in the ack
    return admin.preparing(r.command.type)


def _assign_ack(r: Request) -> str:
    if r.command.roster:  # a file on the trainer's computer: refused before anything is done
        raise UsageError(
            f'A roster file is read by the terminal: run "clones assign {r.command.environment} '
            f'from {r.command.roster}" there. Here, name people ("/clones assign '
            f'{r.command.environment} @alice @bob") or a channel ("from #channel").'
        )
    return trainees.assigning(r.command.environment)


def _self_service(result: Any, r: Request) -> Answer:
    return Answer(trainees.self_service(result, r.user))


# ===================================================================== the registry
SLACK: dict[type[Any], InSlack] = {
    grammar.Deploy: InSlack(
        "live progress message in the channel, then savings and chart (`at WHEN`: the times)",
        ack=_deploy_ack,
        step=run_messages.deploy,  # the run's own message, posted before anything is created
    ),
    grammar.Plan: InSlack(
        "estimated sizes and datastore fit, privately", reply=lambda p, r: Answer(reads.plan(p))
    ),
    grammar.Status: InSlack(
        "privately (live environments; `--all`: finished ones too)",
        reply=lambda statuses, r: Answer(
            reads.status(
                statuses,
                r.command.environment,
                r.ctx.next_event_texts(),
                sees_trainees(r),
                r.ctx.settings.max_hosts_per_base_disk,
            )
        ),
    ),
    grammar.History: InSlack(
        "what became of environments, or one environment's runs, privately",
        reply=lambda h, r: Answer(reads.history(h, r.ctx.services.settings.timezone)),
    ),
    grammar.Audit: InSlack(
        "the newest entries, privately (`clones audit --since DATE --csv` exports them all)",
        reply=lambda log, r: Answer(reads.audit(log, r.ctx.services.settings.timezone)),
    ),
    grammar.Savings: InSlack(
        "privately", reply=lambda s, r: Answer(reads.savings(s, r.command.environment))
    ),
    grammar.Types: InSlack("privately", reply=lambda types, r: Answer(reads.types(types))),
    grammar.Inventory: InSlack(
        "a compact table, privately (`clones inventory --csv` has all); operators see who holds "
        "each clone",
        reply=lambda rows, r: Answer(
            reads.inventory(rows, r.command.environment, sees_trainees(r))
        ),
    ),
    grammar.Help: InSlack(
        "privately, in the ack",
        reply=lambda text, r: Answer(Rendered(text, [section(text)])),  # (answered in the ack)
    ),
    grammar.Assign: InSlack(
        "one message in the channel with the hand-out's progress, then who holds which VM",
        ack=_assign_ack,
        step=handout.assign,  # the hand-out's progress in one channel message
    ),
    grammar.Handout: InSlack(
        "the hand-out again to those not reached before, in one message like `assign`'s",
        ack=lambda r: trainees.handing_out(r.command.environment),
        step=handout.handout,
    ),
    grammar.Unassign: InSlack(
        "whose VM was taken back, privately",
        reply=lambda result, r: Answer(trainees.unassigned(result, r.user)),
    ),
    grammar.My: InSlack(
        "your VMs (state, links, when the lab ends) with their buttons, privately",
        reply=lambda mine, r: Answer(trainees.my_vms(mine)),
    ),
    grammar.Reset: InSlack("the result, privately", reply=_self_service),
    grammar.MyPower: InSlack("the result, privately", reply=_self_service),
    grammar.Rebuild: InSlack(
        "the VM to be re-created with **Confirm** / **Cancel**, then the outcome",
        ack=lambda r: plans.working_out("rebuild", r.command.vm or "your VM"),
        flow=confirming.REBUILD,
    ),
    grammar.Teardown: InSlack(
        "the plan with **Confirm** / **Cancel**, then live progress",
        ack=lambda r: plans.working_out("teardown", r.command.environment),
        flow=confirming.TEARDOWN,
    ),
    grammar.Prepare: InSlack(
        "the parent's findings, privately",
        ack=_prepare_ack,
        reply=lambda report, r: Answer(admin.prepare_report(report)),
    ),
    grammar.Power: InSlack(
        "the result in the channel",
        ack=lambda r: admin.powering(r.command.action, r.command.environment),
        reply=lambda result, r: Answer(admin.each_done(result, r.user), public=True),
    ),
    grammar.Refresh: InSlack(
        "the plan with **Confirm refresh** / **Cancel**, then live progress",
        ack=lambda r: plans.working_out("refresh", r.command.environment),
        flow=confirming.REFRESH,
    ),
    grammar.Resume: InSlack(
        "what was finished, in the channel; each resumed run's own message is finished too",
        ack=lambda r: admin.RESUMING,
        step=recovered.resume,  # each resumed run finishes its own message
    ),
    grammar.Orphans: InSlack(
        "the list privately; `remove` asks for **Confirm** first",
        ack=lambda r: admin.looking_for_orphans(r.command.action),
        reply=orphans_answer,
        flow=confirming.ORPHANS_REMOVE,  # `orphans remove` only (`flow_for`)
    ),
    grammar.Check: InSlack(
        "one line per finding with its fix, privately",
        ack=lambda r: admin.CHECKING,
        reply=lambda report, r: Answer(admin.check(report)),
    ),
    grammar.Schedule: InSlack("the new times in the channel", reply=schedule_answer),
    grammar.Extend: InSlack("the new end in the channel", reply=schedule_answer),
    grammar.CancelSchedule: InSlack("what was dropped, in the channel", reply=schedule_answer),
    grammar.DbCopy: InSlack("refused: it runs only in a terminal on the bot's machine"),
}

FLOWS: tuple[Flow, ...] = tuple(s.flow for s in SLACK.values() if s.flow is not None)


def in_slack(cls: type[Any]) -> InSlack | None:
    """A command class's entry: in SLACK, or, for a bulk verb (its spec names `each_clone`), its
    spec's ack and what it shows, then the result in the channel (`admin.each_done`)."""
    spec = grammar.SPECS.get(cls)
    if cls in SLACK or spec is None or spec.each_clone is None:
        return SLACK.get(cls)
    bulk = spec.each_clone
    return InSlack(
        bulk.shows,
        ack=lambda r: bulk.said(bulk.ack, r.command),
        reply=lambda result, r: Answer(admin.each_done(result, r.user), public=True),
    )


def flow_for(command: object) -> Flow | None:
    """The confirmation `command` needs in Slack; None: it runs at once (`orphans adopt` only
    records VMs, so of the orphans only `remove` is confirmed)."""
    if isinstance(command, grammar.Orphans) and command.action != "remove":
        return None
    entry = in_slack(type(command))
    return entry.flow if entry is not None else None


def ack(r: Request) -> str:
    """What the slash command answers at once ("": a plain ack)."""
    entry = in_slack(type(r.command))
    return entry.ack(r) if entry is not None and entry.ack is not None else ""


def reply(r: Request) -> None:
    """Carry the command out through the dispatch table, then answer with its result: privately,
    or in the channel for what changed something others should see."""
    entry = in_slack(type(r.command))
    render = entry.reply if entry is not None else None
    if render is None:  # every command that reaches here has one; a test checks it
        raise UsageError(f'"{r.command.verb}" is not available from Slack.')
    answer = render(r.run(), r)
    r.tell.rendered(answer.rendered, public=answer.public)


def step_for(command: object) -> Step:
    """What follows the ack: Confirm / Cancel first, a step of its own, or the result."""
    flow = flow_for(command)
    if flow is not None:
        return lambda r: confirming.ask(r, flow)
    entry = in_slack(type(command))
    return entry.step if entry is not None and entry.step is not None else reply
