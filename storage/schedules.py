"""Schedule bookkeeping and the claims that make each scheduled start or end run once.

The times live on the environment (starts_at, ends_at); the `schedules` row holds the
bookkeeping. "Claims" are compare-and-set updates: of two schedulers (or two threads) racing
for one job, exactly one sees its update change a row and runs it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.domain.models import KEEP, Environment, Fence, Keep, ScheduleRecord
from storage.core import Core
from storage.environments import environment_record, find_environment, require_environment
from storage.leases import check_fence
from storage.sql import from_text, to_text, utc_now


def schedule_record(row: dict[str, Any]) -> ScheduleRecord:
    return ScheduleRecord(
        environment=row["environment"],
        deploy_command=row["deploy_command"],
        requested_by=row["requested_by"] or "",
        lease_from=from_text(row["lease_from"]),
        reminded_for_end=from_text(row["reminded_for_end"]),
        stripping_for_end=from_text(row["stripping_for_end"]),
        updated_at=from_text(row["updated_at"]),
    )


class ScheduleStore(Core):
    """Implements `bot.ports.Schedules`."""

    def get_schedule(self, name: str) -> ScheduleRecord | None:
        row = self._row("SELECT * FROM schedules WHERE environment = ?", (name,))
        return schedule_record(row) if row else None

    def save_schedule(
        self,
        name: str,
        *,
        deploy_command: str | Keep | None = KEEP,
        requested_by: str | Keep = KEEP,
        lease_from: datetime | Keep | None = KEEP,
        reminded_for_end: datetime | Keep | None = KEEP,
        stripping_for_end: datetime | Keep | None = KEEP,
    ) -> ScheduleRecord:
        """Create or change an environment's schedule bookkeeping (None clears a field)."""
        changes: dict[str, object] = {}
        if not isinstance(deploy_command, Keep):
            changes["deploy_command"] = deploy_command
        if not isinstance(requested_by, Keep):
            changes["requested_by"] = requested_by
        for column, value in (
            ("lease_from", lease_from),
            ("reminded_for_end", reminded_for_end),
            ("stripping_for_end", stripping_for_end),
        ):
            if not isinstance(value, Keep):
                changes[column] = to_text(value)
        changes["updated_at"] = to_text(utc_now())
        with self.transaction():
            require_environment(self, name)
            self._execute(
                "INSERT INTO schedules (environment, updated_at) VALUES (?, ?)"
                " ON CONFLICT DO NOTHING",
                (name, changes["updated_at"]),
            )
            assignments = ", ".join(f"{column} = ?" for column in changes)
            self._execute(
                f"UPDATE schedules SET {assignments} WHERE environment = ?",
                [*changes.values(), name],
            )
            record = self.get_schedule(name)
            assert record is not None
            return record

    def delete_schedule(self, name: str) -> None:
        self._execute("DELETE FROM schedules WHERE environment = ?", (name,))

    def scheduled_environments(self) -> list[tuple[Environment, ScheduleRecord | None]]:
        """Environments with a pending start or end, or a strip back claimed but not finished."""
        rows = self._rows(
            "SELECT e.*, s.environment AS s_environment, s.deploy_command AS s_deploy_command,"
            " s.requested_by AS s_requested_by, s.lease_from AS s_lease_from,"
            " s.reminded_for_end AS s_reminded_for_end,"
            " s.stripping_for_end AS s_stripping_for_end, s.updated_at AS s_updated_at"
            " FROM environments e LEFT JOIN schedules s ON s.environment = e.name"
            # Each part through its own partial index (m014): not a scan of every environment.
            " WHERE e.name IN (SELECT name FROM environments WHERE starts_at IS NOT NULL"
            " UNION SELECT name FROM environments WHERE ends_at IS NOT NULL"
            " UNION SELECT environment FROM schedules WHERE stripping_for_end IS NOT NULL)"
            " ORDER BY e.name"
        )
        out: list[tuple[Environment, ScheduleRecord | None]] = []
        for row in rows:
            schedule = None
            if row["s_environment"] is not None:
                schedule = schedule_record({k[2:]: v for k, v in row.items() if k.startswith("s_")})
            out.append((environment_record(row), schedule))
        return out

    def claim_start(self, name: str, expected: datetime, *, fence: Fence | None = None) -> bool:
        """Clear starts_at if it is still `expected`; True when this call cleared it. Fenced
        (`check_fence`, in the same transaction) when the scheduler's lease is given."""
        with self.transaction():
            check_fence(self, fence)
            cursor = self._execute(
                "UPDATE environments SET starts_at = NULL WHERE name = ? AND starts_at = ?",
                (name, to_text(expected)),
            )
            return cursor.rowcount == 1

    def claim_end(self, name: str, expected: datetime, *, fence: Fence | None = None) -> bool:
        """Move ends_at (if still `expected`) to schedules.stripping_for_end; True when claimed."""
        with self.transaction():
            check_fence(self, fence)
            cursor = self._execute(
                "UPDATE environments SET ends_at = NULL WHERE name = ? AND ends_at = ?",
                (name, to_text(expected)),
            )
            if cursor.rowcount != 1:
                return False
            self.save_schedule(name, stripping_for_end=expected)
            return True

    def mark_reminded(self, name: str, end: datetime, *, fence: Fence | None = None) -> bool:
        """Record that the reminder for `end` was sent; False when it already was, or when the
        environment no longer ends then (so a reminder fires once per scheduled end)."""
        with self.transaction():
            check_fence(self, fence)
            env = find_environment(self, name)
            if env is None or env.ends_at is None or env.ends_at != end:
                return False
            record = self.get_schedule(name)
            if record is not None and record.reminded_for_end == end:
                return False
            self.save_schedule(name, reminded_for_end=end)
            return True
