"""The repository: the source of truth for environments, clones, runs and the audit log, on a
SQLite file or a PostgreSQL database.

`Repository` implements `bot.ports.Repository` as one store per port over one shared core:

- `storage.core.Core`: the backend (storage/sqlite.py: per-thread connections on one WAL file,
  the in-process write queue, BEGIN IMMEDIATE; storage/postgres.py: a small pool, each write
  transaction under one advisory lock), `transaction()` (savepoints when nested), migrations on
  open, `close()`; the stores' SQL is one text for both (storage/dialect.py);
- `storage.environments.EnvironmentStore` (`ports.Environments`);
- `storage.clones.CloneStore` (`ports.Clones`: reservation, updates along the state machine,
  counts, deltas, missing clones; parents' sizes from its base, `storage.parents.ParentStore`);
- `storage.runs.RunStore` (`ports.Runs`: start, takeover, finish, members, heartbeats,
  Slack messages);
- `storage.schedules.ScheduleStore` (`ports.Schedules`: bookkeeping and claims);
- `storage.audit.AuditStore` (`ports.Audit`);
- `storage.assignments.AssignmentStore` (`ports.Assignments`: trainees and the clones they hold);
- `storage.history.HistoryStore` and `storage.pruning.PruneStore` (`ports.History`: the past,
  read on request, and pruned once older than its window);
- `storage.seen.SeenRequestStore` (replay keys);
- `storage.leases.LeaseStore` (`ports.Leases`: the leader's lease, the bots up, fences);
- `storage.confirmations.ConfirmationStore` (`ports.ConfirmationTokens`: Confirm buttons).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from storage.assignments import AssignmentStore
from storage.audit import AuditStore
from storage.clones import CloneStore
from storage.confirmations import ConfirmationStore
from storage.environments import EnvironmentStore
from storage.history import HistoryStore
from storage.leases import LeaseStore
from storage.pruning import PruneStore
from storage.runs import RunStore
from storage.schedules import ScheduleStore
from storage.seen import SeenRequestStore

if TYPE_CHECKING:
    from bot import ports


class Repository(
    EnvironmentStore,
    CloneStore,
    RunStore,
    ScheduleStore,
    AuditStore,
    AssignmentStore,
    HistoryStore,
    PruneStore,
    SeenRequestStore,
    LeaseStore,
    ConfirmationStore,
):
    """All reads and writes of the bot's state. Safe to share between threads.

    Why mixins over one core rather than a facade over separate store objects: a transaction
    belongs to the thread's connection, which every store shares through `Core`, so work that
    spans stores (a run's start checks its environment; claiming an end writes the schedule)
    is one transaction with no objects to thread through; and the public surface is simply the
    union of the stores, checked by mypy against `ports.Repository`, instead of some forty
    forwarding methods repeating every signature a third time. The stores keep no state of
    their own (it all lives in `Core.__init__`), and none calls another's methods through
    `self`: what one needs of another (an environment or a run by key, inside the caller's
    transaction) is a module function taking the core (`require_environment`, `load_run`).
    """


if TYPE_CHECKING:  # mypy checks each store against its port here, the whole at bootstrap

    def _conforms(
        environments: EnvironmentStore,
        clones: CloneStore,
        runs: RunStore,
        schedules: ScheduleStore,
        audit: AuditStore,
        assignments: AssignmentStore,
        repository: Repository,
    ) -> tuple[
        ports.Environments,
        ports.Clones,
        ports.Runs,
        ports.Schedules,
        ports.Audit,
        ports.Assignments,
        ports.Repository,
    ]:
        return environments, clones, runs, schedules, audit, assignments, repository
