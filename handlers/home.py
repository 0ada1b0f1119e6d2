"""The App Home tab: environments with their types, counts, owner, savings and next scheduled
event, and what is being deployed, stripped back or refreshed right now."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import App
from slack_sdk import WebClient

from bot.domain.errors import ClonesError
from bot.domain.models import RunState
from bot.domain.savings import Savings
from handlers import blocks
from handlers.context import DirectReply, HandlerContext, reporting

log = logging.getLogger(__name__)


def register(app: App, ctx: HandlerContext) -> None:
    @app.event("app_home_opened")
    def home_opened(event: dict[str, Any], client: WebClient) -> None:
        # Bolt has already acknowledged the event; this runs on its listener pool.
        if event.get("tab", "home") != "home":
            return
        user = str(event.get("user", ""))
        reporting(DirectReply(client, user), "app home", lambda: publish_home(ctx, client, user))


def publish_home(ctx: HandlerContext, client: WebClient, user: str) -> None:
    statuses = ctx.service.status()
    savings: dict[str, Savings | None] = {}
    note = ""
    for st in statuses[: blocks.HOME_MAX_ENVIRONMENTS]:
        try:
            savings[st.environment.name] = ctx.service.savings(st.environment.name)
        except ClonesError as exc:  # e.g. vCenter down: show the rest of the tab anyway
            savings[st.environment.name] = None
            note = f"Savings unavailable: {exc}"
    can_change = ctx.access.configured and ctx.access.is_operator(user)
    if not ctx.access.configured:
        note = (note + " " if note else "") + (
            "No operators or admins are configured, so nobody can change environments from "
            "Slack yet."
        )
    view = blocks.home(
        user,
        statuses,
        savings,
        can_change,
        note=note,
        next_events=ctx.next_event_texts(),
        running=ctx.repo.runs(states=[RunState.RUNNING]),
    )
    client.views_publish(user_id=user, view=view)
