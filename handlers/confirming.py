"""Confirm / Cancel: how Slack confirms a destructive command (a strip back, a refresh, removing
orphans, a trainee's rebuild), one flow parameterised by the command.

Asking: the plan from `bot.services.dispatch.plan_for` (what the terminal prints before it asks
for the name) is posted in the channel with two buttons carrying a one-time token
(`handlers.confirm_tokens`). Clicking: the click is checked from scratch (draining, the token,
who may confirm), the token is used up, the buttons are replaced at once, and the command runs
through the dispatch table in the job pool with its progress and outcome in that same message.
A cancel is audited and leaves the message saying nothing was done.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from slack_sdk import WebClient

from bot.domain import grammar
from bot.domain.errors import ClonesError, Fenced
from bot.domain.models import RunKind
from bot.domain.results import ProgressEvent
from bot.domain.trainees import VmRef
from bot.services.dispatch import plan_for, resolve_target
from bot.services.orphans import Orphan, OrphansOutcome
from handlers.blocks import admin, plans, trainees
from handlers.blocks import runs as shown
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
from handlers.blocks.kit import Rendered
from handlers.confirm_tokens import PendingTeardown
from handlers.context import SOURCE, HandlerContext, Request, Tell, brief, log, reporting
from handlers.progress import ProgressMessage
from handlers.run_messages import tell_home_channel

Shown = Callable[[str, str], Rendered]  # (the token's key, a user) -> the message


@dataclass(frozen=True)
class Flow:
    """One destructive command's confirmation: its buttons, and what its message shows."""

    action: str  # the token's action: "teardown", "refresh" or "orphans"
    confirm_id: str
    cancel_id: str
    # The command a click confirms, from the token's key (the environment, or "orphans") and the
    # items it binds (a rebuild: the VM's identity, so no other VM of that name is rebuilt).
    command: Callable[[str, tuple[str, ...]], Any]
    words: Callable[[str], str]  # the command as typed ("teardown X"): for the audit and advice
    what: Callable[[str], str]  # "strip back of X": for a button already used up
    # The token's key and the items it binds (the morefs shown), from the plan.
    token: Callable[[Any], tuple[str, tuple[str, ...]]]
    ask: Callable[[Any, str, str], Rendered]  # (plan, requester, token): with the buttons
    starting: Shown  # the buttons replaced at once
    progress: Callable[[ProgressEvent, str], Rendered]
    done: Callable[[Any, str], Rendered]  # (the result, the confirmer)
    aborted: Callable[[str, str, str], Rendered]  # (key, requester, why)
    cancelled: Shown
    # Said instead of asking when a plan binds no items (no orphan of the bot's own).
    nothing: Callable[[Any, Any], Rendered] | None = None
    # For the environment's own channel, when the run was confirmed in another.
    home_note: Callable[[Any, str], str] | None = None
    # Where the question is posted (default: the request's channel). A trainee's rebuild goes
    # to their direct messages with the bot, not to a course channel.
    where: Callable[[Request], str] | None = None


def _environment(plan: Any) -> tuple[str, tuple[str, ...]]:
    return str(plan.environment), ()


def _ours(plan: list[Orphan]) -> tuple[str, tuple[str, ...]]:
    return plans.ORPHANS_TOKEN_ENV, tuple(o.vm.moref for o in plan if o.ours)


def _rebuild(vm: str, items: tuple[str, ...]) -> grammar.Rebuild:
    """The rebuild a Confirm stands for: of the VM the plan showed, by identity."""
    ref = VmRef.parse(items[0]) if items else None
    return grammar.Rebuild(vm=vm, ref=ref)


# The confirmations, each registered with its command in `handlers.verbs.SLACK`.
TEARDOWN = Flow(
    "teardown",
    ACTION_CONFIRM,
    ACTION_CANCEL,
    command=lambda env, _: grammar.Teardown(env),
    words=lambda env: f"teardown {env}",
    what=lambda env: f"strip back of {env}",
    token=_environment,
    ask=plans.teardown_plan,
    starting=plans.teardown_starting,
    progress=shown.teardown_progress,
    done=shown.teardown_result,
    aborted=partial(shown.run_aborted, RunKind.TEARDOWN),
    cancelled=plans.teardown_cancelled,
    home_note=shown.teardown_finished_note,
)

REFRESH = Flow(
    "refresh",
    ACTION_REFRESH_CONFIRM,
    ACTION_REFRESH_CANCEL,
    command=lambda env, _: grammar.Refresh(env),
    words=lambda env: f"refresh {env}",
    what=lambda env: f"refresh of {env}",
    token=_environment,
    ask=plans.refresh_plan,
    starting=plans.refresh_starting,
    progress=shown.refresh_progress,
    done=shown.refresh_result,
    aborted=partial(shown.run_aborted, RunKind.REFRESH),
    cancelled=plans.refresh_cancelled,
)

ORPHANS_REMOVE = Flow(
    "orphans",
    ACTION_ORPHANS_CONFIRM,
    ACTION_ORPHANS_CANCEL,
    command=lambda _, __: grammar.Orphans("remove"),
    words=lambda _: "orphans remove",
    what=lambda _: "orphans remove",
    token=_ours,
    ask=lambda plan, requester, token: plans.orphans_remove_plan(
        [o.vm.name for o in plan if o.ours], requester, token
    ),
    starting=plans.orphans_starting,
    progress=lambda e, user: plans.orphans_starting("", user),  # it sends no events
    done=admin.orphans_removed,
    aborted=plans.orphans_stopped,
    cancelled=plans.orphans_cancelled,
    nothing=lambda plan, command: admin.orphans_list(OrphansOutcome(plan, command.action)),
)

REBUILD = Flow(
    "rebuild",
    ACTION_REBUILD_CONFIRM,
    ACTION_REBUILD_CANCEL,
    command=_rebuild,
    words=lambda vm: f"rebuild {vm}",
    what=lambda vm: f"rebuild of {vm}",
    token=lambda plan: (plan.vm, (plan.ref.value,) if plan.ref else ()),
    ask=plans.rebuild_plan,
    starting=trainees.rebuild_progress,
    progress=lambda e, user: trainees.rebuild_progress(e.clone or "", user),
    done=trainees.rebuilt,
    aborted=trainees.rebuild_stopped,
    cancelled=plans.rebuild_cancelled,
    where=lambda r: r.user,
)


# ===================================================================== asking
def ask(r: Request, flow: Flow) -> None:
    """Post what the command would do, with Confirm / Cancel, in the request's channel."""
    # What it acts on, named and checked first (a rebuild: the asker's own VM).
    command = resolve_target(r.ctx.services, r.command, r.invocation())
    plan = plan_for(r.ctx.services, command)
    key, items = flow.token(plan)  # the orphans shown, exactly, are the ones a click removes
    if flow.nothing is not None and not items:  # nothing of the bot's own: say what was found
        r.tell.rendered(flow.nothing(plan, command))
        return
    channel = flow.where(r) if flow.where is not None else r.channel
    pending = r.ctx.confirmations.issue(
        key, requester=r.user, channel=channel, action=flow.action, items=items
    )
    message = flow.ask(plan, r.user, pending.token)
    r.client.chat_postMessage(channel=channel, text=message.text, blocks=message.blocks)
    if channel != r.channel:
        r.tell(plans.asked_in_direct_messages(flow.what(key)))


# ===================================================================== clicking
@dataclass(frozen=True)
class Click:
    user: str
    channel: str
    ts: str  # the message with the buttons
    key: str  # the environment, or "orphans"
    token: str

    @classmethod
    def of(cls, body: dict[str, Any]) -> Click:
        value = str((body.get("actions") or [{}])[0].get("value", ""))
        key, _, token = value.partition(" ")
        return cls(
            str(body.get("user", {}).get("id", "")),
            str(body.get("channel", {}).get("id", "")),
            str(body.get("message", {}).get("ts", "")),
            key,
            token,
        )


def clicked(
    ctx: HandlerContext,
    flow: Flow,
    body: dict[str, Any],
    client: WebClient,
    tell: Tell,
    *,
    confirm: bool,
) -> None:
    """Confirm: run exactly what was shown (once, however many clicks); Cancel: nothing."""
    click = Click.of(body)
    if confirm and ctx.refuse_while_draining(tell, flow.action):  # the button stays valid
        return
    pending = ctx.confirmations.peek(click.token, click.key, flow.action)
    if pending is None:
        tell(plans.gone(flow.what(click.key), flow.words(click.key)))
        return
    decision = ctx.access.may_confirm(click.user, pending.requester)
    subject = f"{'confirm' if confirm else 'cancel'} {flow.words(click.key)}"
    if not ctx.permitted(decision, tell, user=click.user, channel=click.channel, command=subject):
        return
    # Only now is the token used up: a bystander's click must not burn the requester's button.
    taken = ctx.confirmations.take(click.token, click.key, flow.action)
    if taken is None:  # a concurrent click won
        tell(plans.gone(flow.what(click.key), flow.words(click.key)))
        return
    if confirm:
        _confirmed(ctx, flow, click, taken, client, tell)
        return
    ctx.audit.audit(
        actor=click.user,
        source=SOURCE,
        channel=click.channel,
        command=flow.words(click.key),
        result="cancelled",
    )
    r = flow.cancelled(click.key, click.user)
    reporting(
        tell,
        f"cancel {flow.action}",
        lambda: client.chat_update(
            channel=click.channel, ts=click.ts, text=r.text, blocks=r.blocks
        ),
    )


def _confirmed(
    ctx: HandlerContext,
    flow: Flow,
    click: Click,
    taken: PendingTeardown,
    client: WebClient,
    tell: Tell,
) -> None:
    user = click.user
    request = Request(ctx, flow.command(click.key, taken.items), user, click.channel, client, tell)
    progress: ProgressMessage[ProgressEvent] = ProgressMessage(
        client,
        click.channel,
        lambda e: flow.progress(e, user),
        interval_s=ctx.settings.slack.progress_interval_s,
        ts=click.ts,
        live=ctx.live,
    )

    def work() -> None:
        queries = ctx.services.use_cases.queries
        home = queries.find_environment(click.key) if flow.home_note else None  # before it goes
        try:
            only = (taken.items or None) if flow.action == "orphans" else None
            result = request.run(on_event=progress.on_event, only=only)
        except Fenced as exc:  # another bot took the run over: it finishes this same message
            progress.drop()
            log.warning("fenced: %s: %s", flow.words(click.key), exc)
            return
        except Exception as exc:
            progress.finish(flow.aborted(click.key, taken.requester, brief(exc)))
            raise
        progress.finish(flow.done(result, user))
        if flow.home_note is not None:
            tell_home_channel(client, home, click.channel, flow.home_note(result, user))
        log.info("%s finished", flow.words(click.key))

    # Replace the buttons at once, so nobody clicks a button whose token is already gone; that
    # edit counts against the progress message's interval like any other.
    starting = flow.starting(click.key, user)
    progress.mark_sent()
    try:
        ctx.jobs.submit(work)
    except ClonesError as exc:
        starting = flow.aborted(click.key, taken.requester, str(exc))
    reporting(
        tell,
        flow.action,
        lambda: client.chat_update(
            channel=click.channel, ts=click.ts, text=starting.text, blocks=starting.blocks
        ),
    )
