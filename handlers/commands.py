"""The `/clones` slash command: parse, check access, ack within 3 s, work in the job pool.

The acknowledgement is the only thing done on Slack's clock; everything that may touch vCenter,
or wait on SQLite's write lock, runs in `ctx.jobs` and answers through `respond` (the command's
response_url) or the channel.

Every command of the grammar has a handler in `HANDLERS`, keyed by its command class; the verb
name used for access checks and the audit log is derived from the class the same way the grammar
names it (`CancelSchedule` -> `cancel-schedule`). A command class without a handler is answered
with a clear "not available from Slack" (the tests check there is none), never a KeyError.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot.domain import grammar
from bot.domain.errors import ClonesError, NotFoundError, UsageError
from bot.domain.models import CloneState, RunKind
from bot.services.access import READ_ONLY_VERBS
from bot.services.check import Checker
from bot.services.runs import LIVE_STATES
from handlers import blocks
from handlers.check import render as render_check
from handlers.context import SOURCE, HandlerContext, Reply, explain, log, reporting
from handlers.notify import tell_home_channel
from handlers.progress import ProgressMessage
from handlers.recovered import recover_and_report
from handlers.runs import finish_deploy, open_message, recorder


def verb_of(command: grammar.Command | type[Any]) -> str:
    """The grammar's name for a command or its class (each command class knows its verb)."""
    return str(command.verb)


@dataclass(frozen=True)
class Request:
    """One slash command, as the handlers need it."""

    ctx: HandlerContext
    command: grammar.Command
    text: str
    user: str
    channel: str
    client: WebClient
    tell: Reply

    @property
    def verb(self) -> str:
        return verb_of(self.command)

    def later(self, what: str, fn: Callable[[], object]) -> None:
        """Run `fn` in the job pool (reads in their own); its errors reach the user privately."""
        pool = self.ctx.jobs
        if self.ctx.reads is not None and self.verb in READ_ONLY_VERBS:
            pool = self.ctx.reads
        pool.submit(reporting, self.tell, what, fn)


# A handler returns the acknowledgement text ("" for a plain ack) and may queue work.
Handler = Callable[[Request], str]


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

    verb = verb_of(command)
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

    if ctx.draining.is_set() and verb not in READ_ONLY_VERBS:
        ack(response_type="ephemeral", text=blocks.restarting(verb))
        return

    handler = HANDLERS.get(type(command))
    if handler is None:  # a grammar verb nobody wired up yet: say so, never a KeyError
        log.warning("no Slack handler for %s", type(command).__name__)
        ack(response_type="ephemeral", text=blocks.unsupported(verb))
        return
    request = Request(ctx, command, text, user, channel, client, Reply(respond))
    try:
        reply = handler(request)
    except Exception as exc:  # known errors as a sentence; a bug with an incident id to quote
        ack(response_type="ephemeral", text=explain(exc))
        return
    if reply:
        ack(response_type="ephemeral", text=reply)
    else:
        ack()


# ===================================================================== deploy
def _deploy_command(r: Request) -> str:
    command = r.command
    assert isinstance(command, grammar.Deploy)
    ctx = r.ctx
    environment = command.environment or ctx.service.default_environment(command)
    # Unknown types and counts over a type's max_count are answered in the ack, before the
    # "Deploying..." promise (one SQLite read; vCenter is asked only in the job).
    check_counts(ctx, command, environment)
    # Times are checked before anything is recorded or created: bad ones are answered here.
    times = ctx.schedules.deploy_times(command) if command.at or command.until else None
    if command.at:
        r.later("schedule", lambda: _schedule_deploy(r, command, environment))
        return ""
    by_type = Counter({i.type: i.count for i in command.items})
    ends_at = times.ends_at if times is not None else None
    r.later(
        "deploy", lambda: _deploy(ctx, command, environment, r.user, r.channel, r.client, ends_at)
    )
    reply = blocks.deploy_ack(sum(by_type.values()), dict(by_type), environment)
    if ends_at is not None:
        reply += f" Strip back is set for {ctx.schedules.describe(ends_at)} once clones are ready."
        note = ctx.schedules.keeper_note()  # never a promise that no scheduler keeps
        if note:
            reply += f" {note}"
    return reply


def check_counts(ctx: HandlerContext, command: grammar.Deploy, environment: str) -> None:
    """UsageError when a count is over its type's max_count (the one limit, from the settings),
    counting the live clones the environment already has."""
    live = Counter(c.type for c in ctx.repo.clones(environment=environment, states=LIVE_STATES))
    for item in command.items:
        t = ctx.settings.type(item.type)  # unknown type: ConfigError naming the known ones
        have = live[t.name]
        if have + item.count <= t.max_count:
            continue
        room = max(t.max_count - have, 0)
        already = f" ({have} already in {environment})" if have else ""
        advice = (
            f'ask for at most {room}, e.g. "deploy {t.name} {room} as {environment}"'
            if room
            else 'strip back some first, or deploy into another environment ("as NAME")'
        )
        raise UsageError(
            f"{item.count} {t.name} clones is more than the type's maximum of {t.max_count}"
            f"{already}; {advice}. (The maximum is the type's max_count setting.)"
        )
    total = sum(live.values()) + sum(i.count for i in command.items)
    cap = ctx.settings.max_environment_clones
    if total > cap:
        raise UsageError(
            f"An environment holds at most {cap} clones (the max_environment_clones setting); "
            f"{environment} would have {total}. Split the cohort into two environments."
        )


def _schedule_deploy(r: Request, command: grammar.Deploy, environment: str) -> None:
    # The scheduled run reports in this channel: make sure the bot may post here first.
    by_type = {i.type: i.count for i in command.items}
    channel, ts = open_message(r.client, r.channel, blocks.scheduling(by_type, environment, r.user))
    try:
        result = r.ctx.schedules.schedule_deploy(
            command, actor=r.user, source=SOURCE, channel=r.channel
        )
    except Exception as exc:
        failed = blocks.scheduling_failed(environment, _short(exc))
        r.client.chat_update(channel=channel, ts=ts, text=failed.text, blocks=failed.blocks)
        raise
    done = blocks.schedule_result(result, r.user)
    r.client.chat_update(channel=channel, ts=ts, text=done.text, blocks=done.blocks)


def _deploy(
    ctx: HandlerContext,
    command: grammar.Deploy,
    environment: str,
    user: str,
    channel: str,
    client: WebClient,
    ends_at: datetime | None = None,
) -> None:
    by_type = {i.type: i.count for i in command.items}
    # Posting the run's message first proves the bot may post here, before anything exists.
    channel, ts = open_message(client, channel, blocks.deploy_starting(by_type, environment, user))
    progress = ProgressMessage(
        client,
        channel,
        lambda e: blocks.deploy_progress(e, user),
        interval_s=ctx.settings.slack.progress_interval_s,
        ts=ts,
        record=recorder(ctx.repo),
    )
    progress.mark_sent()  # the first post counts against the update interval
    try:
        result = ctx.service.deploy(
            command, actor=user, source=SOURCE, channel=channel, on_event=progress.on_event
        )
    except Exception as exc:
        # The channel's message must not be left at "checking..." or mid-progress.
        if progress.started:
            progress.finish(blocks.run_aborted(RunKind.DEPLOY, environment, user, _short(exc)))
        else:
            progress.finish(blocks.deploy_not_started(environment, user, _short(exc)))
        raise
    note = ""
    if ends_at is not None and result.ready:
        try:
            note = ctx.schedules.set_end(
                result.environment, ends_at, actor=user, source=SOURCE
            ).message
        except ClonesError as exc:
            note = f"The strip back could not be scheduled: {exc}"
        except Exception as exc:
            note = explain(exc).removeprefix(":boom: ")
    finish_deploy(client, progress, result, user, note=note)
    failed = f", {len(result.failed)} failed" if result.failed else ""
    tell_home_channel(
        client,
        ctx.repo.get_environment(result.environment),
        channel,
        f"Deployment into {result.environment} by <@{user}> finished: {len(result.ready)} of "
        f"{result.requested} linked clones ready{failed}.",
    )
    log.info("deploy of %s finished: %s", result.environment, result.state.value)


def _short(exc: BaseException) -> str:
    if isinstance(exc, ClonesError):
        return str(exc)
    return "internal error (logged)"


# ===================================================================== teardown and refresh
def _teardown_command(r: Request) -> str:
    command = r.command
    assert isinstance(command, grammar.Teardown)
    env = command.environment
    r.later("teardown plan", lambda: post_plan(r.ctx, env, r.user, r.channel, r.client))
    return f"Working out what strip back of {env} would destroy..."


def post_plan(
    ctx: HandlerContext, environment: str, user: str, channel: str, client: WebClient
) -> None:
    plan = ctx.service.teardown_plan(environment)
    pending = ctx.confirmations.issue(plan.environment, requester=user, channel=channel)
    r = blocks.teardown_plan(plan, user, pending.token)
    client.chat_postMessage(channel=channel, text=r.text, blocks=r.blocks)


def _refresh_command(r: Request) -> str:
    command = r.command
    assert isinstance(command, grammar.Refresh)
    env = command.environment
    r.later("refresh plan", lambda: post_refresh_plan(r.ctx, env, r.user, r.channel, r.client))
    return f"Working out what a refresh of {env} would re-create..."


def post_refresh_plan(
    ctx: HandlerContext, environment: str, user: str, channel: str, client: WebClient
) -> None:
    """Refresh destroys and re-creates VMs: show what, with Confirm / Cancel."""
    env = ctx.service.environment(environment)
    ready = ctx.repo.clones(environment=env.name, states=[CloneState.READY])
    if not ready:
        raise NotFoundError(f"Environment {env.name} has no ready clones to refresh.")
    by_type = dict(sorted(Counter(c.type for c in ready).items()))
    pending = ctx.confirmations.issue(env.name, requester=user, channel=channel, action="refresh")
    r = blocks.refresh_plan(env.name, by_type, user, pending.token)
    client.chat_postMessage(channel=channel, text=r.text, blocks=r.blocks)


# ===================================================================== admin verbs
def _prepare_command(r: Request) -> str:
    command = r.command
    assert isinstance(command, grammar.Prepare)
    r.ctx.settings.type(command.type)  # an unknown type is answered in the ack

    def work() -> None:
        report = r.ctx.admin.prepare(command, actor=r.user, source=SOURCE)
        r.tell.rendered(blocks.prepare_report(report))

    r.later("prepare", work)
    return f"Checking the parent of {command.type}..."


def _power_command(r: Request) -> str:
    command = r.command
    assert isinstance(command, grammar.Power)

    def work() -> None:
        result = r.ctx.admin.power(command, actor=r.user, source=SOURCE)
        r.tell.rendered(blocks.power_result(result, r.user), public=True)

    r.later("power", work)
    return f"Powering {command.action} the clones of {command.environment}..."


# ===================================================================== pre-flight check
def _check_command(r: Request) -> str:
    """`/clones check` (admins): the pre-flight, answered privately; it changes nothing."""

    def work() -> None:
        r.tell.rendered(render_check(Checker(r.ctx.service).run()))

    r.later("check", work)
    return "Checking vCenter: the connection, each type's setup and the account's privileges..."


# ===================================================================== recovery
def _resume_command(r: Request) -> str:
    def work() -> None:
        # Each resumed run also finishes its own message, wherever it was started.
        report = recover_and_report(r.ctx, r.client, actor=r.user)
        r.tell.rendered(blocks.recovery_report(report, r.user), public=True)

    r.later("resume", work)
    return "Looking for interrupted deployments and strip backs to finish..."


def _orphans_command(r: Request) -> str:
    command = r.command
    assert isinstance(command, grammar.Orphans)
    ctx = r.ctx

    def work() -> None:
        orphans = ctx.recovery.orphans()
        ours = [o for o in orphans if o.ours]
        if command.action is None or not ours:
            r.tell.rendered(blocks.orphans_list(orphans, command.action))
            if command.action is not None:
                r.tell(f"Nothing this bot made to {command.action}.")
            return
        if command.action == "adopt":
            adopted: list[tuple[str, str]] = []
            problems: list[str] = []
            for o in ours:
                try:
                    clone = ctx.recovery.adopt(o, actor=r.user)
                    adopted.append((o.vm.name, clone.environment))
                except ClonesError as exc:
                    problems.append(f"{o.vm.name}: {exc}")
            r.tell.rendered(blocks.orphans_adopted(adopted, problems), public=True)
            return
        # remove destroys VMs: show exactly which, with Confirm / Cancel (like a strip back).
        pending = ctx.confirmations.issue(
            blocks.ORPHANS_TOKEN_ENV,
            requester=r.user,
            channel=r.channel,
            action="orphans",
            items=tuple(o.vm.moref for o in ours),
        )
        plan = blocks.orphans_remove_plan([o.vm.name for o in ours], r.user, pending.token)
        r.client.chat_postMessage(channel=r.channel, text=plan.text, blocks=plan.blocks)

    r.later("orphans", work)
    return "" if command.action is None else f"Looking for orphan VMs to {command.action}..."


# ===================================================================== schedules
def _schedule_command(r: Request) -> str:
    command = r.command
    ctx = r.ctx

    def work() -> None:
        sched = ctx.schedules
        if isinstance(command, grammar.Schedule):
            result = sched.schedule(command, actor=r.user, source=SOURCE, channel=r.channel)
        elif isinstance(command, grammar.Extend):
            result = sched.extend(
                command.environment, command.by, actor=r.user, source=SOURCE, channel=r.channel
            )
        elif isinstance(command, grammar.CancelSchedule):
            result = sched.cancel(
                command.environment, actor=r.user, source=SOURCE, channel=r.channel
            )
        else:  # pragma: no cover - HANDLERS maps only the three schedule commands here
            raise UsageError(f"{r.verb} is not a schedule command")
        r.tell.rendered(blocks.schedule_result(result, r.user), public=result.changed)

    r.later(r.verb, work)
    return ""


# ===================================================================== reads
def _read_command(r: Request) -> str:
    r.later(r.verb, lambda: _read(r.ctx, r.command, r.tell))
    return ""


def _read(ctx: HandlerContext, command: grammar.Command, tell: Reply) -> None:
    if isinstance(command, grammar.Status):
        statuses = ctx.service.status(command.environment)
        r = blocks.status(statuses, command.environment, ctx.next_event_texts())
    elif isinstance(command, grammar.Savings):
        r = blocks.savings(ctx.service.savings(command.environment), command.environment)
    elif isinstance(command, grammar.Types):
        r = blocks.types(ctx.service.types())
    elif isinstance(command, grammar.Plan):
        r = blocks.plan(ctx.admin.plan(command))
    elif isinstance(command, grammar.Inventory):
        r = blocks.inventory(ctx.admin.inventory(command.environment), command.environment)
    else:  # pragma: no cover - HANDLERS maps only read commands here
        raise UsageError(f"{type(command).__name__} is not a read command")
    tell.rendered(r)


def _help_command(r: Request) -> str:
    command = r.command
    assert isinstance(command, grammar.Help)
    return blocks.usage(command.topic)


HANDLERS: dict[type[Any], Handler] = {
    grammar.Deploy: _deploy_command,
    grammar.Teardown: _teardown_command,
    grammar.Refresh: _refresh_command,
    grammar.Prepare: _prepare_command,
    grammar.Power: _power_command,
    grammar.Schedule: _schedule_command,
    grammar.Extend: _schedule_command,
    grammar.CancelSchedule: _schedule_command,
    grammar.Status: _read_command,
    grammar.Savings: _read_command,
    grammar.Types: _read_command,
    grammar.Plan: _read_command,
    grammar.Inventory: _read_command,
    grammar.Resume: _resume_command,
    grammar.Orphans: _orphans_command,
    grammar.Check: _check_command,
    grammar.Help: _help_command,
}
