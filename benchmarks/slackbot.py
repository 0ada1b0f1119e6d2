"""The real Bolt app (handlers.app + handlers/) on a core App, served over HTTP for the benchmarks.

Uses the test suite's fake Slack Web API and request signing (tests/slack/fake_api.py and
signing.py) so the benchmarks drive the bot exactly as the end-to-end tests do.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from dataclasses import dataclass, replace
from typing import Any

from bot import bootstrap
from bot.settings import Settings, SlackSettings
from handlers.app import HttpServer, SlackTokens, create_bot, http_server, make_client
from tests.slack.fake_api import FakeSlack
from tests.slack.signing import SECRET, sign, slash_body

OPERATOR = "UBENCHOP"
CHANNEL = "CBENCH"

log = logging.getLogger("benchmarks")

__all__ = [
    "CHANNEL",
    "OPERATOR",
    "SECRET",
    "FakeSlack",
    "RunningBot",
    "sign",
    "slack_settings",
    "slash_body",
    "start_bot",
]


def slack_settings(settings: Settings, fake: FakeSlack) -> Settings:
    return replace(
        settings,
        slack=SlackSettings(
            operators=(OPERATOR,),
            admins=(OPERATOR,),
            progress_interval_s=1.0,
            api_url=fake.api_url,
        ),
    )


@dataclass
class RunningBot:
    app: Any  # slack_bolt.App
    ctx: Any  # handlers.context.HandlerContext
    server: HttpServer
    url: str
    wiring: str  # "handlers.app.create_bot", or "benchmarks fallback" while create_bot is mid-edit

    def close(self) -> None:
        self.server.shutdown()
        self.ctx.jobs.shutdown(wait=True)


def build_context(core: bootstrap.App, client: Any) -> tuple[Any, str]:
    """A HandlerContext for `core`: through handlers.app.create_bot when it works, else by filling
    HandlerContext's fields the way create_bot does (its fields are being extended right now)."""
    from handlers.context import HandlerContext

    try:
        bot = create_bot(core, SlackTokens("xoxb-bench", SECRET, "", 0), client=client)
        return bot, "handlers.app.create_bot"
    except TypeError as exc:
        log.warning("create_bot failed (%s); wiring HandlerContext from its fields", exc)
    from slack_bolt import App

    from bot.services.access import AccessPolicy
    from handlers.app import group_members_lookup
    from handlers.confirm_tokens import Confirmations
    from handlers.dedupe import SeenRequests
    from handlers.jobs import Jobs
    from handlers.listeners import register
    from handlers.progress import LiveRuns

    s = core.settings
    providers: dict[str, Any] = {
        "services": core,
        "access": AccessPolicy(s.slack, group_members_lookup(client)),
        "jobs": Jobs(workers=max(2, s.concurrency // 2), max_pending=32),
        "confirmations": Confirmations(),
        "audit": core.repo,
        "seen": SeenRequests(store=core.repo.first_sighting),
        "live": LiveRuns(core),
    }
    fields = [f.name for f in dataclasses.fields(HandlerContext) if f.init]
    for name in fields:  # new fields named like the core App's parts (admin, recovery, ...)
        if name not in providers and hasattr(core, name):
            providers[name] = getattr(core, name)
    missing = [f for f in fields if f not in providers]
    if missing:
        raise RuntimeError(f"HandlerContext needs {missing}; update benchmarks/slackbot.py")
    ctx = HandlerContext(**{f: providers[f] for f in fields})
    app = App(client=client, signing_secret=SECRET, process_before_response=False)
    register(app, ctx)
    return _Bot(app, ctx), "benchmarks fallback (create_bot raised TypeError mid-edit)"


@dataclass
class _Bot:
    app: Any
    ctx: Any


def start_bot(core: bootstrap.App) -> RunningBot:
    """Serve the real Bolt app for `core` on 127.0.0.1 (a free port) with handlers.app's server."""
    client = make_client(core.settings.slack, "xoxb-bench")
    bot, wiring = build_context(core, client)
    server = http_server(bot.app, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, name="bench-http", daemon=True).start()
    port = server.server_address[1]
    return RunningBot(bot.app, bot.ctx, server, f"http://127.0.0.1:{port}/slack/events", wiring)
