"""The Slack Web API client the bot (and the terminal, for trainees) uses: slack_sdk only, so
the terminal can look people up and message them without loading Bolt."""

from __future__ import annotations

from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler

from bot.settings import SlackSettings
from handlers.pacing import PacedWebClient, Pacer


def make_client(s: SlackSettings, token: str, *, pacer: Pacer | None = None) -> PacedWebClient:
    """A Web API client whose every call goes through `pacer` (a new one: one per process),
    which keeps within Slack's rate tiers and waits out 429s for everyone
    (`handlers.pacing`); dropped connections are retried."""
    base_url = s.api_url or WebClient.BASE_URL
    return PacedWebClient(
        token=token,
        base_url=base_url if base_url.endswith("/") else base_url + "/",
        timeout=30,
        retry_handlers=[ConnectionErrorRetryHandler(max_retry_count=2)],
        pacer=pacer or Pacer(),
    )
