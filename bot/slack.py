"""The Slack front end: builds the Bolt app from settings and tokens, and serves it.

Socket Mode when the app-level token (SLACK_APP_TOKEN) is set: no public URL needed, the usual
choice behind a firewall next to vCenter. Otherwise HTTP on $PORT, where Slack's requests are
verified with SLACK_SIGNING_SECRET. Either way start-up checks every token first and fails with
one message listing everything that is missing or malformed.

The schedule service (deploy ahead, strip back, reminders) runs in the same process, reporting to
Slack through `handlers.notify.SlackNotifier`; `SlackBot.start()` takes the single-scheduler lock
and rebuilds the jobs from SQLite, `SlackBot.close()` stops it.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any

from slack_bolt import App, BoltRequest
from slack_bolt.error import BoltError
from slack_sdk import WebClient
from slack_sdk.errors import SlackClientError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
)

from bot import bootstrap
from bot.access import AccessPolicy
from bot.errors import ClonesError, ConfigError
from bot.jobs import Jobs
from bot.schedules import ScheduleService, StartReport
from bot.settings import SlackSettings

log = logging.getLogger("clones.slack")

EVENTS_PATH = "/slack/events"  # what the manifest's request URLs point at
DEFAULT_PORT = 3000
_SECRET_RE = re.compile(r"[0-9A-Za-z]{16,}")


@dataclass(frozen=True)
class SlackTokens:
    bot_token: str = field(repr=False)
    signing_secret: str = field(default="", repr=False)
    app_token: str = field(default="", repr=False)
    port: int = DEFAULT_PORT

    @property
    def socket_mode(self) -> bool:
        return bool(self.app_token)


def read_tokens(s: SlackSettings, environ: Mapping[str, str] | None = None) -> SlackTokens:
    """Tokens from the environment; ConfigError lists every problem at once."""
    env = os.environ if environ is None else environ
    problems: list[str] = []
    bot = env.get(s.bot_token_env, "").strip()
    app_token = env.get(s.app_token_env, "").strip()
    secret = env.get(s.signing_secret_env, "").strip()
    if not bot:
        problems.append(
            f"{s.bot_token_env} is not set: copy the Bot User OAuth Token (xoxb-...) from your "
            "app's OAuth & Permissions page."
        )
    elif not bot.startswith("xoxb-"):
        problems.append(f"{s.bot_token_env} should start with xoxb- (the Bot User OAuth Token).")
    if app_token and not app_token.startswith("xapp-"):
        problems.append(
            f"{s.app_token_env} should start with xapp- (an app-level token with the "
            "connections:write scope, from Basic Information > App-Level Tokens)."
        )
    port = DEFAULT_PORT
    if not app_token:
        if not secret:
            problems.append(
                f"Neither {s.app_token_env} (Socket Mode) nor {s.signing_secret_env} (HTTP) is "
                f"set: set {s.app_token_env} to xapp-... for Socket Mode, or "
                f"{s.signing_secret_env} to the Signing Secret from Basic Information for HTTP."
            )
        elif not _SECRET_RE.fullmatch(secret):
            problems.append(
                f"{s.signing_secret_env} does not look like a Signing Secret (letters and digits "
                "from Basic Information > App Credentials)."
            )
        raw_port = env.get("PORT", str(DEFAULT_PORT)).strip()
        if not raw_port.isdigit() or not 1 <= int(raw_port) <= 65535:
            problems.append(f"PORT must be a TCP port number (1-65535), got {raw_port!r}.")
        else:
            port = int(raw_port)
    if problems:
        raise ConfigError(
            "Cannot start the Slack bot:\n"
            + "\n".join(f"  - {p}" for p in problems)
            + "\nSee docs/slack.md, section Connect to Slack."
        )
    return SlackTokens(bot, secret, app_token, port)


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


def group_members_lookup(client: WebClient) -> Any:
    def members(group: str) -> list[str]:
        return list(client.usergroups_users_list(usergroup=group).get("users") or [])

    return members


@dataclass
class SlackBot:
    """The Bolt app plus what it runs on; `start()` starts the scheduler, `close()` stops the
    scheduler and the job pool."""

    app: App
    ctx: Any  # handlers.HandlerContext (imported lazily: handlers imports bot)
    tokens: SlackTokens
    schedules: ScheduleService

    def start(self, *, paused: bool = False) -> StartReport:
        """Start the scheduler (rebuilt from SQLite; missed work runs now and says so in its
        channel). The report is logged, and posted to the first configured channel when it
        needs an operator's attention (another process holds the scheduler, or work was missed).
        """
        self.ctx.jobs.submit(self._recover)
        self.schedules.on_takeover = self._took_over
        report = self.schedules.start(paused=paused)
        log.log(logging.INFO if report.active else logging.WARNING, "%s", report.message)
        channels = self.ctx.settings.slack.channels
        if channels and (not report.active or report.missed):
            try:
                self.app.client.chat_postMessage(
                    channel=channels[0], text=f":calendar: {report.message}"
                )
            except (SlackClientError, OSError):
                log.exception("could not post the scheduler's start-up report")
        return report

    def _took_over(self, report: StartReport) -> None:
        """This bot, standing by, took the scheduler over from one that stopped: finish the
        runs that one left (as at start-up), and say so where the start-up report goes."""
        self.ctx.jobs.submit(self._recover)
        channels = self.ctx.settings.slack.channels
        if channels:
            try:
                self.app.client.chat_postMessage(
                    channel=channels[0], text=f":calendar: {report.message}"
                )
            except (SlackClientError, OSError):
                log.exception("could not post the scheduler takeover report")

    def _recover(self) -> None:
        """Finish what a crash or a lost vCenter interrupted (in the job pool: start-up must
        not wait on vCenter), and say so in the first configured channel."""
        try:
            report = self.ctx.recovery.recover(actor="clones")
        except ClonesError as exc:
            log.warning("start-up recovery could not run: %s", exc)
            return
        if not report.resumed and not report.left:
            return
        log.warning("start-up recovery: %s", report.text)
        channels = self.ctx.settings.slack.channels
        if channels:
            try:
                self.app.client.chat_postMessage(
                    channel=channels[0], text=f":recycle: After a restart: {report.text}"
                )
            except (SlackClientError, OSError):
                log.exception("could not post the recovery report")

    def close(self, wait: bool = True) -> None:
        self.schedules.shutdown(wait=wait)
        self.ctx.jobs.shutdown(wait=wait)
        if self.ctx.reads is not None:
            self.ctx.reads.shutdown(wait=wait)


def create_bot(
    core: bootstrap.App,
    tokens: SlackTokens,
    *,
    client: WebClient | None = None,
    jobs: Jobs | None = None,
    clock: Callable[[], datetime] | None = None,
) -> SlackBot:
    """The real Bolt app with every listener registered, on the service layer of `core`, and
    the schedule service reporting to Slack (not started: see `SlackBot.start`). `clock` is
    the schedule service's (tests pass a controllable one)."""
    from handlers import HandlerContext, register
    from handlers.confirmations import Confirmations
    from handlers.notify import SlackNotifier

    s = core.settings.slack
    client = client or make_client(s, tokens.bot_token)
    try:
        app = App(
            client=client,
            signing_secret=tokens.signing_secret,
            # Socket Mode requests carry no signature; Bolt skips verification for them.
            process_before_response=False,
        )
    except BoltError as exc:
        raise ConfigError(
            f"Slack refused the bot token ({exc}). Check {s.bot_token_env}: reinstall the app "
            "to your workspace and copy the Bot User OAuth Token again."
        ) from None
    except (SlackClientError, OSError) as exc:  # Bolt checks the token with auth.test at once
        raise ConfigError(
            f"Could not reach Slack at {client.base_url} to check the bot token ({exc}). "
            "Check the network or proxy, then start again."
        ) from None
    clock = clock or core.service.clock
    schedules = ScheduleService(
        core.settings,
        core.repo,
        core.service,
        notifier=SlackNotifier(client, core.settings, clock),
        clock=clock,
    )
    ctx = HandlerContext(
        settings=core.settings,
        service=core.service,
        repo=core.repo,
        access=AccessPolicy(s, group_members_lookup(client)),
        jobs=jobs or Jobs(workers=max(2, core.settings.concurrency // 2), max_pending=32),
        confirmations=Confirmations(),
        admin=core.admin,
        schedules=schedules,
        recovery=core.recovery,
        reads=Jobs(workers=2, max_pending=64, name="read"),
    )
    register(app, ctx)
    if not ctx.access.configured:
        log.warning(
            "No [slack] operators, operator_groups or admins configured: Slack users can only "
            "run status, savings, types, plan, inventory and help."
        )
    return SlackBot(app, ctx, tokens, schedules)


# ===================================================================== HTTP
def http_server(app: App, host: str = "0.0.0.0", port: int = DEFAULT_PORT) -> ThreadingHTTPServer:
    """An HTTP server for Slack's requests (one thread per request; Bolt acks in time)."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # a health check for load balancers and `honcho`
            if self.path.partition("?")[0] == "/health":
                self._send(200, {"Content-Type": "text/plain"}, "ok")
            else:
                self._send(404, {}, "")

        def do_POST(self) -> None:
            path, _, query = self.path.partition("?")
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode("utf-8") if length else ""
            if path != EVENTS_PATH:
                self._send(404, {}, "")
                return
            headers: dict[str, str | Sequence[str]] = {
                k.lower(): v for k, v in self.headers.items()
            }
            resp = app.dispatch(BoltRequest(body=body, query=query, headers=headers))
            out = {k: v[0] for k, v in resp.headers.items() if v}
            self._send(resp.status, out, resp.body)

        def _send(self, status: int, headers: Mapping[str, str], body: str) -> None:
            data = body.encode("utf-8")
            self.send_response(status)
            for k, v in headers.items():
                if k.lower() != "content-length":
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("http: " + format, *args)

    server = _Server((host, port), Handler)
    return server


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default listen backlog of 5 drops bursts of Slack requests (a burst of 20
    # commands made clients wait a second to reconnect); see docs/performance.md.
    request_queue_size = 128


# ===================================================================== main
def main(environ: Mapping[str, str] | None = None) -> int:
    """`python -m bot`: start the service layer and the Slack front end; returns an exit code."""
    from bot.settings import load_settings

    env = dict(os.environ if environ is None else environ)
    logging.basicConfig(
        level=env.get("CLONES_LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        settings = load_settings(environ=env)
        tokens = read_tokens(settings.slack, env)  # before the lab or vCenter: fail fast
        core = bootstrap.build(settings)
    except ClonesError as exc:  # configuration, tokens, the lab or vCenter: one clear line
        print(f"clones: {exc}", file=sys.stderr)
        return 2
    try:
        bot = create_bot(core, tokens)
    except ConfigError as exc:
        core.close()
        print(f"clones: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        bot.start()
        if tokens.socket_mode:
            from slack_bolt.adapter.socket_mode import SocketModeHandler

            handler = SocketModeHandler(bot.app, tokens.app_token)
            handler.connect()
            log.info("connected to Slack over Socket Mode")
            stop.wait()
            handler.close()
        else:
            server = http_server(bot.app, "0.0.0.0", tokens.port)
            threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
            log.info("listening for Slack on http://0.0.0.0:%d%s", tokens.port, EVENTS_PATH)
            stop.wait()
            server.shutdown()
    finally:
        bot.close(wait=True)
        core.close()
    return 0
