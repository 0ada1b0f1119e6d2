"""How many operations vCenter gets at once: `concurrency` clone tasks in all, at most
`max_ops_per_host` on any one host and `max_ops_per_datastore` on any one datastore.

vSphere limits provisioning per host and per datastore (vCenter as a whole takes hundreds at
once), so a wide cluster can run more clones at once than one host should. A clone takes a
ticket for its placement (the host the bot put it on, its type's datastore) before its
`CloneVM_Task` and gives it back once vCenter has made it; a power-on counts on its host only.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.settings import Settings


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

    @classmethod
    def of(cls, settings: Settings) -> OpLimits:
        return cls(settings.concurrency, settings.max_ops_per_host, settings.max_ops_per_datastore)

    def clone(self, host: str, datastore: str) -> Ticket:
        """A clone's ticket: one of `concurrency`, one on its host, one on its datastore."""
        return Ticket(self, host, datastore, clone=True)

    def power(self, host: str) -> Ticket:
        """A power operation's ticket: one on its host."""
        return Ticket(self, host, "", clone=False)

    def _take(self, t: Ticket) -> None:
        with self._cond:
            while not self._room(t):
                self._cond.wait()
            self._clones += t.is_clone
            self._hosts[t.host] += 1
            if t.datastore:
                self._datastores[t.datastore] += 1
            self.most_on_a_host = max(self.most_on_a_host, self._hosts[t.host])

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
