"""What every listener needs (`HandlerContext`), one command on its way (`Request`), and the one
place that turns errors into Slack replies (`explain`, `reporting`)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from slack_bolt import Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.domain.errors import ClonesError, UsageError
from bot.domain.grammar import Access
from bot.ports import Audit, ProgressCallback
from bot.services.access import AccessPolicy, Decision
from bot.services.container import Services
from bot.services.dispatch import Invocation, Route, dispatch, run
from bot.services.schedules import ScheduleService
from bot.services.trainees import OnHandOut
from bot.settings import Settings
from handlers.blocks.kit import Rendered, denied, error, internal_error, restarting
from handlers.confirm_tokens import Confirmations
from handlers.dedupe import SeenRequests
from handlers.jobs import Jobs, incident_id
from handlers.pacing import SlackBusy
from handlers.progress import LiveRuns

log = logging.getLogger("handlers")

R = TypeVar("R")

SOURCE = "slack"  # the audit log's `source` for everything done from Slack


class Tell(Protocol):
    """Shows a line (or a rendered message) to the user who acted."""

    def __call__(self, text: str) -> object: ...
    def rendered(self, r: Rendered, *, public: bool = False) -> object: ...


class Reply:
    """Ephemeral answers to the user who acted, through the command's or click's response_url."""

    def __init__(self, respond: Respond) -> None:
        self._respond = respond

    def __call__(self, text: str) -> object:
        return self._respond(text=text, response_type="ephemeral", replace_original=False)

    def rendered(self, r: Rendered, *, public: bool = False) -> object:
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

    def rendered(self, r: Rendered, *, public: bool = False) -> object:
        return self._client.chat_postMessage(channel=self._user, text=r.text, blocks=r.blocks)


@dataclass
class HandlerContext:
    """The services every front end holds, and what only the Slack front end needs."""

    services: Services
    access: AccessPolicy
    jobs: Jobs
    confirmations: Confirmations
    # The repository is reached through the services, except for these two, on purpose:
    audit: Audit  # denied and cancelled requests (nothing else is written from here)
    seen: SeenRequests  # replayed and retried requests, remembered in SQLite
    # The progress messages of runs in flight, and where each run is shown (kept with the run).
    live: LiveRuns
    # Read-only commands get their own small pool: queued deployments never make them "busy".
    reads: Jobs | None = None
    # Set while the bot drains its work before exiting (SIGTERM): requests are still answered,
    # but changing commands and buttons are told the bot is restarting.
    draining: threading.Event = field(default_factory=threading.Event)

    @property
    def settings(self) -> Settings:
        return self.services.settings

    @property
    def schedules(self) -> ScheduleService:
        if self.services.schedules is None:  # pragma: no cover - create_bot always sets one
            raise UsageError("Schedules are not available here.")
        return self.services.schedules

    def refuse_while_draining(self, tell: Callable[[str], object], what: str) -> bool:
        """True (and the user told) when `what` must wait for the restart to finish."""
        if not self.draining.is_set():
            return False
        tell(restarting(what))
        return True

    def denial(self, decision: Decision, *, user: str, channel: str, command: str) -> str:
        """Audit a refused request; the sentence that tells the user why."""
        self.audit.audit(
            actor=user,
            source=SOURCE,
            channel=channel,
            command=command,
            result="denied",
            detail=decision.reason,
        )
        return denied(decision.reason)

    def permitted(
        self,
        decision: Decision,
        tell: Callable[[str], object],
        *,
        user: str,
        channel: str,
        command: str,
    ) -> bool:
        """True when `decision` allows; otherwise the denial is audited and the user told."""
        if decision:
            return True
        tell(self.denial(decision, user=user, channel=channel, command=command))
        return False

    def next_event_texts(self) -> dict[str, str]:
        """Environment -> "strip back Fri 27 Nov 17:00 GMT (in 1 d 7 h)" (one query)."""
        sched = self.schedules
        return {
            name: f"{'deploy' if kind == 'deploy' else 'strip back'} {sched.describe(when)}"
            for name, (kind, when) in sched.next_events().items()
        }


@dataclass(frozen=True)
class Request:
    """One command from Slack on its way: who asked, where, and where answers go. A button that
    stands for a command (Strip back now, a Confirm) makes one too."""

    ctx: HandlerContext
    command: Any  # a bot.domain.grammar command
    user: str
    channel: str
    client: WebClient
    tell: Tell

    def invocation(
        self,
        *,
        channel: str | None = None,
        on_event: ProgressCallback | None = None,
        only: Collection[str] | None = None,
        on_handout: OnHandOut | None = None,
    ) -> Invocation:
        """Who runs the command, from where; a self-service command may act on any trainee's
        VM only for an operator."""
        where = self.channel if channel is None else channel
        anyone = self.command.access is Access.SELF and self.ctx.access.acts_for_anyone(self.user)
        return Invocation(
            self.user,
            SOURCE,
            where,
            on_event=on_event,
            only=only,
            anyone=anyone,
            on_handout=on_handout,
        )

    def run(
        self,
        *,
        channel: str | None = None,
        on_event: ProgressCallback | None = None,
        only: Collection[str] | None = None,
        on_handout: OnHandOut | None = None,
    ) -> object:
        """Carry the command out through the dispatch table every front end shares."""
        invocation = self.invocation(
            channel=channel, on_event=on_event, only=only, on_handout=on_handout
        )
        return dispatch(self.ctx.services, self.command, invocation)

    def run_route(
        self,
        route: Route[Any, R],
        *,
        channel: str | None = None,
        on_event: ProgressCallback | None = None,
        on_handout: OnHandOut | None = None,
    ) -> R:
        """The same, by a route named for its result's type (a step that uses the result)."""
        invocation = self.invocation(channel=channel, on_event=on_event, on_handout=on_handout)
        return run(route, self.ctx.services, self.command, invocation)


# Slack API errors a user can fix, with what to do.
_SLACK_HINTS = {
    "not_in_channel": "I am not in this channel: invite me with `/invite @clones` and try again.",
    "channel_not_found": "I cannot see this channel: invite me with `/invite @clones`.",
    "is_archived": "This channel is archived; run the command in another channel.",
}


def explain(exc: BaseException) -> str:
    """The user-facing line for an error; unknown errors are logged with an incident id."""
    if isinstance(exc, ClonesError):
        return error(str(exc))
    if isinstance(exc, SlackBusy):
        return error(f"Slack is rate-limiting this workspace; try again in {exc.retry_after_s} s.")
    if isinstance(exc, SlackApiError):
        code = str(exc.response.get("error", "")) if exc.response is not None else ""
        if code in _SLACK_HINTS:
            return error(_SLACK_HINTS[code])
    incident = incident_id()
    log.error("unexpected error, incident %s", incident, exc_info=exc)
    return internal_error(incident)


def brief(exc: BaseException) -> str:
    """An error in a few words for a run's message (the details of a bug are in the log)."""
    return str(exc) if isinstance(exc, ClonesError) else "internal error (logged)"


def reporting(tell: Callable[[str], object], what: str, fn: Callable[[], object]) -> None:
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
