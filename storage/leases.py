"""Leases and fences: which bot leads (runs the schedules and the start-up recovery), which bots
are up, and the checks that refuse a write made under a lease or a run that is no longer held.

A lease is a row: its holder (a process's `host:pid:token`), an epoch raised by every takeover,
and when it expires (Unix seconds by the holder's clock; see docs/operations.md on clocks). The
holder renews it well within `lease_s`; another bot takes it only once it has expired, raising
the epoch. Every write made as the leader carries a `Fence` with the epoch it was decided under,
and is checked in the write's own transaction (`check_fence`), so a leader that was paused or cut
off and comes back can never write after another took over.

Portable SQL only (SQLite and PostgreSQL alike): upserts with `ON CONFLICT`, compare-and-set
UPDATEs whose row count says who won, no dialect functions (times come from Python). The fence
check is an UPDATE that changes nothing (`SET epoch = epoch`): on PostgreSQL it locks the lease
row until the write commits, so a takeover waits for a write already checked (and a write after
the takeover is refused); SQLite's single writer gives the same order, and so does PostgreSQL's
write lock (storage/postgres.py: every write transaction takes it). Lease writes are durable
(`transaction(durable=True)`): on PostgreSQL a takeover's new epoch, a renewal or a release
survives a crash of the database server's machine too.
"""

from __future__ import annotations

from typing import Any

from bot.domain.errors import Fenced
from bot.domain.models import Fence, Lease, RunState
from storage.core import Core


def lease_record(row: dict[str, Any]) -> Lease:
    return Lease(
        name=row["name"],
        holder=row["holder"],
        epoch=int(row["epoch"]),
        expires_at=float(row["expires_at"]),
        renewed_at=float(row["renewed_at"]),
    )


def check_fence(core: Core, fence: Fence | None) -> None:
    """Raise Fenced unless `fence` still holds: its lease has the same holder and epoch, and its
    run is still running under its owner. Call inside the caller's write transaction."""
    if fence is None:
        return
    if fence.lease:
        held = core._execute(
            "UPDATE leases SET epoch = epoch WHERE name = ? AND holder = ? AND epoch = ?",
            (fence.lease, fence.holder, fence.epoch),
        )
        if held.rowcount != 1:
            now = core._row("SELECT * FROM leases WHERE name = ?", (fence.lease,))
            who = (
                f"epoch {now['epoch']} held by {now['holder'] or 'nobody'}"
                if now is not None
                else "no lease"
            )
            raise Fenced(
                f"Refused: this process no longer leads (it acted under lease "
                f"{fence.lease!r} epoch {fence.epoch}; the database has {who}). Another bot "
                "runs the schedules now; nothing was written."
            )
    if fence.run_id is not None:
        owned = core._execute(
            "UPDATE runs SET owner = owner WHERE id = ? AND owner = ? AND state = ?",
            (fence.run_id, fence.owner, RunState.RUNNING.value),
        )
        if owned.rowcount != 1:
            row = core._row(
                "SELECT state, owner, superseded_by FROM runs WHERE id = ?", (fence.run_id,)
            )
            why = "it is gone"
            if row is not None and row["superseded_by"] is not None:
                why = f"another process took it over as run {row['superseded_by']}"
            elif row is not None and row["owner"] != fence.owner:
                why = f"it is {row['state']}, owned by {row['owner']}"
            elif row is not None:
                why = f"it is {row['state']}"
            raise Fenced(
                f"Refused: run {fence.run_id} is no longer this process's ({why}); nothing was "
                "written, and this process stops working on it."
            )


def fence_condition(fence: Fence | None) -> tuple[str, list[object]]:
    """`check_fence` as a condition for a write's own WHERE (" AND ..." and its parameters), so
    a fenced one-row write is one statement: when it writes no row, `check_fence` in the same
    transaction says whether the fence is why. Inside a write transaction nobody else writes
    (SQLite's single writer, PostgreSQL's write lock), so the rows it reads cannot change
    before the commit."""
    if fence is None:
        return "", []
    sql, params = "", list[object]()
    if fence.lease:
        sql += " AND EXISTS (SELECT 1 FROM leases WHERE name = ? AND holder = ? AND epoch = ?)"
        params += [fence.lease, fence.holder, fence.epoch]
    if fence.run_id is not None:
        sql += " AND EXISTS (SELECT 1 FROM runs WHERE id = ? AND owner = ? AND state = ?)"
        params += [fence.run_id, fence.owner, RunState.RUNNING.value]
    return sql, params


class LeaseStore(Core):
    """Implements `bot.ports.Leases`."""

    def get_lease(self, name: str) -> Lease | None:
        row = self._row("SELECT * FROM leases WHERE name = ?", (name,))
        return lease_record(row) if row else None

    def acquire_lease(
        self, name: str, holder: str, ttl_s: float, now: float, *, dead: str = ""
    ) -> Lease | None:
        """Take lease `name` for `holder` when it is free (never held, released or expired, or
        held by `dead`: a holder the caller knows has died), with a new epoch; renew it when
        `holder` holds it already. None while another holds it. Compare-and-set: of two bots
        racing, one UPDATE changes the row."""
        with self.transaction(durable=True):
            created = self._execute(
                "INSERT INTO leases (name, holder, epoch, expires_at, renewed_at)"
                " VALUES (?, ?, 1, ?, ?) ON CONFLICT (name) DO NOTHING",
                (name, holder, now + ttl_s, now),
            )
            if created.rowcount == 1:
                return self.get_lease(name)
            current = self.get_lease(name)
            assert current is not None
            if current.holder == holder and not current.expired(now):
                changed = self._execute(
                    "UPDATE leases SET expires_at = ?, renewed_at = ?"
                    " WHERE name = ? AND holder = ? AND epoch = ?",
                    (now + ttl_s, now, name, holder, current.epoch),
                )
            elif current.expired(now) or (dead and current.holder == dead):
                changed = self._execute(
                    "UPDATE leases SET holder = ?, epoch = epoch + 1, expires_at = ?,"
                    " renewed_at = ? WHERE name = ? AND epoch = ?",
                    (holder, now + ttl_s, now, name, current.epoch),
                )
            else:
                return None
            return self.get_lease(name) if changed.rowcount == 1 else None

    def renew_lease(self, name: str, holder: str, epoch: int, ttl_s: float, now: float) -> bool:
        """Extend `holder`'s lease under `epoch`; False (nothing written) once another bot took
        it over (a newer epoch) or it was released."""
        with self.transaction(durable=True):
            changed = self._execute(
                "UPDATE leases SET expires_at = ?, renewed_at = ?"
                " WHERE name = ? AND holder = ? AND epoch = ?",
                (now + ttl_s, now, name, holder, epoch),
            )
            return changed.rowcount == 1

    def release_lease(self, name: str, holder: str, epoch: int) -> None:
        """Give the lease up (a clean stop): another bot may take it at once."""
        with self.transaction(durable=True):
            self._execute(
                "UPDATE leases SET holder = '', expires_at = 0 WHERE name = ? AND holder = ?"
                " AND epoch = ?",
                (name, holder, epoch),
            )

    def mark_bot(self, owner: str, now: float) -> None:
        """Say that bot `owner` is up (leading or standing by) at `now` (and forget bots not
        heard of for a day: killed ones never said goodbye)."""
        self._execute("DELETE FROM bots WHERE seen_at < ?", (now - 86400.0,))
        self._execute(
            "INSERT INTO bots (owner, seen_at) VALUES (?, ?)"
            " ON CONFLICT (owner) DO UPDATE SET seen_at = excluded.seen_at",
            (owner, now),
        )

    def bots_seen(self, since: float) -> list[str]:
        """The bots that said they were up at `since` or later."""
        rows = self._rows("SELECT owner FROM bots WHERE seen_at >= ? ORDER BY owner", (since,))
        return [row["owner"] for row in rows]

    def forget_bot(self, owner: str) -> None:
        self._execute("DELETE FROM bots WHERE owner = ?", (owner,))
