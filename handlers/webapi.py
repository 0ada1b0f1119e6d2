"""The Slack Web API client the bot (and the terminal, for trainees) uses: slack_sdk only, so
the terminal can look people up and message them without loading Bolt."""

from __future__ import annotations

from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
)

from bot.settings import SlackSettings


def make_client(s: SlackSettings, token: str) -> WebClient:
    """A Web API client that waits out 429s (Retry-After) and retries dropped connections."""
    base_url = s.api_url or WebClient.BASE_URL
    return WebClient(
        token=token,
        base_url=base_url if base_url.endswith("/") else base_url + "/",
        timeout=30,
        retry_handlers=[
            ConnectionErrorRetryHandler(max_retry_count=2),
            RateLimitErrorRetryHandler(max_retry_count=5),
        ],
    )
