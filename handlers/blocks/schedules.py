"""Schedules: the result of schedule / extend / cancel-schedule, the message of a deployment
scheduled ahead (`deploy ... at`), and the owner's reminder with Extend / Strip back now."""

from __future__ import annotations

from bot.services import sentences as say
from bot.services.schedules import ScheduleResult
from handlers.blocks.ids import ACTION_EXTEND, ACTION_STRIP_NOW
from handlers.blocks.kit import Block, Rendered, actions, button, clip, context, esc, section, who


def schedule_result(r: ScheduleResult, user: str) -> Rendered:
    icon = ":calendar:" if r.changed else ":information_source:"
    return Rendered(r.message, [section(f"{icon} {esc(r.message)}"), context(f"by {who(user)}")])


def scheduling(by_type: dict[str, int], environment: str, requester: str) -> Rendered:
    """The channel message of `deploy ... at`, posted before anything is recorded."""
    return Rendered(
        f"Scheduling a deployment into {environment}",
        [
            section(
                f":calendar: Scheduling a deployment of {esc(say.kinds(by_type))} into "
                f"*{esc(environment)}* for {who(requester)}..."
            )
        ],
    )


def scheduling_failed(environment: str, message: str) -> Rendered:
    return Rendered(
        clip(f"Scheduling a deployment into {environment} failed: {message}"),
        [
            section(
                f":x: Scheduling a deployment into *{esc(environment)}* failed: {esc(message)} "
                "Nothing was scheduled."
            )
        ],
    )


def reminder(
    environment: str, owner: str, ends_text: str, extend_label: str, note: str = ""
) -> Rendered:
    """The owner's reminder before a scheduled strip back, with Extend and Strip back now."""
    blocks: list[Block] = [
        section(
            f":alarm_clock: {who(owner)}, *{esc(environment)}* is stripped back "
            f"*{esc(ends_text)}*. Need it longer? Extend it; finished? Strip it back now."
        ),
        actions(
            "clones_reminder",
            button(extend_label, ACTION_EXTEND, environment, "primary"),
            button("Strip back now", ACTION_STRIP_NOW, environment, "danger"),
        ),
    ]
    if note:
        blocks.append(context(note))
    return Rendered(f"Reminder: {environment} is stripped back {ends_text}", blocks)
