"""The parents' sizes (read from vCenter), for savings reports: the `parents` table. Portable
SQL."""

from __future__ import annotations

from bot.domain.models import ParentFacts
from storage.core import Core
from storage.sql import to_text, utc_now


class ParentStore(Core):
    """Part of `bot.ports.Clones` (`storage.clones.CloneStore` is one): what each parent VM
    provisions and uses."""

    def save_parent_facts(self, facts: ParentFacts) -> None:
        """Remember a parent's sizes (from vCenter) for savings reports."""
        with self.transaction():
            self._execute(
                "INSERT INTO parents (name, provisioned_bytes, used_bytes, memory_mb, updated_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET"
                " provisioned_bytes = excluded.provisioned_bytes,"
                " used_bytes = excluded.used_bytes, memory_mb = excluded.memory_mb,"
                " updated_at = excluded.updated_at",
                (
                    facts.name,
                    facts.provisioned_bytes,
                    facts.used_bytes,
                    facts.memory_mb,
                    to_text(utc_now()),
                ),
            )

    def parent_facts(self) -> dict[str, ParentFacts]:
        return {
            row["name"]: ParentFacts(
                name=row["name"],
                provisioned_bytes=row["provisioned_bytes"],
                used_bytes=row["used_bytes"],
                memory_mb=row["memory_mb"],
            )
            for row in self._rows("SELECT * FROM parents ORDER BY name")
        }
