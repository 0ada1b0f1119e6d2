"""Runs resumed at start-up, shown where they were started.

A crash or a restart leaves a run's channel message at its last progress ("6/30"). At start-up the
bot resumes such runs (`bot.services.recovery.Recovery.recover`); this module finds the message each
one was shown in (recorded in SQLite when it was first posted, `Repository.run_message`), shows the
resumed work live in that same message, then edits it to the final state: resumed, counts, savings,
with the chart in its thread. A run with no recorded message (started from the terminal, or killed
before its first post) is reported in its environment's channel, or to its owner's DM; never in some
other configured channel.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from slack_sdk import WebClient
from slack_sdk.errors import SlackClientError

from bot.domain.errors import ClonesError
from bot.domain.models import CloneState, Run, RunKind, RunMessage
from bot.domain.results import DeployResult, FailedClone, ProgressEvent
from bot.services.recovery import RecoveryReport, ResumedRun
from handlers import blocks
from handlers.context import HandlerContext
from handlers.progress import ProgressMessage
from handlers.runs import post_chart, recorder

log = logging.getLogger(__name__)


@dataclass
class _Shown:
    """An abandoned run and where it was shown (None: nowhere we know of)."""

    run: Run
    message: RunMessage | None
    live: ProgressMessage | None = None


def recover_and_report(
    ctx: HandlerContext, client: WebClient, *, actor: str = "clones"
) -> RecoveryReport:
    """Resume every abandoned run and finish each one's Slack message (at start-up, and for
    `/clones resume`). Raises ClonesError when recovery cannot run (e.g. vCenter unreachable)."""
    abandoned = ctx.recovery.abandoned()
    # One run per environment at a time: an environment names the run its events belong to
    # (a resumed strip back runs as a new run of the same environment).
    shown = {run.environment: _Shown(run, ctx.repo.run_message(run.id)) for run in abandoned}

    def on_event(event: ProgressEvent) -> None:
        s = shown.get(event.environment)
        if s is None or s.message is None:
            return  # nowhere to show progress; the outcome is posted once it is known
        if s.live is None:
            requester = s.run.requested_by
            s.live = ProgressMessage(
                client,
                s.message.channel,
                lambda e: blocks.resumed_progress(e, requester),
                interval_s=ctx.settings.slack.progress_interval_s,
                ts=s.message.ts,
                record=recorder(ctx.repo),
            )
        s.live.on_event(event)

    report = ctx.recovery.recover(actor=actor, on_event=on_event)
    if report.resumed or report.left or report.missing:
        log.warning("recovery: %s", report.text)
    for resumed in report.resumed:
        s = shown.get(resumed.environment)
        if s is not None:
            _finish_resumed(ctx, client, s, resumed)
    by_id = {s.run.id: s for s in shown.values()}
    for run_id, why in report.left:
        s = by_id.get(run_id)
        if s is not None:
            r = blocks.recovery_stopped(s.run.kind, s.run.environment, s.run.requested_by, why)
            _show(ctx, client, s, r)
    return report


def _finish_resumed(ctx: HandlerContext, client: WebClient, s: _Shown, r: ResumedRun) -> None:
    if r.kind is RunKind.TEARDOWN:
        final = blocks.resumed_teardown(ctx.repo.get_run(r.run_id))
        _show(ctx, client, s, final)
        return
    result = _deploy_result(ctx, r)
    origin = blocks.resumed_origin(len(r.adopted), len(r.recreated))
    final = blocks.deploy_summary(result, s.run.requested_by, origin=origin)
    where = _show(ctx, client, s, final)
    if where is None or result.savings is None or not result.savings.clones:
        return
    channel, ts = where
    if post_chart(client, channel, ts, result.savings, result.environment):
        fixed = blocks.deploy_summary(result, s.run.requested_by, origin=origin, chart_failed=True)
        _edit(client, channel, ts, fixed)


def _deploy_result(ctx: HandlerContext, r: ResumedRun) -> DeployResult:
    """The whole run as recorded (not only the resumed part), for the usual summary."""
    run = ctx.repo.get_run(r.run_id)
    clones = ctx.repo.clones(run_id=run.id)
    ready = [c.name for c in clones if c.state is CloneState.READY]
    failed = [
        FailedClone(c.name, c.type, c.error or c.state.value)
        for c in clones
        if c.state is not CloneState.READY
    ]
    elapsed = 0.0
    if run.started_at is not None and run.finished_at is not None:
        elapsed = (run.finished_at - run.started_at).total_seconds()
    try:
        savings = ctx.service.savings(run.environment)
    except ClonesError as exc:
        log.warning("savings of %s unavailable after recovery: %s", run.environment, exc)
        savings = None
    return DeployResult(
        run_id=run.id,
        environment=run.environment,
        requested=run.requested,
        ready=ready,
        failed=failed,
        elapsed_s=elapsed,
        state=run.state,
        savings=savings,
        message=run.message,
    )


def _show(
    ctx: HandlerContext, client: WebClient, s: _Shown, final: blocks.Rendered
) -> tuple[str, str] | None:
    """Put `final` in the run's own message, else in its environment's channel (or the
    owner's DM); (channel, ts) of the message that shows it, None when nowhere."""
    if s.live is not None:
        ts = s.live.finish(final)
        if ts is not None:
            return s.live.channel, ts
    elif s.message is not None and _edit(client, s.message.channel, s.message.ts, final):
        return s.message.channel, s.message.ts
    env = ctx.repo.get_environment(s.run.environment)
    channel = env.channel if env is not None and env.channel else ""
    if not channel and blocks.SLACK_ID.fullmatch(s.run.requested_by):
        channel = s.run.requested_by  # a user ID as channel: the app's DM with them
    if not channel:
        log.info("run %s (%s): %s", s.run.id, s.run.environment, final.text)
        return None
    try:
        resp = client.chat_postMessage(channel=channel, text=final.text, blocks=final.blocks)
    except (SlackClientError, OSError):
        log.exception("could not report recovered run %s in %s", s.run.id, channel)
        return None
    return str(resp.get("channel") or channel), str(resp["ts"])


def _edit(client: WebClient, channel: str, ts: str, r: blocks.Rendered) -> bool:
    try:
        client.chat_update(channel=channel, ts=ts, text=r.text, blocks=r.blocks)
    except (SlackClientError, OSError):
        log.exception("could not edit message %s in %s", ts, channel)
        return False
    return True
