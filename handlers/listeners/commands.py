"""The `/clones` slash command: parse, check access, ack within 3 s, work in the job pool.

parse -> access (the command's verb) -> drain check -> the ack (with what can be checked at once)
-> the job pool -> the command's step; both come from the command's entry in `handlers.verbs`
(a deployment's message is posted first; a strip back, a refresh or removing orphans asks
Confirm / Cancel with the plan from `plan_for`; most commands dispatch and answer).

The acknowledgement is the only thing done on Slack's clock; everything that may touch vCenter,
or wait on SQLite's write lock, runs in `ctx.jobs` (read-only commands in `ctx.reads`) and answers
through `respond` (the command's response_url) or the channel.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot.domain import grammar
from bot.domain.errors import UsageError
from bot.services.dispatch import Invocation, resolve_target
from bot.settings import without_secrets
from handlers import verbs
from handlers.blocks.kit import checking_access, restarting, unescape, usage_error
from handlers.context import HandlerContext, Reply, Request, Tell, explain, reporting


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
    answer = verbs.ack(request)
    pool = ctx.reads if reads and ctx.reads is not None else ctx.jobs
    step = verbs.step_for(request.command)
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
    and the run itself agree on it; `power off TRN-CAP-001` names that one VM (`resolve_target`)."""
    if isinstance(command, grammar.Deploy) and not command.environment:
        return replace(
            command, environment=ctx.services.use_cases.deployer.default_environment(command)
        )
    if isinstance(command, grammar.Power):
        return resolve_target(ctx.services, command, Invocation("", "slack"))
    return command
