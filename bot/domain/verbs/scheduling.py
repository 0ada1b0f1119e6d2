"""When an environment is deployed and stripped back: `schedule`, `extend`, `cancel-schedule`."""

from __future__ import annotations

from bot.domain.errors import UsageError
from bot.domain.timeparse import DURATION_EXAMPLES, parse_duration
from bot.domain.verbs import words as w
from bot.domain.verbs.spec import Access, Verb, command

_SCHEDULE_EXAMPLE = "schedule nov-cohort until fri 17:00"


def _parse_schedule(args: list[str]) -> Schedule:
    env = w.one_environment(args, _SCHEDULE_EXAMPLE)
    rest = args[1:]
    lowered = [w.lower() for w in rest]
    if not rest or lowered[0] not in ("at", "until"):
        got = f', got "{w.show(" ".join(rest))}"' if rest else ""
        raise UsageError(
            f'say when with "until" (and "at" for a scheduled deploy){got}, '
            f'e.g. "schedule {env} until fri 17:00"'
        )
    at = until = None
    if lowered[0] == "at":
        cut = lowered.index("until") if "until" in lowered else len(rest)
        at = w.time_text("at", rest[1:cut])
        if cut < len(rest):
            until = w.time_text("until", rest[cut + 1 :])
    else:
        until = w.time_text("until", rest[1:])
    return Schedule(env, at, until)


@command(
    "schedule",
    Access.CHANGE,
    parse=_parse_schedule,
    summary="set when an environment is stripped back (and when a scheduled deploy starts)",
    example=_SCHEDULE_EXAMPLE,
    syntax="schedule ENV [at WHEN] [until WHEN]",
    detail=(
        "`until WHEN` strips the environment back then; the owner is reminded beforehand.",
        "`at WHEN` moves a deployment scheduled with `deploy ... at WHEN`.",
        'WHEN is in the team\'s time zone: "fri 17:00", "tomorrow 9:00", "in 3h", '
        '"2026-12-01 09:00".',
    ),
    examples=(
        _SCHEDULE_EXAMPLE,
        "schedule nov-cohort at mon 08:00 until fri 17:00",
        "schedule nov-cohort until in 3h",
    ),
)
class Schedule(Verb):
    """Set or move an environment's start (a scheduled deploy) and/or end (raw time text)."""

    environment: str
    at: str | None = None
    until: str | None = None


_EXTEND_EXAMPLE = "extend nov-cohort 2h"


def _parse_extend(args: list[str]) -> Extend:
    env = w.one_environment(args, _EXTEND_EXAMPLE)
    words = args[1:]
    if not words:
        return Extend(env)
    text = " ".join(words)
    parse_duration(text)  # refuse nonsense here; the schedule service re-reads the text
    return Extend(env, text)


@command(
    "extend",
    Access.CHANGE,
    parse=_parse_extend,
    summary="strip an environment back later than scheduled",
    example=_EXTEND_EXAMPLE,
    syntax="extend ENV [by] [HOW-LONG]",
    detail=(
        f"HOW-LONG is like {DURATION_EXAMPLES}; without it, the configured default (usually 2h).",
        "Extensions are capped by the configured maximum lease.",
    ),
    examples=(_EXTEND_EXAMPLE, "extend nov-cohort by 1h30m", "extend nov-cohort"),
)
class Extend(Verb):
    """Move an environment's scheduled end later; `by` is raw duration text (None: default)."""

    environment: str
    by: str | None = None


_CANCEL_EXAMPLE = "cancel-schedule nov-cohort"


def _parse_cancel_schedule(args: list[str]) -> CancelSchedule:
    env = w.one_environment(args, _CANCEL_EXAMPLE)
    if len(args) > 1:
        raise UsageError(
            f'cancel-schedule takes one environment name, got "{w.show(" ".join(args))}", '
            f'e.g. "{_CANCEL_EXAMPLE}"'
        )
    return CancelSchedule(env)


@command(
    "cancel-schedule",
    Access.CHANGE,
    parse=_parse_cancel_schedule,
    summary="drop an environment's scheduled deploy, strip back and reminder",
    example=_CANCEL_EXAMPLE,
    syntax="cancel-schedule ENV",
    detail=("Also `unschedule`. The clones stay until you strip them back.",),
    examples=(_CANCEL_EXAMPLE, "unschedule nov-cohort"),
    aliases=("unschedule", "cancel schedule"),
)
class CancelSchedule(Verb):
    environment: str
