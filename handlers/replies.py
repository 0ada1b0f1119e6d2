"""How a command that answers with its result is answered (`Answer`), and the renderings that
more than one command shares; each command's own rendering is its entry in
`handlers.verbs.SLACK`."""

from __future__ import annotations

from dataclasses import dataclass

from bot.services.orphans import OrphansOutcome
from bot.services.schedules import ScheduleResult
from handlers.blocks import admin, schedules
from handlers.blocks.kit import Rendered
from handlers.context import Request


@dataclass(frozen=True)
class Answer:
    rendered: Rendered
    public: bool = False  # in the channel (else only the user who asked sees it)


def schedule_answer(result: ScheduleResult, r: Request) -> Answer:
    return Answer(schedules.schedule_result(result, r.user), public=result.changed)


def orphans_answer(outcome: OrphansOutcome, r: Request) -> Answer:
    if outcome.action == "adopt" and outcome.ours:
        return Answer(admin.orphans_adopted(outcome, r.user), public=True)
    return Answer(admin.orphans_list(outcome))


def sees_trainees(r: Request) -> bool:
    """Who holds which VM is for the people who run the lab: a trainee never sees another's."""
    return r.ctx.access.acts_for_anyone(r.user)
