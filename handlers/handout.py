"""`assign` in Slack: one channel message for the trainer, posted before anyone is assigned (so a
channel the bot cannot post in is found out first), edited with the hand-out's progress (no
more often than `progress_interval_s`), and finally with who holds a VM and who could not be
reached. The hand-out itself (a direct message per trainee, paced, 429s waited out) is the
trainee service's, through the `Messenger` port (`handlers.people`)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from slack_sdk import WebClient
from slack_sdk.errors import SlackClientError

from bot.domain.trainees import Assigned, HandOutProgress
from handlers.blocks import trainees
from handlers.blocks.kit import Rendered, error
from handlers.context import Request, brief
from handlers.runs import ChannelUnavailable, open_message

log = logging.getLogger(__name__)


class HandOutMessage:
    """The trainer's one message, kept current while the hand-out runs (on the job's thread)."""

    def __init__(
        self,
        client: WebClient,
        channel: str,
        ts: str,
        user: str,
        *,
        interval_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client, self.channel, self.ts, self.user = client, channel, ts, user
        self.interval_s = interval_s
        self._clock = clock
        self._last = clock()
        self.edits = 0

    def on_progress(self, p: HandOutProgress) -> None:
        if self._clock() - self._last < self.interval_s:
            return  # the final state shows it anyway
        self._edit(trainees.handout_progress(p, self.user))

    def finish(self, final: Rendered) -> None:
        wait = self.interval_s - (self._clock() - self._last)
        if wait > 0:
            time.sleep(wait)
        self._edit(final)

    def _edit(self, r: Rendered) -> None:
        try:
            self.client.chat_update(channel=self.channel, ts=self.ts, text=r.text, blocks=r.blocks)
            self.edits += 1
        except (SlackClientError, OSError):  # the hand-out goes on; only its display is lost
            log.exception("could not update the hand-out message in %s", self.channel)
        finally:
            self._last = self._clock()


def assign(r: Request) -> None:
    """The slash command's step for `assign`: its message, then the dispatch, then the outcome."""
    command = r.command
    r.ctx.services.service.queries.environment(command.environment)  # unknown: said privately
    try:
        channel, ts = open_message(
            r.client, r.channel, trainees.handout_starting(command.environment, r.user)
        )
    except ChannelUnavailable as exc:
        r.tell(error(str(exc).replace("Nothing was created", "Nobody was assigned")))
        return
    shown = HandOutMessage(
        r.client, channel, ts, r.user, interval_s=r.ctx.settings.slack.progress_interval_s
    )
    try:
        result = r.run(on_handout=shown.on_progress)
    except Exception as exc:
        shown.finish(trainees.assign_stopped(command.environment, r.user, brief(exc)))
        raise
    assert isinstance(result, Assigned)
    shown.finish(trainees.assigned(result, r.user))
