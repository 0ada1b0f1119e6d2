"""One channel message per run, from before anything is created to its chart.

A deployment's message is posted before the services create anything: posting it is how the
bot learns it may post in the channel at all (`not_in_channel` and friends), so a user who runs
`/clones deploy` where the bot is not a member is told how to invite it, and nothing is created.
The message is then edited in place with progress (`handlers.progress`) and its final state, and
the savings chart (the `Chart` port) goes into its thread. A chart Slack refuses (`missing_scope`,
...) is extra: the thread says why and which scope to add, and everything else still finishes.

Where each run is shown is kept with the run (`RunBook.show_in`), so that a run resumed after a
crash or a restart finishes the same message (`handlers.recovered`).

`deploy` is the slash command's step after its ack: that message first, then the dispatch table,
then the summary (and for `deploy ... at`, the message saying what was scheduled).
"""

from __future__ import annotations

import logging
from collections import Counter

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.domain.errors import ClonesError, Fenced
from bot.domain.models import Environment, RunKind
from bot.domain.results import DeployResult, ProgressEvent
from bot.domain.savings import Savings
from bot.ports import Chart
from bot.services.dispatch import DEPLOY_LATER, DEPLOY_NOW
from handlers.blocks import runs as shown
from handlers.blocks import schedules
from handlers.blocks.kit import Rendered, esc, section
from handlers.context import Request, brief, log
from handlers.pacing import Priority, SlackBusy, paced
from handlers.progress import ProgressMessage

_log = logging.getLogger(__name__)


class ChannelUnavailable(ClonesError):
    """The bot may not post in the channel a command came from; nothing was done."""


# Why chat.postMessage refused a channel, and what the user can do about it.
_CANNOT_POST = {
    "not_in_channel": (
        "I am not a member of this channel, so I cannot show the progress here. Invite me with "
        "`/invite @clones` in this channel, then run the command again. Nothing was created."
    ),
    "channel_not_found": (
        "I cannot post in this conversation (a private channel or a direct message I am not "
        "in). Invite me with `/invite @clones`, or run the command in a channel I am in. "
        "Nothing was created."
    ),
    "is_archived": "This channel is archived; run the command in another one. Nothing was created.",
    "restricted_action": (
        "This workspace does not let me post in this channel; run the command in another one. "
        "Nothing was created."
    ),
}


def error_code(exc: SlackApiError) -> str:
    return str(exc.response.get("error", "")) if exc.response is not None else ""


FIRST_MESSAGE_WAIT_S = 15.0  # a run's first message waits this long for Slack's pacing at most


def open_message(client: WebClient, channel: str, first: Rendered) -> tuple[str, str]:
    """Post a run's first message; (channel, ts). ChannelUnavailable when the bot may not, or
    when Slack rate limits the channel for longer than a person should wait for an answer."""
    try:
        with paced(Priority.PERSON, within_s=FIRST_MESSAGE_WAIT_S):
            resp = client.chat_postMessage(channel=channel, text=first.text, blocks=first.blocks)
    except SlackBusy as exc:
        raise ChannelUnavailable(
            f"Slack is rate-limiting this workspace, nothing was started, try again in "
            f"{exc.retry_after_s} s."
        ) from None
    except SlackApiError as exc:
        hint = _CANNOT_POST.get(error_code(exc))
        if hint is not None:
            raise ChannelUnavailable(hint) from None
        raise
    return str(resp.get("channel") or channel), str(resp["ts"])


# ===================================================================== the chart
def post_chart(
    client: WebClient, chart: Chart | None, channel: str, ts: str, savings: Savings, env: str
) -> str:
    """Upload the savings chart into the message's thread. "" when it is there; otherwise the
    reason, which is also said in the thread (the chart is extra: never an error for the run)."""
    try:
        if chart is None:  # pragma: no cover - bootstrap always provides one
            raise OSError("no chart renderer")
        png = chart.render(savings, f"Disk space used by {env}")
        client.files_upload_v2(
            channel=channel,
            thread_ts=ts,
            file=png,
            filename=f"savings-{env}.png",
            title=f"Savings in {env}",
            alt_txt="Bar chart of disk space: thick vs thin full clones vs linked clones",
        )
        return ""
    except SlackApiError as exc:
        reason = _upload_refusal(exc)
    except (SlackClientError, OSError) as exc:
        reason = f"Slack could not be reached ({type(exc).__name__}); the savings table is above."
    _log.warning("the savings chart of %s was not uploaded: %s", env, reason)
    try:
        client.chat_postMessage(channel=channel, thread_ts=ts, text=shown.chart_failed(reason))
    except (SlackClientError, OSError):
        _log.exception("could not say in %s why the chart is missing", channel)
    return reason


def _upload_refusal(exc: SlackApiError) -> str:
    code = error_code(exc) or "unknown error"
    if code == "missing_scope":
        needed = str(exc.response.get("needed") or "files:write")
        return (
            f"Slack refused the upload (missing_scope): the app needs the `{needed}` scope. "
            "Add it under OAuth & Permissions > Scopes in the app's settings (api.slack.com/apps) "
            "and reinstall the app; the next deployment's chart then appears here."
        )
    if code in ("not_in_channel", "channel_not_found"):
        return f"Slack refused the upload ({code}): invite me with `/invite @clones`."
    return f"Slack refused the upload ({code}); the savings table is above."


def edit(client: WebClient, channel: str, ts: str, r: Rendered) -> bool:
    """Edit a message; False (and logged) when Slack cannot be reached or refuses."""
    try:
        client.chat_update(channel=channel, ts=ts, text=r.text, blocks=r.blocks)
    except (SlackClientError, OSError):
        _log.exception("could not edit message %s in %s", ts, channel)
        return False
    return True


def chart_under(
    client: WebClient,
    chart: Chart | None,
    where: tuple[str, str],
    result: DeployResult,
    fixed: Rendered,
) -> None:
    """The chart in the thread of the (channel, ts) message that shows `result`; when it
    cannot be uploaded, the message is edited to `fixed`, which says so."""
    if result.savings is None or not result.savings.clones:
        return
    channel, ts = where
    if post_chart(client, chart, channel, ts, result.savings, result.environment):
        edit(client, channel, ts, fixed)


def finish_deploy(
    client: WebClient,
    chart: Chart | None,
    progress: ProgressMessage,
    result: DeployResult,
    requester: str,
    *,
    note: str = "",
    origin: str = "",
) -> str | None:
    """Show a deployment's final state in its message, then its chart in the thread."""
    summary = shown.deploy_summary(result, requester, note, origin=origin)
    ts = progress.finish(summary)
    if ts is not None:
        fixed = shown.deploy_summary(result, requester, note, origin=origin, chart_failed=True)
        chart_under(client, chart, (progress.channel, ts), result, fixed)
    return ts


def tell_home_channel(
    client: WebClient, environment: Environment | None, from_channel: str, text: str
) -> None:
    """Trainers follow an environment in its own channel: when a run was started from another
    channel (whose message shows the progress), post the outcome there too."""
    if environment is None or not environment.channel or environment.channel == from_channel:
        return
    try:
        client.chat_postMessage(channel=environment.channel, text=text, blocks=[section(esc(text))])
    except Exception:  # a notification must never turn a finished run into an error
        _log.exception("could not notify %s in %s", environment.name, environment.channel)


# ===================================================================== the deploy step
def deploy(r: Request) -> None:
    """`deploy`: the run's message first (which proves the bot may post here), then the
    deployment through the dispatch table, with progress in that message, then its summary;
    `deploy ... at`: a message saying what was scheduled."""
    if r.command.at:
        _schedule(r)
        return
    ctx, command, user = r.ctx, r.command, r.user
    environment = command.environment
    by_type = dict(Counter({i.type: i.count for i in command.items}))
    channel, ts = open_message(
        r.client, r.channel, shown.deploy_starting(by_type, environment, user)
    )
    progress: ProgressMessage[ProgressEvent] = ProgressMessage(
        r.client,
        channel,
        lambda e: shown.deploy_progress(e, user),
        interval_s=ctx.settings.slack.progress_interval_s,
        ts=ts,
        live=ctx.live,
    )
    progress.mark_sent()  # the first post counts against the update interval
    try:
        deployed = r.run_route(DEPLOY_NOW, channel=channel, on_event=progress.on_event)
    except Fenced as exc:  # another bot took the run over: it finishes this same message
        progress.drop()
        log.warning("fenced: deploy of %s: %s", environment, exc)
        return
    except Exception as exc:
        # The channel's message must not be left at "checking..." or mid-progress.
        if progress.started:
            progress.finish(shown.run_aborted(RunKind.DEPLOY, environment, user, brief(exc)))
        else:
            progress.finish(shown.deploy_not_started(environment, user, brief(exc)))
        raise
    result = deployed.result
    finish_deploy(r.client, ctx.services.chart, progress, result, user, note=deployed.end_note)
    home = ctx.services.use_cases.queries.find_environment(result.environment)
    tell_home_channel(r.client, home, channel, shown.deploy_finished_note(result, user))
    log.info("deploy of %s finished: %s", result.environment, result.state.value)


def _schedule(r: Request) -> None:
    # The scheduled run reports in this channel: make sure the bot may post here first.
    environment = r.command.environment
    by_type = {i.type: i.count for i in r.command.items}
    first = schedules.scheduling(by_type, environment, r.user)
    channel, ts = open_message(r.client, r.channel, first)
    try:
        result = r.run_route(DEPLOY_LATER)
    except Exception as exc:
        failed = schedules.scheduling_failed(environment, brief(exc))
        r.client.chat_update(channel=channel, ts=ts, text=failed.text, blocks=failed.blocks)
        raise
    done = schedules.schedule_result(result, r.user)
    r.client.chat_update(channel=channel, ts=ts, text=done.text, blocks=done.blocks)
