"""Leadership through the database: one bot at a time runs the schedules and the start-up
recovery, on any number of machines sharing one database (SQLite, or PostgreSQL).

The leader holds the `scheduler` lease row (storage/leases.py) and renews it every third of
`lease_s`; a bot standing by tries it as often and takes it once it has expired (a new epoch).
A leader that cannot renew (paused, cut off, its database unreachable) stops counting itself
leader `lease_s` after its last renewal by its own monotonic clock, before any other bot may take
the lease (which waits `lease_s` by the expiry the leader wrote). A leader of this same machine
whose process has certainly ended (killed, crashed) is taken over at once, as the file lock of
earlier versions was released by the kernel. That is timing; safety does not
rest on it: every write made as leader carries the `Fence` of the epoch it was decided under and
is refused in its own transaction once another bot holds a newer one (docs/operations.md).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable

from bot.domain.models import Fence, Lease
from bot.host import owner_gone, process_owner
from bot.ports import Leases

log = logging.getLogger("clones.leadership")

SCHEDULER_LEASE = "scheduler"


class Leadership:
    """`bot.ports.Leadership` on a lease row. Two objects never share a holder name (a token
    each), so two in one process contend like two bots (as the tests show)."""

    def __init__(
        self,
        leases: Leases,
        *,
        lease_s: float = 30.0,
        name: str = SCHEDULER_LEASE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.leases = leases
        self.lease_s = lease_s
        self.name = name
        self.owner = f"{process_owner()}:{uuid.uuid4().hex[:6]}"
        self.clock = clock
        self._guard = threading.Lock()
        self._epoch = 0  # the epoch held, 0 when not held
        self._renewed = 0.0  # time.monotonic() of the last renewal that the database took
        self._ever = 0  # the last epoch this object held (for the fence once it is lost)
        self._bot = False  # mark_bot() ran: this process is a bot
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        # Called by the lease thread: when leadership is lost (with the reason), and, while
        # standing by, every renewal interval (the keeper tries the lease then).
        self.on_lost: Callable[[str], None] | None = None
        self.on_vacant: Callable[[], None] | None = None

    # ------------------------------------------------------------------ the port
    @property
    def where(self) -> str:
        return f"lease {self.name!r}"

    @property
    def held(self) -> bool:
        """True while this object holds the lease and renewed it less than `lease_s` ago."""
        with self._guard:
            return bool(self._epoch) and time.monotonic() - self._renewed < self.lease_s

    @property
    def epoch(self) -> int:
        with self._guard:
            return self._epoch

    @property
    def interval_s(self) -> float:
        return max(self.lease_s / 3.0, 0.05)

    def acquire(self) -> bool:
        """Hold the lease (renewed when held already); False while another bot holds it."""
        mono = time.monotonic()
        with self._guard:
            epoch = self._epoch or self._ever
        if epoch and self.leases.renew_lease(
            self.name, self.owner, epoch, self.lease_s, self.clock()
        ):
            self._held_at(epoch, mono)
            return True
        current = self.leases.get_lease(self.name)
        dead = current.holder if current is not None and self._dead(current.holder) else ""
        lease = self.leases.acquire_lease(
            self.name, self.owner, self.lease_s, self.clock(), dead=dead
        )
        if lease is None:
            return False
        self._held_at(lease.epoch, mono)
        log.info("leading: %s epoch %d taken by %s", self.where, lease.epoch, self.owner)
        self._start_thread()
        return True

    def _held_at(self, epoch: int, mono: float) -> None:
        with self._guard:
            self._epoch = self._ever = epoch
            self._renewed = mono

    def lease(self) -> Lease | None:
        return self.leases.get_lease(self.name)

    def _dead(self, holder: str) -> bool:
        """True when `holder` certainly ended: a process of this machine that is gone (killed,
        crashed, restarted), whose lease need not be waited out. Never another object of this
        very process (tests run two bots in one)."""
        host, pid, token = ([*holder.split(":"), "", "", ""])[:3]
        if not holder or token == self.owner.split(":")[2]:
            return False
        return owner_gone(f"{host}:{pid}:{token}")

    def _live(self, lease: Lease | None) -> bool:
        return (
            lease is not None and not lease.expired(self.clock()) and not self._dead(lease.holder)
        )

    def holder(self) -> str:
        """Who holds the lease now ("" when nobody does)."""
        lease = self.lease()
        return lease.holder if lease is not None and self._live(lease) else ""

    def is_held_elsewhere(self) -> bool:
        lease = self.lease()
        return lease is not None and self._live(lease) and lease.holder != self.owner

    def fence(self) -> Fence:
        """The lease as this object holds it (or last held it): what its writes are checked
        against. Epoch 0 (never held) is refused by every check."""
        with self._guard:
            return Fence(self.name, self.owner, self._epoch or self._ever)

    def lease_age(self) -> float | None:
        """Seconds since this object last renewed the lease (None: not held)."""
        with self._guard:
            return time.monotonic() - self._renewed if self._epoch else None

    def mark_bot(self) -> None:
        """This process is a bot (leading or standing by): said in the `bots` table every
        renewal interval, which the lease thread keeps doing from now on."""
        self._bot = True
        self.leases.mark_bot(self.owner, self.clock())
        self._start_thread()

    def bots_elsewhere(self) -> bool:
        """True while another bot said it was up within the last `lease_s`."""
        since = self.clock() - self.lease_s
        return any(owner != self.owner for owner in self.leases.bots_seen(since))

    def release(self) -> None:
        """Give the lease up (another bot may take it at once) and stop saying this bot is up."""
        self._stop.set()
        with self._guard:
            epoch, self._epoch = self._epoch, 0
        try:
            if epoch:
                self.leases.release_lease(self.name, self.owner, epoch)
            if self._bot:
                self.leases.forget_bot(self.owner)
        except Exception:  # the lease then expires by itself
            log.exception("could not release %s", self.where)
        self._bot = False

    # ------------------------------------------------------------------ the lease thread
    def _start_thread(self) -> None:
        with self._guard:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="lease", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.tick()
            except Exception:  # the database away: held lapses by itself after lease_s
                log.exception("renewing %s failed", self.where)

    def tick(self) -> None:
        """One renewal: the leader renews (or learns it lost the lease); a bot standing by
        says it is up and hands over to `on_vacant` (which tries the lease)."""
        now = self.clock()
        if self._bot:
            self.leases.mark_bot(self.owner, now)
        with self._guard:
            epoch = self._epoch
        if epoch:
            mono = time.monotonic()
            if self.leases.renew_lease(self.name, self.owner, epoch, self.lease_s, now):
                self._held_at(epoch, mono)
                return
            self._lost(epoch)
        elif self._bot and self.on_vacant is not None and not self.is_held_elsewhere():
            self.on_vacant()

    def _lost(self, epoch: int) -> None:
        with self._guard:
            if self._epoch != epoch:
                return
            self._epoch = 0
        lease = self.lease()
        now = f"epoch {lease.epoch} held by {lease.holder}" if lease else "no lease"
        reason = (
            f"Refused: renewing {self.where} epoch {epoch} as {self.owner} (the database has "
            f"{now}); this bot no longer leads and stands by."
        )
        log.warning("fenced: %s", reason)
        if self.on_lost is not None:
            self.on_lost(reason)
