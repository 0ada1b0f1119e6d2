"""How much room a new clone will take: its delta, estimated from how far the deltas of earlier
clones of its type grew over their life (pure functions).

A linked clone's delta is a few MB when it is made; a Windows clone's grows by GBs once it boots,
is customized and used for a course. So the estimate is a high percentile of the largest sizes
the type's clones reached, counting only clones that lived at least a day (a clone's size is
recorded whenever vCenter is read for it: status, inventory, strip back, refresh), never below
the type's `delta_estimate_gb`; with no such clone yet, the configured figure (else 1 GB).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.domain.savings import GIB

LIVED = timedelta(days=1)  # a clone younger than this says nothing about growth yet
PERCENTILE = 95
DEFAULT_DELTA = GIB  # no delta_estimate_gb and no clone that lived a day


@dataclass(frozen=True)
class ClonePeak:
    """The largest size one clone reached, as far as the bot has seen it."""

    environment: str
    peak_bytes: int
    created_at: datetime
    sized_at: datetime  # when its size was last read

    @property
    def lived(self) -> timedelta:
        """How old it was when its size was last read."""
        return self.sized_at - self.created_at


@dataclass(frozen=True)
class DeltaEstimate:
    """A new clone's expected delta, and where the figure comes from (said by plan and check)."""

    bytes: int
    source: str  # "from 25 clones of nov-cohort that lived a day or more: 95th percentile ..."
    clones: int = 0  # the clones it was estimated from (0: the configured or default figure)


def percentile(values: Sequence[int], pct: int) -> int:
    """The nearest-rank percentile of `values` (at least one)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def estimate_delta(peaks: Sequence[ClonePeak], configured: float | None) -> DeltaEstimate:
    """The delta to expect of a new clone of a type, from its clones' peaks (`configured`: the
    type's delta_estimate_gb, a floor; None when not set)."""
    floor = None if configured is None else int(configured * GIB)
    grown = [p for p in peaks if p.lived >= LIVED]
    if not grown:
        figure = DEFAULT_DELTA if floor is None else floor
        said = "default" if floor is None else "configured"
        return DeltaEstimate(figure, f"{said} {_gb(figure)}: no clone has lived a day yet")
    high = percentile([p.peak_bytes for p in grown], PERCENTILE)
    seen = f"{len(grown)} clone{'' if len(grown) == 1 else 's'} of {_courses(grown)}"
    if floor is not None and floor > high:
        return DeltaEstimate(
            floor,
            f"configured {_gb(floor)}, above the {PERCENTILE}th percentile {_gb(high)} of "
            f"{seen} that lived a day or more",
            len(grown),
        )
    return DeltaEstimate(
        high,
        f"from {seen} that lived a day or more, {PERCENTILE}th percentile {_gb(high)}",
        len(grown),
    )


def _courses(peaks: Sequence[ClonePeak]) -> str:
    """The environments the clones were in: "nov-cohort", "oct and nov", "5 courses (the last:
    nov)"; the last is the one whose clones were made last."""
    latest: dict[str, datetime] = {}
    for p in peaks:
        latest[p.environment] = max(p.created_at, latest.get(p.environment, p.created_at))
    names = sorted(latest, key=lambda e: (latest[e], e))
    if len(names) == 1:
        return names[0]
    if len(names) == 2:
        return f"{names[0]} and {names[1]}"
    return f"{len(names)} courses (the last: {names[-1]})"


def _gb(nbytes: int) -> str:
    return f"{nbytes / GIB:.2f} GB"
