"""Clones: name reservation, updates along the clone state machine, counts and deltas, clones
gone from vCenter, and the parents' sizes that savings weigh the clones' deltas against."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Final

from bot.domain.capacity import ClonePeak
from bot.domain.errors import ConfigError, ConflictError, NotFoundError
from bot.domain.models import CLONE_TRANSITIONS, Clone, CloneState, Fence, clone_transition
from bot.domain.results import FAILURE_STATES, FailedClone
from storage.core import Core
from storage.environments import require_environment
from storage.faults import IntegrityViolation
from storage.leases import check_fence, fence_condition
from storage.parents import ParentStore
from storage.runs import load_run
from storage.sql import CURRENT, LIVE, Where, from_text, placeholders, to_text, utc_now

# How many candidate names `reserve_clones` checks per query (kept under SQLite's 999 host
# parameters limit of older builds).
_NAME_BATCH: Final = 500

_CLONE_CHANGES: Final = frozenset(
    {
        "state",
        "run_id",
        "moref",
        "instance_uuid",
        "error",
        "attempts",
        "delta_bytes",
        "host",
        "power_state",
        "customization",
        "kept_attributes",
    }
)


def clone_record(row: dict[str, Any]) -> Clone:
    return Clone(
        id=row["id"],
        name=row["name"],
        environment=row["environment"],
        type=row["type"],
        parent=row["parent"],
        state=CloneState(row["state"]),
        run_id=row["run_id"],
        moref=row["moref"],
        instance_uuid=row["instance_uuid"],
        error=row["error"],
        attempts=row["attempts"],
        delta_bytes=row["delta_bytes"],
        host=row.get("host"),
        power_state=row.get("power_state"),
        customization=row.get("customization") or "",
        kept_attributes=tuple(sorted(json.loads(row.get("kept_attributes") or "{}").items())),
        created_at=from_text(row["created_at"]),
        updated_at=from_text(row["updated_at"]),
        peak_bytes=row.get("peak_bytes"),
        peak_at=from_text(row.get("peak_at")),
        sized_at=from_text(row.get("sized_at")),
    )


def _check_pattern(pattern: str) -> None:
    """A clone name pattern must be a str.format pattern whose only field is {n}."""
    hint = "use {n} for the clone number, e.g. 'TRN-CAP-{n:03}'"
    try:
        first, second = pattern.format(n=1), pattern.format(n=2)
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(f"Clone name pattern {pattern!r} is not valid ({exc}): {hint}") from exc
    if first == second:
        raise ConfigError(f"Clone name pattern {pattern!r} has no {{n}}: {hint}")


class FoundCloneStore(Core):
    """Clones recorded anew from what vCenter holds (part of `bot.ports.Clones`)."""

    def record_found_clone(
        self,
        *,
        environment: str,
        type: str,
        parent: str,
        name: str,
        moref: str,
        instance_uuid: str,
        host: str | None = None,
        delta_bytes: int | None = None,
        power_state: str | None = None,
    ) -> Clone:
        """Record a clone the bot made whose record was lost (`orphans adopt`): a READY row,
        owned by no run, in one transaction; refused when a live clone has the name."""
        with self.transaction():
            require_environment(self, environment)
            now = to_text(utc_now())
            try:
                clone_id = self._insert(
                    "INSERT INTO clones (name, environment, type, parent, state, moref,"
                    " instance_uuid, host, delta_bytes, power_state, attempts, created_at,"
                    " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)",
                    (
                        name,
                        environment,
                        type,
                        parent,
                        CloneState.READY.value,
                        moref,
                        instance_uuid,
                        host,
                        delta_bytes,
                        power_state,
                        now,
                        now,
                    ),
                )
            except IntegrityViolation as exc:
                raise ConflictError(
                    f"A live clone named {name!r} is recorded already; {name} was left alone."
                ) from exc
            row = self._row("SELECT * FROM clones WHERE id = ?", (clone_id,))
            assert row is not None, "inserted in this transaction"
            return clone_record(row)


class CloneStore(FoundCloneStore, ParentStore):
    """Implements `bot.ports.Clones`."""

    # Kept whole: choosing and inserting names must share one transaction.
    def reserve_clones(
        self,
        *,
        environment: str,
        type: str,
        parent: str,
        pattern: str,
        count: int,
        run_id: int | None,
    ) -> list[Clone]:
        """Reserve `count` names (the smallest free numbers) as PLANNED clones, atomically.

        A name is free when no live clone has it, so names of failed and destroyed clones are
        reused. The write lock is held from choosing to inserting, so concurrent callers, in
        this process or another, never get the same name.
        """
        if count < 0:
            raise ValueError(f"count must be 0 or more, not {count}")
        _check_pattern(pattern)
        with self.transaction():
            require_environment(self, environment)
            if run_id is not None:
                load_run(self, run_id)
            names = self._free_names(pattern, count)
            now = utc_now()
            stamp = to_text(now)
            planned = CloneState.PLANNED.value
            ids = self._insert_many(
                "INSERT INTO clones (name, environment, type, parent, state, run_id,"
                " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (name, environment, type, parent, planned, run_id, stamp, stamp)
                    for name in names
                ],
            )
            if run_id is not None:
                self._execute_many(
                    "INSERT INTO run_clones (run_id, clone_id) VALUES (?, ?)",
                    [(run_id, clone_id) for clone_id in ids],
                )
            clones = []
            for name, clone_id in zip(names, ids, strict=True):
                clones.append(
                    Clone(
                        id=clone_id,
                        name=name,
                        environment=environment,
                        type=type,
                        parent=parent,
                        state=CloneState.PLANNED,
                        run_id=run_id,
                        created_at=now,
                        updated_at=now,
                    )
                )
            return clones

    def _free_names(self, pattern: str, count: int) -> list[str]:
        """The `count` smallest-numbered names no live clone has; call inside the transaction
        that inserts them."""
        names: list[str] = []
        start = 1
        while len(names) < count:
            batch = [pattern.format(n=n) for n in range(start, start + _NAME_BATCH)]
            taken = {
                row["name"]
                for row in self._rows(
                    f"SELECT name FROM clones WHERE {LIVE} AND name IN ({placeholders(batch)})",
                    batch,
                )
            }
            names += [name for name in batch if name not in taken][: count - len(names)]
            start += _NAME_BATCH
        return names

    def update_clone(self, clone_id: int, *, fence: Fence | None = None, **changes: Any) -> Clone:
        """Change a clone's recorded fields (state, moref, instance_uuid, error, host, ...);
        with a `fence`, only while its run is still this process's (`check_fence`)."""
        unknown = set(changes) - _CLONE_CHANGES
        if unknown:
            raise TypeError(f"update_clone() cannot change {sorted(unknown)}")
        values = dict(changes)
        if "state" in values:
            values["state"] = CloneState(values["state"]).value
        if "kept_attributes" in values:
            kept = dict(values["kept_attributes"])
            values["kept_attributes"] = json.dumps(kept, sort_keys=True) if kept else ""
        values["updated_at"] = to_text(utc_now())
        assignments = ", ".join(f"{column} = ?" for column in values)
        # One statement (a round trip on PostgreSQL, inside the write lock): the state change
        # allowed only from the states that may make it, the fence in its WHERE, the row as
        # written back by RETURNING. When it writes nothing, the checks below say why.
        where, params = "id = ?", [*values.values(), clone_id]
        if "state" in changes:
            new = CloneState(changes["state"])
            sources = [s.value for s, to in CLONE_TRANSITIONS.items() if s is new or new in to]
            where += f" AND state IN ({placeholders(sources)})"
            params += sources
        fenced, fence_params = fence_condition(fence)
        sql = f"UPDATE clones SET {assignments} WHERE {where}{fenced} RETURNING *"
        try:
            if not self._in_transaction():  # inside one, a failure must undo only this write
                written, _ = self._write_alone(sql, [*params, *fence_params])
                if written:
                    return clone_record(written[0])
            with self.transaction():  # nothing written: again, then each check, in one
                written, _ = self._write_alone(sql, [*params, *fence_params])
                if written:
                    return clone_record(written[0])
                check_fence(self, fence)
                current = clone_record(self._clone_row(clone_id))
                if "state" in changes:
                    clone_transition(current.state, CloneState(changes["state"]))
                raise AssertionError(f"clone {clone_id}: nothing written, no check says why")
        except IntegrityViolation as exc:  # read after the write was undone
            name = self._clone_row(clone_id)["name"]
            if exc.unique:
                raise ConflictError(
                    f"Clone {name!r} cannot become live again: another live clone"
                    " already has that name."
                ) from exc
            raise ConflictError(
                f"Clone {name!r} cannot refer to run {values.get('run_id')}: there is no such run."
            ) from exc

    def get_clone(self, clone_id: int) -> Clone:
        return clone_record(self._clone_row(clone_id))

    def _clone_row(self, clone_id: int) -> dict[str, Any]:
        row = self._row("SELECT * FROM clones WHERE id = ?", (clone_id,))
        if row is None:
            raise NotFoundError(f"There is no clone with id {clone_id}.")
        return row

    def find_clone(self, name: str) -> Clone | None:
        """The live clone with this name, if any."""
        row = self._row(f"SELECT * FROM clones WHERE name = ? AND {LIVE}", (name,))
        return clone_record(row) if row else None

    def clones(
        self,
        *,
        environment: str | None = None,
        states: Iterable[CloneState] | None = None,
        type: str | None = None,
        run_id: int | None = None,
        current: bool = False,
    ) -> list[Clone]:
        """Clones matching every given filter, ordered by environment, type and name;
        `current`: only those not destroyed (what status shows; destroyed ones are history)."""
        where = (
            Where()
            .equal("environment", environment)
            .among("state", None if states is None else [CloneState(s).value for s in states])
            .equal("type", type)
        )
        if current:
            where.holds(CURRENT)
        if run_id is not None:
            where.holds("id IN (SELECT clone_id FROM run_clones WHERE run_id = ?)", run_id)
        if where.nothing:
            return []
        rows = self._rows(
            f"SELECT * FROM clones{where} ORDER BY environment, type, name", where.params
        )
        return [clone_record(row) for row in rows]

    def clones_by_instance_uuid(self, uuids: Iterable[str]) -> dict[str, Clone]:
        """The newest clone row for each instance UUID (live or not)."""
        wanted = list(dict.fromkeys(uuids))
        out: dict[str, Clone] = {}
        for i in range(0, len(wanted), _NAME_BATCH):
            batch = wanted[i : i + _NAME_BATCH]
            rows = self._rows(
                f"SELECT * FROM clones WHERE instance_uuid IN ({placeholders(batch)}) ORDER BY id",
                batch,
            )
            for row in rows:
                out[row["instance_uuid"]] = clone_record(row)
        return out

    def clone_deltas(
        self, *, environment: str | None = None, states: Iterable[CloneState] = (CloneState.READY,)
    ) -> list[tuple[str, int | None]]:
        """(parent, delta_bytes) of each clone: all the savings math needs, without building
        a Clone object per row (20,000 of them took most of a savings report's time)."""
        wanted = [CloneState(s).value for s in states]
        sql = f"SELECT parent, delta_bytes FROM clones WHERE state IN ({placeholders(wanted)})"
        params: list[object] = list(wanted)
        if environment is not None:
            sql += " AND environment = ?"
            params.append(environment)
        return [(row[0], row[1]) for row in self._tuples(sql, params)]

    def failed_clones(
        self, environments: Iterable[str] | None = None
    ) -> dict[str, list[FailedClone]]:
        """environment -> its failed and missing clones (name, type, why), of the given
        environments (None: all), by type and name: what status lists, read as three columns
        rather than a whole Clone per row (a large estate's overview read a thousand)."""
        where = (
            Where()
            .holds(CURRENT)
            .among("state", [s.value for s in FAILURE_STATES])
            .among("environment", environments)
        )
        if where.nothing:
            return {}
        out: dict[str, list[FailedClone]] = {}
        for environment, name, type_, error, state in self._tuples(
            f"SELECT environment, name, type, error, state FROM clones{where}"
            " ORDER BY environment, type, name",
            where.params,
        ):
            out.setdefault(environment, []).append(FailedClone(name, type_, error or state))
        return out

    def clone_counts(
        self, environments: Iterable[str] | None = None
    ) -> dict[str, dict[str, dict[CloneState, int]]]:
        """environment -> type -> state -> number of clones not destroyed (states with none are
        absent), of the given environments (None: all). Destroyed clones are history: a year of
        them costs this read nothing (it reads the partial index `clones_current` only)."""
        where = Where().holds(CURRENT).among("environment", environments)
        if where.nothing:
            return {}
        counts: dict[str, dict[str, dict[CloneState, int]]] = {}
        for row in self._rows(
            f"SELECT environment, type, state, count(*) AS n FROM clones{where}"
            " GROUP BY environment, type, state",
            where.params,
        ):
            by_type = counts.setdefault(row["environment"], {})
            by_type.setdefault(row["type"], {})[CloneState(row["state"])] = row["n"]
        return counts

    def mark_missing(self, clone_ids: Iterable[int], *, unchanged_since: datetime) -> list[Clone]:
        """Record ready clones whose VM vCenter no longer has as missing, unless a row changed
        after `unchanged_since` (the moment before vCenter was read): a clone made or changed
        meanwhile is not judged by an older read."""
        out: list[Clone] = []
        with self.transaction():
            for clone_id in clone_ids:
                cursor = self._execute(
                    "UPDATE clones SET state = ?, error = ?, updated_at = ?"
                    " WHERE id = ? AND state = ? AND updated_at <= ?",
                    (
                        CloneState.MISSING.value,
                        "gone from vCenter, not destroyed by the bot",
                        to_text(utc_now()),
                        clone_id,
                        CloneState.READY.value,
                        to_text(unchanged_since),
                    ),
                )
                if cursor.rowcount == 1:
                    out.append(self.get_clone(clone_id))
        return out

    # -- how far clones grew, for the capacity estimate --------------------------------------

    def record_sizes(self, sizes: Iterable[tuple[int, int]]) -> None:
        """Record sizes read from vCenter, (clone id, committed bytes) pairs: each clone's peak
        (and when it was reached) and when its size was last read. Not a change of the clone:
        its updated_at stays (a read must not look like a newer write to `mark_missing`)."""
        now = to_text(utc_now())
        rows = [(n, now, n, n, now, clone_id) for clone_id, n in sizes if n > 0]
        if not rows:
            return
        with self.transaction():  # every expression reads the row as it was before
            self._execute_many(
                "UPDATE clones SET"
                " peak_at = CASE WHEN ? > COALESCE(peak_bytes, 0) THEN ? ELSE peak_at END,"
                " peak_bytes = CASE WHEN ? > COALESCE(peak_bytes, 0) THEN ? ELSE peak_bytes END,"
                " sized_at = ? WHERE id = ?",  # no two-argument MAX: PostgreSQL has GREATEST
                rows,
            )

    def clone_peaks(self, *, type: str, parent: str) -> list[ClonePeak]:
        """The peaks recorded for the clones of one type made from one parent, live or not
        (a few columns: a type may have thousands of clones over the years)."""
        rows = self._tuples(
            "SELECT environment, peak_bytes, created_at, sized_at FROM clones"
            " WHERE type = ? AND parent = ? AND peak_bytes IS NOT NULL AND sized_at IS NOT NULL",
            (type, parent),
        )
        out = []
        for environment, peak, created, sized in rows:
            created_at, sized_at = from_text(created), from_text(sized)
            if created_at is not None and sized_at is not None:
                out.append(ClonePeak(environment, peak, created_at, sized_at))
        return out
