"""Pruning: history older than its window goes, in small batches, and nothing else ever does.

What may go, once older than the cutoff (nothing of it touched since):
- a finished environment, with its runs, clones, members, messages, schedule and assignments:
  one with no clone that may be in vCenter, no run that may still act (running: its process
  may have died and recovery resumes it; interrupted: "resume" finishes it), no start or end
  to keep, no strip back claimed, no assignment still held;
- in an environment that stays, a finished run that made or owns no clone that may be in
  vCenter, and a destroyed, failed or missing clone that no run that may still act owns and no
  trainee holds;
- audit rows older than their own cutoff (kept longer: `audit_days`).

Clones that may be in vCenter (planned, cloning, ready, destroying) are never pruned, nor what
points at them: their runs, their assignments. Candidates are read first, without the write
lock, and each batch is deleted in its own short transaction that checks every condition again,
so a clone that came back to life meanwhile (orphans adopt) is not touched.
"""

from __future__ import annotations

from datetime import datetime

from bot.domain.history import Pruned
from storage.core import Core
from storage.sql import RESUMABLE, placeholders, to_text

_ALIVE = "state NOT IN ('destroyed', 'failed', 'missing')"  # may be in vCenter

# `?` are all the cutoff. An environment whose every record is older than the cutoff and that
# nothing live or pending keeps.
_OLD_ENVIRONMENT = f"""
    e.created_at < ? AND e.starts_at IS NULL AND e.ends_at IS NULL
    AND NOT EXISTS (SELECT 1 FROM clones c WHERE c.environment = e.name
                    AND (c.{_ALIVE} OR c.updated_at >= ?))
    AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.environment = e.name
                    AND (r.{RESUMABLE} OR coalesce(r.finished_at, r.started_at) >= ?))
    AND NOT EXISTS (SELECT 1 FROM schedules s WHERE s.environment = e.name
                    AND s.stripping_for_end IS NOT NULL)
    AND NOT EXISTS (SELECT 1 FROM assignments a WHERE a.environment = e.name
                    AND a.ended_at IS NULL)
"""
_ENV_CUTS = 3

# A finished run, older than the cutoff, that made or owns no clone that may be in vCenter.
_OLD_RUN = f"""
    r.state NOT IN ('running', 'interrupted') AND coalesce(r.finished_at, r.started_at) < ?
    AND NOT EXISTS (SELECT 1 FROM clones c WHERE c.run_id = r.id AND c.{_ALIVE})
    AND NOT EXISTS (SELECT 1 FROM run_clones rc JOIN clones c ON c.id = rc.clone_id
                    WHERE rc.run_id = r.id AND c.{_ALIVE})
"""

# A clone gone from vCenter, older than the cutoff, that no run that may act owns and no
# trainee holds. (`+c.state` on SQLite: walk the table in id order, oldest first, and stop at
# the batch, rather than read every destroyed clone through the state index and sort them;
# PostgreSQL has no unary plus on text and its planner weighs the two plans itself.)
_OLD_CLONE = f"""
    {{unindexed}}c.state IN ('destroyed', 'failed', 'missing') AND c.updated_at < ?
    AND NOT EXISTS (SELECT 1 FROM run_clones rc JOIN runs r ON r.id = rc.run_id
                    WHERE rc.clone_id = c.id AND r.{RESUMABLE})
    AND NOT EXISTS (SELECT 1 FROM assignments a WHERE a.clone_id = c.id AND a.ended_at IS NULL)
"""


class PruneStore(Core):
    """Implements `bot.ports.Pruning`."""

    def prune_history(
        self, *, before: datetime | None, audit_before: datetime | None, batch: int = 50
    ) -> Pruned:
        """Remove one batch older than its cutoff (None: keep that kind for ever): up to
        `batch` whole environments; when none is left, up to ten times as many runs of the
        environments that stay, then as many of their clones; and up to as many audit rows.
        `done` when nothing was left to remove."""
        pruned = Pruned()
        if before is not None:
            cut = _text(before)
            pruned = Pruned(environments=self._prune_environments(cut, batch))
            if not pruned.environments:
                pruned = Pruned(runs=self._prune_runs(cut, batch * 10))
            if not pruned.removed:
                pruned = Pruned(clones=self._prune_clones(cut, batch * 10))
        if audit_before is not None:
            pruned = pruned + Pruned(audit=self._prune_audit(_text(audit_before), batch * 10))
        return Pruned(
            pruned.environments, pruned.runs, pruned.clones, pruned.audit, pruned.removed == 0
        )

    def _prune_environments(self, cut: str, limit: int) -> int:
        where = f"{_OLD_ENVIRONMENT} ORDER BY e.created_at, e.name LIMIT ?"
        names = [
            row[0]
            for row in self._tuples(
                f"SELECT e.name FROM environments e WHERE {where}", [cut] * _ENV_CUTS + [limit]
            )
        ]
        if not names:
            return 0
        with self.transaction():  # the conditions again, under the write lock
            cursor = self._execute(
                f"DELETE FROM environments WHERE name IN ({placeholders(names)}) AND name IN"
                f" (SELECT e.name FROM environments e WHERE {_OLD_ENVIRONMENT})",
                [*names, *[cut] * _ENV_CUTS],
            )
            return cursor.rowcount

    def _prune_runs(self, cut: str, limit: int) -> int:
        ids = [
            row[0]
            for row in self._tuples(
                f"SELECT r.id FROM runs r WHERE {_OLD_RUN} ORDER BY r.id LIMIT ?", (cut, limit)
            )
        ]
        if not ids:
            return 0
        with self.transaction():
            marks = placeholders(ids)
            ids = [
                row[0]
                for row in self._tuples(
                    f"SELECT r.id FROM runs r WHERE r.id IN ({marks}) AND {_OLD_RUN}", [*ids, cut]
                )
            ]
            if not ids:
                return 0
            marks = placeholders(ids)
            # A run kept may name a pruned one as the run that took it over.
            self._execute(
                f"UPDATE runs SET superseded_by = NULL WHERE superseded_by IN ({marks})", ids
            )
            return self._execute(f"DELETE FROM runs WHERE id IN ({marks})", ids).rowcount

    def _prune_clones(self, cut: str, limit: int) -> int:
        old_clone = _OLD_CLONE.format(unindexed="+" if self.dialect == "sqlite" else "")
        ids = [
            row[0]
            for row in self._tuples(
                f"SELECT c.id FROM clones c WHERE {old_clone} ORDER BY c.id LIMIT ?", (cut, limit)
            )
        ]
        if not ids:
            return 0
        with self.transaction():
            cursor = self._execute(
                f"DELETE FROM clones WHERE id IN ({placeholders(ids)}) AND id IN"
                f" (SELECT c.id FROM clones c WHERE {old_clone})",
                [*ids, cut],
            )
            return cursor.rowcount

    def _prune_audit(self, cut: str, limit: int) -> int:
        with self.transaction():
            cursor = self._execute(
                "DELETE FROM audit WHERE id IN (SELECT id FROM audit WHERE at < ? ORDER BY at"
                " LIMIT ?)",
                (cut, limit),
            )
            return cursor.rowcount


def _text(moment: datetime) -> str:
    text = to_text(moment)
    assert text is not None
    return text
