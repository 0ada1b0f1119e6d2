"""Where the scheduler reports in Slack: the environment's channel.

`SlackNotifier` is the `bot.schedules.Notifier` of the Slack bot: scheduled deploys and strip
backs announce themselves in the environment's channel with the same live progress message as a
manual run, and the owner's reminder before a strip back carries "Extend 2h" and "Strip back now"
buttons (handled in `handlers.actions`). An environment without a channel (made from the
terminal) is reported to its owner's DM when the owner is a Slack user, otherwise only logged.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from slack_sdk import WebClient

from bot.models import Environment, RunKind
from bot.service import ProgressCallback, ProgressEvent
from bot.settings import Settings
from bot.timeparse import describe_time, format_duration
from handlers import blocks
from handlers.progress import ProgressMessage

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
    ) -> None:
        self.client = client
        self.settings = settings
        self.clock = clock
        self.interval_s = settings.slack.progress_interval_s if interval_s is None else interval_s

    def channel_for(self, environment: Environment) -> str | None:
        if environment.channel:
            return environment.channel
        if blocks.SLACK_ID.fullmatch(environment.owner):
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
        self.client.chat_postMessage(
            channel=channel, text=text, blocks=[blocks.section(blocks.esc(text))]
        )

    def remind(self, environment: Environment, owner: str, ends_at: datetime) -> None:
        channel = self.channel_for(environment)
        if channel is None:
            log.info("reminder for %s (no Slack channel): strip back at %s", owner, ends_at)
            return
        r = blocks.reminder(
            environment.name, owner, self.describe(ends_at), extend_label(self.settings)
        )
        self.client.chat_postMessage(channel=channel, text=r.text, blocks=r.blocks)

    def progress(self, environment: Environment, action: RunKind) -> ProgressCallback | None:
        """A live progress message for a scheduled run, like a manual one's."""
        channel = self.channel_for(environment)
        if channel is None:
            return None
        message = ProgressMessage(
            self.client, channel, blocks.scheduled_progress, interval_s=self.interval_s
        )

        def on_event(event: ProgressEvent) -> None:
            if event.kind != "finished":
                message.on_event(event)
                return
            # The final state waits out the update interval; never hold the scheduler's
            # worker for it.
            final = blocks.scheduled_progress(event)
            threading.Thread(
                target=message.finish,
                args=(final,),
                name=f"progress-final-{event.run_id}",
                daemon=True,
            ).start()

        return on_event


def tell_home_channel(
    client: WebClient, environment: Environment | None, from_channel: str, text: str
) -> None:
    """Trainers follow an environment in its own channel: when a run was started from another
    channel (whose message shows the progress), post the outcome there too."""
    if environment is None or not environment.channel or environment.channel == from_channel:
        return
    try:
        client.chat_postMessage(
            channel=environment.channel, text=text, blocks=[blocks.section(blocks.esc(text))]
        )
    except Exception:  # a notification must never turn a finished run into an error
        log.exception("could not notify %s in %s", environment.name, environment.channel)
