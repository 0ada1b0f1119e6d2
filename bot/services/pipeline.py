"""One pool for every bulk operation: `run_per_clone` runs a piece of work per clone (deploy,
strip back, refresh, power, and their recovery), stops starting new ones once vCenter is lost or
the user stops the process (Ctrl-C, SIGTERM: `Halt`), lets those already started finish, and
hands back what each finished with. `retrying` is the backoff for transient vCenter faults.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, TypeVar

from bot.domain.errors import Fenced, Interrupted, VCenterFault, VCenterUnreachable
from bot.settings import Settings

if TYPE_CHECKING:
    from tenacity import RetryCallState, Retrying

    from bot.services.runbook import Halt

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class PerClone(Generic[T, R]):
    """What `run_per_clone` did: each finished item's result, the items never started, and
    what stopped it: the loss of vCenter (`lost`), or the user stopping the process (`halted`
    names how: "Ctrl-C"); None and "" when it ran to the end."""

    results: list[tuple[T, R]] = field(default_factory=list)
    not_started: list[T] = field(default_factory=list)
    lost: VCenterUnreachable | None = None
    halted: str = ""


class NotStarted(Exception):
    """Raised by a piece of work that found the run stopping before it started anything."""


class Stop:
    """Set once vCenter is lost, the process is halted, or the run was taken over by another
    bot (`Fenced`): work that has not started yet must not start."""

    def __init__(self, halt: Halt | None = None) -> None:
        self._event = threading.Event()
        self.error: VCenterUnreachable | Fenced | None = None
        self._lock = threading.Lock()
        self.halt = halt

    def __call__(self) -> bool:
        return self._event.is_set() or (self.halt is not None and self.halt())

    def set(self, error: VCenterUnreachable | Fenced) -> None:
        with self._lock:
            if self.error is None:
                self.error = error
        self._event.set()


def run_per_clone(
    items: Sequence[T],
    work: Callable[[T, Stop], R],
    *,
    workers: int,
    name: str,
    halt: Halt | None = None,
) -> PerClone[T, R]:
    """Run `work(item, stop)` for each item on `workers` threads, in order of submission.

    `work` records its own clone's outcome (ready, failed, destroyed...) and returns it. When
    it raises `VCenterUnreachable`, or `halt` is set (the user stopped the process), nothing
    further starts (`stop()` turns true for the others, which check it before starting, and
    unstarted items are cancelled) while what has started finishes. Work that finds the run
    stopping before it started anything raises `NotStarted` (or `Interrupted`, from a ticket of
    bot.services.limits): it counts as not started. Any other exception is a bug and
    propagates once the pool is done.
    """
    stop = Stop(halt)

    def guarded(item: T) -> R:
        if stop():
            raise NotStarted
        try:
            return work(item, stop)
        except (VCenterUnreachable, Fenced) as exc:
            stop.set(exc)
            raise

    with ThreadPoolExecutor(max_workers=max(workers, 1), thread_name_prefix=name) as pool:
        futures: list[tuple[T, Future[R]]] = [(item, pool.submit(guarded, item)) for item in items]

        def cancel_the_rest() -> None:
            for _, f in futures:
                f.cancel()

        unhook = halt.hook(cancel_the_rest) if halt is not None else None
        try:
            pending = [f for _, f in futures]
            while pending:
                _, not_done = wait(pending, return_when="FIRST_EXCEPTION")
                pending = list(not_done)
                if stop():
                    cancel_the_rest()
                    wait(pending)
                    pending = []
        finally:
            if unhook is not None:
                unhook()
    return _outcome(futures, stop)


def _outcome(futures: list[tuple[T, Future[R]]], stop: Stop) -> PerClone[T, R]:
    """What each item of a finished pool came to; a bug (any exception other than the loss of
    vCenter or a stop before the item started) is raised."""
    out: PerClone[T, R] = PerClone()
    bug: BaseException | None = None
    for item, f in futures:
        if f.cancelled():
            out.not_started.append(item)
            continue
        exc = f.exception()
        if exc is None:
            out.results.append((item, f.result()))
        elif isinstance(exc, NotStarted | Interrupted):
            out.not_started.append(item)
        elif not isinstance(exc, VCenterUnreachable | Fenced) and bug is None:
            bug = exc
    if isinstance(stop.error, Fenced):
        raise stop.error  # the run is another bot's: this one stops here, recording nothing
    if bug is not None:
        raise bug
    out.lost = stop.error
    if out.lost is None and out.not_started and stop.halt is not None and stop.halt():
        out.halted = stop.halt.why
    return out


def retrying(
    settings: Settings, emit: Callable[..., None], name: str, halt: Halt | None = None
) -> Retrying:
    """Retries with backoff for transient vCenter faults, each one reported as progress.
    With `halt`, the backoff (up to a minute) ends the moment the user stops the process, and
    the operation is not asked for again: `Interrupted` (what was asked is recorded before the
    ask, so `clones resume` finds it). (tenacity is imported here, by the commands that change
    vCenter, not by every command.)"""
    from tenacity import (
        Retrying,
        retry_if_exception,
        stop_after_attempt,
        wait_exponential_jitter,
    )

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        emit("clone_retry", clone=name, message=str(exc))

    def sleep(seconds: float) -> None:
        if halt is None:
            time.sleep(seconds)
        elif halt.wait(seconds):
            raise Interrupted(f"{halt.why}: {name} was not asked for again")

    return Retrying(
        sleep=sleep,
        stop=stop_after_attempt(settings.retries + 1),
        wait=wait_exponential_jitter(
            multiplier=settings.retry_backoff_s,
            max=60,
            jitter=settings.retry_backoff_s,
        ),
        retry=retry_if_exception(lambda e: isinstance(e, VCenterFault) and e.transient),
        before_sleep=before_sleep,
        reraise=True,
    )
