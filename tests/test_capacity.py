"""The delta estimate from growth (bot/domain/capacity.py): pure, no vCenter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.domain.capacity import ClonePeak, estimate_delta, percentile
from bot.domain.savings import GIB

T0 = datetime(2024, 11, 4, 9, 0, tzinfo=UTC)


def peak(gb: float, *, env: str = "nov", hours: float = 30, made: datetime = T0) -> ClonePeak:
    return ClonePeak(env, int(gb * GIB), made, made + timedelta(hours=hours))


def test_no_clone_that_lived_a_day_gives_the_configured_figure_or_one_gb() -> None:
    young = [peak(0.01, hours=2), peak(5, hours=23.9)]  # a just-made delta, and a day not yet
    est = estimate_delta(young, 0.5)
    assert est.bytes == int(0.5 * GIB) and est.clones == 0
    assert est.source == "configured 0.50 GB: no clone has lived a day yet"
    est = estimate_delta(young, None)
    assert est.bytes == GIB and est.source == "default 1.00 GB: no clone has lived a day yet"
    # The figure that said "room for about 22352413932 clones of 0.00 GB": a just-made delta.
    assert estimate_delta([peak(0.00001, hours=0.01)], None).bytes == GIB


def test_the_95th_percentile_of_the_peaks_of_clones_that_lived_a_day() -> None:
    course = [peak(2.0 + i / 100) for i in range(75)] + [peak(9, hours=1)]  # the young one: out
    est = estimate_delta(course, 1)
    assert est.clones == 75
    assert est.bytes == percentile([p.peak_bytes for p in course[:75]], 95)
    assert est.bytes == int(2.71 * GIB)  # rank 72 of 75
    assert est.source == ("from 75 clones of nov that lived a day or more, 95th percentile 2.71 GB")


def test_never_below_the_configured_delta() -> None:
    est = estimate_delta([peak(0.2), peak(0.3)], 0.5)
    assert est.bytes == int(0.5 * GIB)
    assert est.source == (
        "configured 0.50 GB, above the 95th percentile 0.30 GB of 2 clones of nov that lived "
        "a day or more"
    )


def test_the_courses_are_named() -> None:
    later = T0 + timedelta(days=30)
    two = [peak(1, env="oct"), peak(2, env="nov", made=later)]
    assert "2 clones of oct and nov that" in estimate_delta(two, None).source
    three = [*two, peak(1, env="dec", made=later + timedelta(days=30))]
    assert "3 clones of 3 courses (the last: dec) that" in estimate_delta(three, None).source
    assert estimate_delta([peak(1.5)], None).source.startswith("from 1 clone of nov that")


def test_percentile_is_nearest_rank() -> None:
    assert percentile([5], 95) == 5
    assert percentile([1, 2, 3, 4], 50) == 2
    assert percentile(list(range(1, 101)), 95) == 95
