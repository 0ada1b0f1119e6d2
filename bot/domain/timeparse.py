"""Times and durations as people type them, in the team's time zone, and how to show them back.

Why hand-written: the accepted forms are a small closed grammar (weekday + time, today/tomorrow,
ISO dates, "28 nov", "in 3h", durations like "2h"/"1h30m"). `dateparser` is large, guesses
across languages and date orders ("01/02"), and reads the wall clock unless carefully fenced in;
`parsedatetime` returns "best effort" results with a status flag. Here every result is a pure
function of (text, now, zone): the same words always give the same instant, and anything outside
the grammar is a UsageError with an example rather than a guess.

Rules worth knowing:
- Wall-clock forms ("fri 17:00", "tomorrow 9:00", "2026-12-01 09:00") are local times in the team
  zone. A weekday or a bare time means its next occurrence after `after` (default: now).
- "in 3h" and extensions ("2h") are elapsed time: across a daylight-saving change "in 3h" is
  three real hours, whatever the clocks say.
- A local time that does not exist (clocks go forward: 01:30 on the last Sunday of March in
  Europe/London) moves forward by the gap (02:30 BST); one that happens twice (clocks go back)
  means the first of the two. `describe_time` always shows the zone, so the user sees which.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo

from bot.domain.errors import UsageError

TIME_EXAMPLES = '"fri 17:00", "tomorrow 9:00", "in 3h" or "2026-12-01 09:00"'
DURATION_EXAMPLES = '"2h", "90m", "1h30m" or "1d"'

_WEEKDAYS = {
    "mon": 0, "monday": 0, "tue": 1, "tues": 1, "tuesday": 1, "wed": 2, "weds": 2,
    "wednesday": 2, "thu": 3, "thur": 3, "thurs": 3, "thursday": 3, "fri": 4, "friday": 4,
    "sat": 5, "saturday": 5, "sun": 6, "sunday": 6,
}  # fmt: skip
_MONTHS = {
    "jan": 1, "january": 1, "feb": 2, "february": 2, "mar": 3, "march": 3, "apr": 4, "april": 4,
    "may": 5, "jun": 6, "june": 6, "jul": 7, "july": 7, "aug": 8, "august": 8, "sep": 9,
    "sept": 9, "september": 9, "oct": 10, "october": 10, "nov": 11, "november": 11, "dec": 12,
    "december": 12,
}  # fmt: skip
_UNITS = {
    "m": 1, "min": 1, "mins": 1, "minute": 1, "minutes": 1,
    "h": 60, "hr": 60, "hrs": 60, "hour": 60, "hours": 60,
    "d": 1440, "day": 1440, "days": 1440,
    "w": 10080, "wk": 10080, "week": 10080, "weeks": 10080,
}  # fmt: skip
_FILLER = {"at", "on", "next", "this", "the", "by"}
MAX_DURATION = timedelta(days=366)

_ISO_DATE = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})", re.ASCII)
_CLOCK = re.compile(r"(\d{1,2})(?:[:.h](\d{2}))?(am|pm)?", re.ASCII)
_DURATION_PART = re.compile(r"(\d{1,4})\s*([a-z]+)", re.ASCII)


def zone_of(name: str | tzinfo) -> tzinfo:
    return ZoneInfo(name) if isinstance(name, str) else name


def _shown(text: str, limit: int = 40) -> str:
    """A user's text made safe to echo inside a one-line message."""
    clean = "".join(ch if ch.isprintable() else "?" for ch in text.strip())
    return clean if len(clean) <= limit else clean[: limit - 3] + "..."


def _bad_time(text: str, why: str = "") -> UsageError:
    shown = _shown(text)
    reason = f" ({why})" if why else ""
    return UsageError(f'could not read "{shown}" as a time{reason}; try {TIME_EXAMPLES}')


def localise(day: date, clock: time, zone: tzinfo) -> datetime:
    """The instant a wall-clock time on `day` names in `zone` (gap: forward; overlap: first)."""
    naive = datetime.combine(day, clock)
    first = naive.replace(tzinfo=zone, fold=0)
    # Round-trip through UTC: a time in a spring-forward gap comes back moved forward.
    return first.astimezone(UTC).astimezone(zone)


def parse_duration(text: str) -> timedelta:
    """ "2h", "2 h", "90m", "1h30m", "1 day", "2 hours 30 minutes" -> a positive timedelta."""
    duration = _read_duration(text)
    if duration > MAX_DURATION:
        raise UsageError(f"{describe_delta(duration)} is too long; at most a year, e.g. 2h")
    return duration


SINCE_EXAMPLES = '"2026-01-31", "2026-01-31T09:00" or "30d"'
MAX_SINCE = timedelta(days=100 * 366)


def since_text(text: str, example: str) -> str:
    """`text` if it reads as a start in the past (a day, a time, or a length of time back);
    else UsageError (no clock or zone needed: `parse_since` reads it later)."""
    try:
        parse_since(text, datetime.now(UTC), UTC)
    except UsageError:
        raise UsageError(
            f'could not read "{_shown(text, 30)}" as a date: use {SINCE_EXAMPLES}, e.g. "{example}"'
        ) from None
    return text


def parse_since(text: str, now: datetime, zone: str | tzinfo) -> datetime:
    """ "2026-01-31" (its start, in `zone`), "2026-01-31T09:00" (in `zone` unless it says its
    offset) or "30d" (that long before `now`): the instant a read of the past starts from."""
    tz = zone_of(zone)
    raw = text.strip()
    day = _ISO_DATE.fullmatch(raw)
    if day:
        try:
            start = date(int(day.group(1)), int(day.group(2)), int(day.group(3)))
        except ValueError:
            raise UsageError(f'"{_shown(text)}" is not a day of the calendar') from None
        return localise(start, time(0, 0), tz)
    instant = _iso_instant(raw, raw.lower(), tz)
    if instant is not None:
        return instant
    back = _read_duration(raw)
    if back > MAX_SINCE:
        raise UsageError(f"{describe_delta(back)} back is too long; give a date instead")
    return (now - back).astimezone(tz)


def _read_duration(text: str) -> timedelta:
    """A duration of any positive length (the callers say how long is too long)."""
    compact = text.strip().lower()
    if compact.startswith("by "):
        compact = compact[3:]
    rest = compact.replace(" ", "")
    if not rest:
        raise UsageError(f"say how long, e.g. {DURATION_EXAMPLES}")
    minutes = 0
    pos = 0
    for match in _DURATION_PART.finditer(rest):
        if match.start() != pos or match.group(2) not in _UNITS:
            break
        minutes += int(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(rest) or pos == 0:
        shown = _shown(text, 30)
        raise UsageError(f'could not read "{shown}" as a length of time; try {DURATION_EXAMPLES}')
    duration = timedelta(minutes=minutes)
    if duration <= timedelta(0):
        raise UsageError(f"a length of time must be more than zero, e.g. {DURATION_EXAMPLES}")
    return duration


def _clock(word: str) -> time | None:
    if word in ("noon", "midday"):
        return time(12, 0)
    if word == "midnight":
        return time(0, 0)
    match = _CLOCK.fullmatch(word)
    if not match:
        return None
    hour, minute = int(match.group(1)), int(match.group(2) or 0)
    suffix = match.group(3)
    if match.group(2) is None and suffix is None:
        return None  # a bare number is a day of the month ("28 nov"), not a time
    if suffix:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if suffix == "pm" else 0)
    if hour > 23 or minute > 59:
        return None
    return time(hour, minute)


def _split(text: str) -> list[str]:
    words = text.lower().replace(",", " ").split()
    out: list[str] = []
    for word in words:
        # "5 pm" -> "5pm"
        if word in ("am", "pm") and out and _digits(out[-1].replace(":", "").replace(".", "")):
            out[-1] += word
        else:
            out.append(word)
    return out


def parse_time(
    text: str,
    *,
    now: datetime,
    zone: str | tzinfo,
    after: datetime | None = None,
) -> datetime:
    """Parse a time the way a trainer types it; the result is aware, in `zone`.

    `after` anchors the "next occurrence" forms (weekday, bare time): pass the start time when
    parsing an end, so "at fri 08:00 until fri 17:00" means the same Friday.
    """
    if now.tzinfo is None:
        raise ValueError("now must be time-zone aware")
    tz = zone_of(zone)
    local_now = now.astimezone(tz)
    anchor = (after or now).astimezone(tz)
    raw = text.strip()
    if not raw:
        raise UsageError(f"say when, e.g. {TIME_EXAMPLES}")
    lowered = raw.lower()
    if lowered == "now":
        return local_now
    if lowered.startswith("in "):  # relative: "in 3h", "in 1h 30m", "in 2 days"
        return _relative(raw, lowered[3:], now, tz)
    instant = _iso_instant(raw, lowered, tz)
    if instant is not None:
        return instant
    parts = _read_words(raw, local_now)
    _settle_calendar_day(parts, raw, anchor, tz)
    if parts.clock is None:
        if parts.day is not None or parts.weekday is not None:
            raise _bad_time(raw, 'add a time of day, e.g. "fri 17:00"')
        raise _bad_time(raw)
    if parts.day is not None:
        return localise(parts.day, parts.clock, tz)
    return _next_occurrence(parts.weekday, parts.clock, anchor, tz, raw)


@dataclass
class _Parts:
    """The pieces of an absolute time as read from its words."""

    day: date | None = None
    weekday: int | None = None
    clock: time | None = None
    month: int | None = None
    mday: int | None = None
    year: int | None = None


def _relative(raw: str, duration: str, now: datetime, tz: tzinfo) -> datetime:
    try:
        ahead = _read_duration(duration)
    except UsageError:
        raise _bad_time(raw) from None
    if ahead > MAX_DURATION:
        raise UsageError(
            f'"{_shown(raw)}" is {describe_delta(ahead)} ahead; a time may be at most a year '
            'ahead, e.g. "in 3h", "in 2d" or "fri 17:00"'
        )
    return (now + ahead).astimezone(tz)


def _iso_instant(raw: str, lowered: str, tz: tzinfo) -> datetime | None:
    """Full ISO-8601 ("2026-12-01T09:00+01:00" keeps that offset's instant), else None."""
    if "t" not in lowered or len(lowered.split()) != 1:
        return None
    try:
        parsed = datetime.fromisoformat(raw.upper().replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is not None:
        return parsed.astimezone(tz)
    return localise(parsed.date(), parsed.time(), tz)


def _read_words(raw: str, local_now: datetime) -> _Parts:
    """Each word is a date, a relative day, a weekday, a month, a year, a day of the month or a
    time of day, once each; anything else is not a time."""
    p = _Parts()
    for word in (w for w in _split(raw) if w not in _FILLER):
        iso_time = None
        if "t" in word and _ISO_DATE.match(word):  # "2026-12-01t09:00" without offset
            word, _, iso_time = word.partition("t")
        iso = _ISO_DATE.fullmatch(word)
        undated = p.day is None and p.weekday is None
        if iso and undated and p.month is None:
            try:
                p.day = date(int(iso.group(1)), int(iso.group(2)), int(iso.group(3)))
            except ValueError:
                raise _bad_time(raw, f"there is no date {word}") from None
            if iso_time:
                p.clock = _clock(iso_time)
                if p.clock is None:
                    raise _bad_time(raw)
        elif word in ("today", "tonight") and undated:
            p.day = local_now.date()
        elif word == "tomorrow" and undated:
            p.day = local_now.date() + timedelta(days=1)
        elif word in _WEEKDAYS and undated:
            p.weekday = _WEEKDAYS[word]
        elif word in _MONTHS and p.month is None and p.day is None:
            p.month = _MONTHS[word]
        elif _digits(word) and len(word) == 4 and p.year is None and p.month is not None:
            p.year = int(word)
        elif _digits(word) and len(word) <= 2 and p.mday is None and p.day is None:
            p.mday = int(word)
        elif (found := _clock(word)) is not None and p.clock is None:
            p.clock = found
        else:
            raise _bad_time(raw)
    return p


def _settle_calendar_day(p: _Parts, raw: str, anchor: datetime, tz: tzinfo) -> None:
    """ "28 nov" (and a year, or the next such day) becomes a day; a weekday given with it must
    agree."""
    if p.mday is None and p.month is None:
        return
    if p.mday is None or p.month is None:
        raise _bad_time(raw, 'give a day and a month, e.g. "28 nov 17:00"')
    candidate_year = p.year or anchor.year
    try:
        p.day = date(candidate_year, p.month, p.mday)
    except ValueError:
        raise _bad_time(raw, f"there is no day {p.mday} in that month") from None
    if p.year is None and p.clock is not None and localise(p.day, p.clock, tz) <= anchor:
        p.day = date(candidate_year + 1, p.month, p.mday)  # "5 jan" said in December
    if p.weekday is not None and p.day.weekday() != p.weekday:
        raise _bad_time(raw, f"{p.day:%d %b %Y} is a {p.day:%A}")
    p.weekday = None


def _next_occurrence(
    weekday: int | None, clock: time, anchor: datetime, tz: tzinfo, raw: str
) -> datetime:
    """After the anchor: a weekday within the coming week, else today or tomorrow."""
    base = anchor.date()
    for offset in range(8):
        candidate_day = base + timedelta(days=offset)
        if weekday is not None and candidate_day.weekday() != weekday:
            continue
        candidate = localise(candidate_day, clock, tz)
        if candidate > anchor:
            return candidate
    raise _bad_time(raw)  # pragma: no cover - one of the eight days always matches


def describe_delta(delta: timedelta) -> str:
    """A length of time in at most two units: "2 d 3 h", "2 h", "45 min", "less than a minute"."""
    minutes = int(abs(delta).total_seconds() // 60)
    if minutes == 0:
        return "less than a minute"
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    parts: list[str] = []
    if days:
        parts.append(f"{days} d")
    if hours:
        parts.append(f"{hours} h")
    if mins and not days:
        parts.append(f"{mins} min")
    return " ".join(parts[:2])


def format_duration(delta: timedelta) -> str:
    """A duration in the form `parse_duration` reads back, rounded down to minutes: "1d2h30m"."""
    minutes = int(delta.total_seconds() // 60)
    days, rest = divmod(max(minutes, 0), 1440)
    hours, mins = divmod(rest, 60)
    text = (
        (f"{days}d" if days else "") + (f"{hours}h" if hours else "") + (f"{mins}m" if mins else "")
    )
    return text or "0m"


def describe_relative(moment: datetime, now: datetime) -> str:
    """ "in 2 h", "5 min ago", "in 46 s", "now".

    Rounded to the nearest minute (the nearest second under a minute): a time typed as "in 3h"
    and shown back a few milliseconds later reads "in 3 h", not "in 2 h 59 min", and a start 46 s
    away reads "in 46 s", not "now".
    """
    seconds = (moment - now).total_seconds()
    size = abs(seconds)
    if size < 59.5:
        whole = round(size)
        if whole == 0:
            return "now"
        text = f"{whole} s"
    else:
        text = describe_delta(timedelta(minutes=round(size / 60)))
    return f"in {text}" if seconds > 0 else f"{text} ago"


def describe_time(moment: datetime, now: datetime, zone: str | tzinfo) -> str:
    """ "Fri 28 Nov 17:00 GMT (in 2 d 3 h)"; the year is shown when it is not `now`'s."""
    tz = zone_of(zone)
    local = moment.astimezone(tz)
    year = f" {local.year}" if local.year != now.astimezone(tz).year else ""
    name = local.tzname() or ""
    if not re.fullmatch(r"[A-Za-z]+", name):  # zones without an abbreviation: "+03"
        name = f"UTC{name}" if name else ""
    absolute = f"{local:%a} {local.day} {local:%b}{year} {local:%H:%M} {name}".strip()
    return f"{absolute} ({describe_relative(moment, now)})"


def _digits(word: str) -> bool:
    """ASCII digits only: str.isdigit() also accepts "²" and "٢", which int() rejects."""
    return word.isascii() and word.isdigit()
