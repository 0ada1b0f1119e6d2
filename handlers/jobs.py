"""A bounded executor for long work started from Slack.

Slack wants an acknowledgement within 3 s, so listeners hand deployments, strip backs and slow
reads to this pool and return. The pool is bounded twice: a fixed number of worker threads, and a
cap on work waiting for a thread, so a flood of commands is refused with a clear message instead
of piling up behind a slow vCenter for hours.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from bot.domain.errors import ConflictError

log = logging.getLogger(__name__)
T = TypeVar("T")


def incident_id() -> str:
    """A short id to quote to a user and to find the matching traceback in the log."""
    return uuid.uuid4().hex[:8]


class Jobs:
    """Run callables on a bounded thread pool; unknown failures are logged, never lost."""

    def __init__(self, workers: int = 4, max_pending: int = 32, name: str = "job") -> None:
        if workers < 1 or max_pending < 0:
            raise ValueError("workers must be 1 or more and max_pending 0 or more")
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
        # Running plus queued work; acquire() without blocking refuses work beyond the bound.
        self._slots = threading.BoundedSemaphore(workers + max_pending)
        self._closed = False
        self._idle = threading.Condition()
        self._in_flight = 0  # submitted and not finished (queued or running)

    def submit(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> Future[T]:
        """Queue `fn(*args, **kwargs)`; raise ConflictError when the pool is full or closed."""
        if self._closed or not self._slots.acquire(blocking=False):
            raise ConflictError(
                "The bot is busy with other work right now; try again in a minute "
                '(see "status" for what is running).'
            )
        with self._idle:
            self._in_flight += 1

        def run() -> T:
            try:
                return fn(*args, **kwargs)
            except Exception:
                # The job's own code reports errors it knows to the user; anything reaching here
                # is a bug, and the log is the only place it can still be seen.
                log.exception("background job %s failed", getattr(fn, "__name__", fn))
                raise

        try:
            future = self._pool.submit(run)
        except RuntimeError:  # the pool was shut down between the check and the submit
            self._done()
            raise ConflictError("The bot is shutting down; try again when it is back.") from None
        # Runs when the job ends, and also when shutdown(wait=False) cancels it while queued.
        future.add_done_callback(lambda _: self._done())
        return future

    def _done(self) -> None:
        self._slots.release()
        with self._idle:
            self._in_flight -= 1
            if not self._in_flight:
                self._idle.notify_all()

    @property
    def busy(self) -> int:
        """Jobs submitted and not finished yet (queued or running)."""
        with self._idle:
            return self._in_flight

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no job is queued or running (True), or `timeout` seconds pass (False).

        Work submitted by a running job counts too, as long as it is submitted before that job
        ends, so "idle" means everything a request set off has finished."""
        with self._idle:
            return self._idle.wait_for(lambda: not self._in_flight, timeout)

    def shutdown(self, wait: bool = True) -> None:
        """Refuse new work; with `wait`, let running and queued work finish."""
        self._closed = True
        self._pool.shutdown(wait=wait, cancel_futures=not wait)


class TrackedExecutor(ThreadPoolExecutor):
    """A ThreadPoolExecutor that can wait until nothing it was given is queued or running.

    Bolt runs listeners on an executor of its own; giving it this one lets the bot tell when
    every request it accepted has been handled (a drain at shutdown, and tests that check that
    nothing happened without sleeping)."""

    def __init__(self, max_workers: int, thread_name_prefix: str = "") -> None:
        super().__init__(max_workers=max_workers, thread_name_prefix=thread_name_prefix)
        self._idle = threading.Condition()
        self._in_flight = 0

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        with self._idle:
            self._in_flight += 1
        try:
            future = super().submit(fn, *args, **kwargs)
        except BaseException:
            self._finished(None)
            raise
        future.add_done_callback(self._finished)
        return future

    def _finished(self, _: object) -> None:
        with self._idle:
            self._in_flight -= 1
            if not self._in_flight:
                self._idle.notify_all()

    def wait_idle(self, timeout: float | None = None) -> bool:
        with self._idle:
            return self._idle.wait_for(lambda: not self._in_flight, timeout)
