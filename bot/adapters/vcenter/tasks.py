"""Starting vSphere tasks and waiting for them: one waiter thread and one PropertyCollector watch
every thread's tasks.

The waiter is given what it needs and nothing more (a way to make calls, a PropertyCollector
factory, a batched property read and the task timeout), so it knows nothing of the operations
that start the tasks.

Tasks that are already over when the waiter first sees them (fast tasks, or a vCenter that
answers a task-starting call only when the work is done) need no filter at all: while that keeps
happening, a batch is first read directly (one RetrievePropertiesEx for the batch, with the VMs
of the tasks before it that are still to be read) and only its unfinished tasks get a filter. The
first direct read that finds nothing over switches this off; a new filter whose first update
shows its tasks over switches it on. A batch is held open while tasks started with it are still
being started (SIBLING_S), and a VM still to be read waits for the tasks started with its own, to
be read with them, instead of costing a call of its own.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol, TypeVar

from pyVmomi import vim as _vim
from pyVmomi import vmodl as _vmodl

from bot.adapters.vcenter.faults import fault_error, quiet
from bot.domain.errors import VCenterError, VCenterFault, VCenterUnreachable

log = logging.getLogger(__name__)
T = TypeVar("T")

# pyVmomi's dynamic vSphere types, as Any (see faults.py).
vim: Any = _vim
vmodl: Any = _vmodl

TASK_PROPS = ["info.state", "info.result", "info.error"]
WAIT_S = 30  # longest single WaitForUpdatesEx; new tasks interrupt it (CancelWaitForUpdates)
GATHER_S = 0.05  # while tasks are being started, wait up to this long to batch them up
# The same when tasks are read directly (they tend to be over once started): the caller is
# waiting for a result that is already there, so hold a batch open only briefly.
QUICK_GATHER_S = 0.01
# ...except while tasks started together with the batch's (within SIBLING_S of its first) are
# still being started: they tend to be over together, so a batch of tasks with no result to read
# (destroys, power operations) waits for them, up to SIBLING_MAX_S (one read for a round however
# unevenly a loaded machine answers it). A clone's slot waits for its task: clones do not wait.
SIBLING_S = 0.025
SIBLING_MAX_S = 0.05


class Call(Protocol):
    """`Session.call`: run one vSphere call, its errors as `bot.domain.errors`."""

    def __call__(self, what: str, fn: Callable[[], T], /) -> T: ...


# Properties of objects, read in one call: groups of (objects of one type, their property
# paths), as rows of (object, properties); absent objects are left out.
Read = Callable[[Sequence[tuple[Sequence[Any], list[str]]]], list[tuple[Any, dict[str, Any]]]]


class Tasks:
    """Start tasks and wait for them. The waiter is made on first use (again after `stop`)."""

    def __init__(
        self, *, call: Call, new_collector: Callable[[], Any], read: Read, timeout_s: float
    ) -> None:
        self._call = call
        self._new_collector = new_collector
        self._read = read
        self._timeout_s = timeout_s
        self._lock = threading.Lock()
        # Task-starting calls (CloneVM_Task, Destroy_Task, ...) in flight: when each started.
        self._calls: dict[int, float] = {}
        self._tokens = 0
        self._started: dict[str, float] = {}  # a started task (moref) -> when its call started
        self._waiter: TaskWaiter | None = None

    def start(self, what: str, fn: Callable[[], Any]) -> Any:
        """Start a vSphere task; while it is being started the waiter holds its next batch open,
        so tasks started together are watched together."""
        now = time.monotonic()
        with self._lock:
            self._tokens += 1
            token = self._tokens
            self._calls[token] = now
        task = None
        try:
            task = self._call(what, fn)
            return task
        finally:
            with self._lock:
                del self._calls[token]
                if task is not None and hasattr(task, "_moId"):
                    self._started[str(task._moId)] = now

    def starting(self) -> int:
        """How many tasks are being started right now."""
        return len(self._calls)

    def siblings(self, since: float) -> bool:
        """Whether a task whose call started by `since` + SIBLING_S is still being started."""
        with self._lock:
            return any(t <= since + SIBLING_S for t in self._calls.values())

    def _started_at(self, task: Any) -> float:
        with self._lock:
            return self._started.pop(str(getattr(task, "_moId", "")), time.monotonic())

    def wait(self, tasks: Sequence[Any], read: Sequence[str] | None = None) -> list[Any]:
        """Wait for tasks; return each one's result, or a `VCenterError` for a failed one.

        All threads' tasks are watched by one waiter thread through one PropertyCollector:
        tasks that arrive together share one filter and one WaitForUpdatesEx (or, while tasks
        tend to be over by the time they are seen, one direct read), so waiting costs a few
        calls per batch of tasks, never a poll per task. With `read`, a successful task's
        result (a VM) is returned as `(moref, properties)` read in one call for the batch
        (properties None: the VM was gone by then; a `VCenterError`: the task made the VM but
        reading it failed, so the caller still knows which VM its task made).
        """
        if not tasks:
            return []
        return self.waiter().wait(tasks, read, [self._started_at(t) for t in tasks])

    def waiter(self) -> TaskWaiter:
        with self._lock:
            if self._waiter is None:
                self._waiter = TaskWaiter(
                    call=self._call,
                    new_collector=self._new_collector,
                    read=self._read,
                    timeout_s=self._timeout_s,
                    starting=self.starting,
                    siblings=self.siblings,
                )
            return self._waiter

    def stop(self) -> None:
        """Fail whatever is still waited for (the connection closed) and drop the waiter."""
        with self._lock:
            waiter, self._waiter = self._waiter, None
        if waiter is not None:
            waiter.stop()


@dataclass
class _Waiting:
    task: Any
    read: Sequence[str] | None
    deadline: float
    started: float = 0.0  # when the call that started it began (time.monotonic)
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None

    @property
    def moref(self) -> str:
        return str(self.task._moId)


@dataclass
class _Watch:
    """What the waiter thread is watching: tasks by moref, filters, task states, the version,
    and the finished tasks whose result (a VM) is still to be read."""

    outstanding: dict[str, _Waiting] = field(default_factory=dict)
    filters: dict[Any, set[str]] = field(default_factory=dict)
    state: dict[str, dict[str, Any]] = field(default_factory=dict)
    version: str = ""
    renewals: int = 0  # session renewals in a row without progress
    # Finished, successful tasks asked to read their result: (the waiting item, the VM).
    verify: list[tuple[_Waiting, Any]] = field(default_factory=list)


class TaskWaiter:
    """One thread and one PropertyCollector that wait for every thread's tasks.

    Each batch of tasks that arrive together gets one filter; one WaitForUpdatesEx serves all
    filters; a batch's filter is destroyed when its last task ends. When new tasks arrive while
    the thread is blocked in WaitForUpdatesEx, CancelWaitForUpdates wakes it (one call). The
    wait starts again from version "" after each new filter: that returns the current state of
    every filter, which is what a new filter needs and is harmless for the others.
    Tasks already over when first seen are read directly (see the module's docstring).
    """

    def __init__(
        self,
        *,
        call: Call,
        new_collector: Callable[[], Any],
        read: Read,
        timeout_s: float,
        starting: Callable[[], int],
        siblings: Callable[[float], bool] = lambda since: False,
    ) -> None:
        self._call = call
        self._new_collector = new_collector
        self._read = read
        self._timeout_s = timeout_s
        self._starting = starting  # how many tasks are being started right now
        self._siblings = siblings  # whether tasks started with a given one are still starting
        self._cond = threading.Condition()
        self._queue: list[_Waiting] = []
        self._blocked = False
        self._cancelled = False
        self._stopped = False
        self._thread: threading.Thread | None = None
        self._pc: Any = None
        self._quick = True  # read a new batch directly before watching it (see above)

    def wait(
        self, tasks: Sequence[Any], read: Sequence[str] | None, started: Sequence[float] = ()
    ) -> list[Any]:
        deadline = time.monotonic() + self._timeout_s
        at = list(started) or [0.0] * len(tasks)
        items = [_Waiting(t, read, deadline, s) for t, s in zip(tasks, at, strict=True)]
        cancel = False
        with self._cond:
            self._queue.extend(items)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="task-waiter", daemon=True)
                self._thread.start()
            if self._blocked and not self._cancelled:
                self._cancelled = cancel = True
            self._cond.notify_all()
        if cancel and self._pc is not None:
            with quiet():  # wake the waiter so it adds these tasks now
                self._pc.CancelWaitForUpdates()
        for item in items:
            item.done.wait()
        return [item.result for item in items]

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        pc, self._pc = self._pc, None
        if pc is not None:
            with quiet():
                pc.Destroy()

    # ------------------------------------------------------------------ the waiter thread
    def _run(self) -> None:
        watch = _Watch()
        while True:
            new = self._next_batch(watch)
            if new is None:
                return
            try:
                self._step(new, watch)
            except VCenterError as exc:
                self._recover(exc, watch)
            except Exception as exc:  # a bug here must not leave callers waiting forever
                log.exception("task waiter failed")
                error = VCenterError(f"internal error while waiting for tasks: {exc}")
                with self._cond:
                    queued, self._queue = self._queue, []
                _fail_all([*watch.outstanding.values(), *queued], str(error), error)
                _fail_reads(watch.verify, str(error), error)
                watch.outstanding.clear()
                watch.filters.clear()
                watch.verify.clear()
                self._pc = None
                watch.version = ""

    def _next_batch(self, watch: _Watch) -> list[_Waiting] | None:
        """The tasks that arrived since the last step (held open while more are being started:
        `_gather`), or none but VMs to read; None when the thread ends: stopped, or idle."""
        with self._cond:
            while (
                not self._queue and not watch.outstanding and not watch.verify and not self._stopped
            ):
                if not self._cond.wait(timeout=60):
                    self._thread = None  # idle: let the thread go; a new one starts on demand
                    return None
            if self._stopped:
                verifying, watch.verify = watch.verify, []
                _fail_all([*watch.outstanding.values(), *self._queue], "the connection closed")
                _fail_reads(verifying, "the connection closed")
                return None
            self._gather(watch)
            new, self._queue = self._queue, []
            self._cancelled = False
        return new

    def _gather(self, watch: _Watch) -> None:
        """Hold the queued batch (or a VM still to be read) open while tasks started with it
        are still being started (see SIBLING_S)."""
        opened = time.monotonic()
        until = opened + (QUICK_GATHER_S if self._quick else GATHER_S)
        held = self._queue or [w for w, _ in watch.verify]
        first = min((w.started or opened for w in held), default=opened)
        while (self._queue or watch.verify) and self._starting():
            if self._queue:  # tasks with a result to read (clones) are not held for siblings
                sibling = not any(w.read for w in self._queue) and self._siblings(first)
                end = max(until, opened + SIBLING_MAX_S) if self._quick and sibling else until
            elif self._quick and self._siblings(first):
                end = opened + SIBLING_MAX_S  # a VM to read: with its siblings' tasks, if soon
            else:
                return
            if (left := end - time.monotonic()) <= 0:
                return
            self._cond.wait(left)

    def _step(self, new: list[_Waiting], watch: _Watch) -> None:
        """Read the results waiting to be read and take on a new batch (one direct read for
        both, or a filter), wait once, deliver what ended."""
        verify, watch.verify = watch.verify, []
        if new and self._quick:
            new = self._collect_finished(new, watch, verify)
            if not new and not watch.outstanding:
                return
        elif verify:
            _read_results(self._read, verify)
        if new:
            pc = self._collector()
            spec = vmodl.query.PropertyCollector.FilterSpec(
                objectSet=[vmodl.query.PropertyCollector.ObjectSpec(obj=w.task) for w in new],
                propSet=[
                    vmodl.query.PropertyCollector.PropertySpec(type=vim.Task, pathSet=TASK_PROPS)
                ],
            )
            for w in new:  # tracked before the call, so a failure cannot lose them
                watch.outstanding[w.moref] = w
                watch.state.setdefault(w.moref, {})
            flt = self._call("watching tasks", partial(pc.CreateFilter, spec, True))
            watch.filters[flt] = {w.moref for w in new}
            watch.version = ""
        if not watch.outstanding:
            return  # only results were read
        finished = self._wait_once(watch.version, watch.outstanding, watch.state)
        if finished is None:
            return  # cancelled to add new tasks; keep the version
        if not watch.version and new and not self._quick:
            # Tasks that were already over when first watched: read them directly next time.
            self._quick = any(w.moref in finished[1] for w in new)
        watch.version, ended = finished
        watch.renewals = 0
        self._deliver(ended, watch)
        for flt, morefs in list(watch.filters.items()):
            if not morefs & watch.outstanding.keys():
                del watch.filters[flt]
                with quiet():
                    self._call("dropping a task filter", flt.Destroy)

    def _recover(self, exc: VCenterError, watch: _Watch) -> None:
        """After a failed step: watch the tasks again from a fresh collector when the session
        was renewed, else fail the tasks being watched."""
        if isinstance(exc, VCenterFault) and exc.fault in (
            "ManagedObjectNotFound",
            "NotAuthenticated",
        ):
            # The session was renewed: collectors and filters died with the old one.
            # Tasks live on, so watch them again from a fresh collector.
            self._pc = None
            watch.filters.clear()
            with self._cond:
                self._queue[:0] = list(watch.outstanding.values())
            watch.outstanding.clear()
            watch.state.clear()
            watch.version = ""
            watch.renewals += 1
            if watch.renewals <= 3:
                return
            with self._cond:  # the session keeps failing: give up on these tasks
                stuck, self._queue = self._queue, []
            _fail_all(stuck, str(exc), exc)
            return
        _fail_all([*watch.outstanding.values()], str(exc), exc)
        watch.outstanding.clear()
        watch.filters.clear()
        self._pc = None
        if not isinstance(exc, VCenterFault):
            watch.version = ""

    def _collect_finished(
        self, new: list[_Waiting], watch: _Watch, verify: list[tuple[_Waiting, Any]]
    ) -> list[_Waiting]:
        """Read a new batch's tasks once, and in the same call the results waiting to be read;
        deliver what finished; return the tasks still running."""
        for w in new:  # tracked before the call, so a failure cannot lose them
            watch.outstanding[w.moref] = w
            watch.state.setdefault(w.moref, {})
        try:
            rows = self._read([([w.task for w in new], TASK_PROPS), *_result_groups(verify)])
        except VCenterError as exc:
            _fail_reads(verify, str(exc), exc)
            raise
        tasks = {str(obj._moId): p for obj, p in rows if isinstance(obj, vim.Task)}
        _deliver_results(verify, {str(o._moId): p for o, p in rows if not isinstance(o, vim.Task)})
        ended: list[str] = []
        rest: list[_Waiting] = []
        for w in new:
            p = tasks.get(w.moref) or {}
            if p.get("info.state") in ("success", "error"):
                watch.state[w.moref].update(p)
                ended.append(w.moref)
            else:
                rest.append(w)
        if not ended:
            self._quick = False
        self._deliver(ended, watch)
        return rest

    def _collector(self) -> Any:
        if self._pc is None:
            self._pc = self._new_collector()
        return self._pc

    def _wait_once(
        self,
        version: str,
        outstanding: dict[str, _Waiting],
        state: dict[str, dict[str, Any]],
    ) -> tuple[str, list[str]] | None:
        pc = self._collector()
        now = time.monotonic()
        expired = [m for m, w in outstanding.items() if w.deadline <= now]
        if expired:
            return version, expired
        remaining = min(w.deadline for w in outstanding.values()) - now if outstanding else 1
        options = vmodl.query.PropertyCollector.WaitOptions(
            maxWaitSeconds=max(1, min(WAIT_S, int(remaining)))
        )
        with self._cond:
            if self._queue and version:
                return None  # new tasks arrived meanwhile: add them first
            self._blocked = True
        try:
            update = self._call("waiting for tasks", lambda: pc.WaitForUpdatesEx(version, options))
        except VCenterFault as exc:
            if exc.fault == "RequestCanceled":
                return None
            raise
        finally:
            with self._cond:
                self._blocked = False
        if update is None:
            return version, []
        ended: list[str] = []
        for fs in update.filterSet or []:
            for obj in fs.objectSet or []:
                moref = str(obj.obj._moId)
                if moref not in outstanding:
                    continue
                for change in obj.changeSet or []:
                    state[moref][change.name] = change.val
                if state[moref].get("info.state") in ("success", "error"):
                    ended.append(moref)
        return update.version, ended

    def _deliver(self, ended: list[str], watch: _Watch) -> None:
        """Hand each ended task its result; a successful one whose result is to be read waits
        in `watch.verify` for the next read (with the next batch's tasks, when there is one)."""
        for moref in ended:
            st = watch.state.pop(moref, {})
            w = watch.outstanding.pop(moref)
            if st.get("info.state") == "success":
                result = st.get("info.result")
                if w.read is not None and result is not None:
                    watch.verify.append((w, result))
                    continue
                w.result = result
            elif st.get("info.state") == "error":
                w.result = fault_error(st.get("info.error"), f"task {moref}")
            else:
                w.result = VCenterFault(
                    f"Task {moref} did not finish within {self._timeout_s:.0f} s.",
                    "Timedout",
                    transient=True,
                )
            w.done.set()


def _result_groups(verify: list[tuple[_Waiting, Any]]) -> list[tuple[Sequence[Any], list[str]]]:
    """The VMs to read, grouped by the properties asked for."""
    groups: dict[tuple[str, ...], list[Any]] = {}
    for w, vm in verify:
        groups.setdefault(tuple(w.read or ()), []).append(vm)
    return [(vms, list(paths)) for paths, vms in groups.items()]


def _deliver_results(verify: list[tuple[_Waiting, Any]], props: dict[str, dict[str, Any]]) -> None:
    """Each task's result as `(vm moref, its properties)` (None: the VM was gone by then)."""
    for w, vm in verify:
        moref = str(vm._moId)
        w.result = (moref, props.get(moref))
        w.done.set()


def _fail_all(items: Sequence[_Waiting], why: str, exc: VCenterError | None = None) -> None:
    """Each of these waits ends with `exc` (or vCenter unreachable, saying why)."""
    for w in items:
        w.result = exc or VCenterUnreachable(why)
        w.done.set()


def _fail_reads(
    verify: Sequence[tuple[_Waiting, Any]], why: str, exc: VCenterError | None = None
) -> None:
    """These tasks made their VMs but reading them failed: each one's result is `(moref, the
    error)` (vCenter unreachable, saying why, when no error is given)."""
    for w, vm in verify:
        w.result = (str(vm._moId), exc or VCenterUnreachable(why))
        w.done.set()


def _read_results(read: Read, verify: list[tuple[_Waiting, Any]]) -> None:
    """Read the VMs finished tasks produced (one call) and deliver them; a failed read is each
    one's result, beside its VM's moref."""
    try:
        rows = read(_result_groups(verify))
    except VCenterError as exc:
        _fail_reads(verify, str(exc), exc)
        return
    _deliver_results(verify, {str(obj._moId): p for obj, p in rows})
