"""Times as trainers type them: deterministic given `now` and the team zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.domain.errors import UsageError
from bot.domain.timeparse import (
    describe_delta,
    describe_relative,
    describe_time,
    format_duration,
    parse_duration,
    parse_time,
)

LONDON = "Europe/London"
# Thursday 26 November 2026, 10:00 GMT.
NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


def local(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, zone: str = LONDON
) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(zone))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mon 08:00", local(2026, 11, 30, 8, 0)),
        ("Monday 8:00", local(2026, 11, 30, 8, 0)),
        ("fri 17:00", local(2026, 11, 27, 17, 0)),
        ("fri at 17:00", local(2026, 11, 27, 17, 0)),
        ("17:00 fri", local(2026, 11, 27, 17, 0)),
        ("fri 5pm", local(2026, 11, 27, 17, 0)),
        ("fri 5 pm", local(2026, 11, 27, 17, 0)),
        ("next mon 8:30", local(2026, 11, 30, 8, 30)),
        ("thu 11:00", local(2026, 11, 26, 11, 0)),  # later today
        ("thu 09:00", local(2026, 12, 3, 9, 0)),  # passed today: next week
        ("tomorrow 9:00", local(2026, 11, 27, 9, 0)),
        ("tomorrow at 9am", local(2026, 11, 27, 9, 0)),
        ("today 17:30", local(2026, 11, 26, 17, 30)),
        ("17:00", local(2026, 11, 26, 17, 0)),
        ("9:00", local(2026, 11, 27, 9, 0)),  # a bare time: its next occurrence
        ("noon", local(2026, 11, 26, 12, 0)),
        ("in 3h", local(2026, 11, 26, 13, 0)),
        ("in 1h 30m", local(2026, 11, 26, 11, 30)),
        ("in 2 days", local(2026, 11, 28, 10, 0)),
        ("2026-12-01 09:00", local(2026, 12, 1, 9, 0)),
        ("2026-12-01T09:00", local(2026, 12, 1, 9, 0)),
        ("2026-12-01T09:00+01:00", local(2026, 12, 1, 8, 0)),
        ("28 nov 17:00", local(2026, 11, 28, 17, 0)),
        ("nov 28 17:00", local(2026, 11, 28, 17, 0)),
        ("sat 28 nov 17:00", local(2026, 11, 28, 17, 0)),
        ("5 jan 9:00", local(2027, 1, 5, 9, 0)),  # said in November: next January
        ("1 dec 2027 09:00", local(2027, 12, 1, 9, 0)),
        ("FRI 17:00", local(2026, 11, 27, 17, 0)),
    ],
)
def test_parses(text: str, expected: datetime) -> None:
    got = parse_time(text, now=NOW, zone=LONDON)
    assert got == expected
    assert got.tzinfo is not None
    assert got.utcoffset() == expected.utcoffset()


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", ["say when"]),
        ("whenever", ['could not read "whenever"', "fri 17:00"]),
        ("fri", ["add a time of day"]),
        ("28 nov", ["add a time of day"]),
        ("25:00", ["could not read"]),
        ("fri 13:61", ["could not read"]),
        ("2026-02-30 09:00", ["there is no date"]),
        ("31 feb 09:00", ["there is no day 31"]),
        ("fri 28 nov 17:00", ["is a Saturday"]),
        ("in 3 parsecs", ["could not read"]),
        ("mon tue 08:00", ["could not read"]),
        ("13pm", ["could not read"]),
        ("in 400d", ['"in 400d" is 400 d ahead', "at most a year ahead", "in 3h"]),
        ("in 60w", ["at most a year ahead"]),
    ],
)
def test_bad_times_name_the_problem_and_show_an_example(text: str, words: list[str]) -> None:
    with pytest.raises(UsageError) as caught:
        parse_time(text, now=NOW, zone=LONDON)
    message = str(caught.value)
    assert "e.g." in message or "try" in message
    for word in words:
        assert word in message


def test_deterministic_and_needs_an_aware_now() -> None:
    first = parse_time("fri 17:00", now=NOW, zone=LONDON)
    assert all(parse_time("fri 17:00", now=NOW, zone=LONDON) == first for _ in range(5))
    with pytest.raises(ValueError):
        parse_time("fri 17:00", now=datetime(2026, 11, 26, 10, 0), zone=LONDON)


def test_after_anchors_the_next_occurrence_forms() -> None:
    start = parse_time("fri 08:00", now=NOW, zone=LONDON)
    assert parse_time("fri 17:00", now=NOW, zone=LONDON, after=start) == local(2026, 11, 27, 17)
    # From the start on Friday 08:00, "thu 9:00" is the Thursday after it.
    assert parse_time("thu 9:00", now=NOW, zone=LONDON, after=start) == local(2026, 12, 3, 9)


def test_other_zones() -> None:
    got = parse_time("fri 17:00", now=NOW, zone="America/New_York")
    assert got == local(2026, 11, 27, 17, zone="America/New_York")
    assert got.astimezone(UTC).hour == 22


# ------------------------------------------------------------------ daylight saving (London)
# 2026: clocks go forward Sun 29 Mar 01:00 GMT -> 02:00 BST, back Sun 25 Oct 02:00 BST -> 01:00.


def test_wall_clock_times_follow_the_clocks_across_spring_forward() -> None:
    friday = datetime(2026, 3, 27, 12, 0, tzinfo=UTC)
    monday = parse_time("mon 08:00", now=friday, zone=LONDON)
    assert monday.astimezone(UTC) == datetime(2026, 3, 30, 7, 0, tzinfo=UTC)  # 08:00 BST
    assert describe_time(monday, friday, LONDON).startswith("Mon 30 Mar 08:00 BST")


def test_a_time_in_the_spring_gap_moves_forward() -> None:
    friday = datetime(2026, 3, 27, 12, 0, tzinfo=UTC)
    got = parse_time("sun 01:30", now=friday, zone=LONDON)  # 01:30 does not exist that day
    assert got.astimezone(UTC) == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    assert describe_time(got, friday, LONDON).startswith("Sun 29 Mar 02:30 BST")


def test_a_repeated_autumn_time_means_the_first() -> None:
    friday = datetime(2026, 10, 23, 12, 0, tzinfo=UTC)
    got = parse_time("sun 01:30", now=friday, zone=LONDON)  # happens at BST and again at GMT
    assert got.astimezone(UTC) == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    assert "01:30 BST" in describe_time(got, friday, LONDON)


def test_relative_times_are_elapsed_time_across_a_change() -> None:
    saturday_night = datetime(2026, 3, 28, 23, 30, tzinfo=UTC)  # 23:30 GMT
    got = parse_time("in 3h", now=saturday_night, zone=LONDON)
    assert got - saturday_night == timedelta(hours=3)
    assert describe_time(got, saturday_night, LONDON).startswith("Sun 29 Mar 03:30 BST")


# ------------------------------------------------------------------ durations and display


@pytest.mark.parametrize(
    ("text", "minutes"),
    [
        ("2h", 120),
        ("2 h", 120),
        ("90m", 90),
        ("1h30m", 90),
        ("1h 30m", 90),
        ("1 day", 1440),
        ("2 hours 30 minutes", 150),
        ("by 2h", 120),
        ("1w", 10080),
    ],
)
def test_durations(text: str, minutes: int) -> None:
    assert parse_duration(text) == timedelta(minutes=minutes)


@pytest.mark.parametrize("text", ["", "2", "h", "2x", "-2h", "0h", "2h -1m", "9999d"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_duration(text)
    assert "2h" in str(caught.value)


@given(st.integers(1, 366 * 1440))
def test_format_duration_round_trips(minutes: int) -> None:
    delta = timedelta(minutes=minutes)
    assert parse_duration(format_duration(delta)) == delta


def test_describe() -> None:
    later = NOW + timedelta(days=2, hours=3, minutes=10)
    assert describe_time(later, NOW, LONDON) == "Sat 28 Nov 13:10 GMT (in 2 d 3 h)"
    assert describe_time(NOW + timedelta(days=40), NOW, LONDON).startswith("Tue 5 Jan 2027")
    assert describe_delta(timedelta(minutes=45)) == "45 min"
    assert describe_delta(timedelta(hours=2, minutes=5)) == "2 h 5 min"
    assert describe_delta(timedelta(seconds=20)) == "less than a minute"
    assert describe_relative(NOW - timedelta(minutes=5), NOW) == "5 min ago"
    # Under a minute in seconds (a start 46 s away is not "now"), else to the nearest minute:
    # "in 3h" shown back a moment later still reads "in 3 h".
    assert describe_relative(NOW + timedelta(seconds=10), NOW) == "in 10 s"
    assert describe_relative(NOW + timedelta(seconds=46), NOW) == "in 46 s"
    assert describe_relative(NOW - timedelta(seconds=46), NOW) == "46 s ago"
    assert describe_relative(NOW + timedelta(milliseconds=300), NOW) == "now"
    assert describe_relative(NOW + timedelta(seconds=59.8), NOW) == "in 1 min"
    assert describe_relative(NOW + timedelta(hours=3, milliseconds=-5), NOW) == "in 3 h"
    assert describe_relative(NOW + timedelta(hours=2, minutes=59), NOW) == "in 2 h 59 min"
    assert describe_relative(NOW + timedelta(hours=2), NOW) == "in 2 h"
    # Zones whose abbreviation is numeric still say which offset.
    assert "UTC+03" in describe_time(NOW, NOW, "Asia/Riyadh")


@given(st.text(max_size=40))
def test_any_text_gives_a_time_or_a_usage_error(text: str) -> None:
    try:
        got = parse_time(text, now=NOW, zone=LONDON)
    except UsageError as exc:
        assert "\n" not in str(exc)
    else:
        assert got.tzinfo is not None
