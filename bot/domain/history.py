"""History, kept on purpose: what became of finished environments (`history [ENV]`), the audit
log read back (`audit --since DATE`), and what a round of pruning removed.

The everyday reads (status, App Home, savings, inventory, the schedules' re-sync) read what is
live; these read the past, on request, and pruning keeps the past to `[clones] history_days`
(the audit log to `audit_days`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot.domain.models import AuditEntry, Environment, Run, RunKind, RunState
from bot.domain.savings import Savings


@dataclass(frozen=True)
class EnvironmentHistory:
    """One environment's life: when, who, how many, what it saved and how it ended."""

    environment: Environment
    runs: int = 0
    started_at: datetime | None = None  # its first run began
    finished_at: datetime | None = None  # its last run ended (None while one runs)
    deployed_by: tuple[str, ...] = ()  # who asked for its deployments, first first
    made: int = 0  # clones that were made in vCenter
    failed: int = 0  # clones that never were
    live: int = 0  # clones that may be in vCenter now
    last_run: Run | None = None
    savings: Savings | None = None  # of the clones it made (None: sizes not known)

    @property
    def outcome(self) -> str:
        """ "live", "stripped back", "stripped back (partly)", "deploy failed", ..."""
        run = self.last_run
        if run is None:
            return "live" if self.live else "never deployed"
        if run.state in (RunState.RUNNING, RunState.INTERRUPTED):
            verb = {RunKind.DEPLOY: "deploying", RunKind.TEARDOWN: "stripping back"}
            doing = verb.get(run.kind, "refreshing")
            return doing if run.state is RunState.RUNNING else f"{doing} (interrupted)"
        if run.kind is RunKind.TEARDOWN and not self.live:
            return "stripped back" if run.state is RunState.SUCCEEDED else "stripped back (partly)"
        if self.live:
            return "live"
        if run.kind is RunKind.DEPLOY and run.state is RunState.FAILED:
            return "deploy failed"
        return f"{run.kind.value} {run.state.value}"


@dataclass(frozen=True)
class RunHistory:
    """One run of an environment, with the clones it made and what they saved."""

    run: Run
    made: int = 0
    savings: Savings | None = None


@dataclass(frozen=True)
class History:
    """`history`: environments, most recently active first; `history ENV`: that environment
    and its runs, newest first. `more`: how many older ones were left out."""

    environment: str | None
    environments: tuple[EnvironmentHistory, ...] = ()
    runs: tuple[RunHistory, ...] = ()
    more: int = 0


@dataclass(frozen=True)
class AuditLog:
    """`audit --since DATE`: the audit entries from `since` on, oldest first (`more`: how many
    later ones were left out of a capped answer)."""

    since: datetime
    entries: tuple[AuditEntry, ...] = ()
    more: int = 0


@dataclass(frozen=True)
class Pruned:
    """What one round of pruning removed; `done` when nothing older than the windows is left."""

    environments: int = 0
    runs: int = 0
    clones: int = 0
    audit: int = 0
    done: bool = False

    def __add__(self, other: Pruned) -> Pruned:
        return Pruned(
            self.environments + other.environments,
            self.runs + other.runs,
            self.clones + other.clones,
            self.audit + other.audit,
            other.done,
        )

    @property
    def removed(self) -> int:
        return self.environments + self.runs + self.clones + self.audit
