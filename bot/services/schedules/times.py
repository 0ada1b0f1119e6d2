"""Time and lease rules of schedules: reading times, the order and cap checks, and showing them.

Nothing here changes anything: the commands (`commands.py`) check with these rules first and then
write SQLite; an input they refuse is answered with what to type instead.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Literal

from bot.domain import grammar
from bot.domain.errors import UsageError
from bot.domain.models import CloneState, Environment
from bot.domain.timeparse import describe_delta, describe_time, format_duration, parse_time, zone_of
from bot.ports import Clock, Repository
from bot.settings import Settings

EventKind = Literal["deploy", "teardown"]
LIVE_STATES = tuple(s for s in CloneState if s.live)
TIME_EXAMPLE = '"fri 17:00" or "in 3h"'
JUST_SEEN = timedelta(minutes=1)  # a reminder due this soon after setting the end is not sent


class TimeRules:
    """Schedule times in the team's zone: parse, check against the order and the lease cap,
    describe. `repo` is read only (the current end, when an extension hits the cap)."""

    def __init__(self, settings: Settings, repo: Repository, clock: Clock) -> None:
        self.settings = settings
        self.repo = repo
        self.clock = clock
        self.zone = zone_of(settings.timezone)

    @property
    def lead(self) -> timedelta:
        return timedelta(minutes=self.settings.schedule.reminder_lead_min)

    @property
    def max_lease(self) -> timedelta:
        return timedelta(hours=self.settings.schedule.max_lease_hours)

    @property
    def default_extension(self) -> timedelta:
        return timedelta(minutes=self.settings.schedule.default_extension_min)

    def describe(self, moment: datetime) -> str:
        """ "Fri 28 Nov 17:00 GMT (in 2 d 3 h)" in the team zone."""
        return describe_time(moment, self.clock(), self.zone)

    def parse(self, text: str, what: str, after: datetime | None = None) -> datetime:
        now = self.clock()
        when = parse_time(text, now=now, zone=self.zone, after=after)
        if when <= now:
            raise UsageError(
                f'the {what} time "{text}" is {self.describe(when)}, which has passed; give a '
                f"time in the future, e.g. {TIME_EXAMPLE}"
            )
        return when

    def check_order(self, starts: datetime | None, ends: datetime | None, env: str) -> None:
        if starts is not None and ends is not None and ends <= starts:
            raise UsageError(
                f"the end ({self.describe(ends)}) must be after the start "
                f'({self.describe(starts)}), e.g. "schedule {env} at mon 08:00 until fri 17:00"'
            )

    def check_cap(
        self,
        env: str,
        lease_from: datetime,
        ends: datetime,
        verb: str,
        deploy: Callable[[str], str] | None = None,
    ) -> None:
        """Refuse an end past the lease cap, suggesting one that fits: `deploy(until)` gives
        the deploy command to suggest (for a deploy, whose environment may not exist yet)."""
        limit = lease_from + self.max_lease
        if ends <= limit:
            return
        cap = f"{self.settings.schedule.max_lease_hours} h"
        now = self.clock()
        head = (
            f"{env} cannot {verb} {self.describe(ends)}: an environment may run at most {cap} "
            f"(the [schedule] max_lease_hours setting) and {env}'s lease began "
            f"{self.describe(lease_from)}, so it must be stripped back by {self.describe(limit)}."
        )
        if verb == "be extended to":
            raise UsageError(self._extension_hint(env, head, limit, limit - max(now, lease_from)))
        until = f"{limit.astimezone(self.zone):%Y-%m-%d %H:%M}"  # minutes down: within the cap
        example = deploy(until) if deploy is not None else f"schedule {env} until {until}"
        raise UsageError(f'{head} Pick an earlier end, e.g. "{example}".')

    def _extension_hint(self, env: str, head: str, limit: datetime, room: timedelta) -> str:
        """How much an extension may add: the room left under the cap, in whole hours."""
        current = self.repo.get_environment(env)
        if current is not None and current.ends_at is not None:
            room = limit - current.ends_at
        if room >= timedelta(hours=1):
            room -= timedelta(minutes=(room // timedelta(minutes=1)) % 60)  # whole hours
        if room >= timedelta(minutes=1):
            return (
                f"{head} Extend by at most {describe_delta(room)}, e.g. "
                f'"extend {env} {format_duration(room)}", or ask an admin to raise the cap.'
            )
        return f"{head} It is at the cap already; ask an admin to raise it."

    def reminded_if_inside_lead(
        self, ends: datetime, starts: datetime | None = None
    ) -> datetime | None:
        """A user who sets an end inside the reminder lead has just seen it: no reminder. With a
        deployment still to run, the reminder comes after it (see `Keeper.jobs_for`), never
        before."""
        if starts is not None:
            return None
        # A reminder due within a minute would land next to (or before) the reply itself.
        return ends if ends - self.lead <= self.clock() + JUST_SEEN else None

    def when_text(self, env: str, starts: datetime | None, ends: datetime | None) -> str:
        """ "nov deploys ... and strips back ...; the owner is reminded 1 h before." (no note
        about who keeps the times: the caller adds it)."""
        parts = []
        if starts is not None:
            parts.append(f"deploys {self.describe(starts)}")
        if ends is not None:
            parts.append(f"strips back {self.describe(ends)}")
        text = f"{env} " + " and ".join(parts) if parts else f"{env} has nothing scheduled"
        if ends is not None and self.lead:
            if starts is not None and ends - self.lead <= starts:
                text += "; the owner is reminded once the deployment is done"
            elif ends - self.lead > self.clock() + JUST_SEEN:
                text += f"; the owner is reminded {describe_delta(self.lead)} before"
        return text + "."


# ============================================================================ helpers
def next_event(env: Environment) -> tuple[EventKind, datetime] | None:
    """An environment's next scheduled deploy or strip back."""
    events: list[tuple[datetime, EventKind]] = []
    if env.starts_at is not None:
        events.append((env.starts_at, "deploy"))
    if env.ends_at is not None:
        events.append((env.ends_at, "teardown"))
    if not events:
        return None
    when, kind = min(events)
    return kind, when


def deploy_text(command: grammar.Deploy, environment: str) -> str:
    """The grammar text of a deploy (without its times), which `grammar.parse` reads back."""
    items = " ".join(f"{i.type} {i.count}" for i in command.items)
    text = f"deploy {items} as {environment}" + (" and power on" if command.power_on else "")
    parsed = grammar.parse(text)
    assert isinstance(parsed, grammar.Deploy) and parsed.items == command.items
    return text


def command_text(command: grammar.Schedule) -> str:
    text = f"schedule {command.environment}"
    if command.at:
        text += f" at {command.at}"
    if command.until:
        text += f" until {command.until}"
    return text


def times_detail(starts: datetime | None, ends: datetime | None) -> str:
    parts = []
    if starts is not None:
        parts.append(f"starts_at={starts.astimezone(UTC).isoformat()}")
    if ends is not None:
        parts.append(f"ends_at={ends.astimezone(UTC).isoformat()}")
    return " ".join(parts)


def seconds(value: float) -> str:
    """ "30 s", "2 min": the re-sync interval as a person reads it."""
    if value >= 60 and value % 60 == 0:
        return f"{int(value // 60)} min"
    return f"{value:g} s"
