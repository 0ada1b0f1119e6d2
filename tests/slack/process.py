"""`python -m bot` as a deployment runs it (HTTP mode), against a test's lab and fake Slack.

For the tests that kill or stop the bot: a real process with its own signal handling, a config
file, a database that outlives it (a SQLite file, or a PostgreSQL URL with the password in the
process's environment, as a deployment gives it), and signed requests over HTTP.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from bot.adapters.lab import LabProcess
from storage import Repository
from tests.helpers import lab_config, lab_environ, write_config
from tests.postgres import PASSWORD_ENV

from .conftest import ADMIN, CHANNEL, OPERATOR, Reply
from .fake_api import FakeSlack
from .signing import SECRET, action_body, action_payload, sign, slash_body

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class BotProcess:
    """One `python -m bot` process; `again()` makes the next one on the same config and data."""

    def __init__(
        self,
        tmp_path: Path,
        lab: LabProcess,
        fake: FakeSlack,
        *,
        database: Path | str | None = None,
        clones: dict[str, Any] | None = None,
        schedule: dict[str, Any] | None = None,
        environ: dict[str, str] | None = None,
        **slack: Any,
    ) -> None:
        """A bot whose state (config, logs, working directory) is `tmp_path`; `database`
        (default: in `tmp_path`; a path or a PostgreSQL URL) may be shared with other bots;
        `clones` and `schedule` are more keys of `[clones]` and `[schedule]`."""
        self.tmp_path = tmp_path
        self.environ = environ or {}
        tmp_path.mkdir(parents=True, exist_ok=True)
        self.lab = lab
        self.fake = fake
        self.database: Path | str = database or tmp_path / "clones.db"
        raw = lab_config(lab, self.database, concurrency=4, retry_backoff_s=0.1)
        raw["clones"].update(clones or {})
        if schedule:
            raw["schedule"] = schedule
        raw["slack"] = {
            "operators": [OPERATOR],
            "admins": [ADMIN],
            "api_url": fake.api_url,
            "progress_interval_s": 1.0,
            **slack,
        }
        self.config = write_config(tmp_path / "clones.toml", raw)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/slack/events"
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs = 0
        self.log_path = tmp_path / "bot-0.log"

    def start(self, timeout: float = 90.0) -> BotProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "CLONES_"))}
        env.update(
            {
                "CLONES_CONFIG": str(self.config),
                "CLONES_LAB_DIR": os.environ.get("CLONES_LAB_DIR", ""),
                "SLACK_BOT_TOKEN": "xoxb-test",
                "SLACK_SIGNING_SECRET": SECRET,
                "PORT": str(self.port),
                "PYTHONUNBUFFERED": "1",
                # Run from its own folder (as on its own machine): the code is found by path.
                "PYTHONPATH": os.pathsep.join(
                    p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p
                ),
                **lab_environ(self.lab),
                **self._database_password(),
                **self.environ,
            }
        )
        self.log_path = self.tmp_path / f"bot-{self.runs}.log"
        self.runs += 1
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bot"], cwd=self.tmp_path, env=env, stdout=log, stderr=log
            )
        health = f"http://127.0.0.1:{self.port}/health"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"the bot exited at start-up:\n{self.log()}")
            try:
                with urllib.request.urlopen(health, timeout=2) as response:
                    if response.read() == b"ok":
                        return self
            except OSError:
                time.sleep(0.2)
        raise AssertionError(f"the bot did not answer /health within {timeout} s:\n{self.log()}")

    def _database_password(self) -> dict[str, str]:
        """A PostgreSQL database's password, from the test's environment (tests/postgres.py)
        into the bot's, where the bot reads it; nothing for a SQLite file."""
        if not str(self.database).startswith("postgresql://"):
            return {}
        return {PASSWORD_ENV: os.environ[PASSWORD_ENV]}

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def command(self, text: str, user: str = OPERATOR, channel: str = CHANNEL) -> Reply:
        return self._post(slash_body(text, user, channel, self.fake.response_url("cmd")))

    def click(
        self, action_id: str, value: str, user: str, ts: str, channel: str = CHANNEL
    ) -> Reply:
        payload = action_payload(
            action_id, value, user, channel, ts, self.fake.response_url("click")
        )
        return self._post(action_body(payload))

    def _post(self, body: str) -> Reply:
        return Reply.of_post(self.url, body, sign(body))

    def kill(self) -> None:
        """SIGKILL: nothing of the bot's own runs."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def terminate(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)

    def repo(self) -> Repository:
        return Repository(self.database)
