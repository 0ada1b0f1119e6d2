"""The audit log: who asked for what, from where, and what came of it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.domain.models import AuditEntry
from storage.core import Core
from storage.sql import from_text, to_text, utc_now


def audit_record(row: dict[str, Any]) -> AuditEntry:
    at = from_text(row["at"])
    assert at is not None  # NOT NULL column
    return AuditEntry(
        id=row["id"],
        at=at,
        actor=row["actor"],
        source=row["source"],
        channel=row["channel"],
        command=row["command"],
        result=row["result"],
        detail=row["detail"],
    )


class AuditStore(Core):
    """Implements `bot.ports.Audit`."""

    def audit(
        self,
        *,
        actor: str,
        source: str,
        command: str,
        result: str,
        channel: str = "",
        detail: str = "",
    ) -> AuditEntry:
        at = utc_now()
        entry_id = self._insert(
            "INSERT INTO audit (at, actor, source, channel, command, result, detail)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (to_text(at), actor, source, channel, command, result, detail),
        )
        return AuditEntry(
            id=entry_id,
            at=at,
            actor=actor,
            source=source,
            channel=channel,
            command=command,
            result=result,
            detail=detail,
        )

    def audit_entries(self, *, limit: int = 100, actor: str | None = None) -> list[AuditEntry]:
        """Audit entries, newest first."""
        where, params = ("WHERE actor = ?", [actor]) if actor is not None else ("", [])
        rows = self._rows(f"SELECT * FROM audit {where} ORDER BY id DESC LIMIT ?", [*params, limit])
        return [audit_record(row) for row in rows]

    def audit_since(
        self, since: datetime, *, limit: int | None = None, newest: bool = False
    ) -> list[AuditEntry]:
        """Audit entries at or after `since`, oldest first (through the index on `at`): the
        first `limit` of them, or the last ones with `newest` (None: all)."""
        order = "DESC" if newest else ""
        # No `LIMIT -1` for "all": PostgreSQL refuses a negative limit.
        bound, params = (
            ("", [to_text(since)]) if limit is None else (" LIMIT ?", [to_text(since), limit])
        )
        rows = self._rows(
            f"SELECT * FROM audit WHERE at >= ? ORDER BY at {order}, id {order}{bound}", params
        )
        entries = [audit_record(row) for row in rows]
        return entries[::-1] if newest else entries

    def count_audit_since(self, since: datetime) -> int:
        row = self._row("SELECT count(*) AS n FROM audit WHERE at >= ?", (to_text(since),))
        return int(row["n"]) if row else 0
