"""History, read on request: what became of each environment (`history`), one environment's
runs (`history ENV`), and the sizes their clones had. The everyday reads never come here."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.domain.history import EnvironmentHistory
from bot.domain.models import CloneState, Run, RunKind
from storage.core import Core
from storage.environments import environment_record
from storage.runs import run_record
from storage.sql import placeholders

# Clones that were made in vCenter: they had a VM (a moref), and did not fail.
_MADE = "moref IS NOT NULL AND state != 'failed'"

Deltas = list[tuple[str, int | None]]  # (parent, delta_bytes) of each clone made


class HistoryStore(Core):
    """Implements `bot.ports.History`."""

    def recent_environments(self, limit: int) -> tuple[list[str], int]:
        """The names of the `limit` environments with the latest runs (newest first), and how
        many other environments have runs. Reads the runs index, not the clones."""
        rows = self._tuples(
            "SELECT environment, max(id) AS last FROM runs GROUP BY environment"
            " ORDER BY last DESC LIMIT ?",
            (limit,),
        )
        total = self._tuples("SELECT count(DISTINCT environment) FROM runs")[0][0]
        return [row[0] for row in rows], max(int(total) - len(rows), 0)

    def environment_history(self, names: Sequence[str]) -> list[tuple[EnvironmentHistory, Deltas]]:
        """Each named environment's life (savings left to the caller: the deltas of the clones
        it made come with it), in the order given; unknown names are left out."""
        if not names:
            return []
        marks = placeholders(names)
        envs = {
            row["name"]: environment_record(row)
            for row in self._rows(f"SELECT * FROM environments WHERE name IN ({marks})", names)
        }
        runs: dict[str, list[Run]] = {}
        for row in self._rows(
            f"SELECT * FROM runs WHERE environment IN ({marks}) ORDER BY id", names
        ):
            runs.setdefault(row["environment"], []).append(run_record(row))
        clones: dict[str, list[tuple[Any, ...]]] = {}
        for found in self._tuples(
            f"SELECT environment, state, {_MADE}, parent, delta_bytes FROM clones"
            f" WHERE environment IN ({marks})",
            names,
        ):
            clones.setdefault(found[0], []).append(found[1:])
        out = []
        for name in names:
            if name in envs:
                out.append(_life(envs[name], runs.get(name, []), clones.get(name, [])))
        return out

    def run_history(self, environment: str, limit: int) -> tuple[list[Run], int, dict[int, Deltas]]:
        """One environment's runs, newest first (at most `limit`), how many older ones there
        are, and the deltas of the clones each run made (by run id)."""
        rows = self._rows(
            "SELECT * FROM runs WHERE environment = ? ORDER BY id DESC LIMIT ?",
            (environment, limit),
        )
        total = self._tuples("SELECT count(*) FROM runs WHERE environment = ?", (environment,))
        made: dict[int, Deltas] = {}
        for run_id, parent, delta in self._tuples(
            f"SELECT run_id, parent, delta_bytes FROM clones WHERE environment = ? AND {_MADE}",
            (environment,),
        ):
            if run_id is not None:
                made.setdefault(run_id, []).append((parent, delta))
        return [run_record(row) for row in rows], max(int(total[0][0]) - len(rows), 0), made


def _life(
    env: Any, runs: list[Run], clones: list[tuple[Any, ...]]
) -> tuple[EnvironmentHistory, Deltas]:
    deltas: Deltas = [(parent, delta) for _, made, parent, delta in clones if made]
    deployed_by: list[str] = []
    for run in runs:
        if run.kind is RunKind.DEPLOY and run.requested_by not in deployed_by:
            deployed_by.append(run.requested_by)
    last = runs[-1] if runs else None
    history = EnvironmentHistory(
        environment=env,
        runs=len(runs),
        started_at=runs[0].started_at if runs else None,
        finished_at=last.finished_at if last is not None else None,
        deployed_by=tuple(deployed_by),
        made=len(deltas),
        failed=sum(1 for state, *_ in clones if state == CloneState.FAILED.value),
        live=sum(1 for state, *_ in clones if CloneState(state).live),
        last_run=last,
    )
    return history, deltas
