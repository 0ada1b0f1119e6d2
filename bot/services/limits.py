"""How many operations vCenter gets at once from this process: `concurrency` clone tasks in all,
at most `max_ops_per_host` on any one host and `max_ops_per_datastore` on any one datastore.

vSphere limits provisioning per host and per datastore (vCenter as a whole takes hundreds at
once), so a wide cluster can run more clones at once than one host should. One `OpLimits` serves
every run of the process (built once, by `bot.bootstrap`): deployments, strip backs, refreshes,
rebuilds, power commands, bring-up and scheduled runs all take their room from it, because
vCenter's limits are per host whoever asks.

A clone takes a ticket for its placement (the host the bot put it on, its type's datastore)
before its `CloneVM_Task` and gives it back once vCenter has made it; a power operation counts
on its host, a destroy on its host and datastore (`host_op`).

Fair shares between runs: a ticket names its owner (a run), and room that frees goes to the
waiting ticket whose owner has the fewest operations in flight (the oldest first among equals),
so a 4-clone run started beside a 300-clone run gets its share at once instead of queueing behind
it. An owner with operations waiting and none in flight is queued behind other runs: the ticket's
`on_queued` hears of it (and of its end), so the run's progress can say it waits for vCenter
capacity instead of looking stuck.

When the user stops the process (`halt`: Ctrl-C or SIGTERM in the terminal), every ticket that
waits, and every one asked for later, raises `Interrupted`: the operation never starts.
"""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from collections.abc import Callable, Hashable
from dataclasses import KW_ONLY, dataclass, field
from typing import TYPE_CHECKING

from bot.domain.errors import Interrupted

if TYPE_CHECKING:
    from bot.domain.models import Clone
    from bot.settings import Settings


# Told whether its owner is queued behind other runs now (with why), and an ordinal: a report
# with a lower ordinal than one already heard is stale (reports are made outside the lock).
OnQueued = Callable[[bool, str, int], None]


class OpLimits:
    """Tickets for operations, granted while every limit they count against has room, fairly
    between their owners."""

    def __init__(self, total: int, per_host: int, per_datastore: int) -> None:
        self.total = total
        self.per_host = per_host
        self.per_datastore = per_datastore
        self._cond = threading.Condition()
        self._clones = 0  # clone tasks in vCenter (the `concurrency` slots)
        self._hosts: Counter[str] = Counter()
        self._datastores: Counter[str] = Counter()
        self._queue: list[Ticket] = []  # waiting, oldest first
        self._owners: Counter[Hashable] = Counter()  # operations in flight by owner
        # Owners queued now (operations waiting, none in flight), with whom to tell of its end.
        self._queued: dict[Hashable, OnQueued | None] = {}
        self._order = itertools.count(1)
        self._halted = ""  # why the process stopped starting operations ("" while it runs)
        self.most_on_a_host = 0  # the most operations seen at once on one host

    @classmethod
    def of(cls, settings: Settings) -> OpLimits:
        return cls(settings.concurrency, settings.max_ops_per_host, settings.max_ops_per_datastore)

    def clone(
        self,
        host: str,
        datastore: str,
        *,
        owner: Hashable = None,
        on_queued: OnQueued | None = None,
    ) -> Ticket:
        """A clone's ticket: one of `concurrency`, one on its host, one on its datastore."""
        return Ticket(self, host, datastore, is_clone=True, owner=owner, on_queued=on_queued)

    def host_op(
        self,
        host: str,
        datastore: str = "",
        *,
        owner: Hashable = None,
        on_queued: OnQueued | None = None,
    ) -> Ticket:
        """A power operation's ticket (one on its host), or a destroy's (one on its host and
        one on its datastore)."""
        return Ticket(self, host, datastore, is_clone=False, owner=owner, on_queued=on_queued)

    @property
    def waiting(self) -> int:
        """Operations waiting for room now."""
        with self._cond:
            return len(self._queue)

    def in_flight(self) -> int:
        """Operations holding a ticket now (of every run)."""
        with self._cond:
            return sum(self._owners.values())

    def halt(self, why: str) -> None:
        """Start nothing more: waiting tickets, and tickets asked for from now on, raise
        `Interrupted` (`why`: what stopped the process, e.g. "Ctrl-C")."""
        with self._cond:
            self._halted = why or "stopped"
            for t in self._queue:
                t.state = "halted"
            self._queue.clear()
            self._queued.clear()  # nobody waits any more: nothing more to tell
            self._cond.notify_all()

    def wait_for_waiting(self, n: int, timeout_s: float) -> bool:
        """Wait until `n` operations wait for room (how a test sees a full host without
        sleeping); False if that did not happen within `timeout_s`."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self._queue) >= n, timeout=timeout_s)

    def _room(self, t: Ticket) -> bool:
        if t.is_clone and self._clones >= self.total:
            return False
        if self._hosts[t.host] >= self.per_host:
            return False
        return not t.datastore or self._datastores[t.datastore] < self.per_datastore

    def _why_waiting(self, t: Ticket) -> str:
        if t.is_clone and self._clones >= self.total:
            return f"all {self.total} clone tasks (concurrency) are in use"
        if self._hosts[t.host] >= self.per_host:
            return f"{t.host} has {self.per_host} operations in flight (max_ops_per_host)"
        if t.datastore and self._datastores[t.datastore] >= self.per_datastore:
            return (
                f"{t.datastore} has {self.per_datastore} operations in flight "
                "(max_ops_per_datastore)"
            )
        return "other runs' operations go first"

    def _take(self, t: Ticket) -> None:
        with self._cond:
            if self._halted:
                raise Interrupted(self._halted)
            t.state = "waiting"
            t.order = next(self._order)
            self._queue.append(t)
            self._cond.notify_all()  # for `wait_for_waiting`
            self._dispatch()
            if t.state == "waiting":
                t.why = self._why_waiting(t)
            reports = self._reports()
        _tell(reports)
        with self._cond:
            while t.state == "waiting":
                self._cond.wait()
            if t.state == "halted":
                raise Interrupted(self._halted)
            reports = self._reports()
        _tell(reports)

    def _dispatch(self) -> None:
        """Grant room to waiting tickets while there is some: each time to the one whose owner
        has the fewest operations in flight, the oldest first among equals. (Under the lock.)"""
        while True:
            best: Ticket | None = None
            for t in self._queue:
                if self._room(t) and (
                    best is None
                    or (self._owners[t.owner], t.order) < (self._owners[best.owner], best.order)
                ):
                    best = t
            if best is None:
                return
            self._queue.remove(best)
            self._grant(best)

    def _grant(self, t: Ticket) -> None:
        t.state = "granted"
        self._clones += t.is_clone
        self._hosts[t.host] += 1
        if t.datastore:
            self._datastores[t.datastore] += 1
        self._owners[t.owner] += 1
        self.most_on_a_host = max(self.most_on_a_host, self._hosts[t.host])
        self._cond.notify_all()

    def _give_back(self, t: Ticket) -> None:
        with self._cond:
            self._clones -= t.is_clone
            self._hosts[t.host] -= 1
            if t.datastore:
                self._datastores[t.datastore] -= 1
            self._owners[t.owner] -= 1
            if not self._owners[t.owner]:
                del self._owners[t.owner]
            t.state = "released"
            self._dispatch()
            reports = self._reports()
            self._cond.notify_all()
        _tell(reports)

    def _reports(self) -> list[tuple[OnQueued, bool, str, int]]:
        """Owners whose being queued (operations waiting, none in flight) changed: what to tell
        them, told once the lock is released. (Under the lock.)"""
        waiting: dict[Hashable, Ticket] = {}
        for t in self._queue:
            waiting.setdefault(t.owner, t)
        out: list[tuple[OnQueued, bool, str, int]] = []
        for owner, first in waiting.items():
            if owner not in self._queued and not self._owners[owner]:
                self._queued[owner] = first.on_queued  # queued now
                if first.on_queued is not None:
                    out.append((first.on_queued, True, first.why, next(self._order)))
        for owner in [o for o in self._queued if o not in waiting or self._owners[o]]:
            listener = self._queued.pop(owner)  # no longer queued
            if listener is not None:
                out.append((listener, False, "", next(self._order)))
        return out


def _tell(reports: list[tuple[OnQueued, bool, str, int]]) -> None:
    for listener, queued, why, order in reports:
        listener(queued, why, order)


@dataclass(eq=False)  # a ticket is itself, never equal to another with the same fields
class Ticket:
    """Room for one operation: `acquire` waits for it (raising `Interrupted` when the process
    stops starting operations), `release` gives it back (also a context manager)."""

    limits: OpLimits
    host: str
    datastore: str
    _: KW_ONLY
    is_clone: bool
    owner: Hashable = None
    on_queued: OnQueued | None = None
    state: str = field(default="new", init=False)  # waiting, granted, released or halted
    order: int = field(default=0, init=False)
    why: str = field(default="", init=False)

    def acquire(self) -> None:
        self.limits._take(self)

    def release(self) -> None:
        self.limits._give_back(self)

    def __enter__(self) -> Ticket:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def place_key(host: str | None, resource_pool: str) -> str:
    """The host an operation counts on: the host the bot placed it on, else its resource pool
    as one (a standalone host, or a cluster where vCenter places clones because the per-host
    limit cannot be reached)."""
    return host or f"pool:{resource_pool}"


def may_crowd_a_host(settings: Settings, *, power_on: bool = False) -> bool:
    """More operations may run at once in all than one host may take (`concurrency` clone
    tasks, and as many power-ons beside them for a deployment that powers on): the host of each
    one must be known (the bot places clones, and reads a VM's host before destroying it)."""
    in_flight = settings.concurrency * (2 if power_on else 1)
    return settings.max_ops_per_host < in_flight


def clone_host(settings: Settings, clone: Clone, seen_on: str = "") -> str:
    """The host an operation on a recorded clone counts on: where it was last seen (`seen_on`),
    else its recorded host, else its type's resource pool (a type gone from the configuration:
    the type's name)."""
    t = settings.types.get(clone.type)
    return place_key(seen_on or clone.host, t.resource_pool if t else f"type:{clone.type}")


def clone_datastore(settings: Settings, clone: Clone) -> str:
    """The datastore a recorded clone's disks are on (its type's; "" for a type gone from the
    configuration: not counted)."""
    t = settings.types.get(clone.type)
    return t.datastore if t else ""
