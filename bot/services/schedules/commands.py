"""The schedule commands: `deploy ... at/until`, `schedule`, `extend`, `cancel-schedule`.

Each checks its input with the time and lease rules first (bad input changes nothing), then
records the times in SQLite in one transaction with its audit line, then brings this process's job
table up to date when it runs the scheduler. SQLite is the truth: an environment's `starts_at` (a
scheduled deploy) and `ends_at` (a scheduled strip back) plus its `schedules` row (the deploy
command, the lease start, which end was already reminded).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.domain import grammar
from bot.domain.errors import ConflictError, UsageError
from bot.domain.timeparse import describe_delta, format_duration, parse_duration
from bot.ports import Repository
from bot.services.schedules.keeper import Keeper
from bot.services.schedules.results import DeployTimes, ScheduleResult
from bot.services.schedules.times import (
    LIVE_STATES,
    TimeRules,
    command_text,
    deploy_text,
    times_detail,
)
from bot.services.usecases import UseCases
from bot.settings import Settings


@dataclass(eq=False)
class ScheduleCommands:
    settings: Settings
    repo: Repository
    use_cases: UseCases
    rules: TimeRules
    keeper: Keeper

    def _result(self, env: str, starts: datetime | None, ends: datetime | None) -> ScheduleResult:
        """The times set, said with who keeps them (never a promise no scheduler keeps)."""
        text = self.rules.when_text(env, starts, ends)
        if starts is not None or ends is not None:
            note = self.keeper.keeper_note()
            if note:
                text += f" {note}"
        return ScheduleResult(env, starts, ends, text)

    def deploy_times(self, command: grammar.Deploy) -> DeployTimes:
        """Validate a deploy's `at`/`until` (and its types) without changing anything."""
        rules = self.rules
        env_name = command.environment or self.use_cases.deployer.default_environment(command)
        for item in command.items:
            t = self.settings.type(item.type)  # unknown type: ConfigError naming the known ones
            if item.count > t.max_count:
                raise UsageError(
                    f"{item.count} {t.name} clones is more than the type's maximum of "
                    f'{t.max_count}, e.g. "deploy {t.name} {min(t.max_count, 25)} as {env_name}"'
                )
        starts = rules.parse(command.at, "start") if command.at else None
        ends = rules.parse(command.until, "end", after=starts) if command.until else None
        rules.check_order(starts, ends, env_name)
        if ends is not None:
            at = f" at {command.at}" if command.at else ""
            rules.check_cap(
                env_name,
                starts or rules.clock(),
                ends,
                "run until",
                deploy=lambda until: f"{deploy_text(command, env_name)}{at} until {until}",
            )
        existing = self.repo.get_environment(env_name)
        if starts is not None and existing is not None and existing.starts_at is not None:
            raise ConflictError(
                f"{env_name} already has a deployment scheduled "
                f"{rules.describe(existing.starts_at)}; "
                f'move it with "schedule {env_name} at ..." or drop it with '
                f'"cancel-schedule {env_name}".'
            )
        return DeployTimes(env_name, starts, ends)

    def schedule_deploy(
        self, command: grammar.Deploy, *, actor: str, source: str = "cli", channel: str = ""
    ) -> ScheduleResult:
        """Record `deploy ... at WHEN [until WHEN]`: the deploy runs at WHEN in the scheduler."""
        if not command.at:
            raise UsageError(
                'say when to deploy with "at", e.g. "deploy capture 25 as nov-cohort at mon 08:00"'
            )
        times = self.deploy_times(command)
        assert times.starts_at is not None
        text = deploy_text(command, times.environment)
        with self.repo.transaction():
            self.repo.ensure_environment(times.environment, owner=actor, channel=channel)
            self.repo.update_environment(
                times.environment, starts_at=times.starts_at, ends_at=times.ends_at
            )
            self.repo.save_schedule(
                times.environment,
                deploy_command=text,
                requested_by=actor,
                lease_from=times.starts_at,
                reminded_for_end=None,
                stripping_for_end=None,
            )
            self.repo.audit(
                actor=actor,
                source=source,
                channel=channel,
                command=f"{text} at {command.at}"
                + (f" until {command.until}" if command.until else ""),
                result="scheduled",
                detail=times_detail(times.starts_at, times.ends_at),
            )
        self.keeper.resync_one(times.environment)
        return self._result(times.environment, times.starts_at, times.ends_at)

    def set_end(
        self, environment: str, ends_at: datetime, *, actor: str, source: str = "cli"
    ) -> ScheduleResult:
        """Record the end of a deploy that ran now (`deploy ... until WHEN`), validated earlier by
        `deploy_times`; an end that passed during the deploy strips back at once."""
        env = self.use_cases.queries.environment(environment)
        with self.repo.transaction():
            self.repo.update_environment(env.name, ends_at=ends_at)
            self.repo.save_schedule(
                env.name,
                requested_by=actor,
                lease_from=self.rules.clock(),
                reminded_for_end=self.rules.reminded_if_inside_lead(ends_at),
                stripping_for_end=None,
            )
            self.repo.audit(
                actor=actor,
                source=source,
                channel=env.channel,
                command=f"schedule {env.name} until {ends_at.isoformat()}",
                result="ok",
                detail=times_detail(None, ends_at),
            )
        self.keeper.resync_one(env.name)
        return self._result(env.name, None, ends_at)

    def schedule(
        self, command: grammar.Schedule, *, actor: str, source: str = "cli", channel: str = ""
    ) -> ScheduleResult:
        """`schedule ENV [at WHEN] [until WHEN]`: set or move an environment's start and end."""
        rules = self.rules
        env = self.use_cases.queries.environment(command.environment)
        record = self.repo.get_schedule(env.name)
        if record is not None and record.stripping_for_end is not None:
            raise ConflictError(f"{env.name} is being stripped back now; there is nothing to move.")
        if command.at and env.starts_at is None:
            raise UsageError(
                f'{env.name} has no scheduled deployment to move ("at" moves one made with '
                f'"deploy ... at"); to set its end use "schedule {env.name} until fri 17:00"'
            )
        if not command.at and not command.until:
            raise UsageError(f'say when, e.g. "schedule {env.name} until fri 17:00"')
        starts = rules.parse(command.at, "start") if command.at else env.starts_at
        ends = rules.parse(command.until, "end", after=starts) if command.until else env.ends_at
        rules.check_order(starts, ends, env.name)
        if command.until and starts is None:
            live = self.repo.clones(environment=env.name, states=LIVE_STATES)
            if not live:
                raise UsageError(
                    f"{env.name} has no clones, so there is nothing to strip back; deploy "
                    f'with an end instead, e.g. "deploy capture 25 as {env.name} until fri 17:00"'
                )
        lease_from = starts or (
            record.lease_from
            if record is not None and record.lease_from is not None and env.ends_at is not None
            else rules.clock()
        )
        if ends is not None:
            rules.check_cap(env.name, lease_from, ends, "run until")
        with self.repo.transaction():
            self.repo.update_environment(env.name, starts_at=starts, ends_at=ends)
            self.repo.save_schedule(
                env.name,
                requested_by=actor,
                lease_from=lease_from,
                reminded_for_end=rules.reminded_if_inside_lead(ends, starts) if ends else None,
            )
            self.repo.audit(
                actor=actor,
                source=source,
                channel=channel,
                command=command_text(command),
                result="ok",
                detail=times_detail(starts, ends),
            )
        self.keeper.resync_one(env.name)
        return self._result(env.name, starts, ends)

    def extend(
        self,
        environment: str,
        by: str | timedelta | None = None,
        *,
        actor: str,
        source: str = "cli",
        channel: str = "",
    ) -> ScheduleResult:
        """Move the scheduled strip back later by `by` (default: the configured extension)."""
        rules = self.rules
        env = self.use_cases.queries.environment(environment)
        record = self.repo.get_schedule(env.name)
        if record is not None and record.stripping_for_end is not None:
            raise ConflictError(f"{env.name} is being stripped back now; it is too late to extend.")
        if env.ends_at is None:
            raise UsageError(
                f"{env.name} has no scheduled strip back to extend; set one with "
                f'"schedule {env.name} until fri 17:00"'
            )
        if by is None:
            delta = rules.default_extension
        elif isinstance(by, str):
            delta = parse_duration(by)
        else:
            delta = by
        if delta <= timedelta(0):
            raise UsageError(f'extend by a positive length of time, e.g. "extend {env.name} 2h"')
        ends = env.ends_at + delta
        lease_from = (record.lease_from if record else None) or env.starts_at or rules.clock()
        rules.check_cap(env.name, lease_from, ends, "be extended to")
        with self.repo.transaction():
            self.repo.update_environment(env.name, ends_at=ends)
            self.repo.save_schedule(
                env.name,
                requested_by=actor,
                lease_from=lease_from,
                reminded_for_end=rules.reminded_if_inside_lead(ends, env.starts_at),
            )
            self.repo.audit(
                actor=actor,
                source=source,
                channel=channel,
                command=f"extend {env.name} {format_duration(delta)}",
                result="ok",
                detail=times_detail(None, ends),
            )
        self.keeper.resync_one(env.name)
        message = (
            f"{env.name} now strips back {rules.describe(ends)}, {describe_delta(delta)} later; "
            f"the cap allows until {rules.describe(lease_from + rules.max_lease)}."
        )
        note = self.keeper.keeper_note()
        return ScheduleResult(env.name, env.starts_at, ends, f"{message} {note}".strip())

    def cancel(
        self, environment: str, *, actor: str, source: str = "cli", channel: str = ""
    ) -> ScheduleResult:
        """Drop the scheduled deploy, strip back and reminder; the clones stay."""
        env = self.use_cases.queries.environment(environment)
        record = self.repo.get_schedule(env.name)
        if record is not None and record.stripping_for_end is not None:
            raise ConflictError(f"{env.name} is being stripped back now; it cannot be cancelled.")
        if env.starts_at is None and env.ends_at is None:
            return ScheduleResult(
                env.name, None, None, f"{env.name} has nothing scheduled.", changed=False
            )
        with self.repo.transaction():
            self.repo.update_environment(env.name, starts_at=None, ends_at=None)
            self.repo.delete_schedule(env.name)
            self.repo.audit(
                actor=actor,
                source=source,
                channel=channel,
                command=f"cancel-schedule {env.name}",
                result="ok",
                detail=times_detail(env.starts_at, env.ends_at),
            )
            # An environment made only to hold a scheduled deploy goes with it.
            if not self.repo.clones(environment=env.name) and not self.repo.runs(
                environment=env.name, limit=1
            ):
                self.repo.delete_environment(env.name)
        self.keeper.resync_one(env.name)
        dropped = []
        if env.starts_at is not None:
            dropped.append(f"the deployment {self.rules.describe(env.starts_at)}")
        if env.ends_at is not None:
            dropped.append(f"the strip back {self.rules.describe(env.ends_at)}")
        message = f"Cancelled {' and '.join(dropped)} of {env.name}."
        if env.ends_at is not None and env.starts_at is None:
            message += f' Its clones stay until "teardown {env.name}".'
        return ScheduleResult(env.name, None, None, message)
