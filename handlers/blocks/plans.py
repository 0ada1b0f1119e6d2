"""What a destructive command would do, with Confirm / Cancel (a strip back, a refresh, removing
orphans), and the message each button leaves behind: starting, or cancelled."""

from __future__ import annotations

from collections.abc import Sequence

from bot.domain.results import TeardownPlan
from bot.domain.trainees import RebuildPlan
from bot.services import sentences as say
from bot.services.refresh import RefreshPlan
from handlers.blocks.ids import (
    ACTION_CANCEL,
    ACTION_CONFIRM,
    ACTION_ORPHANS_CANCEL,
    ACTION_ORPHANS_CONFIRM,
    ACTION_REBUILD_CANCEL,
    ACTION_REBUILD_CONFIRM,
    ACTION_REFRESH_CANCEL,
    ACTION_REFRESH_CONFIRM,
)
from handlers.blocks.kit import (
    MRKDWN,
    Rendered,
    actions,
    button,
    capped_lines,
    context,
    error,
    esc,
    section,
    who,
)

ORPHANS_TOKEN_ENV = "orphans"  # the confirmation's "environment": orphans belong to none


def working_out(action: str, environment: str) -> str:
    """The slash command's answer while the plan is worked out (it follows in the channel)."""
    if action == "rebuild":
        return f"Working out what a rebuild of {environment} would re-create..."
    if action == "refresh":
        return f"Working out what a refresh of {environment} would re-create..."
    return f"Working out what strip back of {environment} would destroy..."


# The Confirm / Cancel buttons of each action: block id, Confirm's label, the two action ids.
_BUTTONS = {
    "teardown": ("clones_teardown", "Confirm strip back", ACTION_CONFIRM, ACTION_CANCEL),
    "refresh": ("clones_refresh", "Confirm refresh", ACTION_REFRESH_CONFIRM, ACTION_REFRESH_CANCEL),
    "orphans": ("clones_orphans", "Confirm remove", ACTION_ORPHANS_CONFIRM, ACTION_ORPHANS_CANCEL),
    "rebuild": ("clones_rebuild", "Confirm rebuild", ACTION_REBUILD_CONFIRM, ACTION_REBUILD_CANCEL),
}


def _asking(action: str, text: str, ask: str, key: str, token: str, requester: str) -> Rendered:
    """The plan, Confirm / Cancel (both carrying "KEY TOKEN"), and who may confirm."""
    block_id, label, confirm_id, cancel_id = _BUTTONS[action]
    value = f"{key} {token}"
    return Rendered(
        text,
        [
            section(ask),
            actions(
                block_id,
                button(label, confirm_id, value, "danger"),
                button("Cancel", cancel_id, value),
            ),
            context(f"Only {who(requester)} or an admin can confirm."),
        ],
    )


def teardown_plan(plan: TeardownPlan, requester: str, token: str) -> Rendered:
    return _asking(
        "teardown",
        f"Strip back {plan.environment}? {plan.clones} clones ({say.kinds(plan.by_type)}), "
        f"about {plan.reclaim_gb:.2f} GB to reclaim",
        f":warning: {who(requester)} asked to strip back *{esc(plan.environment)}*.\n"
        f"{say.teardown_plan(plan, MRKDWN)}",
        plan.environment,
        token,
        requester,
    )


def refresh_plan(plan: RefreshPlan, requester: str, token: str) -> Rendered:
    return _asking(
        "refresh",
        f"Refresh {plan.environment}? {plan.clones} clones ({say.kinds(plan.by_type)}) are "
        "destroyed and re-created",
        f":warning: {who(requester)} asked to refresh *{esc(plan.environment)}*.\n"
        f"{say.refresh_plan(plan, MRKDWN)}",
        plan.environment,
        token,
        requester,
    )


def rebuild_plan(plan: RebuildPlan, requester: str, token: str) -> Rendered:
    return _asking(
        "rebuild",
        f"Rebuild {plan.vm}? It is destroyed and cloned again from its base snapshot",
        f":warning: {who(requester)} asked to rebuild `{esc(plan.vm)}`.\n"
        f"{say.rebuild_plan(plan, MRKDWN)}",
        plan.vm,
        token,
        requester,
    )


def asked_in_direct_messages(what: str) -> str:
    """Said where the command was typed when its Confirm / Cancel went to the asker's DM."""
    return f":envelope: The {esc(what)} waits for your Confirm in your direct messages with me."


def orphans_remove_plan(names: Sequence[str], requester: str, token: str) -> Rendered:
    ask = [
        f":warning: {who(requester)} asked to power off and destroy "
        f"*{say.plural(len(names), 'orphan VM')}* this bot made and no environment records:",
        *[f"• `{esc(n)}`" for n in names],
    ]
    text = f"Remove {len(names)} orphan VMs made by this bot?"
    return _asking("orphans", text, capped_lines(ask), ORPHANS_TOKEN_ENV, token, requester)


# ===================================================================== after a click
def _starting(text: str, head: str) -> Rendered:
    return Rendered(text, [section(f":hourglass_flowing_sand: {head}; starting...")])


def teardown_starting(environment: str, confirmer: str) -> Rendered:
    return _starting(
        f"Stripping back {environment}",
        f"Strip back of *{esc(environment)}* confirmed by {who(confirmer)}",
    )


def refresh_starting(environment: str, confirmer: str) -> Rendered:
    return _starting(
        f"Refreshing {environment}",
        f"Refresh of *{esc(environment)}* confirmed by {who(confirmer)}",
    )


def orphans_starting(_: str, confirmer: str) -> Rendered:
    return _starting(
        "Removing orphan VMs made by this bot",
        f"Removing the orphan VMs shown, confirmed by {who(confirmer)}",
    )


def _cancelled(what: str, environment: str, user: str, nothing: str) -> Rendered:
    return Rendered(
        f"{what} of {environment} cancelled: {nothing}",
        [
            section(
                f":no_entry_sign: {what} of *{esc(environment)}* cancelled by {who(user)}: "
                f"{nothing}."
            )
        ],
    )


def teardown_cancelled(environment: str, user: str) -> Rendered:
    return _cancelled("Strip back", environment, user, "nothing was destroyed")


def refresh_cancelled(environment: str, user: str) -> Rendered:
    return _cancelled("Refresh", environment, user, "nothing was changed")


def rebuild_cancelled(vm: str, user: str) -> Rendered:
    text = f"Rebuild of {vm} cancelled: nothing was changed"
    return Rendered(text, [section(f":no_entry_sign: {esc(text)} by {who(user)}.")])


def orphans_cancelled(_: str, user: str) -> Rendered:
    text = "Removing orphans cancelled: nothing was changed"
    return Rendered(text, [section(f":no_entry_sign: {esc(text)} by {who(user)}.")])


def orphans_stopped(_: str, requester: str, message: str) -> Rendered:
    text = f"Removing orphans stopped: {message}"
    return Rendered(
        text, [section(f":x: Removing orphans for {who(requester)} stopped: {esc(message)}")]
    )


def gone(what: str, again: str) -> str:
    """A click on a button whose token is used up (or expired): nothing more is done."""
    return error(
        f"This {what} was already confirmed or cancelled, or has expired. "
        f'Run "/clones {again}" again if it is still needed.'
    )
