"""The `/clones` slash command: parse, check access, ack within 3 s, work in the job pool.

parse -> access (the command's verb) -> drain check -> the ack (with what can be checked at once)
-> the job pool -> the command's step: a Slack pre-step where it needs one (a deployment's
message is posted first; a strip back, a refresh or removing orphans asks Confirm / Cancel with
the plan from `plan_for`), then `dispatch`, then the rendering.

The acknowledgement is the only thing done on Slack's clock; everything that may touch vCenter,
or wait on SQLite's write lock, runs in `ctx.jobs` (read-only commands in `ctx.reads`) and answers
through `respond` (the command's response_url) or the channel.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot.domain import grammar
from bot.domain.errors import UsageError
from bot.services.dispatch import Invocation, settled
from bot.settings import without_secrets
from handlers import confirming, handout, recovered, runs
from handlers.blocks import admin, plans, trainees
from handlers.blocks.kit import checking_access, restarting, unescape, usage_error
from handlers.blocks.runs import deploy_ack
from handlers.context import HandlerContext, Reply, Request, Tell, explain, reporting
from handlers.replies import reply

Step = Callable[[Request], None]

# The steps after the ack that are more than dispatch-and-answer (`reply`); destructive
# commands are confirmed first (`confirming.flow_for`).
STEPS: dict[type[Any], Step] = {
    grammar.Deploy: runs.deploy,  # the run's own message, posted before anything is created
    grammar.Resume: recovered.resume,  # each resumed run finishes its own message
    grammar.Assign: handout.assign,  # the hand-out's progress in one channel message
    grammar.Handout: handout.handout,  # the same, for those not reached before
}


def step_for(command: object) -> Step:
    if confirming.flow_for(command) is not None:
        return confirming.ask
    return STEPS.get(type(command), reply)


def register(app: App, ctx: HandlerContext) -> None:
    @app.command("/clones")
    def clones_command(ack: Ack, body: dict[str, Any], client: WebClient, respond: Respond) -> None:
        handle(ctx, ack, body, client, respond)


def handle(
    ctx: HandlerContext, ack: Ack, body: dict[str, Any], client: WebClient, respond: Respond
) -> None:
    # Slack sends the text escaped (should_escape): the grammar reads what the user typed.
    text = unescape(str(body.get("text", "")))
    user = str(body.get("user_id", ""))
    channel = str(body.get("channel_id", ""))
    try:
        command = grammar.parse(text)
    except UsageError as exc:
        ack(response_type="ephemeral", text=usage_error(str(exc)))
        return
    if isinstance(command, grammar.Help):
        ack(response_type="ephemeral", text=grammar.usage(command.topic))
        return
    said = without_secrets(f"/clones {text}".strip())  # a URL's password is never kept
    tell = Reply(respond)
    # Never waits for Slack: an operator group not read yet is decided after the ack.
    decision = ctx.access.check(user, channel, command.verb, command.access, wait=False)
    if decision.pending:
        ack(response_type="ephemeral", text=checking_access(command.verb))
        verb = command.verb

        def decide() -> None:
            _decide_then_start(ctx, command, user, channel, client, tell, said)

        reporting(tell, verb, lambda: ctx.jobs.submit(reporting, tell, verb, decide))
        return
    if not decision:
        ack(
            response_type="ephemeral",
            text=ctx.denial(decision, user=user, channel=channel, command=said),
        )
        return
    try:  # known errors as a sentence; a bug with an incident id to quote
        answer = _start(ctx, command, user, channel, client, tell)
    except Exception as exc:
        ack(response_type="ephemeral", text=explain(exc))
        return
    if answer:
        ack(response_type="ephemeral", text=answer)
    else:
        ack()


def _start(
    ctx: HandlerContext, command: Any, user: str, channel: str, client: WebClient, tell: Tell
) -> str:
    """The command is allowed: what to answer at once, with its step queued after it."""
    reads = command.access is grammar.Access.READ
    if ctx.draining.is_set() and not reads:
        return restarting(command.verb)
    request = Request(ctx, _settled(ctx, command), user, channel, client, tell)
    answer = ACKS.get(type(request.command), _plain)(request)
    pool = ctx.reads if reads and ctx.reads is not None else ctx.jobs
    step = step_for(request.command)
    pool.submit(reporting, request.tell, command.verb, lambda: step(request))
    return answer


def _decide_then_start(
    ctx: HandlerContext,
    command: Any,
    user: str,
    channel: str,
    client: WebClient,
    tell: Tell,
    said: str,
) -> None:
    """After the ack, when access hung on an operator group not read yet: read it (waiting for
    Slack as long as it asks), then refuse or go on as the ack would have."""
    decision = ctx.access.check(user, channel, command.verb, command.access)
    if ctx.permitted(decision, tell, user=user, channel=channel, command=said):
        answer = _start(ctx, command, user, channel, client, tell)
        if answer:
            tell(answer)


def _settled(ctx: HandlerContext, command: Any) -> Any:
    """A deployment into the default environment names it now, so the ack, the run's message
    and the run itself agree on it; `power off TRN-CAP-001` names that one VM (`settled`)."""
    if isinstance(command, grammar.Deploy) and not command.environment:
        return replace(command, environment=ctx.services.service.default_environment(command))
    if isinstance(command, grammar.Power):
        return settled(ctx.services, command, Invocation("", "slack"))
    return command


# ===================================================================== the ack
def _plain(r: Request) -> str:
    return ""  # a plain ack; the answer follows


def _deploy(r: Request) -> str:
    command, ctx = r.command, r.ctx
    # Unknown types and counts over a type's max_count are answered in the ack, before the
    # "Deploying..." promise (one SQLite read; vCenter is asked only in the job).
    ctx.services.service.deployer.check_counts(command)
    # Times are checked before anything is recorded or created: bad ones are answered here.
    times = ctx.schedules.deploy_times(command) if command.at or command.until else None
    if command.at:
        return ""
    by_type = dict(Counter({i.type: i.count for i in command.items}))
    answer = deploy_ack(by_type, command.environment)
    if times is not None and times.ends_at is not None:
        answer += (
            f" Strip back is set for {ctx.schedules.describe(times.ends_at)} once clones are ready."
        )
        note = ctx.schedules.keeper_note()  # never a promise that no scheduler keeps
        if note:
            answer += f" {note}"
    return answer


def _prepare(r: Request) -> str:
    r.ctx.settings.type(r.command.type)  # an unknown type is answered in the ack
    return admin.preparing(r.command.type)


def _assign(r: Request) -> str:
    if r.command.roster:  # a file on the trainer's computer: refused before anything is done
        raise UsageError(
            f'A roster file is read by the terminal: run "clones assign {r.command.environment} '
            f'from {r.command.roster}" there. Here, name people ("/clones assign '
            f'{r.command.environment} @alice @bob") or a channel ("from #channel").'
        )
    return trainees.assigning(r.command.environment)


# What the slash command answers within 3 s, by command ("" or absent: a plain ack).
ACKS: dict[type[Any], Callable[[Request], str]] = {
    grammar.Deploy: _deploy,
    grammar.Teardown: lambda r: plans.working_out("teardown", r.command.environment),
    grammar.Refresh: lambda r: plans.working_out("refresh", r.command.environment),
    grammar.Prepare: _prepare,
    grammar.Power: lambda r: admin.powering(r.command.action, r.command.environment),
    grammar.Check: lambda r: admin.CHECKING,
    grammar.Resume: lambda r: admin.RESUMING,
    grammar.Orphans: lambda r: admin.looking_for_orphans(r.command.action),
    grammar.Assign: _assign,
    grammar.Handout: lambda r: trainees.handing_out(r.command.environment),
    grammar.Rebuild: lambda r: plans.working_out("rebuild", r.command.vm or "your VM"),
}
