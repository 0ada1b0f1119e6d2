"""A trainee's buttons on their own VM (the Home tab and `/clones my`): Power on, Power off,
Reset, and Rebuild (which asks Confirm / Cancel in their direct messages first).

A button's value names the VM by identity (`VmRef`: the clone's record id and the instance UUID
it had when the button was shown); a button posted before values carried one names the VM alone,
and that name is looked for among the clicker's own VMs only. Either way it is user-controlled
input: the click is checked from scratch, as a typed command would be (the access policy, then
the trainee service, which acts only on the VM the clicker's assignment records, or any
trainee's for an operator, once vCenter shows it is still that VM, and audits a refusal)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot.domain import grammar
from bot.domain.trainees import VmRef
from handlers import verbs
from handlers.blocks.ids import (
    ACTION_MY_POWER_OFF,
    ACTION_MY_POWER_ON,
    ACTION_MY_REBUILD,
    ACTION_MY_RESET,
)
from handlers.context import DirectReply, HandlerContext, Reply, Request, Tell, reporting

VALUE_MAX = 200  # a name, a record id and a UUID; anything longer is not one of ours

Make = Callable[[str | None, VmRef | None], Any]
BUTTONS: dict[str, Make] = {
    ACTION_MY_POWER_ON: lambda vm, ref: grammar.MyPower("on", vm=vm, ref=ref),
    ACTION_MY_POWER_OFF: lambda vm, ref: grammar.MyPower("off", vm=vm, ref=ref),
    ACTION_MY_RESET: lambda vm, ref: grammar.Reset(vm=vm, ref=ref),
    ACTION_MY_REBUILD: lambda vm, ref: grammar.Rebuild(vm=vm, ref=ref),
}


def command_of(action_id: str, value: str) -> Any:
    """The command a click on one of these buttons stands for: by identity when the value
    carries one, else the VM's name (looked for among the clicker's own VMs only)."""
    value = value[:VALUE_MAX]
    ref = VmRef.parse(value)
    if ref is not None:
        return BUTTONS[action_id](None, ref)
    return BUTTONS[action_id](value.strip()[:80], None)


def register(app: App, ctx: HandlerContext) -> None:
    for action_id in BUTTONS:
        app.action(action_id)(_listener(ctx, action_id))


def _listener(
    ctx: HandlerContext, action_id: str
) -> Callable[[Ack, dict[str, Any], WebClient, Respond], None]:
    def clicked(ack: Ack, body: dict[str, Any], client: WebClient, respond: Respond) -> None:
        ack()
        user = str((body.get("user") or {}).get("id", ""))
        tell: Tell = Reply(respond) if body.get("response_url") else DirectReply(client, user)
        on_my_vm(ctx, body, client, tell, action_id)

    return clicked


def on_my_vm(
    ctx: HandlerContext,
    body: dict[str, Any],
    client: WebClient,
    tell: Tell,
    action_id: str,
) -> None:
    user = str((body.get("user") or {}).get("id", ""))
    channel = str((body.get("channel") or {}).get("id", "")) or user
    command = command_of(action_id, str((body.get("actions") or [{}])[0].get("value", "")))
    words = "power " + command.action if isinstance(command, grammar.MyPower) else command.verb
    if ctx.refuse_while_draining(tell, words):
        return
    decision = ctx.access.check(user, channel, command.verb, command.access)
    vm = command.vm or (command.ref.name if command.ref else "")
    said = f"{words} {vm} (button)"
    if not ctx.permitted(decision, tell, user=user, channel=channel, command=said):
        return
    request = Request(ctx, command, user, channel, client, tell)
    step = verbs.step_for(command)
    reporting(tell, words, lambda: ctx.jobs.submit(reporting, tell, words, lambda: step(request)))
