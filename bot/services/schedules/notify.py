"""Saying what scheduled work does: through the `bot.ports.Notifier` (Slack in the bot), never
letting a broken notifier stop the work; one `RunReport` per scheduled run."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TextIO

from bot.domain.models import Environment, RunKind
from bot.domain.results import ProgressEvent
from bot.domain.timeparse import describe_time
from bot.ports import Notifier, ProgressCallback, RunReport
from bot.settings import Settings

log = logging.getLogger("clones.schedule")


class LogNotifier:
    """The default notifier: log every message, and print it when given a stream."""

    def __init__(self, zone: str = "UTC", stream: TextIO | None = None) -> None:
        self.zone = zone
        self.stream = stream

    def _say(self, text: str) -> None:
        log.info("%s", text)
        if self.stream is not None:
            print(text, file=self.stream, flush=True)

    def notify(self, environment: Environment, text: str) -> None:
        where = f" [{environment.channel}]" if environment.channel else ""
        self._say(f"{environment.name}{where}: {text}")

    def remind(self, environment: Environment, owner: str, ends_at: datetime) -> None:
        when = describe_time(ends_at, datetime.now(UTC), self.zone)
        self._say(
            f"{environment.name}: reminder for {owner}: strip back at {when}; "
            f'"extend {environment.name} 2h" to keep it longer.'
        )


def default_notifier(settings: Settings, stream: TextIO | None = sys.stderr) -> LogNotifier:
    return LogNotifier(settings.timezone, stream)


class Reporter:
    """The schedule service's voice: the notifier's messages, progress, run reports and
    reminders, each guarded so that a failing notifier is logged and the work goes on."""

    def __init__(self, notifier: Notifier) -> None:
        self.notifier = notifier

    def say(self, env: Environment, text: str) -> None:
        try:
            self.notifier.notify(env, text)
        except Exception:  # a broken notifier must not stop the work
            log.exception("notifier failed for %s", env.name)

    def remind(self, env: Environment, owner: str, ends_at: datetime) -> None:
        try:
            self.notifier.remind(env, owner, ends_at)
        except Exception:
            log.exception("reminder for %s failed", env.name)

    def progress(self, env: Environment, action: RunKind) -> ProgressCallback | None:
        hook = getattr(self.notifier, "progress", None)
        if hook is None:
            return None
        try:
            callback: ProgressCallback | None = hook(env, action)
        except Exception:
            log.exception("notifier progress hook failed for %s", env.name)
            return None
        return callback

    def report(
        self, env: Environment, action: RunKind, requester: str, text: str, late: str = ""
    ) -> RunReport:
        """One scheduled run's report, its start said now. `late`: why the run starts after its
        time ("it was due ..., when ..."), or ""."""
        hook = getattr(self.notifier, "run_report", None)
        if hook is not None:
            try:
                report: RunReport | None = hook(env, action, requester, text, late)
            except Exception:
                log.exception("notifier run report failed for %s", env.name)
            else:
                if report is not None:
                    return report
        return SayReport(self, env, action, text)


class SayReport:
    """The default RunReport: one `notify` line at the start and one at the end."""

    def __init__(self, voice: Reporter, env: Environment, action: RunKind, text: str) -> None:
        self._voice, self._env = voice, env
        voice.say(env, text)
        self.on_event = voice.progress(env, action)

    def finished(self, result: object, text: str) -> None:
        self._voice.say(self._env, text)

    def stopped(self, text: str) -> None:
        self._voice.say(self._env, text)


class LazyReport:
    """A RunReport made only when there is something to show (its first event or outcome)."""

    def __init__(self, make: Callable[[], RunReport]) -> None:
        self._make = make
        self._real: RunReport | None = None
        self.on_event: ProgressCallback | None = self._forward

    def _get(self) -> RunReport:
        if self._real is None:
            self._real = self._make()
        return self._real

    def _forward(self, event: ProgressEvent) -> None:
        callback = self._get().on_event
        if callback is not None:
            callback(event)

    def finished(self, result: object, text: str) -> None:
        self._get().finished(result, text)

    def stopped(self, text: str) -> None:
        self._get().stopped(text)
