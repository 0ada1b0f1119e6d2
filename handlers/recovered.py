"""Runs resumed at start-up, shown where they were started.

A crash or a restart leaves a run's channel message at its last progress ("6/30"). At start-up the
bot resumes such runs (`resume` through the dispatch table); this module finds the message each
one was shown in (recorded when it was first posted, `RunBook.shown_in`), shows the
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

from bot.domain import grammar
from bot.domain.models import Fence, Run, RunKind, RunMessage
from bot.domain.results import ProgressEvent
from bot.services.dispatch import RESUME, Invocation, run
from bot.services.recovery import RecoveryReport, ResumedRun
from handlers.blocks import admin
from handlers.blocks import runs as shown
from handlers.blocks.kit import SLACK_ID, Rendered
from handlers.context import SOURCE, HandlerContext, Request
from handlers.progress import ProgressMessage
from handlers.run_messages import chart_under, edit

log = logging.getLogger(__name__)


@dataclass
class _Shown:
    """An abandoned run and where it was shown (None: nowhere we know of)."""

    run: Run
    message: RunMessage | None
    live: ProgressMessage | None = None


def recover_and_report(
    ctx: HandlerContext, client: WebClient, *, actor: str = "clones", fence: Fence | None = None
) -> RecoveryReport:
    """Resume every abandoned run and finish each one's Slack message (at start-up, and for
    `/clones resume`). Raises ClonesError when recovery cannot run (e.g. vCenter unreachable)."""
    runs = ctx.services.use_cases.runs
    abandoned = ctx.services.recovery.abandoned()
    # One run per environment at a time: an environment names the run its events belong to
    # (a resumed strip back runs as a new run of the same environment).
    where = {run.environment: _Shown(run, runs.shown_in(run.id)) for run in abandoned}

    def on_event(event: ProgressEvent) -> None:
        s = where.get(event.environment)
        if s is None or s.message is None:
            return  # nowhere to show progress; the outcome is posted once it is known
        if s.live is None:
            requester = s.run.requested_by
            s.live = ProgressMessage(
                client,
                s.message.channel,
                lambda e: shown.resumed_progress(e, requester),
                interval_s=ctx.settings.slack.progress_interval_s,
                ts=s.message.ts,
                live=ctx.live,
            )
        s.live.on_event(event)

    invocation = Invocation(actor, SOURCE, on_event=on_event, fence=fence)
    report = run(RESUME, ctx.services, grammar.Resume(), invocation)
    if report.resumed or report.left or report.missing or report.unseen:
        log.warning("recovery: %s", report.text)
    for resumed in report.resumed:
        s = where.get(resumed.environment)
        if s is not None:
            _finish_resumed(ctx, client, s, resumed)
    by_id = {s.run.id: s for s in where.values()}
    for run_id, why in report.left:
        s = by_id.get(run_id)
        if s is not None:
            r = shown.recovery_stopped(s.run.kind, s.run.environment, s.run.requested_by, why)
            _show(ctx, client, s, r)
    return report


def resume(r: Request) -> None:
    """`/clones resume`: each resumed run finishes its own message, wherever it was started;
    the report goes to the channel."""
    report = recover_and_report(r.ctx, r.client, actor=r.user)
    r.tell.rendered(admin.recovery_report(report, r.user), public=True)


def _finish_resumed(ctx: HandlerContext, client: WebClient, s: _Shown, r: ResumedRun) -> None:
    queries = ctx.services.use_cases.queries
    if r.kind is RunKind.TEARDOWN:
        _show(ctx, client, s, shown.resumed_teardown(queries.run(r.run_id)))
        return
    # The whole run as recorded (not only the resumed part), for the usual summary.
    result = queries.recorded_deploy(r.run_id)
    origin = shown.resumed_origin(len(r.adopted), len(r.recreated))
    where = _show(ctx, client, s, shown.deploy_summary(result, s.run.requested_by, origin=origin))
    if where is not None:
        fixed = shown.deploy_summary(result, s.run.requested_by, origin=origin, chart_failed=True)
        chart_under(client, ctx.services.chart, where, result, fixed)


def _show(
    ctx: HandlerContext, client: WebClient, s: _Shown, final: Rendered
) -> tuple[str, str] | None:
    """Put `final` in the run's own message, else in its environment's channel (or the
    owner's DM); (channel, ts) of the message that shows it, None when nowhere."""
    if s.live is not None:
        ts = s.live.finish(final)
        if ts is not None:
            return s.live.channel, ts
    elif s.message is not None and edit(client, s.message.channel, s.message.ts, final):
        return s.message.channel, s.message.ts
    env = ctx.services.use_cases.queries.find_environment(s.run.environment)
    channel = env.channel if env is not None and env.channel else ""
    if not channel and SLACK_ID.fullmatch(s.run.requested_by):
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
