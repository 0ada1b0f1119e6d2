"""One Slack message per run, edited in place no more often than an interval.

Progress events arrive from the service layer's clone workers, often many a second; `chat.update`
is a Tier 3 method (about 50 a minute). So events only record the latest state, and one sender
thread per message posts it: at most once per `interval_s`, coalescing everything in between,
and always ending with the final state. Rendering and the HTTP calls run on the sender thread, so a
slow Slack never slows a clone worker.

`record(run_id, channel, ts)` is told where each run is shown, once the message exists: the bot
keeps it with the run (`recorder`) so that a run resumed after a crash edits this same message.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.domain.results import ProgressEvent
from bot.services.container import Services
from handlers.blocks.kit import Rendered

log = logging.getLogger(__name__)

Record = Callable[[int, str, str], object]  # run id, channel, message ts


def recorder(services: Services) -> Record:
    """`record` for a ProgressMessage: where each run is shown, kept with the run."""

    def record(run_id: int, channel: str, ts: str) -> object:
        return services.service.runs.show_in(run_id, channel=channel, ts=ts)

    return record


class ProgressMessage:
    """Posts (or takes over) one message and keeps it current."""

    def __init__(
        self,
        client: WebClient,
        channel: str,
        render: Callable[[ProgressEvent], Rendered],
        *,
        interval_s: float,
        ts: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        record: Record | None = None,
    ) -> None:
        self.client = client
        self.channel = channel
        self.render = render
        self.interval_s = interval_s
        self.ts = ts  # set: edit this message; None: post a new one on the first event
        self._clock = clock
        self._cond = threading.Condition()
        self._latest: ProgressEvent | None = None
        self._final: Rendered | None = None
        self._last_sent: float | None = None
        self._thread: threading.Thread | None = None
        self._record = record
        self._run_id: int | None = None  # the run of the latest event
        self._recorded: set[int] = set()
        self.sent = 0  # messages posted or updated, for logs and tests

    @property
    def started(self) -> bool:
        """True once any event arrived (so a message exists, or is about to)."""
        return self._thread is not None

    def mark_sent(self) -> None:
        """Count an edit made elsewhere (e.g. replacing buttons) against the interval."""
        with self._cond:
            self._last_sent = self._clock()

    def on_event(self, event: ProgressEvent) -> None:
        """The service layer's progress callback: remember, never block on Slack."""
        with self._cond:
            if self._final is not None:
                return
            self._latest = event
            self._run_id = event.run_id
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name=f"progress-{event.run_id}", daemon=True
                )
                self._thread.start()
            self._cond.notify()
        if self.ts is not None:
            # The message exists already (posted before the run, or a plan being confirmed):
            # record it with the run's first event, before any edit, so that a crash from now
            # on finds it. One SQLite write per run.
            self._note_run()

    def finish(self, final: Rendered, timeout_s: float = 120.0) -> str | None:
        """Show `final` (after the interval since the last update) and return the message ts."""
        with self._cond:
            self._final = final
            thread = self._thread
            if thread is None:  # no event ever arrived: send the final state directly
                self._thread = thread = threading.Thread(
                    target=self._run, name="progress-final", daemon=True
                )
                thread.start()
            self._cond.notify()
        thread.join(timeout_s)
        return self.ts

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._latest is None and self._final is None:
                    self._cond.wait()
                if self._last_sent is not None:
                    due = self._last_sent + self.interval_s
                    # Wake early only to notice nothing: the final state waits its turn too,
                    # so the message never changes faster than the interval.
                    while (now := self._clock()) < due:
                        self._cond.wait(due - now)
                if self._final is not None:
                    rendered: Rendered | None = self._final
                    last = True
                else:
                    event, self._latest = self._latest, None
                    assert event is not None
                    rendered, last = self._safe_render(event), False
            if rendered is not None:
                self._send(rendered)
            if last:
                return

    def _safe_render(self, event: ProgressEvent) -> Rendered | None:
        try:
            return self.render(event)
        except Exception:
            log.exception("rendering progress of run %s failed", event.run_id)
            return None

    def _send(self, r: Rendered) -> None:
        try:
            if self.ts is None:
                resp = self.client.chat_postMessage(
                    channel=self.channel, text=r.text, blocks=r.blocks
                )
                self.ts = str(resp["ts"])
                self.channel = str(resp.get("channel") or self.channel)
            else:
                self.client.chat_update(
                    channel=self.channel, ts=self.ts, text=r.text, blocks=r.blocks
                )
            self.sent += 1
            self._note_run()
        except (SlackApiError, SlackClientError, OSError):
            # The retry handlers already waited out 429s and dropped connections; a progress
            # display that still fails must not stop the run. The final state is tried anyway.
            log.exception("could not update the progress message in %s", self.channel)
        finally:
            self._last_sent = self._clock()

    def _note_run(self) -> None:
        """Tell `record` where the current run is shown (once per run)."""
        with self._cond:
            run_id = self._run_id
            if self._record is None or run_id is None or run_id in self._recorded or not self.ts:
                return
            self._recorded.add(run_id)
        try:
            self._record(run_id, self.channel, self.ts)
        except Exception:  # the display goes on; only a later crash loses track of it
            log.exception("could not record the message of run %s", run_id)
