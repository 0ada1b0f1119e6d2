"""`assign` and `handout` in Slack: one channel message for the trainer, posted before anyone is
assigned (so a channel the bot cannot post in is found out first), kept current with the
hand-out's progress like every progress message (`handlers.progress`: paced, coalesced), saying
when Slack is pacing the hand-out and about how long it has to go, and finally who holds a VM
and who could not be reached. The hand-out itself (a direct message per trainee, paced, 429s
waited out for a bounded time) is the trainee service's, through the `Messenger` port
(`handlers.people`)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from slack_sdk import WebClient

from bot.domain.trainees import HandOutProgress
from bot.services.dispatch import ASSIGN, HANDOUT, Route
from handlers.blocks import trainees
from handlers.blocks.kit import Rendered, error
from handlers.context import Request, brief
from handlers.pacing import NOTICEABLE_WAIT_S, pacer_of, watching
from handlers.progress import ProgressMessage
from handlers.run_messages import ChannelUnavailable, open_message

R = TypeVar("R")

log = logging.getLogger(__name__)


class HandOutMessage:
    """The trainer's one message, kept current while the hand-out runs."""

    def __init__(
        self,
        client: WebClient,
        channel: str,
        ts: str,
        user: str,
        environment: str,
        *,
        interval_s: float,
    ) -> None:
        self.pacer = pacer_of(client)
        self.user, self.environment = user, environment
        self._last: HandOutProgress | None = None
        self._waited_s = 0.0  # how long the hand-out's calls waited for Slack's limits so far
        self._pacing = False  # long enough to say so
        self._wait_s = 0.0  # the latest wait
        self.message: ProgressMessage[HandOutProgress] = ProgressMessage(
            client, channel, self._render, interval_s=interval_s, ts=ts
        )
        self.message.mark_sent()  # the first post counts against the interval

    def on_progress(self, p: HandOutProgress) -> None:
        self._last = p
        self.message.on_event(p)

    def paced(self, wait_s: float) -> None:
        """A call of the hand-out waits `wait_s` for Slack's limits: once the waits add up to
        something a person notices, the message says Slack is pacing it, and for how long."""
        self._waited_s += wait_s
        self._wait_s = wait_s
        if self._waited_s >= NOTICEABLE_WAIT_S * self.pacer.scale or self._pacing:
            self._pacing = True
            self.message.on_event(self._last or HandOutProgress(self.environment, 0, 0, 0))

    def _render(self, p: HandOutProgress) -> Rendered:
        note = ""
        if self._pacing:
            left = p.total - p.sent - p.failed
            eta = self.pacer.direct_messages_eta(left) if left > 0 else 0.0
            note = trainees.pacing(max(eta, 0.0 if p.total else self._wait_s))
        return trainees.handout_progress(p, self.user, note)

    def finish(self, final: Rendered) -> None:
        self.message.finish(final)


def _open(r: Request, environment: str) -> HandOutMessage | None:
    """The trainer's message; None (and the trainer told) when it cannot be posted."""
    r.ctx.services.use_cases.queries.environment(environment)  # unknown: said privately
    try:
        channel, ts = open_message(
            r.client, r.channel, trainees.handout_starting(environment, r.user)
        )
    except ChannelUnavailable as exc:
        r.tell(error(str(exc).replace("Nothing was created", "Nobody was assigned")))
        return None
    return HandOutMessage(
        r.client,
        channel,
        ts,
        r.user,
        environment,
        interval_s=r.ctx.settings.slack.progress_interval_s,
    )


def assign(r: Request) -> None:
    """The slash command's step for `assign`: its message, then the dispatch, then the outcome."""
    _in_message(r, ASSIGN, lambda done: trainees.assigned(done, r.user), trainees.assign_stopped)


def handout(r: Request) -> None:
    """`handout ENV`: the hand-out again to those not reached, in a message like `assign`'s."""
    _in_message(
        r, HANDOUT, lambda done: trainees.handed_out(done, r.user), trainees.handout_stopped
    )


def _in_message(
    r: Request,
    route: Route[Any, R],
    outcome: Callable[[R], Rendered],
    stopped: Callable[[str, str, str], Rendered],
) -> None:
    """The trainer's message first, then the command with its progress (and Slack's pacing)
    shown there, then its outcome (or why it stopped)."""
    environment = r.command.environment
    shown = _open(r, environment)
    if shown is None:
        return
    try:
        with watching(shown.paced):
            result = r.run_route(route, on_handout=shown.on_progress)
    except Exception as exc:
        shown.finish(stopped(environment, r.user, brief(exc)))
        raise
    shown.finish(outcome(result))
