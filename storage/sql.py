"""Small pieces of SQL and column conversions that more than one store uses."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Final

# Must match the partial unique index `clones_live_name` word for word, or SQLite will not use
# that index for the name lookups of `reserve_clones` and `find_clone`.
LIVE: Final = "state NOT IN ('failed', 'destroyed', 'missing')"


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
