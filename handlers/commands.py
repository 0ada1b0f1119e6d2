"""The `/clones` slash command: parse, check access, ack within 3 s, work in the job pool.

The acknowledgement is the only thing done on Slack's clock; everything that may touch vCenter,
or wait on SQLite's write lock, runs in `ctx.jobs` and answers through `respond` (the command's
response_url) or the channel.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot import grammar
from bot.chart import render_savings_chart
from bot.errors import ClonesError, UsageError
from bot.models import RunKind
from handlers import blocks
from handlers.context import SOURCE, HandlerContext, Reply, Tell, explain, log, reporting
from handlers.progress import ProgressMessage

VERBS: dict[type[Any], str] = {
    grammar.Deploy: "deploy",
    grammar.Teardown: "teardown",
    grammar.Status: "status",
    grammar.Savings: "savings",
    grammar.Types: "types",
    grammar.Help: "help",
}


def register(app: App, ctx: HandlerContext) -> None:
    @app.command("/clones")
    def clones_command(ack: Ack, body: dict[str, Any], client: WebClient, respond: Respond) -> None:
        handle(ctx, ack, body, client, respond)


def handle(
    ctx: HandlerContext, ack: Ack, body: dict[str, Any], client: WebClient, respond: Respond
) -> None:
    text = str(body.get("text", ""))
    user = str(body.get("user_id", ""))
    channel = str(body.get("channel_id", ""))
    try:
        command = grammar.parse(text)
    except UsageError as exc:
        ack(response_type="ephemeral", text=blocks.usage_error(str(exc)))
        return
    if isinstance(command, grammar.Help):
        ack(response_type="ephemeral", text=blocks.usage(command.topic))
        return

    verb = VERBS[type(command)]
    decision = ctx.access.check(user, channel, verb)
    if not decision:
        ctx.repo.audit(
            actor=user,
            source=SOURCE,
            channel=channel,
            command=f"/clones {text}".strip(),
            result="denied",
            detail=decision.reason,
        )
        ack(response_type="ephemeral", text=f":no_entry: {decision.reason}")
        return

    tell = Reply(respond)
    try:
        if isinstance(command, grammar.Deploy):
            reply = _start_deploy(ctx, command, user, channel, client, tell)
        elif isinstance(command, grammar.Teardown):
            ctx.jobs.submit(
                reporting,
                tell,
                "teardown plan",
                lambda: post_plan(ctx, command.environment, user, channel, client),
            )
            reply = f"Working out what strip back of {command.environment} would destroy..."
        else:
            ctx.jobs.submit(reporting, tell, verb, lambda: _read(ctx, command, tell))
            reply = ""
    except ClonesError as exc:
        ack(response_type="ephemeral", text=explain(exc))
        return
    if reply:
        ack(response_type="ephemeral", text=reply)
    else:
        ack()


# ===================================================================== deploy
def _start_deploy(
    ctx: HandlerContext,
    command: grammar.Deploy,
    user: str,
    channel: str,
    client: WebClient,
    tell: Tell,
) -> str:
    if command.at or command.until:
        raise UsageError(
            "Scheduled deployments (at/until) are not available yet; deploy now with "
            '"deploy capture 25 as nov-cohort".'
        )
    for item in command.items:  # unknown types are answered in the ack, not after a round trip
        ctx.settings.type(item.type)
    environment = command.environment or ctx.service.default_environment(command)
    by_type = Counter({i.type: i.count for i in command.items})
    total = sum(by_type.values())
    ctx.jobs.submit(
        reporting,
        tell,
        "deploy",
        lambda: _deploy(ctx, command, environment, user, channel, client),
    )
    return blocks.deploy_ack(total, dict(by_type), environment)


def _deploy(
    ctx: HandlerContext,
    command: grammar.Deploy,
    environment: str,
    user: str,
    channel: str,
    client: WebClient,
) -> None:
    progress = ProgressMessage(
        client,
        channel,
        lambda e: blocks.deploy_progress(e, user),
        interval_s=ctx.settings.slack.progress_interval_s,
    )
    try:
        result = ctx.service.deploy(
            command, actor=user, source=SOURCE, channel=channel, on_event=progress.on_event
        )
    except Exception as exc:
        # Errors before the first event (busy, capacity, parent problems) reach only the user;
        # once the channel has a progress message it must not be left spinning.
        if progress.started:
            progress.finish(blocks.run_aborted(RunKind.DEPLOY, environment, user, _short(exc)))
        raise
    ts = progress.finish(blocks.deploy_summary(result, user))
    if result.savings is not None and result.savings.clones and ts is not None:
        png = render_savings_chart(result.savings, f"Disk space used by {result.environment}")
        client.files_upload_v2(
            channel=progress.channel,
            thread_ts=ts,
            file=png,
            filename=f"savings-{result.environment}.png",
            title=f"Savings in {result.environment}",
            alt_txt="Bar chart of disk space: thick vs thin full clones vs linked clones",
        )
    log.info("deploy of %s finished: %s", result.environment, result.state.value)


def _short(exc: BaseException) -> str:
    if isinstance(exc, ClonesError):
        return str(exc)
    return "internal error (logged)"


# ===================================================================== teardown
def post_plan(
    ctx: HandlerContext, environment: str, user: str, channel: str, client: WebClient
) -> None:
    plan = ctx.service.teardown_plan(environment)
    pending = ctx.confirmations.issue(plan.environment, requester=user, channel=channel)
    r = blocks.teardown_plan(plan, user, pending.token)
    client.chat_postMessage(channel=channel, text=r.text, blocks=r.blocks)


# ===================================================================== reads
def _read(ctx: HandlerContext, command: grammar.Command, tell: Reply) -> None:
    if isinstance(command, grammar.Status):
        r = blocks.status(ctx.service.status(command.environment), command.environment)
    elif isinstance(command, grammar.Savings):
        r = blocks.savings(ctx.service.savings(command.environment), command.environment)
    elif isinstance(command, grammar.Types):
        r = blocks.types(ctx.service.types())
    else:  # pragma: no cover - every read verb is listed above
        raise UsageError(f"{type(command).__name__} is not a read command")
    tell.rendered(r)
