"""What every listener needs, and the one place that turns errors into Slack replies."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from slack_bolt import Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.domain.errors import ClonesError
from bot.ports import Repository
from bot.services.access import AccessPolicy
from bot.services.admin import Admin
from bot.services.core import Service
from bot.services.recovery import Recovery
from bot.services.schedules import ScheduleService
from bot.settings import Settings
from handlers import blocks
from handlers.confirmations import Confirmations
from handlers.jobs import Jobs, incident_id

log = logging.getLogger("handlers")

SOURCE = "slack"  # the audit log's `source` for everything done from Slack

Tell = Callable[[str], object]  # shows one line to the user who acted (ephemeral)


class Reply:
    """Ephemeral answers to the user who acted, through the command's or click's response_url."""

    def __init__(self, respond: Respond) -> None:
        self._respond = respond

    def __call__(self, text: str) -> object:
        return self._respond(text=text, response_type="ephemeral", replace_original=False)

    def rendered(self, r: blocks.Rendered, *, public: bool = False) -> object:
        """Show `r` to the user who acted, or (`public`) to the whole channel."""
        return self._respond(
            text=r.text,
            blocks=r.blocks,
            response_type="in_channel" if public else "ephemeral",
            replace_original=False,
        )


class DirectReply:
    """Answers for clicks without a response_url (App Home): a message in the app's DM."""

    def __init__(self, client: WebClient, user: str) -> None:
        self._client = client
        self._user = user

    def __call__(self, text: str) -> object:
        return self._client.chat_postMessage(channel=self._user, text=text)


@dataclass
class HandlerContext:
    settings: Settings
    service: Service
    repo: Repository
    access: AccessPolicy
    jobs: Jobs
    confirmations: Confirmations
    admin: Admin
    schedules: ScheduleService
    recovery: Recovery
    # Read-only commands get their own small pool: queued deployments never make them "busy".
    reads: Jobs | None = None
    # Set while the bot drains its work before exiting (SIGTERM): requests are still answered,
    # but changing commands and buttons are told the bot is restarting.
    draining: threading.Event = field(default_factory=threading.Event)

    def refuse_while_draining(self, tell: Tell, what: str) -> bool:
        """True (and the user told) when `what` must wait for the restart to finish."""
        if not self.draining.is_set():
            return False
        tell(blocks.restarting(what))
        return True

    def next_event_texts(self) -> dict[str, str]:
        """Environment -> "strip back Fri 27 Nov 17:00 GMT (in 1 d 7 h)" (one query)."""
        sched = self.schedules
        return {
            name: f"{'deploy' if kind == 'deploy' else 'strip back'} {sched.describe(when)}"
            for name, (kind, when) in sched.next_events().items()
        }


# Slack API errors a user can fix, with what to do.
_SLACK_HINTS = {
    "not_in_channel": "I am not in this channel: invite me with `/invite @clones` and try again.",
    "channel_not_found": "I cannot see this channel: invite me with `/invite @clones`.",
    "is_archived": "This channel is archived; run the command in another channel.",
}


def explain(exc: BaseException) -> str:
    """The user-facing line for an error; unknown errors are logged with an incident id."""
    if isinstance(exc, ClonesError):
        return blocks.error(str(exc))
    if isinstance(exc, SlackApiError):
        code = str(exc.response.get("error", "")) if exc.response is not None else ""
        if code in _SLACK_HINTS:
            return blocks.error(_SLACK_HINTS[code])
    incident = incident_id()
    log.error("unexpected error, incident %s", incident, exc_info=exc)
    return blocks.internal_error(incident)


def reporting(tell: Tell, what: str, fn: Callable[[], object]) -> None:
    """Run `fn`; tell the user what went wrong instead of letting it vanish in a thread."""
    try:
        fn()
    except Exception as exc:
        message = explain(exc)
        if isinstance(exc, ClonesError):
            log.info("%s: %s", what, exc)
        try:
            tell(message)
        except Exception:
            log.exception("could not tell the user that %s failed", what)
