"""Ctrl-C and SIGTERM while a command changes vCenter (deploy, strip back, refresh, resume,
rebuild, power).

The first signal halts the services: no clone, destroy or power operation starts from then on,
the tasks already in vCenter finish and are recorded, each run ends `interrupted` (resumable:
the environment is not busy), and the command's own report says what was done and that
`clones resume` finishes it; the terminal exits 130. A second signal exits at once: this
process's runs are marked interrupted first, and `clones resume` finishes them, adopting what the
tasks left in vCenter make (their instance UUIDs were recorded before they were asked for).

The command runs on a worker thread while the main thread waits for it and takes the signals
(Python runs signal handlers on the main thread only), so a handler never runs in the middle of
the service code, its locks or its output.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, TypeVar

from bot.cli.options import EXIT_INTERRUPTED

if TYPE_CHECKING:
    from bot.services.container import Services

T = TypeVar("T")

_NAMES = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM"}
_MARK_TIMEOUT_S = 3.0  # a second signal: how long marking the runs interrupted may take


class Stopping:
    """Ctrl-C and SIGTERM stop the command run through `run` as the module says, while the
    context is entered (until the process has closed its connections); `requested` names the
    signal once one came ("" until then). Before `run` (a confirmation prompt) either signal
    raises KeyboardInterrupt, as Ctrl-C does by default; after it, one changes nothing. Not
    `enabled`: `run` just calls the command, signals act as usual."""

    def __init__(self, services: Services, *, enabled: bool = True) -> None:
        self.services = services
        # Only the main thread may take signals (a terminal called from a thread: as before).
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.requested = ""
        self._started = False  # the command runs (before: a signal is a KeyboardInterrupt)
        self._over = False  # the command has ended (a signal now changes nothing)
        self._previous: dict[signal.Signals, object] = {}

    def __enter__(self) -> Stopping:
        if self.enabled:
            self._previous = {s: signal.signal(s, self._on_signal) for s in _NAMES}
        return self

    def __exit__(self, *exc: object) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)  # type: ignore[arg-type]

    def run(self, work: Callable[[], T]) -> T:
        if not self.enabled:
            return work()
        outcome: dict[str, object] = {}
        done = threading.Event()

        def command() -> None:
            try:
                outcome["result"] = work()
            except BaseException as exc:  # raised again on the main thread
                outcome["error"] = exc
            finally:
                done.set()

        self._started = True
        threading.Thread(target=command, name="command", daemon=True).start()
        done.wait()  # signals are handled here, between waits
        self._over = True
        if "error" in outcome:
            raise outcome["error"]  # type: ignore[misc]
        return outcome["result"]  # type: ignore[return-value]

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        name = _NAMES.get(signal.Signals(signum), f"signal {signum}")
        if not self._started:
            raise KeyboardInterrupt  # nothing runs yet (a prompt): stop as Ctrl-C always does
        if self._over:
            return  # the command has ended: its report is being written, then the process ends
        if self.requested:
            self._exit_now(name)
        self.requested = name
        in_flight = self.services.use_cases.core.limits.in_flight()
        _say(
            f"stopping ({name}): no new clone, destroy or power operation starts; the "
            f"{in_flight} already in vCenter finish and are recorded. {name} again exits at "
            "once; `clones resume` finishes what is left."
        )
        self.services.use_cases.halt(name)

    def _exit_now(self, name: str) -> None:
        """Mark this process's runs interrupted (bounded: a stuck database never holds the
        exit) and end the process at once, without waiting for its worker threads."""
        marked: list[int] = []

        def mark() -> None:
            # On failure the run stays running (its owner dead): resume still finishes it.
            with contextlib.suppress(Exception):
                marked.extend(
                    self.services.use_cases.runs.interrupt_all(
                        f"Stopped at once by a second {name}: operations vCenter was doing may "
                        "have finished there. `clones resume` finishes the run (it adopts what "
                        "they made)."
                    )
                )

        marker = threading.Thread(target=mark, name="interrupt", daemon=True)
        marker.start()
        marker.join(_MARK_TIMEOUT_S)
        runs = ", ".join(f"run {r}" for r in marked) or "the run"
        _say(
            f"stopped at once ({name} again): {runs} interrupted; tasks already in vCenter may "
            "still finish there. Run `clones resume` to finish it."
        )
        os._exit(EXIT_INTERRUPTED)


def _say(message: str) -> None:
    print(f"clones: {message}", file=sys.stderr, flush=True)
