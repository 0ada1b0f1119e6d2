"""How many operations vCenter gets at once: `concurrency` clone tasks in all, at most
`max_ops_per_host` on any one host and `max_ops_per_datastore` on any one datastore.

vSphere limits provisioning per host and per datastore (vCenter as a whole takes hundreds at
once), so a wide cluster can run more clones at once than one host should. A clone takes a
ticket for its placement (the host the bot put it on, its type's datastore) before its
`CloneVM_Task` and gives it back once vCenter has made it; a power operation counts on its host,
a destroy on its host and datastore (`host_op`); `power_batches` splits a power command's clones
into batches that keep to `concurrency` and `max_ops_per_host`.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from bot.domain.models import Clone
    from bot.settings import Settings

T = TypeVar("T")


class OpLimits:
    """Tickets for operations, waited for until every limit they count against has room."""

    def __init__(self, total: int, per_host: int, per_datastore: int) -> None:
        self.total = total
        self.per_host = per_host
        self.per_datastore = per_datastore
        self._cond = threading.Condition()
        self._clones = 0  # clone tasks in vCenter (the `concurrency` slots)
        self._hosts: Counter[str] = Counter()
        self._datastores: Counter[str] = Counter()
        self.most_on_a_host = 0  # the most operations seen at once on one host
        self.waiting = 0  # operations waiting for room now

    @classmethod
    def of(cls, settings: Settings) -> OpLimits:
        return cls(settings.concurrency, settings.max_ops_per_host, settings.max_ops_per_datastore)

    def clone(self, host: str, datastore: str) -> Ticket:
        """A clone's ticket: one of `concurrency`, one on its host, one on its datastore."""
        return Ticket(self, host, datastore, clone=True)

    def host_op(self, host: str, datastore: str = "") -> Ticket:
        """A power operation's ticket (one on its host), or a destroy's (one on its host and
        one on its datastore)."""
        return Ticket(self, host, datastore, clone=False)

    def _take(self, t: Ticket) -> None:
        with self._cond:
            if not self._room(t):
                self.waiting += 1
                self._cond.notify_all()  # for `wait_for_waiting`
                while not self._room(t):
                    self._cond.wait()
                self.waiting -= 1
            self._clones += t.is_clone
            self._hosts[t.host] += 1
            if t.datastore:
                self._datastores[t.datastore] += 1
            self.most_on_a_host = max(self.most_on_a_host, self._hosts[t.host])

    def wait_for_waiting(self, n: int, timeout_s: float) -> bool:
        """Wait until `n` operations wait for room (how a test sees a full host without
        sleeping); False if that did not happen within `timeout_s`."""
        with self._cond:
            return self._cond.wait_for(lambda: self.waiting >= n, timeout=timeout_s)

    def _room(self, t: Ticket) -> bool:
        if t.is_clone and self._clones >= self.total:
            return False
        if self._hosts[t.host] >= self.per_host:
            return False
        return not t.datastore or self._datastores[t.datastore] < self.per_datastore

    def _give_back(self, t: Ticket) -> None:
        with self._cond:
            self._clones -= t.is_clone
            self._hosts[t.host] -= 1
            if t.datastore:
                self._datastores[t.datastore] -= 1
            self._cond.notify_all()


class Ticket:
    """Room for one operation: `acquire` waits for it, `release` gives it back (also a context
    manager)."""

    def __init__(self, limits: OpLimits, host: str, datastore: str, *, clone: bool) -> None:
        self.limits = limits
        self.host = host
        self.datastore = datastore
        self.is_clone = clone

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


def power_batches(
    items: Sequence[T], host_of: Callable[[T], str], *, total: int, per_host: int
) -> list[list[T]]:
    """`items` in batches of at most `total`, each with at most `per_host` on any one host
    (`host_of`), in order: an item that does not fit a batch goes to a later one."""
    out: list[list[T]] = []
    left = list(items)
    while left:
        batch: list[T] = []
        on_host: Counter[str] = Counter()
        rest: list[T] = []
        for item in left:
            host = host_of(item)
            if len(batch) < total and on_host[host] < per_host:
                batch.append(item)
                on_host[host] += 1
            else:
                rest.append(item)
        out.append(batch)
        left = rest
    return out


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
