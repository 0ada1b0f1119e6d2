"""One Slack message per run, edited in place, paced with every other message in the workspace.

Progress events arrive from the service layer's clone workers, often many a second; `chat.update`
is a Tier 3 method (about 50 a minute for the whole app). So events only record the latest
state, and one sender thread per message posts it:

- no more often than its interval, which stretches with the number of messages being kept
  current at once (`Pacer.edit_interval`), so that all of them together stay within the tier;
- when its turn comes (`Pacer.turn`): only then is the latest state rendered and sent, so an edit
  that waited for the pacer or a 429's Retry-After sends what is true now, never a stale retry;
- the final state always lands: it goes at a final state's priority (before any progress edit,
  in room kept for it), waiting only the message's own base interval.

Rendering and the HTTP calls run on the sender thread, so a slow Slack never slows a worker.

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
from typing import Any, Generic, TypeVar

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.domain.errors import ClonesError
from bot.services.container import Services
from handlers.blocks.kit import Rendered
from handlers.pacing import Priority, SlackBusy, pacer_of

log = logging.getLogger(__name__)
E = TypeVar("E")


class LiveRuns:
    """The progress messages of this process's runs, by run, and where each run is shown."""

    def __init__(self, services: Services | None = None) -> None:
        self._services = services  # None: nothing is kept with the runs (tests, tools)
        self._lock = threading.Lock()
        self._messages: dict[int, ProgressMessage[Any]] = {}

    def record(self, run_id: int, message: ProgressMessage[Any]) -> None:
        """`message` shows run `run_id` (its ts is known)."""
        with self._lock:
            self._messages[run_id] = message
        if self._services is not None and message.ts:
            self._services.use_cases.runs.show_in(run_id, channel=message.channel, ts=message.ts)

    def forget(self, message: ProgressMessage[Any]) -> None:
        """`message` shows its final state: no run needs it any more."""
        with self._lock:
            for run_id in [r for r, m in self._messages.items() if m is message]:
                del self._messages[run_id]

    def ours(self, run_id: int) -> bool:
        """False once another bot took run `run_id` over: its message is that bot's to edit."""
        if self._services is None:
            return True
        try:
            return self._services.use_cases.runs.owns(run_id)
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


class ProgressMessage(Generic[E]):
    """Posts (or takes over) one message and keeps it current. Events are a run's progress
    (`ProgressEvent`, whose run is recorded with the message) or anything `render` shows."""

    def __init__(
        self,
        client: WebClient,
        channel: str,
        render: Callable[[E], Rendered],
        *,
        interval_s: float,
        ts: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        live: LiveRuns | None = None,
    ) -> None:
        self.client = client
        self.pacer = pacer_of(client)
        self.channel = channel
        self.render = render
        self.interval_s = interval_s
        self.ts = ts  # set: edit this message; None: post a new one on the first event
        self._clock = clock
        self._cond = threading.Condition()
        self._latest: E | None = None
        self._final: Rendered | None = None
        self._last_sent: float | None = None
        self._thread: threading.Thread | None = None
        self._ticket: Any = None  # the pacer's ticket while an edit waits for its turn
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

    def on_event(self, event: E) -> None:
        """The service layer's progress callback: remember, never block on Slack."""
        with self._cond:
            if self._final is not None:
                return
            self._latest = event
            run_id = getattr(event, "run_id", None)
            self._run_id = run_id if isinstance(run_id, int) else None
            if self._thread is None:
                self._thread = self._start(f"progress-{self._run_id or 'message'}")
            self._cond.notify()
        if self.ts is not None:
            # The message exists already (posted before the run, or a plan being confirmed):
            # record it with the run's first event, before any edit, so that a crash from now
            # on finds it. One SQLite write per run.
            self._note_run()

    def finish(self, final: Rendered, timeout_s: float = 120.0) -> str | None:
        """Show `final` (after the base interval since the last update) and return the message
        ts. The first final state given is the one shown (a run the bot marked paused as it
        stopped stays paused when its worker ends a moment later)."""
        with self._cond:
            if self._final is None:
                self._final = final
            thread = self._thread
            if thread is None:  # no event ever arrived: send the final state directly
                self._thread = thread = self._start("progress-final")
            if self._ticket is not None:  # an edit waiting for its turn: now a final one
                self.pacer.promote(self._ticket, Priority.FINAL)
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

    def _start(self, name: str) -> threading.Thread:
        thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.pacer.stream_started()
        thread.start()
        return thread

    def _run(self) -> None:
        try:
            while not self._once():
                pass
        finally:
            self.pacer.stream_ended()
            if self._live is not None:
                self._live.forget(self)

    def _once(self) -> bool:
        """Wait for something new and for its time, take a turn, send the latest; True once
        the final state was sent (or given up on)."""
        with self._cond:
            while self._latest is None and self._final is None:
                self._cond.wait()
            self._wait_interval()
            final = self._final is not None
            if self._dropped:
                return True  # another bot shows the run now: nothing more from this one
        method = "chat.postMessage" if self.ts is None else "chat.update"
        priority = Priority.FINAL if final else Priority.PROGRESS
        try:
            with self.pacer.turn(method, self.channel, priority, on_ticket=self._waiting):
                return self._send_latest()
        except SlackBusy:  # a 429 paused the method: wait the turn again, then the latest
            return False

    def _wait_interval(self) -> None:
        """(Holding the lock) until this message may change again: the stretched interval for
        progress, the base one for the final state."""
        while self._last_sent is not None and not self._dropped:
            base = self.interval_s
            gap = base if self._final is not None else self.pacer.edit_interval(base)
            left = self._last_sent + gap - self._clock()
            if left <= 0:
                return
            # Woken early by a final state, which waits only the base interval.
            self._cond.wait(left)

    def _waiting(self, ticket: Any) -> None:
        with self._cond:
            self._ticket = ticket
            if ticket is not None and self._final is not None:
                self.pacer.promote(ticket, Priority.FINAL)

    def _send_latest(self) -> bool:
        """It is this message's turn: send what is true now (raises SlackBusy on a 429)."""
        event: E | None = None
        with self._cond:
            if self._final is not None:
                rendered: Rendered | None = self._final
                last = True
            else:
                event, self._latest = self._latest, None
                if event is None:
                    return False
                rendered, last = self._safe_render(event), False
        if event is not None and not self._ours(event):
            self.drop()  # taken over meanwhile: the stale progress is not sent
            return True
        if rendered is not None and not self._dropped:
            try:
                self._send(rendered)
            except SlackBusy:
                with self._cond:  # not shown: the state is still the latest, unless newer came
                    if not last and self._latest is None:
                        self._latest = event
                raise
        return last

    def _ours(self, event: E) -> bool:
        """False once another bot took the event's run over (it edits this message now)."""
        run_id = getattr(event, "run_id", None)
        return not isinstance(run_id, int) or self._live is None or self._live.ours(run_id)

    def _safe_render(self, event: E) -> Rendered | None:
        try:
            return self.render(event)
        except Exception:
            log.exception("rendering progress of %s failed", self._run_id or self.channel)
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
        except SlackBusy:
            raise
        except (SlackApiError, SlackClientError, OSError):
            # Slack refused it for good (not a 429: the pacer waits those out): a progress
            # display that fails must not stop the run. The final state is tried anyway.
            log.exception("could not update the progress message in %s", self.channel)
        finally:
            with self._cond:
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
