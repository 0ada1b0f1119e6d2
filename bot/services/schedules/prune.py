"""History kept on purpose: what is older than `[clones] history_days` (the audit log:
`audit_days`) is pruned, in small batches, at the quiet hour (`prune_hour`, team time zone), by
the one bot holding the scheduler (its periodic re-sync calls `tick`).

Each batch is its own short transaction (storage/pruning.py says what may go and what never
does: nothing that may be in vCenter, nothing a run that may still act owns, nothing a trainee
holds), and one tick spends at most `budget_s` on them, so the bot's other writers never wait
long; the next tick (every `[schedule] resync_s`) goes on until nothing old is left, then the
day is done.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from bot.domain.history import Pruned
from bot.domain.timeparse import zone_of
from bot.ports import Clock, Repository
from bot.settings import Settings

log = logging.getLogger("clones.prune")

BATCH = 50  # environments a batch (runs, clones and audit rows: ten times as many)
BUDGET_S = 1.0  # time one tick spends pruning


@dataclass(eq=False)
class Pruner:
    """Prunes history older than its window in the process holding the scheduler."""

    settings: Settings
    repo: Repository
    clock: Clock
    batch: int = field(default=BATCH, kw_only=True)
    budget_s: float = field(default=BUDGET_S, kw_only=True)
    _done_on: date | None = field(default=None, init=False)  # the local day pruning last finished

    def cutoffs(self, now: datetime) -> tuple[datetime | None, datetime | None]:
        """(history, audit): what is older goes; None keeps that kind for ever."""
        s = self.settings
        history = now - timedelta(days=s.history_days) if s.history_days else None
        audit = now - timedelta(days=s.audit_days) if s.audit_days else None
        return history, audit

    def tick(self) -> Pruned | None:
        """At the quiet hour, until the day's pruning is done: prune for up to `budget_s`.
        None when it is not the time."""
        now = self.clock()
        local = now.astimezone(zone_of(self.settings.timezone))
        if local.hour != self.settings.prune_hour or self._done_on == local.date():
            return None
        pruned = self.prune(now=now)
        if pruned.done:
            self._done_on = local.date()
        return pruned

    def prune(self, *, now: datetime | None = None, budget_s: float | None = None) -> Pruned:
        """Prune batch after batch until nothing old is left or the time budget is spent."""
        history, audit = self.cutoffs(now or self.clock())
        total = Pruned(done=history is None and audit is None)
        deadline = time.monotonic() + (self.budget_s if budget_s is None else budget_s)
        while not total.done:
            total = total + self.repo.prune_history(
                before=history, audit_before=audit, batch=self.batch
            )
            if time.monotonic() >= deadline:
                break
        if total.removed:
            log.info(
                "pruned history older than %s: %d environments, %d runs, %d clones, %d audit"
                " rows%s",
                history.date() if history else "never",
                total.environments,
                total.runs,
                total.clones,
                total.audit,
                "" if total.done else " (more next time)",
            )
        return total
