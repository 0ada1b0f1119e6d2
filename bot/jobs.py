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

from bot.errors import ConflictError

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

    def submit(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> Future[T]:
        """Queue `fn(*args, **kwargs)`; raise ConflictError when the pool is full or closed."""
        if self._closed or not self._slots.acquire(blocking=False):
            raise ConflictError(
                "The bot is busy with other work right now; try again in a minute "
                '(see "status" for what is running).'
            )

        def run() -> T:
            try:
                return fn(*args, **kwargs)
            except Exception:
                # The job's own code reports errors it knows to the user; anything reaching here
                # is a bug, and the log is the only place it can still be seen.
                log.exception("background job %s failed", getattr(fn, "__name__", fn))
                raise
            finally:
                self._slots.release()

        try:
            return self._pool.submit(run)
        except RuntimeError:  # the pool was shut down between the check and the submit
            self._slots.release()
            raise ConflictError("The bot is shutting down; try again when it is back.") from None

    def shutdown(self, wait: bool = True) -> None:
        """Refuse new work; with `wait`, let running and queued work finish."""
        self._closed = True
        self._pool.shutdown(wait=wait, cancel_futures=not wait)
