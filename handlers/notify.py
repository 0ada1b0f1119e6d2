"""Where the scheduler reports in Slack: the environment's channel.

`SlackNotifier` is the `bot.ports.Notifier` of the Slack bot. A scheduled deploy or
strip back is one message in the environment's channel, exactly like a typed one: posted when the
job starts, edited in place with live progress, and finally with the outcome (for a deployment the
savings table, with the chart in its thread). The owner's reminder before a strip back carries
"Extend 2h" and "Strip back now" buttons (handled in `handlers.listeners.actions`). An environment
without a
channel (made from the terminal) is reported to its owner's DM when the owner is a Slack user,
otherwise only logged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from slack_sdk import WebClient
from slack_sdk.errors import SlackClientError

from bot.domain.models import Environment, RunKind
from bot.domain.results import DeployResult, TeardownResult
from bot.domain.timeparse import describe_time, format_duration
from bot.ports import ProgressCallback
from bot.services.container import Services
from bot.settings import Settings
from handlers.blocks import runs as shown
from handlers.blocks import schedules
from handlers.blocks.kit import SLACK_ID, esc, section
from handlers.progress import LiveRuns, ProgressMessage
from handlers.run_messages import ChannelUnavailable, finish_deploy, open_message

log = logging.getLogger(__name__)


def extend_label(settings: Settings) -> str:
    """ "Extend 2h": the reminder button, named after the configured default extension."""
    minutes = settings.schedule.default_extension_min
    return f"Extend {format_duration(timedelta(minutes=minutes))}"


class SlackNotifier:
    def __init__(
        self,
        client: WebClient,
        settings: Settings,
        clock: Callable[[], datetime],
        *,
        interval_s: float | None = None,
        services: Services | None = None,
        live: LiveRuns | None = None,
    ) -> None:
        self.client = client
        self.settings = settings
        self.clock = clock
        # Where each run's message is recorded, and the chart (None: neither).
        self.services = services
        self.live = live or LiveRuns(services)
        self.interval_s = settings.slack.progress_interval_s if interval_s is None else interval_s

    def channel_for(self, environment: Environment) -> str | None:
        if environment.channel:
            return environment.channel
        if SLACK_ID.fullmatch(environment.owner):
            return environment.owner  # a user ID as channel: the app's DM with them
        return None

    def describe(self, moment: datetime) -> str:
        return describe_time(moment, self.clock(), self.settings.timezone)

    # ------------------------------------------------------------------ Notifier
    def notify(self, environment: Environment, text: str) -> None:
        channel = self.channel_for(environment)
        if channel is None:
            log.info("%s (no Slack channel): %s", environment.name, text)
            return
        self.client.chat_postMessage(channel=channel, text=text, blocks=[section(esc(text))])

    def remind(self, environment: Environment, owner: str, ends_at: datetime) -> None:
        channel = self.channel_for(environment)
        if channel is None:
            log.info("reminder for %s (no Slack channel): strip back at %s", owner, ends_at)
            return
        r = schedules.reminder(
            environment.name, owner, self.describe(ends_at), extend_label(self.settings)
        )
        self.client.chat_postMessage(channel=channel, text=r.text, blocks=r.blocks)

    def run_report(
        self, environment: Environment, action: RunKind, requester: str, text: str, late: str = ""
    ) -> SlackRunReport | None:
        """One message for one scheduled run (None: no channel, the scheduler just logs).
        `late`: why it runs after its time, kept in the final state of the message."""
        channel = self.channel_for(environment)
        if channel is None:
            return None
        return SlackRunReport(self, environment, channel, action, requester, text, late)


class SlackRunReport:
    """A scheduled run's one message: posted now, edited with progress, then the outcome."""

    def __init__(
        self,
        notifier: SlackNotifier,
        environment: Environment,
        channel: str,
        action: RunKind,
        requester: str,
        text: str,
        late: str = "",
    ) -> None:
        self.notifier = notifier
        self.late = late
        self.environment = environment
        self.action = action
        self.requester = requester
        self.client = notifier.client
        self.progress: ProgressMessage | None = None
        self.on_event: ProgressCallback | None = None
        try:
            channel, ts = open_message(
                self.client, channel, shown.scheduled_starting(action, environment.name, text)
            )
        except (ChannelUnavailable, SlackClientError, OSError) as exc:
            # The run goes ahead (it was asked for); only its display is lost.
            log.warning(
                "cannot post the scheduled run of %s in %s: %s", environment.name, channel, exc
            )
            return
        self.progress = ProgressMessage(
            self.client,
            channel,
            shown.scheduled_progress,
            interval_s=notifier.interval_s,
            ts=ts,
            live=notifier.live,
        )
        self.progress.mark_sent()
        self.on_event = self.progress.on_event

    def finished(self, result: object, text: str) -> None:
        if self.progress is None:
            log.info("%s: %s", self.environment.name, text)
            return
        if isinstance(result, DeployResult):
            services = self.notifier.services
            finish_deploy(
                self.client,
                services.chart if services is not None else None,
                self.progress,
                result,
                self.requester,
                note=self._next_strip_back(),
                origin=":calendar: Scheduled deployment" + (f" ({self.late})" if self.late else ""),
            )
        elif isinstance(result, TeardownResult):
            how = "scheduled" + (f"; {self.late}" if self.late else "")
            self.progress.finish(shown.teardown_result(result, self.requester, how=how))
        else:  # pragma: no cover - the scheduler reports only these two
            self.progress.finish(shown.scheduled_stopped(self.action, self.environment.name, text))

    def stopped(self, text: str) -> None:
        final = shown.scheduled_stopped(self.action, self.environment.name, text)
        if self.progress is None:
            log.info("%s: %s", self.environment.name, text)
            return
        self.progress.finish(final)

    def _next_strip_back(self) -> str:
        services = self.notifier.services
        queries = services.use_cases.queries if services is not None else None
        env = queries.find_environment(self.environment.name) if queries is not None else None
        if env is None or env.ends_at is None:
            return ""
        return f"{env.name} strips back {self.notifier.describe(env.ends_at)}."
