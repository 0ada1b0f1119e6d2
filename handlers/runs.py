"""One channel message per run, from before anything is created to its chart.

A deployment's message is posted before the service layer creates anything: posting it is how the
bot learns it may post in the channel at all (`not_in_channel` and friends), so a user who runs
`/clones deploy` where the bot is not a member is told how to invite it, and nothing is created.
The message is then edited in place with progress (`handlers.progress`) and its final state, and
the savings chart goes into its thread. A chart Slack refuses (`missing_scope`, ...) is extra:
the thread says why and which scope to add, and everything else still finishes.

Where each run is shown is kept in SQLite (`Repository.save_run_message`), so that a run resumed
after a crash or a restart finishes the same message (`handlers.recovered`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.adapters.chart import render_savings_chart
from bot.domain.errors import ClonesError
from bot.domain.results import DeployResult
from bot.domain.savings import Savings
from bot.ports import Repository
from handlers import blocks
from handlers.progress import ProgressMessage

log = logging.getLogger(__name__)


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


def open_message(client: WebClient, channel: str, first: blocks.Rendered) -> tuple[str, str]:
    """Post a run's first message; (channel, ts). ChannelUnavailable when the bot may not."""
    try:
        resp = client.chat_postMessage(channel=channel, text=first.text, blocks=first.blocks)
    except SlackApiError as exc:
        hint = _CANNOT_POST.get(error_code(exc))
        if hint is not None:
            raise ChannelUnavailable(hint) from None
        raise
    return str(resp.get("channel") or channel), str(resp["ts"])


def recorder(repo: Repository) -> Callable[[int, str, str], object]:
    """ProgressMessage's `record`: remember in SQLite which message shows which run."""

    def record(run_id: int, channel: str, ts: str) -> object:
        return repo.save_run_message(run_id, channel=channel, ts=ts)

    return record


def post_chart(client: WebClient, channel: str, ts: str, savings: Savings, environment: str) -> str:
    """Upload the savings chart into the message's thread. "" when it is there; otherwise the
    reason, which is also said in the thread (the chart is extra: never an error for the run)."""
    try:
        png = render_savings_chart(savings, f"Disk space used by {environment}")
        client.files_upload_v2(
            channel=channel,
            thread_ts=ts,
            file=png,
            filename=f"savings-{environment}.png",
            title=f"Savings in {environment}",
            alt_txt="Bar chart of disk space: thick vs thin full clones vs linked clones",
        )
        return ""
    except SlackApiError as exc:
        reason = _upload_refusal(exc)
    except (SlackClientError, OSError) as exc:
        reason = f"Slack could not be reached ({type(exc).__name__}); the savings table is above."
    log.warning("the savings chart of %s was not uploaded: %s", environment, reason)
    try:
        client.chat_postMessage(channel=channel, thread_ts=ts, text=blocks.chart_failed(reason))
    except (SlackClientError, OSError):
        log.exception("could not say in %s why the chart is missing", channel)
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


def finish_deploy(
    client: WebClient,
    progress: ProgressMessage,
    result: DeployResult,
    requester: str,
    *,
    note: str = "",
    origin: str = "",
) -> str | None:
    """Show a deployment's final state in its message, then its chart in the thread."""
    ts = progress.finish(blocks.deploy_summary(result, requester, note, origin=origin))
    if ts is None or result.savings is None or not result.savings.clones:
        return ts
    if post_chart(client, progress.channel, ts, result.savings, result.environment):
        fixed = blocks.deploy_summary(result, requester, note, origin=origin, chart_failed=True)
        try:
            client.chat_update(
                channel=progress.channel, ts=ts, text=fixed.text, blocks=fixed.blocks
            )
        except (SlackClientError, OSError):
            log.exception("could not correct the chart note of run %s", result.run_id)
    return ts
