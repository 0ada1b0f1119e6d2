"""Slack listeners, grouped by kind; `register(app, ctx)` attaches them all to a Bolt app.

Listeners are thin: parse the payload, `bot.domain.grammar.parse`, `bot.services.access`, hand the
work to the service layer through `handlers.jobs`, render with `handlers.blocks`. No pyVmomi and no
SQL here.
"""

from __future__ import annotations

from slack_bolt import App

from handlers.context import HandlerContext


def register(app: App, ctx: HandlerContext) -> None:
    from handlers import actions, commands, home
    from handlers.dedupe import SeenRequests, dedupe_middleware

    # Runs after Bolt's signature check: a replayed or retried request is acked, not acted on.
    app.use(dedupe_middleware(SeenRequests(store=ctx.repo.first_sighting)))
    commands.register(app, ctx)
    actions.register(app, ctx)
    home.register(app, ctx)


__all__ = ["HandlerContext", "register"]
