"""Bringing a deployment's clones up while it runs (`deploy ... and power on`, or a type's
`power_on`): each clone is powered on as soon as it is made and verified, and its guest
customization is watched while later clones are made. The run ends when the last clone is
usable (on, and customized when its type customizes), not a batch barrier after cloning.

Power-ons run on a pool of their own (a clone worker goes straight back to cloning), each one
counting on its host against `max_ops_per_host` (the process's limiter); one watcher thread reads
the customization outcomes of every clone powered on so far, one query for all of them, often
while outcomes arrive and less often while none do.

When the user stops the process (Ctrl-C), power-ons not started are dropped and customizations
are no longer awaited (those clones stay recorded off, or `pending`): `resume` finishes them.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime

from bot.domain.errors import Fenced, Interrupted, VCenterError, VCenterUnreachable
from bot.domain.models import Clone
from bot.services.core import Core, OnCore
from bot.services.limits import clone_host
from bot.services.runbook import Emitter

log = logging.getLogger(__name__)

POLL_MIN_S = 0.25  # customization outcomes: read this often while they arrive,
POLL_MAX_S = 5.0  # backing off to this while none do
POLL_BACKOFF = 1.5


class BringUp(OnCore):
    """Powers clones on as they are made and watches their customization (one per run)."""

    def __init__(self, core: Core, run_id: int, emit: Emitter, since: datetime) -> None:
        super().__init__(core)
        self.run_id = run_id
        self.emit = emit
        self._pool = ThreadPoolExecutor(
            max_workers=max(self.settings.concurrency, 1), thread_name_prefix="power"
        )
        self._futures: list[Future[None]] = []
        self._lost: VCenterUnreachable | None = None
        self._guard = threading.Lock()
        self.watch = CustomizationWatch(core, emit, since)
        self._halt = core.halt
        self.left = 0  # clones left for `resume` to bring up: the user stopped the process
        self._unhook = core.halt.hook(self._stop)

    @property
    def halted(self) -> str:
        """What stopped the process ("Ctrl-C") when clones were left not up; else ""."""
        return self._halt.why if self._halt() and self.left + self.watch.dropped else ""

    def add(self, clone: Clone) -> None:
        """Power `clone` on (a ready clone, just made) as soon as its host has room."""
        with self._guard:
            if self._halt():
                self.left += 1
            elif self._lost is None:
                self._futures.append(self._pool.submit(self._power_on, clone))

    def _stop(self) -> None:
        """The user stopped the process: power-ons not started never start, and no
        customization is awaited any more (resume looks again)."""
        with self._guard:
            self.left += sum(f.cancel() for f in self._futures)
        self.watch.drop()

    def _power_on(self, clone: Clone) -> None:
        if self._lost is not None or not clone.moref:
            return
        t = self.settings.type(clone.type)
        try:
            ticket = self.limits.host_op(
                clone_host(self.settings, clone), owner=self.run_id, on_queued=self.emit.queued
            )
            with ticket:
                self.runs.assert_owned(self.run_id)  # not for a run taken over
                [error] = self.vcenter.power([clone.moref], "on")
        except VCenterUnreachable as exc:
            with self._guard:
                self._lost = self._lost or exc
            return
        except Fenced as exc:  # another bot took the run over: it powers its clones on
            log.warning("fenced: %s", exc)
            return
        except Interrupted:  # stopped while waiting for room on its host: never asked
            with self._guard:
                self.left += 1
            return
        if error is not None:  # left powered off; said, as a batch power-on says it
            self.emit("clone_retry", clone=clone.name, message=f"power on failed: {error}")
            return
        self.repo.update_clone(clone.id, power_state="poweredOn")
        self.emit("clone_powered_on", clone=clone.name)
        if t.customization_spec:
            self.repo.update_clone(clone.id, customization="pending")
            self.watch.add(clone)

    def finish(self) -> VCenterUnreachable | None:
        """Wait until every clone added is on and customized (or timed out), or the user
        stopped the process; the loss of vCenter that stopped it, if any."""
        self._pool.shutdown(wait=True)
        lost = self._lost
        lost = self.watch.finish(abandon=lost is not None) or lost
        self._unhook()
        for f in self._futures:  # anything else a power-on raised is a bug: not swallowed
            if not f.cancelled() and (error := f.exception()) is not None:
                raise error
        return lost

    def abandon(self) -> None:
        """vCenter was lost, or the user stopped the process: start no more power-ons, stop
        watching."""
        with self._guard:
            for f in self._futures:
                f.cancel()
        self._pool.shutdown(wait=True)
        self.watch.finish(abandon=True)
        self._unhook()


class CustomizationWatch(OnCore):
    """One thread that reads the customization outcomes of the clones given to it."""

    def __init__(self, core: Core, emit: Emitter, since: datetime) -> None:
        super().__init__(core)
        self.emit = emit
        self.since = since
        self._cond = threading.Condition()
        self._pending: dict[str, tuple[Clone, float]] = {}  # moref -> (clone, deadline)
        self._closed = False
        self._dropped = False  # the user stopped the process: nothing more is awaited
        self.dropped = 0  # clones whose customization was then no longer awaited
        self._lost: VCenterUnreachable | None = None
        self._failure: Exception | None = None
        self._thread: threading.Thread | None = None

    def add(self, clone: Clone) -> None:
        assert clone.moref
        deadline = time.monotonic() + self.settings.customization_timeout_s
        with self._cond:
            if self._dropped:
                self.dropped += 1
                return  # left pending in SQLite: resume watches it
            self._pending[clone.moref] = (clone, deadline)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="customization", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def drop(self) -> None:
        """Await nothing more (the user stopped the process): the clones awaited stay
        `pending` in SQLite for `resume` (counted in `dropped`)."""
        with self._cond:
            self._dropped = True
            self.dropped += len(self._pending)
            self._pending.clear()
            self._cond.notify_all()

    def finish(self, *, abandon: bool = False) -> VCenterUnreachable | None:
        """No more clones come: wait for the outcomes of those given (unless abandoning)."""
        with self._cond:
            self._closed = True
            if abandon:
                self._pending.clear()
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join()
        if self._failure is not None:  # a bug in the watcher is raised, not swallowed
            raise self._failure
        return self._lost

    def _run(self) -> None:
        try:
            self._watch()
        except Exception as exc:
            log.exception("customization watcher failed")
            self._failure = exc

    def _watch(self) -> None:
        interval = POLL_MIN_S
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if not self._pending:
                    return
                pending = dict(self._pending)
            try:
                outcomes = self.vcenter.customization_outcomes(list(pending), self.since)
            except VCenterUnreachable as exc:
                with self._cond:
                    self._lost = exc
                    self._pending.clear()  # left pending in SQLite: resume looks again
                return
            except VCenterError as exc:  # one failed read: read again (until the deadlines)
                log.warning("reading customization outcomes failed: %s", exc)
                outcomes = {}
            now = time.monotonic()
            for moref, (clone, deadline) in pending.items():
                outcome = outcomes.get(moref)
                if outcome is not None and outcome.ok:
                    self._record(clone, "")
                elif outcome is not None:
                    self._record(clone, outcome.message or "no reason given")
                elif now >= deadline:
                    timeout = self.settings.customization_timeout_s
                    self._record(clone, f"no customization result within {timeout:.0f} s")
                else:
                    continue
                with self._cond:
                    self._pending.pop(moref, None)
            interval = POLL_MIN_S if outcomes else min(interval * POLL_BACKOFF, POLL_MAX_S)
            until = time.monotonic() + interval
            with self._cond:  # a new clone does not cut the wait short; abandoning does
                while self._pending and (left := until - time.monotonic()) > 0:
                    self._cond.wait(left)

    def _record(self, clone: Clone, why: str) -> None:
        """One clone's outcome: recorded, and told (a failure also as a retry line, as
        before)."""
        if not why:
            self.repo.update_clone(clone.id, customization="succeeded")
            self.emit("clone_customized", clone=clone.name)
            return
        self.repo.update_clone(
            clone.id, customization="failed", error=f"guest customization failed: {why}"
        )
        self.emit("clone_customized", clone=clone.name, message=why)
        self.emit("clone_retry", clone=clone.name, message=f"customization failed: {why}")
