"""Runs: who owns them, their heartbeat, one run per environment at a time, and progress.

Every bulk operation (deploy, strip back, refresh, recovery) starts a run through `RunBook`,
which records the clones it owns and keeps the run's heartbeat while this process works on it,
and reports progress through an `Emitter`. `Halt` is the user stopping the process (Ctrl-C or
SIGTERM in the terminal): no run starts anything new in vCenter from then on. `Core` is what
every service shares.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from bot.domain.errors import ClonesError, ConflictError, Fenced, Interrupted
from bot.domain.models import CloneState, Fence, Run, RunKind, RunMessage, RunState
from bot.domain.results import EventKind, ProgressEvent, ProgressLabel
from bot.host import owner_gone, process_owner
from bot.ports import ProgressCallback, Repository

log = logging.getLogger(__name__)

# A run's owner renews its heartbeat (the run's lease) every third of `lease_s`; a run whose
# heartbeat is older than `lease_s` is abandoned (its owner died, hung or was cut off).
LIVE_STATES = tuple(s for s in CloneState if s.live)


class Halt:
    """Set once the user stops this process (Ctrl-C or SIGTERM in the terminal): no clone,
    destroy or power operation starts from then on; those already in vCenter finish and are
    recorded, and each run ends `interrupted` (`clones resume` finishes it). `why` names what
    stopped it. Work that waits can `hook` a function to hear of it at once."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._hooks: dict[int, Callable[[], None]] = {}
        self._ids = 0
        self.why = ""

    def __call__(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float) -> bool:
        """Sleep up to `timeout` seconds, waking at once when the process stops (True)."""
        return self._event.wait(timeout)

    def set(self, why: str) -> None:
        with self._lock:
            if self._event.is_set():
                return
            self.why = why
            self._event.set()
            hooks = list(self._hooks.values())
        for hook in hooks:
            hook()

    def hook(self, fn: Callable[[], None]) -> Callable[[], None]:
        """Call `fn` when the process stops (at once if it has); returns what unhooks it."""
        with self._lock:
            self._ids += 1
            key = self._ids
            self._hooks[key] = fn
            now = self._event.is_set()
        if now:
            fn()

        def unhook() -> None:
            with self._lock:
                self._hooks.pop(key, None)

        return unhook


class RunBook:
    """Runs this process owns: recorded with the clones they own, kept alive by a heartbeat (the
    run's lease: a run whose process died or hung is told apart from one in progress elsewhere),
    and refused while the environment has another (within this process, and across processes
    and machines through the database). Once another process took a run over, this one's
    heartbeat and every fenced write for it are refused (`fence`), and it stops working on it.
    Once the process is halted, no run starts."""

    def __init__(
        self, repo: Repository, halt: Halt | None = None, *, lease_s: float = 30.0
    ) -> None:
        self.repo = repo
        self.halt = halt or Halt()
        self.lease_s = lease_s
        self._env_locks: dict[str, threading.Lock] = {}
        self._env_locks_guard = threading.Lock()
        self.owner = process_owner()
        self._active_runs: set[int] = set()
        self._heartbeat: threading.Thread | None = None
        self._heartbeat_wake = threading.Event()

    def start_run(
        self,
        *,
        environment: str,
        kind: RunKind,
        requested_by: str,
        requested: int,
        command: str,
        source: str,
        channel: str = "",
        clone_ids: Sequence[int] = (),
        power_on: bool = False,
    ) -> Run:
        """Record a run owned by this process and the clones it owns (refused while the
        environment has another, or once the process is halted), and audit who started it."""
        if self.halt():
            raise Interrupted(
                f"Stopped by {self.halt.why} before the {RunKind(kind).value} of {environment} "
                "started: no clone was made, destroyed or powered."
            )
        run = self.repo.start_run(
            environment=environment,
            kind=kind,
            requested_by=requested_by,
            requested=requested,
            owner=self.owner,
            clone_ids=clone_ids,
            power_on=power_on,
        )
        self.track_run(run.id)
        self.repo.audit(
            actor=requested_by,
            source=source,
            channel=channel,
            command=command,
            result="started",
            detail=f"run {run.id}: {requested} clones",
        )
        return run

    def track_run(self, run_id: int) -> None:
        with self._env_locks_guard:
            self._active_runs.add(run_id)
            if self._heartbeat is None or not self._heartbeat.is_alive():
                self._heartbeat = threading.Thread(
                    target=self._beat, name="run-heartbeat", daemon=True
                )
                self._heartbeat.start()

    def finish_run(
        self, run_id: int, *, state: RunState, succeeded: int, failed: int, message: str = ""
    ) -> Run:
        try:
            return self.repo.finish_run(
                run_id, state=state, succeeded=succeeded, failed=failed, message=message
            )
        finally:
            with self._env_locks_guard:
                self._active_runs.discard(run_id)

    def interrupt_all(self, message: str) -> list[int]:
        """Mark every run this process is running `interrupted` now, with `message` (the
        process is about to exit without waiting for them: `resume` finishes them). Returns
        their ids."""
        with self._env_locks_guard:
            runs = sorted(self._active_runs)
        done = []
        for run_id in runs:
            run = self.repo.get_run(run_id)
            if run.state is not RunState.RUNNING:
                continue
            try:
                self.finish_run(
                    run_id,
                    state=RunState.INTERRUPTED,
                    succeeded=run.succeeded,
                    failed=run.failed,
                    message=message,
                )
            except ClonesError:  # it finished meanwhile
                continue
            done.append(run_id)
        return done

    def show_in(self, run_id: int, *, channel: str, ts: str) -> RunMessage:
        """Remember where a front end shows a run (a Slack message), so that the run, resumed
        after a crash or a restart, finishes that same message."""
        return self.repo.save_run_message(run_id, channel=channel, ts=ts)

    def shown_in(self, run_id: int) -> RunMessage | None:
        """Where the run is shown, if a front end said so (`show_in`)."""
        return self.repo.run_message(run_id)

    def owns(self, run_id: int) -> bool:
        """True unless run `run_id` was taken over by another process (superseded while this
        one ran it): a run this process ran to its end is still its own to show."""
        run = self.repo.get_run(run_id)
        return run.owner == self.owner and run.state is not RunState.SUPERSEDED

    def assert_owned(self, run_id: int) -> None:
        """Raise Fenced unless run `run_id` still runs under this process: a fenced write (its
        heartbeat) just before a vCenter action that no database transaction can enclose."""
        if not self.repo.heartbeat(run_id, self.owner):
            raise Fenced(
                f"Refused: run {run_id} is no longer this process's (another process took it "
                "over, or it ended); nothing was done, and this process stops working on it."
            )

    def fence(self, run_id: int) -> Fence:
        """What a write for run `run_id` is checked against: still running, still ours."""
        return Fence(run_id=run_id, owner=self.owner)

    def _beat(self) -> None:
        while True:
            self._heartbeat_wake.wait(max(self.lease_s / 3.0, 0.05))
            with self._env_locks_guard:
                runs = list(self._active_runs)
                if not runs:
                    self._heartbeat = None
                    return
            for run_id in runs:
                try:
                    if not self.repo.heartbeat(run_id, self.owner):
                        self._taken_over(run_id)
                except Exception:  # a missed beat only makes the run look stale sooner
                    log.exception("heartbeat of run %s failed", run_id)

    def _taken_over(self, run_id: int) -> None:
        with self._env_locks_guard:
            if run_id not in self._active_runs:
                return  # finished meanwhile
            self._active_runs.discard(run_id)
        run = self.repo.get_run(run_id)
        if run.state is RunState.SUPERSEDED or run.owner != self.owner:
            log.warning(
                "fenced: refused the heartbeat of run %s: it is %s (%s); this process stops "
                "working on it",
                run_id,
                run.state.value,
                run.message or f"owned by {run.owner}",
            )

    def take_over(self, run: Run, *, fence: Fence | None, now: datetime) -> Run | None:
        """Supersede `run` (another process's, abandoned) by a run of this process: only once
        its owner certainly died or its lease (heartbeat) expired, checked in the takeover's
        own transaction, and (with `fence`, the leader's) only while this process leads."""
        certain = run.state is RunState.INTERRUPTED or owner_gone(run.owner)
        return self.repo.supersede_run(
            run.id,
            owner=self.owner,
            expected_owner=run.owner,
            stale_before=None if certain else self.stale_before(now),
            fence=fence,
        )

    def stale_before(self, now: datetime) -> datetime:
        """A run whose heartbeat is older than this has lost its lease."""
        return now - timedelta(seconds=self.lease_s)

    def owner_dead(self, run: Run, now: datetime) -> bool:
        """True when the process running `run` is gone: it certainly ended (this machine), or
        its heartbeat (the run's lease) is older than `lease_s` (hung, cut off, or another
        machine). Never for this process."""
        if run.owner == self.owner:
            return False  # this very process runs it
        if owner_gone(run.owner):
            return True
        beat = run.heartbeat_at or run.started_at
        return beat is None or beat < self.stale_before(now)

    def environment_lock(self, name: str) -> _TryLock:
        with self._env_locks_guard:
            lock = self._env_locks.setdefault(name, threading.Lock())
        return _TryLock(lock, name)


class _TryLock:
    """Refuse (rather than queue) a second deployment or strip back of one environment."""

    def __init__(self, lock: threading.Lock, name: str) -> None:
        self.lock = lock
        self.name = name

    def __enter__(self) -> None:
        if not self.lock.acquire(blocking=False):
            raise ConflictError(
                f"{self.name} is busy with another deployment or strip back; wait for it to "
                f'finish (see "status {self.name}") and try again.'
            )

    def __exit__(self, *exc: object) -> None:
        self.lock.release()


class Emitter:
    """Counts progress and forwards events; a failing renderer never stops the work."""

    def __init__(
        self,
        run_id: int,
        environment: str,
        label: ProgressLabel,
        total: int,
        started: float,
        callback: ProgressCallback | None,
    ) -> None:
        self.run_id = run_id
        self.environment = environment
        self.label = label
        self.total = total
        self.started = started
        self.callback = callback
        self.done = 0
        self.failed = 0
        # Stages after cloning (None: not part of this run): see `stages`.
        self.powered_on: int | None = None
        self.customized: int | None = None
        self.customization_failed = 0
        self.customizing = 0  # clones whose customization is awaited
        self.made_before = 0  # a resumed run: clones made before the crash (see `stages`)
        # Queued behind other runs for vCenter capacity (bot.services.limits): what to show.
        self.waiting = ""
        self._queued_order = 0
        self._finished = False
        self.lock = threading.Lock()

    def stages(self, *, customizing: int, made_before: int = 0) -> None:
        """This deployment powers its clones on, and awaits the customization of `customizing`
        of them (`made_before` of its clones were made before a crash): events count both
        stages from now on."""
        with self.lock:
            self.powered_on = 0
            self.customized = 0 if customizing else None
            self.customizing = customizing
            self.made_before = made_before

    def queued(self, queued: bool, why: str, order: int) -> None:
        """The limiter's word that this run waits for vCenter capacity (every operation it asks
        for waits, none is in flight) or no longer does: said as a progress event."""
        with self.lock:
            if order < self._queued_order or self._finished:
                return  # an older report, told late; or the run is over
            self._queued_order = order
            text = f"queued: waiting for vCenter capacity ({why})" if queued else ""
            if text == self.waiting:
                return
            self.waiting = text
        self("waiting", message=text)

    def __call__(
        self,
        kind: EventKind,
        *,
        clone: str | None = None,
        ok: bool | None = None,
        message: str = "",
    ) -> None:
        with self.lock:
            if kind == "finished":
                self._finished, self.waiting = True, ""
            if ok is True:
                self.done += 1
            elif ok is False:
                self.failed += 1
            if kind == "clone_powered_on" and self.powered_on is not None:
                self.powered_on += 1
            elif kind == "clone_customized" and self.customized is not None:
                if message:
                    self.customization_failed += 1
                else:
                    self.customized += 1
            elapsed = time.monotonic() - self.started
            finished = self.done + self.failed
            remaining = self.total - finished
            eta = elapsed / finished * remaining if finished else None
            awaited = self.customizing - self.customization_failed - (self.customized or 0)
            if not remaining and kind != "finished" and awaited > 0:
                eta = None  # every clone is made; how long customization takes is not known
            event = ProgressEvent(
                kind=kind,
                run_id=self.run_id,
                environment=self.environment,
                label=self.label,
                total=self.total,
                done=self.done,
                failed=self.failed,
                elapsed_s=elapsed,
                eta_s=eta,
                clone=clone,
                message=message,
                powered_on=self.powered_on,
                customized=self.customized,
                customization_failed=self.customization_failed,
                made_before=self.made_before,
                waiting=self.waiting,
            )
        if self.callback is not None:
            try:
                self.callback(event)
            except Exception:  # a broken progress display must not abort a deployment
                log.exception("progress callback failed")


def outcome_state(ok: int, problems: int, *, lost: bool) -> RunState:
    """A finished run's state: interrupted when vCenter went away, else by its clones."""
    if lost:
        return RunState.INTERRUPTED
    if problems:
        return RunState.PARTIAL if ok else RunState.FAILED
    return RunState.SUCCEEDED


def stopped_message(why: str, left: str, run: str) -> str:
    """What a run stopped by the user says: "Stopped by Ctrl-C: 32 clones not started (the
    operations already in vCenter finished and are recorded); `clones resume` finishes the
    deployment." """
    return (
        f"Stopped by {why}: {left} (the operations already in vCenter finished and are "
        f"recorded); `clones resume` finishes the {run}."
    )
