"""Small pieces of SQL and column conversions that more than one store uses."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Final

# Must match the partial unique index `clones_live_name` word for word, or SQLite will not use
# that index for the name lookups of `reserve_clones` and `find_clone`.
LIVE: Final = "state NOT IN ('failed', 'destroyed', 'missing')"
# Must match the partial index `clones_current` (m014) word for word: the clones not destroyed
# (live, failed, missing), the only ones the everyday reads look at. A year of destroyed clones
# is history, read on request (storage/history.py).
CURRENT: Final = "state != 'destroyed'"
# Live clones through that index: SQLite cannot tell that LIVE implies CURRENT by itself.
LIVE_CURRENT: Final = f"{CURRENT} AND state NOT IN ('failed', 'missing')"
# Runs that may still act: a running one (its process may have died: recovery resumes it) and
# an interrupted one ("resume" finishes it).
RESUMABLE: Final = "state IN ('running', 'interrupted')"


def utc_now() -> datetime:
    return datetime.now(UTC)


def to_text(moment: datetime | None) -> str | None:
    """ISO-8601 in UTC with fixed precision, so text order is time order."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        raise ValueError(f"{moment!r} has no time zone; pass an aware datetime")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def from_text(text: str | None) -> datetime | None:
    if text is None:
        return None
    moment = datetime.fromisoformat(text)
    # Rows written by hand (sqlite3 CLI) may lack an offset; everything here is UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def placeholders(values: Sequence[object]) -> str:
    return ", ".join("?" for _ in values)


class Where:
    """The WHERE clause of a read with optional filters: a filter given as None is left out;
    one given as an empty set matches nothing (`nothing`, so the caller need not ask)."""

    def __init__(self) -> None:
        self.clauses: list[str] = []
        self.params: list[object] = []
        self.nothing = False

    def equal(self, column: str, value: object | None) -> Where:
        if value is not None:
            self.clauses.append(f"{column} = ?")
            self.params.append(value)
        return self

    def among(self, column: str, values: Iterable[object] | None) -> Where:
        if values is not None:
            wanted = list(values)
            self.nothing = self.nothing or not wanted
            self.clauses.append(f"{column} IN ({placeholders(wanted)})")
            self.params += wanted
        return self

    def holds(self, clause: str, *params: object) -> Where:
        self.clauses.append(clause)
        self.params += params
        return self

    def __str__(self) -> str:
        return " WHERE " + " AND ".join(self.clauses) if self.clauses else ""
