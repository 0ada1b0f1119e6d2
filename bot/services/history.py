"""The past, on request: what became of environments (`history [ENV]`) and the audit log
(`audit --since DATE`). Savings are worked out from the sizes recorded with the clones and
their parents; history never asks vCenter."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta

from bot.domain.history import AuditLog, History, RunHistory
from bot.domain.models import ParentFacts
from bot.domain.savings import Savings, compute_savings
from bot.domain.timeparse import parse_since
from bot.services.core import Core, OnCore
from bot.services.queries import Queries

HISTORY_MAX = 50  # environments in `history`, most recently run first
RUNS_MAX = 100  # runs in `history ENV`, newest first
AUDIT_DEFAULT = timedelta(days=7)  # `audit` without --since


class HistoryReader(OnCore):
    """`history [ENV]` and `audit [--since DATE]`: reads of the past, never of vCenter."""

    def __init__(self, core: Core, queries: Queries) -> None:
        super().__init__(core)
        self.queries = queries

    def history(self, environment: str | None = None) -> History:
        parents = self.repo.parent_facts()
        if environment is None:
            names, more = self.repo.recent_environments(HISTORY_MAX)
            lives = self.repo.environment_history(names)
            return History(
                None,
                tuple(replace(life, savings=_savings(d, parents)) for life, d in lives),
                more=more,
            )
        env = self.queries.environment(environment)  # unknown: a clear NotFoundError
        [(life, deltas)] = self.repo.environment_history([env.name])
        runs, more, made = self.repo.run_history(env.name, RUNS_MAX)
        return History(
            env.name,
            (replace(life, savings=_savings(deltas, parents)),),
            tuple(
                RunHistory(r, len(made.get(r.id, ())), _savings(made.get(r.id, ()), parents))
                for r in runs
            ),
            more=more,
        )

    def audit(self, since: str | None = None, *, limit: int | None = None) -> AuditLog:
        """The audit entries from `since` (a day, a time or a length of time back; default:
        the last 7 days) on, oldest first; at most `limit` of the newest (None: all)."""
        now = self.clock()
        start = (
            now - AUDIT_DEFAULT
            if since is None
            else parse_since(since, now, self.settings.timezone)
        )
        if limit is None:
            return AuditLog(start, tuple(self.repo.audit_since(start)))
        entries = self.repo.audit_since(start, limit=limit, newest=True)
        return AuditLog(
            start, tuple(entries), more=self.repo.count_audit_since(start) - len(entries)
        )


def _savings(
    deltas: Sequence[tuple[str, int | None]], parents: dict[str, ParentFacts]
) -> Savings | None:
    """What the clones saved, or None when none were made or a parent's size is not known."""
    if not deltas:
        return None
    try:
        return compute_savings(deltas, parents)
    except ValueError:  # a parent whose sizes were never recorded
        return None
