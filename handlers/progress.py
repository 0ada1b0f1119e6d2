"""One Slack message per run, edited in place no more often than an interval.

Progress events arrive from the service layer's clone workers, often many a second; `chat.update`
is a Tier 3 method (about 50 a minute). So events only record the latest state, and one sender
thread per message posts it: at most once per `interval_s`, coalescing everything in between,
and always ending with the final state. Rendering and the HTTP calls run on the sender thread, so a
slow Slack never slows a clone worker.

`LiveRuns` is told where each run is shown, once the message exists: it keeps that with the run,
so that a run resumed after a crash edits this same message, and it knows which of this process's
messages shows which run, so that a bot stopping mid-run puts the paused state in that message
last (an update still queued must not overwrite it).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.domain.errors import ClonesError
from bot.domain.results import ProgressEvent
from bot.services.container import Services
from handlers.blocks.kit import Rendered

log = logging.getLogger(__name__)


class LiveRuns:
    """The progress messages of this process's runs, by run, and where each run is shown."""

    def __init__(self, services: Services | None = None) -> None:
        self._services = services  # None: nothing is kept with the runs (tests, tools)
        self._lock = threading.Lock()
        self._messages: dict[int, ProgressMessage] = {}

    def record(self, run_id: int, message: ProgressMessage) -> None:
        """`message` shows run `run_id` (its ts is known)."""
        with self._lock:
            self._messages[run_id] = message
        if self._services is not None and message.ts:
            self._services.service.runs.show_in(run_id, channel=message.channel, ts=message.ts)

    def forget(self, message: ProgressMessage) -> None:
        """`message` shows its final state: no run needs it any more."""
        with self._lock:
            for run_id in [r for r, m in self._messages.items() if m is message]:
                del self._messages[run_id]

    def ours(self, run_id: int) -> bool:
        """False once another bot took run `run_id` over: its message is that bot's to edit."""
        if self._services is None:
            return True
        try:
            return self._services.service.runs.owns(run_id)
        except ClonesError:  # the database away: keep showing what this bot knows
            return True

    def finish(self, run_id: int, final: Rendered, timeout_s: float) -> bool:
        """Show `final` as the last state of the message that shows `run_id` in this process
        (progress still queued for it is dropped). False: no message here shows that run."""
        with self._lock:
            message = self._messages.get(run_id)
        if message is None:
            return False
        message.finish(final, timeout_s)
        return True


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
        live: LiveRuns | None = None,
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
        self._live = live
        self._run_id: int | None = None  # the run of the latest event
        self._recorded: set[int] = set()
        self._dropped = False  # another bot shows the run now: no edit from this one
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
        """Show `final` (after the interval since the last update) and return the message ts.
        The first final state given is the one shown (a run the bot marked paused as it stopped
        stays paused when its worker ends a moment later)."""
        with self._cond:
            if self._final is None:
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

    def drop(self) -> None:
        """Stop showing the run without another edit: another bot took it over and shows it
        in this same message (a progress update still queued here is never sent)."""
        with self._cond:
            self._dropped = True
            if self._final is None:
                self._final = Rendered("", [])
            if self._thread is None:
                return
            self._cond.notify()

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
                event: ProgressEvent | None = None
                if self._final is not None:
                    rendered: Rendered | None = self._final
                    last = True
                else:
                    event, self._latest = self._latest, None
                    assert event is not None
                    rendered, last = self._safe_render(event), False
            if event is not None and self._live is not None and not self._live.ours(event.run_id):
                self.drop()  # taken over meanwhile: the stale progress is not sent
                continue
            if rendered is not None and not self._dropped:
                self._send(rendered)
            if last:
                if self._live is not None:
                    self._live.forget(self)
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
        """Tell `live` where the current run is shown (once per run)."""
        with self._cond:
            run_id = self._run_id
            if self._live is None or run_id is None or run_id in self._recorded or not self.ts:
                return
            self._recorded.add(run_id)
        try:
            self._live.record(run_id, self)
        except Exception:  # the display goes on; only a later crash loses track of it
            log.exception("could not record the message of run %s", run_id)
