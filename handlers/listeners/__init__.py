"""Slack listeners, grouped by kind, each module with its `register(app, ctx)` (the layout of
slack-samples/bolt-python-starter-template): `commands` (the `/clones` slash command), `actions`
(Confirm / Cancel and the reminder's buttons), `home` (the App Home tab and its buttons) and
`trainees` (a trainee's buttons on their own VM).

Listeners only parse, check and hand over: the work runs in `ctx.jobs` through the dispatch table
every front end shares (`bot.services.dispatch`), and is rendered by `handlers.blocks`.
"""

from __future__ import annotations

from slack_bolt import App

from handlers.context import HandlerContext
from handlers.dedupe import dedupe_middleware
from handlers.listeners import actions, commands, home, trainees


def register(app: App, ctx: HandlerContext) -> None:
    # Runs after Bolt's signature check: a replayed or retried request is acked, not acted on.
    app.use(dedupe_middleware(ctx.seen))
    commands.register(app, ctx)
    actions.register(app, ctx)
    home.register(app, ctx)
    trainees.register(app, ctx)
