"""A trainee's buttons on their own VM (the Home tab and `/clones my`): Power on, Power off,
Reset, and Rebuild (which asks Confirm / Cancel in their direct messages first).

A button's value (the VM's name) is user-controlled input: the click is checked from scratch,
as a typed command would be (the access policy, then the trainee service, which acts only on the
VM the clicker's assignment records, or any trainee's for an operator, and audits a refusal)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot.domain import grammar
from handlers import verbs
from handlers.blocks.ids import (
    ACTION_MY_POWER_OFF,
    ACTION_MY_POWER_ON,
    ACTION_MY_REBUILD,
    ACTION_MY_RESET,
)
from handlers.context import DirectReply, HandlerContext, Reply, Request, Tell, reporting

VM_VALUE_MAX = 80  # a VM name; anything longer is not one of ours

BUTTONS: dict[str, Callable[[str], Any]] = {
    ACTION_MY_POWER_ON: lambda vm: grammar.MyPower("on", vm=vm),
    ACTION_MY_POWER_OFF: lambda vm: grammar.MyPower("off", vm=vm),
    ACTION_MY_RESET: lambda vm: grammar.Reset(vm=vm),
    ACTION_MY_REBUILD: lambda vm: grammar.Rebuild(vm=vm),
}


def register(app: App, ctx: HandlerContext) -> None:
    for action_id, make in BUTTONS.items():
        app.action(action_id)(_listener(ctx, make))


def _listener(
    ctx: HandlerContext, make: Callable[[str], Any]
) -> Callable[[Ack, dict[str, Any], WebClient, Respond], None]:
    def clicked(ack: Ack, body: dict[str, Any], client: WebClient, respond: Respond) -> None:
        ack()
        user = str((body.get("user") or {}).get("id", ""))
        tell: Tell = Reply(respond) if body.get("response_url") else DirectReply(client, user)
        on_my_vm(ctx, body, client, tell, make)

    return clicked


def on_my_vm(
    ctx: HandlerContext,
    body: dict[str, Any],
    client: WebClient,
    tell: Tell,
    make: Callable[[str], Any],
) -> None:
    user = str((body.get("user") or {}).get("id", ""))
    channel = str((body.get("channel") or {}).get("id", "")) or user
    vm = str((body.get("actions") or [{}])[0].get("value", ""))[:VM_VALUE_MAX]
    command = make(vm)
    words = "power " + command.action if isinstance(command, grammar.MyPower) else command.verb
    if ctx.refuse_while_draining(tell, words):
        return
    decision = ctx.access.check(user, channel, command.verb, command.access)
    said = f"{words} {vm} (button)"
    if not ctx.permitted(decision, tell, user=user, channel=channel, command=said):
        return
    request = Request(ctx, command, user, channel, client, tell)
    step = verbs.step_for(command)
    reporting(tell, words, lambda: ctx.jobs.submit(reporting, tell, words, lambda: step(request)))
