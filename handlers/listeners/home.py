"""The App Home tab: a trainee's own VMs (with Power on / off, Reset and Rebuild, handled in
`handlers.listeners.trainees`), environments with their types, counts, owner, savings and next
scheduled event, and what is being deployed, stripped back or refreshed right now; its Refresh
button, and each environment's Strip back button (the usual plan with Confirm / Cancel, in its
channel)."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot.domain import grammar
from bot.domain.errors import ClonesError
from bot.domain.savings import Savings
from handlers import confirming
from handlers.blocks import home
from handlers.blocks.ids import ACTION_HOME_REFRESH, ACTION_HOME_TEARDOWN
from handlers.context import DirectReply, HandlerContext, Request, reporting


def register(app: App, ctx: HandlerContext) -> None:
    @app.event("app_home_opened")
    def home_opened(event: dict[str, Any], client: WebClient) -> None:
        # Bolt has already acknowledged the event; this runs on its listener pool.
        if event.get("tab", "home") != "home":
            return
        user = str(event.get("user", ""))
        reporting(DirectReply(client, user), "app home", lambda: publish_home(ctx, client, user))

    @app.action(ACTION_HOME_REFRESH)
    def home_refresh(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        user = str((body.get("user") or {}).get("id", ""))
        reporting(
            DirectReply(client, user), "home refresh", lambda: publish_home(ctx, client, user)
        )

    @app.action(ACTION_HOME_TEARDOWN)
    def home_teardown(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        on_home_teardown(ctx, body, client)


def publish_home(ctx: HandlerContext, client: WebClient, user: str) -> None:
    service = ctx.services.use_cases
    statuses = service.queries.status()
    savings: dict[str, Savings | None] = {}
    note = ""
    for st in statuses[: home.HOME_MAX_ENVIRONMENTS]:
        try:
            savings[st.environment.name] = service.queries.savings(st.environment.name)
        except ClonesError as exc:  # e.g. vCenter down: show the rest of the tab anyway
            savings[st.environment.name] = None
            note = f"Savings unavailable: {exc}"
    can_change = ctx.access.configured and ctx.access.is_operator(user)
    if not ctx.access.configured:
        note = (note + " " if note else "") + (
            "No operators or admins are configured, so nobody can change environments from "
            "Slack yet."
        )
    view = home.home(
        statuses,
        savings,
        can_change,
        note=note,
        next_events=ctx.next_event_texts(),
        running=service.queries.running_runs(),
        mine=service.trainees.mine(user),
    )
    client.views_publish(user_id=user, view=view)


def on_home_teardown(ctx: HandlerContext, body: dict[str, Any], client: WebClient) -> None:
    """The Home tab's Strip back button: post the usual plan with Confirm / Cancel."""
    user = str(body.get("user", {}).get("id", ""))
    environment = str((body.get("actions") or [{}])[0].get("value", ""))
    tell = DirectReply(client, user)
    if ctx.refuse_while_draining(tell, "teardown"):
        return

    def plan() -> None:
        env = ctx.services.use_cases.queries.environment(environment)
        # The plan goes where the environment lives; without a channel, to the app's DM.
        channel = env.channel or user
        decision = ctx.access.check(user, channel, grammar.Teardown.verb)
        said = f"teardown {environment} (App Home)"
        if ctx.permitted(decision, tell, user=user, channel=channel, command=said):
            request = Request(ctx, grammar.Teardown(environment), user, channel, client, tell)
            confirming.ask(request, confirming.TEARDOWN)

    reporting(tell, "home teardown", lambda: ctx.jobs.submit(reporting, tell, "teardown", plan))
