"""Runs: one deployment, strip back or refresh of an environment, the clones it owns
(`run_clones`), its heartbeat, its end, its takeover after a crash, and its Slack message."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, Final

from bot.domain.errors import ConflictError, NotFoundError
from bot.domain.models import Fence, Run, RunKind, RunMessage, RunState, run_transition
from storage.core import Core
from storage.environments import require_environment
from storage.leases import check_fence
from storage.sql import Where, from_text, to_text, utc_now

_RUN_CHANGES: Final = frozenset(
    {"state", "requested", "succeeded", "failed", "message", "finished_at"}
)


def run_record(row: dict[str, Any]) -> Run:
    return Run(
        id=row["id"],
        environment=row["environment"],
        kind=RunKind(row["kind"]),
        requested_by=row["requested_by"],
        state=RunState(row["state"]),
        requested=row["requested"],
        succeeded=row["succeeded"],
        failed=row["failed"],
        started_at=from_text(row["started_at"]),
        finished_at=from_text(row["finished_at"]),
        message=row["message"],
        owner=row.get("owner") or "",
        heartbeat_at=from_text(row.get("heartbeat_at")),
        superseded_by=row.get("superseded_by"),
        power_on=bool(row.get("power_on")),
    )


def load_run(core: Core, run_id: int) -> Run:
    """The run with this id (other stores look one up through this); NotFoundError if none."""
    row = core._row("SELECT * FROM runs WHERE id = ?", (run_id,))
    if row is None:
        raise NotFoundError(f"There is no run with id {run_id}.")
    return run_record(row)


class RunStore(Core):
    """Implements `bot.ports.Runs`."""

    def start_run(
        self,
        *,
        environment: str,
        kind: RunKind,
        requested_by: str,
        requested: int,
        owner: str = "",
        clone_ids: Iterable[int] = (),
        power_on: bool = False,
    ) -> Run:
        """Record a new run that owns `clone_ids` (the clones it will act on); `power_on`: a
        deployment that powers its clones on (its successor after a crash does too).

        Refused while another run of the environment is running. An interrupted run (vCenter
        went away, or its process died and recovery could not finish it) blocks a deployment or
        refresh, which would otherwise leave it to re-create clones later; a strip back takes
        it over instead: it ends superseded in this same transaction, and the strip back's own
        set (the environment's live clones) includes the clones it left unfinished.
        """
        kind = RunKind(kind)
        with self.transaction():
            require_environment(self, environment)
            # One run per environment at a time, across processes: the check and the insert
            # share one BEGIN IMMEDIATE transaction, so two bots cannot both pass the check.
            busy = self._row(
                "SELECT id, kind, requested_by FROM runs WHERE environment = ? AND state = ?",
                (environment, RunState.RUNNING.value),
            )
            if busy is not None:
                raise ConflictError(
                    f"{environment} is busy: {busy['kind']} run {busy['id']} (by "
                    f"{busy['requested_by']}) is still running. Wait for it to finish; if the "
                    'process running it died, "resume" finishes it.'
                )
            stopped = self._rows(
                "SELECT id, kind FROM runs WHERE environment = ? AND state = ? ORDER BY id",
                (environment, RunState.INTERRUPTED.value),
            )
            if stopped and kind is not RunKind.TEARDOWN:
                first = stopped[0]
                raise ConflictError(
                    f"{environment} has an unfinished {first['kind']} (run {first['id']}, "
                    'interrupted). Type "resume" to finish it first, or strip the environment '
                    f'back ("teardown {environment}").'
                )
            run = self._insert_run(
                environment, kind, requested_by, requested, owner, clone_ids, power_on
            )
            for row in stopped:
                self._supersede(row["id"], run.id, f"superseded by {kind} run {run.id}")
            return run

    def _insert_run(
        self,
        environment: str,
        kind: RunKind,
        requested_by: str,
        requested: int,
        owner: str,
        clone_ids: Iterable[int],
        power_on: bool = False,
    ) -> Run:
        """Insert a running run and its members; call inside the caller's transaction."""
        now = to_text(utc_now())
        run_id = self._insert(
            "INSERT INTO runs (environment, kind, requested_by, state, requested, started_at,"
            " owner, heartbeat_at, power_on) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                environment,
                RunKind(kind).value,
                requested_by,
                RunState.RUNNING.value,
                requested,
                now,
                owner,
                now,
                int(power_on),
            ),
        )
        self._execute_many(
            "INSERT INTO run_clones (run_id, clone_id) VALUES (?, ?)",
            [(run_id, clone_id) for clone_id in clone_ids],
        )
        return self.get_run(run_id)

    def _supersede(self, run_id: int, by: int, message: str) -> None:
        """End a run as superseded by run `by`; call inside the caller's transaction."""
        run = self.get_run(run_id)
        run_transition(run.state, RunState.SUPERSEDED)
        self._execute(
            "UPDATE runs SET state = ?, superseded_by = ?, message = ?, finished_at = ?"
            " WHERE id = ?",
            (RunState.SUPERSEDED.value, by, message, to_text(utc_now()), run_id),
        )

    def supersede_run(
        self,
        run_id: int,
        *,
        owner: str,
        expected_owner: str,
        stale_before: datetime | None = None,
        fence: Fence | None = None,
    ) -> Run | None:
        """Take an abandoned run over: in one transaction, end it as superseded and start a new
        run of the same kind, owned by `owner`, over the same clones. The old run can then never
        be picked up again.

        None when the run has ended meanwhile, another process took it over first (its owner
        is no longer `expected_owner`), or (with `stale_before`) its owner's heartbeat is newer
        than that: its lease has not expired. With a `fence` (the leader's lease), the takeover
        is refused (Fenced) once this process no longer leads.
        """
        with self.transaction():
            check_fence(self, fence)
            old = self.get_run(run_id)
            if old.state.terminal or old.owner != expected_owner:
                return None
            beat = old.heartbeat_at or old.started_at
            running = old.state is RunState.RUNNING
            if stale_before is not None and running and beat is not None and beat > stale_before:
                return None  # its owner renewed the run's lease since: not abandoned
            new = self._insert_run(
                old.environment, old.kind, old.requested_by, old.requested, owner, (), old.power_on
            )
            self._execute(
                "INSERT INTO run_clones (run_id, clone_id)"
                " SELECT ?, clone_id FROM run_clones WHERE run_id = ?",
                (new.id, old.id),
            )
            # The successor is shown where the run was (its Slack message, if any).
            self._execute(
                "INSERT INTO run_messages (run_id, channel, ts, updated_at)"
                " SELECT ?, channel, ts, updated_at FROM run_messages WHERE run_id = ?",
                (new.id, old.id),
            )
            self._supersede(old.id, new.id, f"resumed as run {new.id}")
            return new

    def finish_run(
        self, run_id: int, *, state: RunState, succeeded: int, failed: int, message: str = ""
    ) -> Run:
        """Record a run's outcome; a run finishes once (running runs only)."""
        state = RunState(state)
        if state is RunState.RUNNING:
            raise ValueError("finish_run() needs a final state, not 'running'")
        with self.transaction():
            run = self.get_run(run_id)
            if run.state.terminal:
                raise ConflictError(f"Run {run_id} has already finished ({run.state}).")
            run_transition(run.state, state)
            self._execute(
                "UPDATE runs SET state = ?, succeeded = ?, failed = ?, message = ?,"
                " finished_at = ? WHERE id = ?",
                (state.value, succeeded, failed, message, to_text(utc_now()), run_id),
            )
            return self.get_run(run_id)

    def update_run(self, run_id: int, **changes: Any) -> Run:
        """Change a run's state, requested, succeeded, failed, message or finished_at."""
        unknown = set(changes) - _RUN_CHANGES
        if unknown:
            raise TypeError(f"update_run() cannot change {sorted(unknown)}")
        values = dict(changes)
        if "state" in values:
            values["state"] = RunState(values["state"]).value
        if "finished_at" in values:
            values["finished_at"] = to_text(values["finished_at"])
        with self.transaction():
            current = self.get_run(run_id)
            if "state" in changes:
                run_transition(current.state, RunState(changes["state"]))
            if values:
                assignments = ", ".join(f"{column} = ?" for column in values)
                self._execute(
                    f"UPDATE runs SET {assignments} WHERE id = ?", [*values.values(), run_id]
                )
            return self.get_run(run_id)

    def get_run(self, run_id: int) -> Run:
        return load_run(self, run_id)

    def runs(
        self,
        *,
        environment: str | None = None,
        states: Iterable[RunState] | None = None,
        limit: int = 100,
    ) -> list[Run]:
        """Runs matching the filters, newest first."""
        where = (
            Where()
            .equal("environment", environment)
            .among("state", None if states is None else [RunState(s).value for s in states])
        )
        if where.nothing:
            return []
        rows = self._rows(
            f"SELECT * FROM runs{where} ORDER BY id DESC LIMIT ?", [*where.params, limit]
        )
        return [run_record(row) for row in rows]

    def run_counts(self) -> list[tuple[str, str, int]]:
        """(kind, state, number of runs) for every kind and state that has runs."""
        rows = self._tuples(
            "SELECT kind, state, COUNT(*) FROM runs GROUP BY kind, state ORDER BY kind, state"
        )
        return [(str(kind), str(state), int(n)) for kind, state, n in rows]

    # -- run ownership (crash recovery) ----------------------------------------------------

    def heartbeat(self, run_id: int, owner: str | None = None) -> bool:
        """Say that the process running this run is alive (renew the run's lease). With
        `owner`, only while it still owns the run: False once another took it over (or it
        ended)."""
        sql = "UPDATE runs SET heartbeat_at = ? WHERE id = ? AND state = ?"
        params: list[object] = [to_text(utc_now()), run_id, RunState.RUNNING.value]
        if owner is not None:
            sql, params = sql + " AND owner = ?", [*params, owner]
        _, count = self._write_alone(sql, params)
        return count == 1

    # -- the Slack message of each run (see migration m008_run_messages) -------------------

    def save_run_message(self, run_id: int, *, channel: str, ts: str) -> RunMessage:
        """Record (or move) the message that shows run `run_id`."""
        now = to_text(utc_now())
        with self.transaction():
            self.get_run(run_id)
            self._execute(
                "INSERT INTO run_messages (run_id, channel, ts, updated_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT(run_id) DO UPDATE SET channel = excluded.channel,"
                " ts = excluded.ts, updated_at = excluded.updated_at",
                (run_id, channel, ts, now),
            )
        message = self.run_message(run_id)
        assert message is not None
        return message

    def run_message(self, run_id: int) -> RunMessage | None:
        row = self._row("SELECT * FROM run_messages WHERE run_id = ?", (run_id,))
        if row is None:
            return None
        return RunMessage(row["run_id"], row["channel"], row["ts"])
