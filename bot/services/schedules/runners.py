"""Running scheduled jobs: the deployment, the strip back (retried while its environment is busy)
and the owner's reminder (and the trainees', when configured), one course at a time and in the
order its times say.

Jobs *claim* their work in SQLite before acting (compare-and-set on the planned time), so a job
that was moved, cancelled or already run does nothing, and even two schedulers racing could not
both run it. Deploys are claimed before they start (at most once: a crash mid-deploy leaves the run
for the engine's own recovery, never a second set of clones); strip backs are claimed into
`stripping_for_end` and finished afterwards, so one interrupted by a crash or by vCenter going away
is resumed at the next start (strip back is idempotent).

One course's jobs keep their order even when they all fall due at once (after downtime): the jobs
of one environment run one at a time, a strip back never runs while its environment's deploy is
still pending (it is put back once the deploy ran), a reminder is only scheduled once the
deployment it is about has run, and a deploy whose course has already ended creates nothing.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime

from bot.domain import grammar
from bot.domain.errors import ClonesError, ConflictError, Fenced, NotFoundError, VCenterError
from bot.domain.models import Environment, RunKind, ScheduleRecord
from bot.ports import Repository, RunReport
from bot.services.schedules.keeper import Keeper
from bot.services.schedules.notify import LazyReport, Reporter
from bot.services.schedules.times import LIVE_STATES, TimeRules, seconds, times_detail
from bot.services.usecases import UseCases

log = logging.getLogger("clones.schedule")


@dataclass(eq=False)
class Runners:
    """The job functions behind `deploy:`, `teardown:` and `remind:` jobs."""

    repo: Repository
    use_cases: UseCases
    rules: TimeRules
    keeper: Keeper
    voice: Reporter
    _guard: threading.Lock = field(default_factory=threading.Lock, init=False)  # the fields below
    # One course's jobs run one at a time (an environment's lock).
    _env_locks: dict[str, threading.Lock] = field(default_factory=dict, init=False)
    _waiting: dict[str, int] = field(default_factory=dict, init=False)  # env -> jobs waiting

    def waiting(self, environment: str) -> int:
        """How many of `environment`'s jobs wait for another of its jobs to finish."""
        with self._guard:
            return self._waiting.get(environment, 0)

    def _environment_lock(self, environment: str) -> threading.Lock:
        with self._guard:
            return self._env_locks.setdefault(environment, threading.Lock())

    def run(self, kind: str, environment: str, planned: datetime, *, missed: bool = False) -> None:
        """Run one job; the jobs of one environment run one at a time, in the order they get
        here (a strip back due during its deployment waits for it)."""
        try:
            lock = self._environment_lock(environment)
            with self._guard:
                self._waiting[environment] = self._waiting.get(environment, 0) + 1
            lock.acquire()
            with self._guard:
                self._waiting[environment] -= 1
            try:
                self._run_locked(kind, environment, planned, missed)
            finally:
                lock.release()
        except Fenced as exc:  # another bot leads (or runs the run) now: its work, not ours
            log.warning("fenced: scheduled %s of %s: %s", kind, environment, exc)
        except Exception:
            log.exception("scheduled %s of %s failed", kind, environment)

    def _run_locked(self, kind: str, environment: str, planned: datetime, missed: bool) -> None:
        if kind == "deploy":
            try:
                self._run_deploy(environment, planned, missed)
            finally:
                # Its strip back (put back if it fell due first) and its reminder, now that the
                # deployment ran (or was skipped).
                self.keeper.sync()
        elif kind == "teardown":
            self._run_teardown(environment, planned, missed)
        elif kind == "remind":
            self._run_remind(environment, planned)
        else:
            log.error("unknown scheduled job kind %r for %s", kind, environment)

    # ------------------------------------------------------------------ lateness
    def _late(self, planned: datetime, missed: bool) -> str:
        late = self._lateness(planned, missed)
        return f" ({late})" if late else ""

    def _lateness(self, planned: datetime, missed: bool) -> str:
        # "No bot was running schedules" holds after a restart and after a takeover alike (a
        # bot standing by was running, but not the schedules).
        return (
            f"it was due {self.rules.describe(planned)}, when no bot was running schedules"
            if missed
            else ""
        )

    # ------------------------------------------------------------------ deploy
    def _run_deploy(self, name: str, planned: datetime, missed: bool) -> None:
        record = self.repo.get_schedule(name)
        env_now = self.repo.get_environment(name)
        if (
            record is None
            or not record.deploy_command
            or env_now is None
            or env_now.starts_at != planned
        ):
            log.info("scheduled deploy of %s for %s: moved, cancelled or done", name, planned)
            return
        if env_now.ends_at is not None and env_now.ends_at <= self.rules.clock():
            self._skip_deploy(env_now, record, planned, missed)
            return
        if not self.repo.claim_start(name, planned, fence=self.keeper.fence()):
            log.info("scheduled deploy of %s for %s: moved, cancelled or done", name, planned)
            return
        self._deploy(name, record, planned, missed)

    def _deploy(self, name: str, record: ScheduleRecord, planned: datetime, missed: bool) -> None:
        assert record.deploy_command is not None
        command = grammar.parse(record.deploy_command)
        assert isinstance(command, grammar.Deploy)
        self.repo.save_schedule(name, deploy_command=None)
        env = self.use_cases.queries.environment(name)
        actor = record.requested_by or "scheduler"
        report = self.voice.report(
            env,
            RunKind.DEPLOY,
            actor,
            f"Scheduled deployment starting: {record.deploy_command}{self._late(planned, missed)}.",
            self._lateness(planned, missed),
        )
        try:
            result = self.use_cases.deployer.deploy(
                command,
                actor=actor,
                source="scheduler",
                channel=env.channel,
                on_event=report.on_event,
            )
        except Fenced:
            raise  # another bot runs it now, and says so: nothing to report from here
        except ClonesError as exc:
            report.stopped(f"Scheduled deployment of {name} failed: {exc}")
            return
        text = (
            f"Scheduled deployment of {name} done: {len(result.ready)} of {result.requested} ready"
        )
        if result.failed:
            text += f", {len(result.failed)} failed"
        current = self.repo.get_environment(name)
        if current is not None and current.ends_at is not None:
            text += f"; strip back {self.rules.describe(current.ends_at)}"
        report.finished(result, text + ".")

    def _skip_deploy(
        self, env: Environment, record: ScheduleRecord, planned: datetime, missed: bool
    ) -> None:
        """A deployment whose course has already ended creates nothing, and says why."""
        assert env.ends_at is not None
        if not self.repo.claim_start(env.name, planned, fence=self.keeper.fence()):
            return
        ends = env.ends_at
        live = self.repo.clones(environment=env.name, states=LIVE_STATES)
        self.repo.save_schedule(env.name, deploy_command=None)
        if not live and self.repo.claim_end(env.name, ends, fence=self.keeper.fence()):
            self._finish_teardown(env.name)  # nothing to strip back: the course is over
        self.repo.audit(
            actor="scheduler",
            source="scheduler",
            channel=env.channel,
            command=record.deploy_command or f"deploy as {env.name}",
            result="skipped",
            detail=f"course ended {times_detail(planned, ends)}",
        )
        why = "while no bot was running schedules" if missed else "before it could run"
        text = (
            f"The scheduled deployment of {env.name} ({record.deploy_command}) did not run: it "
            f"was due {self.rules.describe(planned)} and its course ended "
            f"{self.rules.describe(ends)}, {why}. Nothing was created."
        )
        if live:
            text += f" Its {len(live)} earlier clones are stripped back now, as scheduled."
        elif not self.repo.runs(environment=env.name, limit=1):
            self.repo.delete_environment(env.name)  # made only to hold this deployment
        log.warning("%s", text)
        self.voice.say(env, text)

    # ------------------------------------------------------------------ strip back
    def _run_teardown(self, name: str, planned: datetime, missed: bool) -> None:
        if not self._claim_teardown(name, planned, missed):
            return
        self.keeper.drop("remind", name)
        env = self.use_cases.queries.environment(name)
        retrying = self.keeper.retrying(name)
        report = self._teardown_report(env, planned, missed, retrying=retrying)
        if self._strip_back(env, planned, report, retrying=retrying):
            self._finish_teardown(name)

    def _claim_teardown(self, name: str, planned: datetime, missed: bool) -> bool:
        """True when this job is the one to strip `name` back for `planned` (claimed now, or
        claimed earlier and being resumed or retried)."""
        pending = self.repo.get_environment(name)
        if pending is not None and pending.starts_at is not None:
            # Its deployment has not run yet (both fell due at once): it runs first, and puts
            # this strip back in the job table again, or drops it when the course is over.
            log.info("scheduled strip back of %s waits for its pending deployment", name)
            return False
        if self.repo.claim_end(name, planned, fence=self.keeper.fence()):
            return True
        record = self.repo.get_schedule(name)
        resuming = (
            (missed or self.keeper.retrying(name))
            and record is not None
            and record.stripping_for_end == planned
        )
        if not resuming:
            log.info("scheduled strip back of %s for %s: moved, cancelled or done", name, planned)
        return resuming

    def _teardown_report(
        self, env: Environment, planned: datetime, missed: bool, *, retrying: bool
    ) -> RunReport:
        name = env.name
        if not retrying:
            return self.voice.report(
                env,
                RunKind.TEARDOWN,
                "scheduler",
                f"Scheduled strip back of {name} starting{self._late(planned, missed)}.",
                self._lateness(planned, missed),
            )
        # Shown only once it does start: a retry that meets a busy environment is quiet.
        return LazyReport(
            lambda: self.voice.report(
                env,
                RunKind.TEARDOWN,
                "scheduler",
                f"Scheduled strip back of {name} starting now that {name} is free.",
            )
        )

    def _strip_back(
        self, env: Environment, planned: datetime, report: RunReport, *, retrying: bool
    ) -> bool:
        """Strip `env` back, reporting the outcome; False while the claim must stay (busy, or
        vCenter trouble: tried again later), True when the strip back is over."""
        name = env.name
        try:
            result = self.use_cases.strip_back.teardown(
                name,
                actor="scheduler",
                source="scheduler",
                channel=env.channel,
                on_event=report.on_event,
            )
        except Fenced:
            raise  # another bot runs it now, and says so: nothing to report from here
        except NotFoundError as exc:
            report.stopped(f"Scheduled strip back of {name}: nothing to do ({exc}).")
        except ConflictError as exc:
            # Busy with another run (a deployment typed meanwhile, or one being resumed): the
            # claim stays, and the strip back is tried again until it can run.
            log.info("scheduled strip back of %s waits: %s", name, exc)
            every = self.keeper.retry_teardown(name, planned)
            if not retrying:  # said once
                report.stopped(
                    f"Scheduled strip back of {name} waits: {name} is busy with another "
                    f"deployment, strip back or refresh. It runs as soon as {name} is free "
                    f"(tried every {seconds(every)}); nothing to do meanwhile."
                )
            return False
        except VCenterError as exc:
            report.stopped(
                f"Scheduled strip back of {name} stopped: {exc}. It resumes when the bot next "
                f'starts; to retry now, "teardown {name}".'
            )
            self.keeper.forget_retry(name)
            return False
        except ClonesError as exc:
            report.stopped(f"Scheduled strip back of {name} failed: {exc}")
        else:
            text = (
                f"Scheduled strip back of {name} done: {len(result.destroyed)} clones destroyed, "
                f"{result.reclaimed_gb:.2f} GB reclaimed"
            )
            problems = len(result.failed) + len(result.skipped) + len(result.unseen)
            if problems:
                text += f'; {problems} left (see "status {name}")'
            report.finished(result, text + ".")
        return True

    def _finish_teardown(self, name: str) -> None:
        self.keeper.forget_retry(name)
        with self.repo.transaction():
            env = self.repo.get_environment(name)
            if env is None:
                return
            if env.starts_at is None and env.ends_at is None:
                self.repo.delete_schedule(name)
            else:
                self.repo.save_schedule(name, stripping_for_end=None)

    # ------------------------------------------------------------------ reminder
    def _run_remind(self, name: str, planned_end: datetime) -> None:
        env_now = self.repo.get_environment(name)
        if env_now is not None and env_now.starts_at is not None:
            log.info("reminder for %s: its deployment has not run yet", name)
            return
        if not self.repo.mark_reminded(name, planned_end, fence=self.keeper.fence()):
            log.info("reminder for %s at %s: already sent, or the end moved", name, planned_end)
            return
        env = self.use_cases.queries.environment(name)
        self.voice.remind(env, env.owner, planned_end)
        try:  # the trainees too, when [trainees] remind is set
            self.use_cases.trainees.remind(env)
        except Exception:  # a reminder that fails must not stop the scheduler
            log.exception("reminding the trainees of %s failed", name)
