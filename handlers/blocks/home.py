"""The App Home tab: a trainee's own VMs with their buttons, what is being worked on now, then
each environment with its counts, owner, savings and next event, and a Strip back button for who
may use it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.domain.models import Run, RunKind
from bot.domain.results import EnvironmentStatus
from bot.domain.savings import Savings
from bot.domain.trainees import MyVms
from handlers.blocks.ids import ACTION_HOME_REFRESH, ACTION_HOME_TEARDOWN
from handlers.blocks.kit import Block, actions, button, capped_lines, context, esc, section, who
from handlers.blocks.reads import MAX_ENVIRONMENTS, environment_summary
from handlers.blocks.trainees import vm_blocks

HOME_MAX_ENVIRONMENTS = MAX_ENVIRONMENTS  # each takes 3-4 blocks; a Home view holds 100
HOME_MAX_RUNNING = 10  # runs listed under "Working now"
HOME_MAX_OWN_VMS = 5  # a trainee's own VMs, two blocks each
HOME_MAX_BLOCKS = 100

_RUN_VERBS = {
    RunKind.DEPLOY: "deploying",
    RunKind.TEARDOWN: "stripping back",
    RunKind.REFRESH: "refreshing",
}


def _running(runs: Sequence[Run]) -> str:
    lines = ["*Working now*"]
    for r in runs[:HOME_MAX_RUNNING]:
        done = f"{r.succeeded + r.failed}/{r.requested}" if r.requested else "starting"
        lines.append(
            f":hourglass_flowing_sand: *{esc(r.environment)}*: {_RUN_VERBS.get(r.kind, r.kind)} "
            f"({done}, run {r.id}, for {who(r.requested_by)})"
        )
    if len(runs) > HOME_MAX_RUNNING:
        lines.append(f"…and {len(runs) - HOME_MAX_RUNNING} more")
    return capped_lines(lines)


def home(
    statuses: Sequence[EnvironmentStatus],
    savings_by_env: dict[str, Savings | None],
    can_change: bool,
    note: str = "",
    next_events: dict[str, str] | None = None,
    running: Sequence[Run] = (),
    mine: MyVms | None = None,
) -> dict[str, Any]:
    blocks: list[Block] = [
        {"type": "header", "text": {"type": "plain_text", "text": "Training lab environments"}},
        actions("clones_home_top", button("Refresh", ACTION_HOME_REFRESH, "refresh")),
    ]
    if note:
        blocks.append(context(note))
    if mine is not None and mine.vms:  # a trainee's own VMs first, with their buttons
        blocks.append(section("*Your training VMs*"))
        for vm in mine.vms[:HOME_MAX_OWN_VMS]:
            blocks += vm_blocks(vm)
    if running:
        blocks.append(section(_running(running)))
    events = next_events or {}
    if not statuses:
        blocks.append(
            section("No environments yet. Deploy one with `/clones deploy capture 5 as demo`.")
        )
    for st in statuses[:HOME_MAX_ENVIRONMENTS]:
        name = st.environment.name
        blocks.append({"type": "divider"})
        blocks.append(section(environment_summary(st, savings_by_env.get(name), events.get(name))))
        if can_change and (st.live or st.failed):
            strip = button("Strip back...", ACTION_HOME_TEARDOWN, name, "danger")
            blocks.append(actions(f"clones_home_env_{name}", strip))
    if len(statuses) > HOME_MAX_ENVIRONMENTS:
        blocks.append(
            context(f"…and {len(statuses) - HOME_MAX_ENVIRONMENTS} more: `/clones status`")
        )
    if not can_change:
        blocks.append(context("You can view environments; operators and admins can change them."))
    blocks.append(context("Type `/clones help` in any channel for the commands."))
    return {"type": "home", "blocks": blocks[:HOME_MAX_BLOCKS]}
