"""Assignments: which trainee holds which clone, from `assign` to unassign, replacement or the
clone leaving `ready` for good (a trigger, migration m012, ends an assignment in the same
statement in which its clone is destroyed, found missing or failed), and whether the trainee
was told."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Final

from bot.domain.errors import ConflictError
from bot.domain.models import Assignment, CloneState
from storage.core import Core
from storage.environments import require_environment
from storage.faults import IntegrityViolation
from storage.sql import Where, from_text, placeholders, to_text, utc_now

_SELECT: Final = (
    "SELECT a.*, c.name AS clone_name FROM assignments a JOIN clones c ON c.id = a.clone_id"
)


def assignment_record(row: dict[str, Any]) -> Assignment:
    return Assignment(
        id=row["id"],
        environment=row["environment"],
        trainee=row["trainee"],
        clone_id=row["clone_id"],
        clone_name=row["clone_name"],
        assigned_by=row["assigned_by"],
        assigned_at=from_text(row["assigned_at"]),
        handed_out_at=from_text(row["handed_out_at"]),
        ended_at=from_text(row["ended_at"]),
        ended_reason=row["ended_reason"] or "",
        told_at=from_text(row["told_at"]),
    )


class AssignmentStore(Core):
    """Implements `bot.ports.Assignments`."""

    def assign(
        self,
        *,
        environment: str,
        pairs: Sequence[tuple[str, int]],
        assigned_by: str,
        replacing: Iterable[int] = (),
    ) -> list[Assignment]:
        """In one transaction: end the assignments `replacing` (reason "replaced"), then record
        each (trainee, clone id) pair. ConflictError, and nothing recorded, when a clone is not
        a ready clone of the environment or a clone or trainee was taken meanwhile."""
        now = to_text(utc_now())
        with self.transaction():
            require_environment(self, environment)
            ended = list(replacing)
            if ended:
                self._execute(
                    "UPDATE assignments SET ended_at = ?, ended_reason = 'replaced'"
                    f" WHERE id IN ({placeholders(ended)}) AND ended_at IS NULL",
                    [now, *ended],
                )
            ids = []
            for trainee, clone_id in pairs:
                clone = self._row(
                    "SELECT name, state, environment FROM clones WHERE id = ?", (clone_id,)
                )
                if (
                    clone is None
                    or clone["environment"] != environment
                    or clone["state"] != CloneState.READY.value
                ):
                    raise ConflictError(
                        f"A clone of {environment} stopped being ready while VMs were being "
                        "assigned; nothing was assigned. Run the command again."
                    )
                try:
                    ids.append(
                        self._insert(
                            "INSERT INTO assignments"
                            " (environment, trainee, clone_id, assigned_by, assigned_at)"
                            " VALUES (?, ?, ?, ?, ?)",
                            (environment, trainee, clone_id, assigned_by, now),
                        )
                    )
                except IntegrityViolation:
                    raise ConflictError(
                        f"{clone['name']} or its trainee was assigned by someone else meanwhile; "
                        "nothing was assigned. Run the command again."
                    ) from None
            return self._by_ids(ids)

    def assignments(
        self,
        *,
        environment: str | None = None,
        trainee: str | None = None,
        clone_ids: Iterable[int] | None = None,
        active: bool | None = True,
    ) -> list[Assignment]:
        """Assignments (active ones by default; `active=None`: all), by clone name."""
        where = (
            Where()
            .equal("a.environment", environment)
            .equal("a.trainee", trainee)
            .among("a.clone_id", clone_ids)
        )
        if active is not None:
            where.holds("a.ended_at IS NULL" if active else "a.ended_at IS NOT NULL")
        if where.nothing:
            return []
        rows = self._rows(f"{_SELECT}{where} ORDER BY c.name, a.id", where.params)
        return [assignment_record(row) for row in rows]

    def holds_assignment(self, trainee: str) -> bool:
        """True when `trainee` holds an active assignment anywhere."""
        row = self._row(
            "SELECT 1 FROM assignments WHERE trainee = ? AND ended_at IS NULL LIMIT 1", (trainee,)
        )
        return row is not None

    def end_assignments(self, ids: Iterable[int], *, reason: str) -> list[Assignment]:
        """End these assignments (those still active); returns the ones ended now."""
        wanted = list(ids)
        if not wanted:
            return []
        with self.transaction():
            active = [a.id for a in self._by_ids(wanted) if a.active]  # ended meanwhile: not again
            if active:
                self._execute(
                    "UPDATE assignments SET ended_at = ?, ended_reason = ?"
                    f" WHERE id IN ({placeholders(active)})",
                    [to_text(utc_now()), reason, *active],
                )
            return self._by_ids(active)

    def mark_handed_out(self, assignment_id: int) -> None:
        self._execute(
            "UPDATE assignments SET handed_out_at = ? WHERE id = ?",
            (to_text(utc_now()), assignment_id),
        )

    def untold_removals(self) -> list[Assignment]:
        """Assignments ended because their clone left `ready` for good (removed, missing,
        failed), whose trainee was not told yet."""
        rows = self._rows(
            _SELECT + " WHERE a.ended_reason IN ('removed', 'missing', 'failed')"
            " AND a.told_at IS NULL ORDER BY a.id"
        )
        return [assignment_record(row) for row in rows]

    def claim_told(self, assignment_id: int) -> bool:
        """Take the telling of one removal (compare-and-set): True for exactly one caller."""
        cursor = self._execute(
            "UPDATE assignments SET told_at = ? WHERE id = ? AND told_at IS NULL",
            (to_text(utc_now()), assignment_id),
        )
        return cursor.rowcount == 1

    def _by_ids(self, ids: Sequence[int]) -> list[Assignment]:
        if not ids:
            return []
        rows = self._rows(
            _SELECT + f" WHERE a.id IN ({placeholders(ids)}) ORDER BY c.name, a.id", list(ids)
        )
        return [assignment_record(row) for row in rows]
