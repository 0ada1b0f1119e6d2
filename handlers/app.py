"""The Slack front end: builds the Bolt app from settings and tokens, and serves it.

Socket Mode when the app-level token (SLACK_APP_TOKEN) is set: no public URL needed, the usual
choice behind a firewall next to vCenter. Otherwise HTTP on $PORT, where Slack's requests are
verified with SLACK_SIGNING_SECRET. Either way start-up checks every token first and fails with
one message listing everything that is missing or malformed.

HTTP is served by waitress through Bolt's WSGI adapter (`handlers.serving`): bodies are capped and
never logged, and malformed requests get a short 4xx.

The schedule service (deploy ahead, strip back, reminders) runs in the same process, reporting to
Slack through `handlers.notify.SlackNotifier`; `SlackBot.start()` takes the single-scheduler lock,
rebuilds the jobs from SQLite and resumes runs a crash or restart interrupted (finishing each one's
own Slack message), `SlackBot.close()` stops it all.

Stopping (SIGTERM, SIGINT): the bot drains. It keeps answering Slack (read-only commands as
usual; changing commands and buttons are told the bot is restarting), stops the scheduler, and
waits up to `[slack] drain_timeout_s` for the work in hand. Runs still going then are marked
interrupted (their message says so) and resumed at the next start. A second signal ends the drain
at once.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from types import FrameType
from typing import Any

from slack_bolt import App, BoltContext
from slack_bolt.error import BoltError
from slack_sdk import WebClient
from slack_sdk.errors import SlackClientError

from bot.domain.errors import ClonesError, ConfigError
from bot.domain.models import CloneState, Run, RunState
from bot.services.access import AccessPolicy
from bot.services.container import Services
from bot.services.schedules import ScheduleService, StartReport
from bot.settings import Settings, SlackSettings
from handlers.blocks.runs import restart_pending
from handlers.confirm_tokens import Confirmations
from handlers.context import HandlerContext
from handlers.dedupe import SeenRequests
from handlers.jobs import Jobs, TrackedExecutor
from handlers.listeners import register
from handlers.notify import SlackNotifier
from handlers.operations import Operations
from handlers.pacing import PacedWebClient, Pacer, Priority, paced
from handlers.people import SlackPeople
from handlers.progress import LiveRuns
from handlers.recovered import recover_and_report
from handlers.serving import (
    EVENTS_PATH,
    GatedSocketModeHandler,
    HttpServer,
    bolt_logger,
    http_server,
)
from handlers.webapi import make_client

log = logging.getLogger("clones.slack")

DEFAULT_PORT = 3000
LISTENER_THREADS = 16  # Bolt runs each listener here; a listener only acks and queues work
__all__ = [
    "EVENTS_PATH",
    "HttpServer",
    "SlackBot",
    "SlackTokens",
    "create_bot",
    "http_server",
    "main",
    "make_client",
    "read_tokens",
]
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


def group_members_lookup(client: WebClient) -> Any:
    def members(group: str) -> list[str]:
        return list(client.usergroups_users_list(usergroup=group).get("users") or [])

    return members


GROUPS_RETRY_S = 10.0  # after a failed read of the operator groups, try again this much later


def refresh_groups(access: AccessPolicy, stop: threading.Event) -> None:
    """Keep the operator groups' members current in the background (a thread of the bot): read
    at start, again as each goes stale or a check finds one missing. Slack's pacing is waited
    out here, at the lowest priority, never before an acknowledgement."""
    while not stop.is_set():
        started = time.monotonic()
        with paced(Priority.BACKGROUND, within_s=None):
            access.refresh()
        if stop.is_set():
            return
        wait = access.stale_in() or GROUPS_RETRY_S
        access.wanted.wait(wait)
        # Woken early (a check met a group it does not know): not more than once a second.
        stop.wait(max(0.0, 1.0 - (time.monotonic() - started)))


def shared_client(client: WebClient) -> Callable[..., None]:
    """Bolt middleware: listeners get the bot's one paced client, not the plain WebClient Bolt
    makes for each request (whose calls the pacer would not see)."""

    def use(context: BoltContext, next: Callable[[], None]) -> None:
        context["client"] = client
        next()

    return use


@dataclass
class SlackBot:
    """The Bolt app plus what it runs on; `start()` starts the scheduler and start-up recovery,
    `drain()` winds down before a restart, `close()` stops the scheduler and the job pools."""

    app: App
    ctx: HandlerContext
    tokens: SlackTokens
    schedules: ScheduleService
    listeners: TrackedExecutor | None = None  # Bolt's listener executor
    ops: Operations | None = None  # /ready and /metrics
    _recovering: threading.Lock = field(default_factory=threading.Lock)
    _after_resync: Callable[[], object] | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self, *, paused: bool = False) -> StartReport:
        """Start the scheduler (rebuilt from SQLite; missed work runs now and says so in its
        channel) and resume interrupted runs in the job pool (start-up must not wait on
        vCenter). The scheduler's report is logged, and posted to the first configured channel
        when it needs an operator's attention (another process holds the scheduler, or work was
        missed); each resumed run is reported in its own message, not there."""
        access = self.ctx.access
        if access.settings.operator_groups:
            access.refreshed_in_background = True
            threading.Thread(
                target=refresh_groups, args=(access, self._stop), name="groups", daemon=True
            ).start()
        self.schedules.on_takeover = self._took_over
        report = self.schedules.start(paused=paused)
        if report.active:  # the leader recovers; a bot standing by does when it takes over
            self.ctx.jobs.submit(self._recover)
        keeper = self.schedules.keeper
        self._after_resync, keeper.after_resync = keeper.after_resync, self._resynced
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

    def _resynced(self) -> None:
        """The leader, after each re-sync: what the schedule service does then, and runs whose
        owner (another bot, on any machine) died or hung past its lease are resumed here."""
        if self._after_resync is not None:
            self._after_resync()
        if self._recovering.locked():
            return
        # Running runs only: an interrupted one (vCenter went away, a bot stopped cleanly)
        # waits for `resume` or the next start, as with one bot.
        abandoned = self.ctx.services.recovery.abandoned()
        if not any(run.state is RunState.RUNNING for run in abandoned):
            return
        with contextlib.suppress(ClonesError):  # busy: the next re-sync tries again
            self.ctx.jobs.submit(self._recover)

    def _recover(self) -> None:
        """Finish what a crash or a restart interrupted, each run in its own Slack message."""
        if not self._recovering.acquire(blocking=False):
            return  # one recovery at a time in this bot
        try:
            recover_and_report(self.ctx, self.app.client, fence=self.schedules.keeper.fence())
        except ClonesError as exc:  # vCenter unreachable, ...: the next start tries again
            log.warning("start-up recovery could not run: %s", exc)
        finally:
            self._recovering.release()
        # Trainees whose VM a strip back removed while no messenger was at hand (the
        # terminal without a token, a crash): told now, once each.
        told = self.ctx.services.use_cases.trainees.tell_removed()
        if told:
            log.info("told %d trainee(s) that their VM was removed", told)

    # ------------------------------------------------------------------ idle and drain
    def wait_idle(self, timeout: float = 60.0) -> bool:
        """Block until every request accepted so far is handled and every job it queued has
        finished (True), or `timeout` seconds pass (False)."""
        deadline = time.monotonic() + timeout
        pools = [p for p in (self.listeners, self.ctx.jobs, self.ctx.reads) if p is not None]
        while True:
            # A listener may queue a job after its pool was seen idle: repeat until one pass
            # finds every pool idle at once.
            settled = True
            for pool in pools:
                if pool.wait_idle(0):
                    continue
                settled = False
                if not pool.wait_idle(max(0.0, deadline - time.monotonic())):
                    return False
            if settled:
                return True

    def unfinished_runs(self) -> list[Run]:
        """Runs this process is running right now (typed, scheduled or resumed)."""
        service = self.ctx.services.use_cases
        return [r for r in service.queries.running_runs() if r.owner == service.owner]

    def drain(self, timeout_s: float, *, hurry: threading.Event | None = None) -> list[Run]:
        """Stop taking changing work (requests are still answered), stop the scheduler, and wait
        up to `timeout_s` for the work in hand. Returns the runs still unfinished."""
        self.ctx.draining.set()
        log.info("stopping: finishing the work in hand (at most %.0f s)", timeout_s)
        self.schedules.shutdown(wait=False)  # no new scheduled job; a running one goes on
        deadline = time.monotonic() + timeout_s
        wake = hurry or threading.Event()
        while True:
            left = self.unfinished_runs()
            if not left and not self.ctx.jobs.busy:
                return []
            if time.monotonic() >= deadline or wake.is_set():
                return left
            wake.wait(0.2)

    def interrupt(self, runs: list[Run]) -> None:
        """Mark `runs` interrupted (the next start resumes them) and say so in their messages."""
        service = self.ctx.services.use_cases
        # An edit waits out the update interval of its message, then Slack's answer.
        wait_s = self.ctx.settings.slack.progress_interval_s + 10.0
        for run in runs:
            try:
                service.runs.finish_run(
                    run.id,
                    state=RunState.INTERRUPTED,
                    succeeded=run.succeeded,
                    failed=run.failed,
                    message="The bot stopped before this run finished; it resumes at the next "
                    "start.",
                )
            except ClonesError as exc:  # it finished meanwhile
                log.info("run %s was not interrupted: %s", run.id, exc)
                continue
            ready = len(service.queries.run_clones(run.id, states=[CloneState.READY]))
            r = restart_pending(run, ready)
            # The run's own progress message, when this process shows it: the paused state is
            # its last edit (progress still queued is dropped, so it cannot overwrite it).
            if self.ctx.live.finish(run.id, r, timeout_s=wait_s):
                continue
            shown = service.runs.shown_in(run.id)
            if shown is None:
                continue
            try:
                self.app.client.chat_update(
                    channel=shown.channel, ts=shown.ts, text=r.text, blocks=r.blocks
                )
            except (SlackClientError, OSError):
                log.exception("could not mark run %s as interrupted in Slack", run.id)

    def close(self, wait: bool = True) -> None:
        self._stop.set()
        self.ctx.access.wanted.set()
        self.schedules.shutdown(wait=wait)
        self.ctx.jobs.shutdown(wait=wait)
        if self.ctx.reads is not None:
            self.ctx.reads.shutdown(wait=wait)
        if self.listeners is not None:
            self.listeners.shutdown(wait=wait, cancel_futures=not wait)


def create_bot(
    core: Services,
    tokens: SlackTokens,
    *,
    client: PacedWebClient | None = None,
    jobs: Jobs | None = None,
    clock: Callable[[], datetime] | None = None,
    pacer: Pacer | None = None,
) -> SlackBot:
    """The real Bolt app with every listener registered, on the services of `core`, with a
    schedule service that reports to Slack in place of the terminal's (not started: see
    `SlackBot.start`). `clock` is the schedule service's (tests pass a controllable one).
    Every Web API call goes through one client and its pacer (`pacer`: tests pass one whose
    minute is as short as their fake Slack's)."""
    s = core.settings.slack
    client = client or make_client(s, tokens.bot_token, pacer=pacer)
    listeners = TrackedExecutor(LISTENER_THREADS, thread_name_prefix="listener")
    app = _bolt_app(client, tokens, s, listeners)
    app.use(shared_client(client))
    clock = clock or core.use_cases.clock
    live = LiveRuns(core)  # one for typed, confirmed, scheduled and resumed runs
    notifier = SlackNotifier(client, core.settings, clock, services=core, live=live)
    schedules = core.schedules_for(notifier=notifier, clock=clock)
    trainees = core.use_cases.trainees
    access = AccessPolicy(s, group_members_lookup(client), is_trainee=trainees.holds_vm)
    # Trainees are looked up and messaged with the bot's own client (paced, 429s waited out).
    people = SlackPeople(client, interval_s=core.settings.trainees.message_interval_s)
    trainees.connect(people, people, staff=access.is_operator)
    ctx = HandlerContext(
        services=replace(core, schedules=schedules),
        access=access,
        jobs=jobs or Jobs(workers=max(2, core.settings.concurrency // 2), max_pending=32),
        confirmations=Confirmations(store=core.repo),
        audit=core.repo,
        seen=SeenRequests(store=core.repo.first_sighting),
        live=live,
        reads=Jobs(workers=2, max_pending=64, name="read"),
    )
    register(app, ctx)
    if not ctx.access.configured:
        log.warning(
            "No [slack] operators, operator_groups or admins configured: Slack users can only "
            "run status, history, savings, types, plan, inventory and help."
        )
    ops = Operations(core, schedules)
    if hasattr(core.vcenter, "observe"):  # the bot's vCenter adapter, timed for /metrics
        core.vcenter.observe = ops.observe_vcenter
    return SlackBot(app, ctx, tokens, schedules, listeners, ops=ops)


def _bolt_app(
    client: WebClient, tokens: SlackTokens, s: SlackSettings, listeners: TrackedExecutor
) -> App:
    """The Bolt app (which checks the token with auth.test at once); a clear error if refused."""
    try:
        return App(
            client=client,
            signing_secret=tokens.signing_secret,
            # Socket Mode requests carry no signature; Bolt skips verification for them.
            process_before_response=False,
            logger=bolt_logger(),  # never logs request bodies
            listener_executor=listeners,
        )
    except BoltError as exc:
        listeners.shutdown(wait=False)
        raise ConfigError(
            f"Slack refused the bot token ({exc}). Check {s.bot_token_env}: reinstall the app "
            "to your workspace and copy the Bot User OAuth Token again."
        ) from None
    except (SlackClientError, OSError) as exc:
        listeners.shutdown(wait=False)
        raise ConfigError(
            f"Could not reach Slack at {client.base_url} to check the bot token ({exc}). "
            "Check the network or proxy (and [slack] api_url), then start again."
        ) from None


# ===================================================================== main
def main(build: Callable[[Settings], Services], environ: Mapping[str, str] | None = None) -> int:
    """`python -m bot` (through `bot.bootstrap.slack`, which hands it `build`): start the
    services and the Slack front end; returns an exit code."""
    env = dict(os.environ if environ is None else environ)
    logging.basicConfig(
        level=env.get("CLONES_LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    prepared = _prepare(build, env)
    if prepared is None:
        return 2
    settings, tokens, core, bot = prepared
    stop = threading.Event()
    hurry = threading.Event()  # a second signal: stop draining now

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            hurry.set()
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    unfinished: list[Run] = []
    server: HttpServer | None = None
    try:
        # The port first: a port in use stops the start before the scheduler or recovery run.
        server = None if tokens.socket_mode else listen(bot, tokens.port)
        bot.start()
    except ClonesError as exc:  # the port, the database: one clear line
        if server is not None:
            server.shutdown()
        bot.close(wait=False)
        core.close()
        print(f"clones: {exc}", file=sys.stderr)
        return 2
    try:
        stop_serving = _serve(bot, tokens, server)
        stop.wait()
        unfinished = bot.drain(settings.slack.drain_timeout_s, hurry=hurry)
        if unfinished:
            bot.interrupt(unfinished)
        stop_serving()
    finally:
        if unfinished:
            # Clone workers are still busy with runs now marked interrupted; they are resumed
            # at the next start. Waiting for them is what the drain limit rules out.
            log.warning(
                "stopped with %d run(s) unfinished (%s); they resume at the next start",
                len(unfinished),
                ", ".join(f"{r.kind.value} of {r.environment}" for r in unfinished),
            )
            logging.shutdown()
            os._exit(0)
        bot.close(wait=True)
        core.close()
    log.info("stopped")
    return 0


def _prepare(
    build: Callable[[Settings], Services], env: Mapping[str, str]
) -> tuple[Settings, SlackTokens, Services, SlackBot] | None:
    """The settings, tokens, services and Bolt app; None when one of them cannot be had (the
    reason printed in one line)."""
    from bot.settings import load_settings

    try:
        settings = load_settings(environ=env)
        tokens = read_tokens(settings.slack, env)  # before the lab or vCenter: fail fast
        core = build(settings)
    except ClonesError as exc:  # configuration, tokens, the database, the lab or vCenter
        print(f"clones: {exc}", file=sys.stderr)
        return None
    try:
        return settings, tokens, core, create_bot(core, tokens)
    except ClonesError as exc:  # the token refused, Slack unreachable, the database
        core.close()
        print(f"clones: {exc}", file=sys.stderr)
        return None


def listen(bot: SlackBot, port: int, host: str = "0.0.0.0") -> HttpServer:
    """The HTTP server for Slack's requests, bound to `port` (not serving yet); ConfigError, one
    sentence, when the port cannot be had."""
    try:
        return http_server(bot.app, host, port, ops=bot.ops)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            why = "is in use by another process (another bot still running?)"
        elif exc.errno == errno.EACCES:
            why = "needs privileges this user does not have (ports below 1024)"
        else:
            why = f"cannot be used ({exc.strerror or exc})"
        raise ConfigError(
            f"Cannot listen for Slack on port {port}: it {why}; stop that process or set PORT "
            "to a free port."
        ) from None


def _serve(bot: SlackBot, tokens: SlackTokens, server: HttpServer | None) -> Callable[[], None]:
    """Connect over Socket Mode, or serve HTTP on the bound `server`; returns what stops it."""
    if server is None:
        handler = GatedSocketModeHandler(bot.app, tokens.app_token)
        handler.connect()
        log.info("connected to Slack over Socket Mode")
        return handler.close
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    log.info("listening for Slack on http://0.0.0.0:%d%s", tokens.port, EVENTS_PATH)
    return server.shutdown
