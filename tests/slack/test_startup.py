"""Start-up: one clear error listing every missing or malformed token."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from bot.adapters.lab import LabProcess
from bot.domain.errors import ConfigError
from bot.settings import SlackSettings
from handlers.app import read_tokens

from .fake_api import FakeSlack
from .process import BotProcess, free_port

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


def _slack_settings(**slack: object) -> SlackSettings:
    from bot.settings import settings_from_dict
    from tests.helpers import lab_config, lab_environ

    raw = lab_config(None, Path("/tmp/unused.db"))
    raw["slack"] = slack
    return settings_from_dict(raw, env=lab_environ(None)).slack


def test_api_url_and_drain_timeout_are_read_and_checked() -> None:
    s = _slack_settings(api_url="https://slack-gov.com/api/", drain_timeout_s=40)
    assert (s.api_url, s.drain_timeout_s) == ("https://slack-gov.com/api/", 40.0)
    assert _slack_settings().drain_timeout_s == 25.0 and _slack_settings().api_url is None
    with pytest.raises(ConfigError, match=r'api_url must be an http\(s\) URL such as "https://'):
        _slack_settings(api_url="slack-gov.com")
    with pytest.raises(ConfigError, match="drain_timeout_s must be a number of seconds from 0 to"):
        _slack_settings(drain_timeout_s=-1)


@pytest.mark.parametrize(
    ("slack_answer", "expected", "advice"),
    [
        ("invalid_auth", "Slack refused the bot token", "copy the Bot User OAuth Token again"),
        ("unreachable", "Could not reach Slack at http://127.0.0.1:", "then start again"),
    ],
)
def test_a_refused_or_unreachable_token_check_stops_the_bot_with_what_to_do(
    lab: LabProcess,
    fake_slack: FakeSlack,
    tmp_path: Path,
    slack_answer: str,
    expected: str,
    advice: str,
) -> None:
    """Bolt checks the bot token with auth.test at start: a refusal or a Slack that cannot be
    reached ends the process with exit 2 and a sentence naming what to check, no traceback."""
    bot = BotProcess(tmp_path, lab, fake_slack)
    if slack_answer == "unreachable":
        bot = BotProcess(tmp_path, lab, fake_slack, api_url=f"http://127.0.0.1:{free_port()}/api/")
    else:
        fake_slack.refuse("auth.test", slack_answer)
    with pytest.raises(AssertionError, match="exited at start-up"):
        bot.start(timeout=60)
    assert bot.wait(timeout=10) == 2
    log = bot.log()
    assert expected in log and advice in log, log
    assert "Traceback" not in log
    assert "xoxb-test" not in log  # the token itself is never printed


def test_a_port_in_use_stops_the_bot_with_one_sentence(
    lab: LabProcess, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    bot = BotProcess(tmp_path, lab, fake_slack)
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", bot.port))
        taken.listen()
        with pytest.raises(AssertionError, match="exited at start-up"):
            bot.start(timeout=60)
        assert bot.wait(timeout=10) == 2
    log = bot.log()
    assert "Traceback" not in log
    said = [line for line in log.splitlines() if line.startswith("clones: ")]
    assert said == [
        f"clones: Cannot listen for Slack on port {bot.port}: it is in use by another process "
        "(another bot still running?); stop that process or set PORT to a free port."
    ]
