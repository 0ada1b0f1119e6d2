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
    """Runs one command so that Ctrl-C and SIGTERM stop it as the module says; `requested`
    names the signal once one came ("" until then)."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.requested = ""

    def run(self, work: Callable[[], T]) -> T:
        outcome: dict[str, object] = {}
        done = threading.Event()

        def command() -> None:
            try:
                outcome["result"] = work()
            except BaseException as exc:  # raised again on the main thread
                outcome["error"] = exc
            finally:
                done.set()

        worker = threading.Thread(target=command, name="command", daemon=True)
        previous = {s: signal.signal(s, self._on_signal) for s in _NAMES}
        try:
            worker.start()
            done.wait()  # signals are handled here, between waits
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
        if "error" in outcome:
            raise outcome["error"]  # type: ignore[misc]
        return outcome["result"]  # type: ignore[return-value]

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        name = _NAMES.get(signal.Signals(signum), f"signal {signum}")
        if self.requested:
            self._exit_now(name)
        self.requested = name
        in_flight = self.services.service.core.limits.in_flight()
        _say(
            f"stopping ({name}): no new clone, destroy or power operation starts; the "
            f"{in_flight} already in vCenter finish and are recorded. {name} again exits at "
            "once; `clones resume` finishes what is left."
        )
        self.services.service.halt(name)

    def _exit_now(self, name: str) -> None:
        """Mark this process's runs interrupted (bounded: a stuck database never holds the
        exit) and end the process at once, without waiting for its worker threads."""
        marked: list[int] = []

        def mark() -> None:
            # On failure the run stays running (its owner dead): resume still finishes it.
            with contextlib.suppress(Exception):
                marked.extend(
                    self.services.service.runs.interrupt_all(
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
