"""Commands that answer with their result: the reads, prepare, power, the schedule commands,
check, the orphans listed or adopted, and the trainee commands (unassign, my, reset, power on|off
of one's own VM: answered privately). (A deployment and `resume` show runs in their own
messages, `handlers.runs` and `handlers.recovered`; a strip back, a refresh and removing orphans
are confirmed first, `handlers.confirming`.)

`reply` is their step after the ack: dispatch, then the renderer from `REPLIES`, to the user who
asked (privately) or, for what changed something others should see, to the channel.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bot.domain import grammar
from bot.services.orphans import OrphansOutcome
from bot.services.schedules import ScheduleResult
from handlers.blocks import admin, reads, schedules, trainees
from handlers.blocks.kit import Rendered, section
from handlers.context import Request


@dataclass(frozen=True)
class Answer:
    rendered: Rendered
    public: bool = False  # in the channel (else only the user who asked sees it)


def _schedule(result: ScheduleResult, r: Request) -> Answer:
    return Answer(schedules.schedule_result(result, r.user), public=result.changed)


def _orphans(outcome: OrphansOutcome, r: Request) -> Answer:
    if outcome.action == "adopt" and outcome.ours:
        return Answer(admin.orphans_adopted(outcome, r.user), public=True)
    return Answer(admin.orphans_list(outcome))


def _sees_trainees(r: Request) -> bool:
    """Who holds which VM is for the people who run the lab: a trainee never sees another's."""
    return r.ctx.access.acts_for_anyone(r.user)


# Every command whose step is `reply`, with how its result is shown (a test checks that every
# command of the grammar is answered here, or by a run's message, or by a confirmation).
REPLIES: dict[type[Any], Callable[[Any, Request], Answer]] = {
    grammar.Status: lambda statuses, r: Answer(
        reads.status(
            statuses,
            r.command.environment,
            r.ctx.next_event_texts(),
            _sees_trainees(r),
            r.ctx.settings.max_hosts_per_base_disk,
        )
    ),
    grammar.Savings: lambda s, r: Answer(reads.savings(s, r.command.environment)),
    grammar.History: lambda h, r: Answer(reads.history(h, r.ctx.services.settings.timezone)),
    grammar.Audit: lambda log, r: Answer(reads.audit(log, r.ctx.services.settings.timezone)),
    grammar.Types: lambda types, r: Answer(reads.types(types)),
    grammar.Plan: lambda plan, r: Answer(reads.plan(plan)),
    grammar.Inventory: lambda rows, r: Answer(
        reads.inventory(rows, r.command.environment, _sees_trainees(r))
    ),
    grammar.Prepare: lambda report, r: Answer(admin.prepare_report(report)),
    grammar.Power: lambda result, r: Answer(admin.power_result(result, r.user), public=True),
    grammar.Schedule: _schedule,
    grammar.Extend: _schedule,
    grammar.CancelSchedule: _schedule,
    grammar.Check: lambda report, r: Answer(admin.check(report)),
    grammar.Orphans: _orphans,
    grammar.Help: lambda text, r: Answer(Rendered(text, [section(text)])),  # (answered in the ack)
    grammar.Unassign: lambda result, r: Answer(trainees.unassigned(result, r.user)),
    grammar.My: lambda mine, r: Answer(trainees.my_vms(mine)),
    grammar.Reset: lambda result, r: Answer(trainees.self_service(result, r.user)),
    grammar.MyPower: lambda result, r: Answer(trainees.self_service(result, r.user)),
}


def reply(r: Request) -> None:
    """Carry the command out through the dispatch table, then answer with its result."""
    answer = REPLIES[type(r.command)](r.run(), r)
    r.tell.rendered(answer.rendered, public=answer.public)
