"""Start-up: one clear error listing every missing or malformed token."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.errors import ConfigError
from bot.settings import SlackSettings
from bot.slack import read_tokens

ROOT = Path(__file__).resolve().parents[2]


def test_nothing_set_lists_everything() -> None:
    with pytest.raises(ConfigError) as info:
        read_tokens(SlackSettings(), {})
    text = str(info.value)
    assert text.startswith("Cannot start the Slack bot:")
    assert "SLACK_BOT_TOKEN is not set" in text
    assert "Neither SLACK_APP_TOKEN (Socket Mode) nor SLACK_SIGNING_SECRET (HTTP)" in text
    assert "docs/slack.md" in text


def test_malformed_tokens_are_named() -> None:
    with pytest.raises(ConfigError) as info:
        read_tokens(SlackSettings(), {"SLACK_BOT_TOKEN": "xoxp-user", "SLACK_APP_TOKEN": "abc"})
    text = str(info.value)
    assert "SLACK_BOT_TOKEN should start with xoxb-" in text
    assert "SLACK_APP_TOKEN should start with xapp-" in text


def test_http_mode_needs_a_port_and_secret() -> None:
    with pytest.raises(ConfigError, match="PORT must be a TCP port"):
        read_tokens(
            SlackSettings(),
            {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "a" * 32, "PORT": "http"},
        )
    tokens = read_tokens(
        SlackSettings(),
        {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "a" * 32, "PORT": "8080"},
    )
    assert not tokens.socket_mode and tokens.port == 8080
    tokens = read_tokens(
        SlackSettings(), {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xapp-1"}
    )
    assert tokens.socket_mode
    assert "xoxb" not in repr(tokens)  # secrets never reach logs through repr


def test_python_m_bot_exits_with_the_message_and_no_traceback(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLACK_")}
    env["CLONES_DB"] = str(tmp_path / "x.db")
    done = subprocess.run(
        [sys.executable, "-m", "bot"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "Cannot start the Slack bot:" in done.stderr
    assert "Traceback" not in done.stderr
