"""Environments: a named set of clones with an owner, a channel and an optional schedule."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.domain.errors import ConflictError, NotFoundError
from bot.domain.models import KEEP, Environment, Keep, RunState
from storage.core import Core
from storage.sql import CURRENT, LIVE, RESUMABLE, from_text, to_text, utc_now


def environment_record(row: dict[str, Any]) -> Environment:
    return Environment(
        name=row["name"],
        owner=row["owner"],
        channel=row["channel"],
        created_at=from_text(row["created_at"]),
        starts_at=from_text(row["starts_at"]),
        ends_at=from_text(row["ends_at"]),
    )


def find_environment(core: Core, name: str) -> Environment | None:
    """The environment named `name`, if any (other stores look one up through this)."""
    row = core._row("SELECT * FROM environments WHERE name = ?", (name,))
    return environment_record(row) if row else None


def require_environment(core: Core, name: str) -> Environment:
    environment = find_environment(core, name)
    if environment is None:
        raise NotFoundError(
            f"There is no environment named {name!r}; check the name in the environment list."
        )
    return environment


class EnvironmentStore(Core):
    """Implements `bot.ports.Environments`."""

    def ensure_environment(self, name: str, owner: str, channel: str = "") -> Environment:
        """Create the environment if missing; an existing one is returned unchanged."""
        with self.transaction():
            self._execute(
                "INSERT INTO environments (name, owner, channel, created_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (name, owner, channel, to_text(utc_now())),
            )
            return require_environment(self, name)

    def get_environment(self, name: str) -> Environment | None:
        return find_environment(self, name)

    def list_environments(self) -> list[Environment]:
        """Every environment recorded, finished ones too (for `status --all`)."""
        rows = self._rows("SELECT * FROM environments ORDER BY name")
        return [environment_record(row) for row in rows]

    def live_environments(self) -> list[Environment]:
        """The environments with something to show now: clones that may be in vCenter (or
        failed and missing records, until a strip back clears them), a deployment or strip back
        to come, or a run that may still act. Read through indexes
        that hold only such rows, however many finished environments there are."""
        rows = self._rows(
            # The environments of current clones, one index probe each (a loose index scan:
            # the next name after the last), not a pass over every current clone.
            "WITH RECURSIVE current_env(name) AS ("
            f" SELECT min(environment) FROM clones WHERE {CURRENT}"
            " UNION ALL SELECT (SELECT min(environment) FROM clones"
            f" WHERE {CURRENT} AND environment > current_env.name)"
            " FROM current_env WHERE current_env.name IS NOT NULL)"
            " SELECT * FROM environments WHERE name IN ("
            " SELECT name FROM current_env WHERE name IS NOT NULL"
            " UNION SELECT name FROM environments WHERE starts_at IS NOT NULL"
            " UNION SELECT name FROM environments WHERE ends_at IS NOT NULL"
            f" UNION SELECT environment FROM runs WHERE {RESUMABLE}"
            ") ORDER BY name"
        )
        return [environment_record(row) for row in rows]

    def update_environment(
        self,
        name: str,
        *,
        channel: str | None = None,
        owner: str | None = None,
        starts_at: datetime | Keep | None = KEEP,
        ends_at: datetime | Keep | None = KEEP,
    ) -> Environment:
        """Change the given fields; `starts_at`/`ends_at` accept None to clear the schedule."""
        changes: dict[str, object] = {}
        if channel is not None:
            changes["channel"] = channel
        if owner is not None:
            changes["owner"] = owner
        if not isinstance(starts_at, Keep):
            changes["starts_at"] = to_text(starts_at)
        if not isinstance(ends_at, Keep):
            changes["ends_at"] = to_text(ends_at)
        with self.transaction():
            require_environment(self, name)
            if changes:
                assignments = ", ".join(f"{column} = ?" for column in changes)
                self._execute(
                    f"UPDATE environments SET {assignments} WHERE name = ?",
                    [*changes.values(), name],
                )
            return require_environment(self, name)

    def delete_environment(self, name: str) -> None:
        """Delete an environment with its clone history and runs; refused while it has live clones
        or a running run."""
        with self.transaction():
            require_environment(self, name)
            live = self._row(
                f"SELECT count(*) AS n FROM clones WHERE environment = ? AND {LIVE}", (name,)
            )
            if live and live["n"]:
                raise ConflictError(
                    f"Environment {name!r} still has {live['n']} clone(s) that may exist in"
                    " vCenter; strip it back first."
                )
            running = self._row(
                "SELECT id FROM runs WHERE environment = ? AND state = ? LIMIT 1",
                (name, RunState.RUNNING.value),
            )
            if running:
                raise ConflictError(
                    f"Environment {name!r} has run {running['id']} in progress; wait for it to"
                    " finish."
                )
            self._execute("DELETE FROM environments WHERE name = ?", (name,))
