"""Buttons in messages: Confirm / Cancel of a strip back, a refresh or removing orphans (one
flow, `handlers.confirming`), and the reminder's Extend / Strip back now.

Every click is acknowledged first (Slack's 3 s), then checked again from scratch: a button's
value is user-controlled input, and a message may be older than the clicker's current rights.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot.domain import grammar
from bot.services.dispatch import EXTEND
from handlers import confirming, verbs
from handlers.blocks import schedules
from handlers.blocks.ids import ACTION_EXTEND, ACTION_STRIP_NOW
from handlers.blocks.kit import esc, who
from handlers.context import HandlerContext, Reply, Request, Tell, reporting
from handlers.notify import extend_label

Listener = Callable[[Ack, dict[str, Any], WebClient, Respond], None]


def register(app: App, ctx: HandlerContext) -> None:
    for flow in verbs.FLOWS:
        app.action(flow.confirm_id)(_confirmation(ctx, flow, confirm=True))
        app.action(flow.cancel_id)(_confirmation(ctx, flow, confirm=False))

    @app.action(ACTION_EXTEND)
    def extend(ack: Ack, body: dict[str, Any], client: WebClient, respond: Respond) -> None:
        ack()
        on_extend(ctx, body, client, Reply(respond))

    @app.action(ACTION_STRIP_NOW)
    def strip_now(ack: Ack, body: dict[str, Any], client: WebClient, respond: Respond) -> None:
        ack()
        on_strip_now(ctx, body, client, Reply(respond))


def _confirmation(ctx: HandlerContext, flow: confirming.Flow, *, confirm: bool) -> Listener:
    def clicked(ack: Ack, body: dict[str, Any], client: WebClient, respond: Respond) -> None:
        ack()
        confirming.clicked(ctx, flow, body, client, Reply(respond), confirm=confirm)

    return clicked


# ===================================================================== the reminder's buttons
def _reminder_click(body: dict[str, Any]) -> tuple[str, str, str, str]:
    """(user, channel, message ts, environment) of an Extend / Strip back now click."""
    user = str(body.get("user", {}).get("id", ""))
    channel = str(body.get("channel", {}).get("id", ""))
    ts = str(body.get("message", {}).get("ts", ""))
    environment = str((body.get("actions") or [{}])[0].get("value", ""))
    return user, channel, ts, environment


def on_extend(ctx: HandlerContext, body: dict[str, Any], client: WebClient, tell: Tell) -> None:
    """ "Extend 2h": move the scheduled strip back by the default extension (capped)."""
    user, channel, ts, environment = _reminder_click(body)
    if ctx.refuse_while_draining(tell, "extend"):
        return
    label = extend_label(ctx.settings)
    decision = ctx.access.check(user, channel, grammar.Extend.verb)
    said = f"{label} {environment} (reminder button)"
    if not ctx.permitted(decision, tell, user=user, channel=channel, command=said):
        return
    request = Request(ctx, grammar.Extend(environment), user, channel, client, tell)

    def work() -> None:
        result = request.run_route(EXTEND)
        env = ctx.services.use_cases.queries.environment(environment)
        if ts and result.ends_at is not None:
            r = schedules.reminder(
                environment,
                env.owner,
                ctx.schedules.describe(result.ends_at),
                label,
                note=f"Extended by {who(user)}: {esc(result.message)}",
            )
            client.chat_update(channel=channel, ts=ts, text=r.text, blocks=r.blocks)
        tell(f":calendar: {esc(result.message)}")

    reporting(tell, "extend", lambda: ctx.jobs.submit(reporting, tell, "extend", work))


def on_strip_now(ctx: HandlerContext, body: dict[str, Any], client: WebClient, tell: Tell) -> None:
    """ "Strip back now": the usual strip back plan with Confirm / Cancel, in this channel."""
    user, channel, _, environment = _reminder_click(body)
    if ctx.refuse_while_draining(tell, "teardown"):
        return
    decision = ctx.access.check(user, channel, grammar.Teardown.verb)
    said = f"teardown {environment} (reminder button)"
    if not ctx.permitted(decision, tell, user=user, channel=channel, command=said):
        return
    request = Request(ctx, grammar.Teardown(environment), user, channel, client, tell)
    reporting(
        tell,
        "strip back now",
        lambda: ctx.jobs.submit(
            reporting, tell, "teardown plan", lambda: confirming.ask(request, confirming.TEARDOWN)
        ),
    )
