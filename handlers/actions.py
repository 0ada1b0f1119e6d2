"""Buttons: Confirm / Cancel of a strip back or a refresh, the reminder's Extend / Strip back now,
and the App Home's buttons.

Every click is acknowledged first (Slack's 3 s), then checked again from scratch: a button's
value is user-controlled input, and a view may be older than the viewer's current rights.
"""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot.domain import grammar
from bot.domain.errors import ClonesError
from bot.domain.models import RunKind
from handlers import blocks
from handlers.commands import post_plan
from handlers.context import SOURCE, DirectReply, HandlerContext, Reply, Tell, log, reporting
from handlers.home import publish_home
from handlers.notify import extend_label, tell_home_channel
from handlers.progress import ProgressMessage
from handlers.runs import recorder


def register(app: App, ctx: HandlerContext) -> None:
    @app.action(blocks.ACTION_CONFIRM)
    def confirm_teardown(
        ack: Ack, body: dict[str, Any], client: WebClient, respond: Respond
    ) -> None:
        ack()
        on_confirm(ctx, body, client, Reply(respond))

    @app.action(blocks.ACTION_CANCEL)
    def cancel_teardown(
        ack: Ack, body: dict[str, Any], client: WebClient, respond: Respond
    ) -> None:
        ack()
        on_cancel(ctx, body, client, Reply(respond))

    @app.action(blocks.ACTION_REFRESH_CONFIRM)
    def confirm_refresh(
        ack: Ack, body: dict[str, Any], client: WebClient, respond: Respond
    ) -> None:
        ack()
        on_refresh_confirm(ctx, body, client, Reply(respond))

    @app.action(blocks.ACTION_REFRESH_CANCEL)
    def cancel_refresh(ack: Ack, body: dict[str, Any], client: WebClient, respond: Respond) -> None:
        ack()
        on_refresh_cancel(ctx, body, client, Reply(respond))

    @app.action(blocks.ACTION_ORPHANS_CONFIRM)
    def confirm_orphans(
        ack: Ack, body: dict[str, Any], client: WebClient, respond: Respond
    ) -> None:
        ack()
        on_orphans_click(ctx, body, client, Reply(respond), confirm=True)

    @app.action(blocks.ACTION_ORPHANS_CANCEL)
    def cancel_orphans(ack: Ack, body: dict[str, Any], client: WebClient, respond: Respond) -> None:
        ack()
        on_orphans_click(ctx, body, client, Reply(respond), confirm=False)

    @app.action(blocks.ACTION_EXTEND)
    def extend(ack: Ack, body: dict[str, Any], client: WebClient, respond: Respond) -> None:
        ack()
        on_extend(ctx, body, client, Reply(respond))

    @app.action(blocks.ACTION_STRIP_NOW)
    def strip_now(ack: Ack, body: dict[str, Any], client: WebClient, respond: Respond) -> None:
        ack()
        on_strip_now(ctx, body, client, Reply(respond))

    @app.action(blocks.ACTION_HOME_TEARDOWN)
    def home_teardown(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        on_home_teardown(ctx, body, client)

    @app.action(blocks.ACTION_HOME_REFRESH)
    def home_refresh(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        user = str((body.get("user") or {}).get("id", ""))
        reporting(
            DirectReply(client, user), "home refresh", lambda: publish_home(ctx, client, user)
        )


def _click(body: dict[str, Any]) -> tuple[str, str, str, str, str]:
    """(user, channel, message ts, environment, token) of a Confirm/Cancel click."""
    user = str(body.get("user", {}).get("id", ""))
    channel = str(body.get("channel", {}).get("id", ""))
    ts = str(body.get("message", {}).get("ts", ""))
    value = str((body.get("actions") or [{}])[0].get("value", ""))
    environment, _, token = value.partition(" ")
    return user, channel, ts, environment, token


def _gone(tell: Tell, environment: str, action: str = "teardown") -> None:
    if action in ("teardown", "refresh"):
        what = f"{'strip back' if action == 'teardown' else action} of {environment}"
        again = f"{action} {environment}"
    else:  # "orphans remove": not about one environment
        what = again = action
    tell(
        blocks.error(
            f"This {what} was already confirmed or cancelled, or has "
            f'expired. Run "/clones {again}" again if it is still needed.'
        )
    )


def _allowed(
    ctx: HandlerContext, tell: Tell, user: str, channel: str, what: str, requester: str
) -> bool:
    decision = ctx.access.may_confirm(user, requester)
    if decision:
        return True
    ctx.repo.audit(
        actor=user,
        source=SOURCE,
        channel=channel,
        command=what,
        result="denied",
        detail=decision.reason,
    )
    tell(f":no_entry: {decision.reason}")
    return False


def on_confirm(ctx: HandlerContext, body: dict[str, Any], client: WebClient, tell: Tell) -> None:
    user, channel, ts, environment, token = _click(body)
    if ctx.refuse_while_draining(tell, "teardown"):  # the button stays valid until it expires
        return
    pending = ctx.confirmations.peek(token, environment)
    if pending is None:
        _gone(tell, environment)
        return
    if not _allowed(ctx, tell, user, channel, f"confirm teardown {environment}", pending.requester):
        return
    # Only now is the token used up: a bystander's click must not burn the requester's button.
    taken = ctx.confirmations.take(token, environment)
    if taken is None:  # a concurrent click won
        _gone(tell, environment)
        return
    progress = ProgressMessage(
        client,
        channel,
        lambda e: blocks.teardown_progress(e, user),
        interval_s=ctx.settings.slack.progress_interval_s,
        ts=ts,
        record=recorder(ctx.repo),
    )

    def strip() -> None:
        env_record = ctx.repo.get_environment(environment)  # before its clones go
        try:
            result = ctx.service.teardown(
                environment,
                actor=user,
                source=SOURCE,
                channel=channel,
                on_event=progress.on_event,
            )
        except Exception as exc:
            progress.finish(
                blocks.run_aborted(RunKind.TEARDOWN, environment, taken.requester, _brief(exc))
            )
            raise
        progress.finish(blocks.teardown_result(result, user))
        tell_home_channel(
            client,
            env_record,
            channel,
            f"Strip back of {environment} confirmed by <@{user}> finished: "
            f"{len(result.destroyed)} clones destroyed, {result.reclaimed_gb:.2f} GB reclaimed.",
        )
        log.info("strip back of %s finished: %s", environment, result.state.value)

    # Replace the buttons at once, so nobody clicks a button whose token is already gone; that
    # edit counts against the progress message's interval like any other.
    starting = blocks.teardown_starting(environment, user)
    progress.mark_sent()
    try:
        ctx.jobs.submit(strip)
    except ClonesError as exc:
        starting = blocks.run_aborted(RunKind.TEARDOWN, environment, taken.requester, str(exc))
    reporting(
        tell,
        "teardown",
        lambda: client.chat_update(
            channel=channel, ts=ts, text=starting.text, blocks=starting.blocks
        ),
    )


def _brief(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, ClonesError) else "internal error (logged)"


def on_cancel(ctx: HandlerContext, body: dict[str, Any], client: WebClient, tell: Tell) -> None:
    user, channel, ts, environment, token = _click(body)
    pending = ctx.confirmations.peek(token, environment)
    if pending is None:
        _gone(tell, environment)
        return
    if not _allowed(ctx, tell, user, channel, f"cancel teardown {environment}", pending.requester):
        return
    if ctx.confirmations.take(token, environment) is None:
        _gone(tell, environment)
        return
    ctx.repo.audit(
        actor=user,
        source=SOURCE,
        channel=channel,
        command=f"teardown {environment}",
        result="cancelled",
    )
    r = blocks.teardown_cancelled(environment, user)
    reporting(
        tell,
        "cancel",
        lambda: client.chat_update(channel=channel, ts=ts, text=r.text, blocks=r.blocks),
    )


def on_home_teardown(ctx: HandlerContext, body: dict[str, Any], client: WebClient) -> None:
    """The Home tab's Strip back button: post the usual plan with Confirm / Cancel."""
    user = str(body.get("user", {}).get("id", ""))
    environment = str((body.get("actions") or [{}])[0].get("value", ""))
    tell = DirectReply(client, user)
    if ctx.refuse_while_draining(tell, "teardown"):
        return

    def plan() -> None:
        env = ctx.service.environment(environment)
        # The plan goes where the environment lives; without a channel, to the app's DM.
        channel = env.channel or user
        decision = ctx.access.check(user, channel, "teardown")
        if not decision:
            ctx.repo.audit(
                actor=user,
                source=SOURCE,
                channel=channel,
                command=f"teardown {environment} (App Home)",
                result="denied",
                detail=decision.reason,
            )
            tell(f":no_entry: {decision.reason}")
            return
        post_plan(ctx, environment, user, channel, client)

    reporting(tell, "home teardown", lambda: ctx.jobs.submit(reporting, tell, "teardown", plan))


# ===================================================================== refresh
def on_refresh_confirm(
    ctx: HandlerContext, body: dict[str, Any], client: WebClient, tell: Tell
) -> None:
    user, channel, ts, environment, token = _click(body)
    if ctx.refuse_while_draining(tell, "refresh"):
        return
    pending = ctx.confirmations.peek(token, environment, "refresh")
    if pending is None:
        _gone(tell, environment, "refresh")
        return
    what = f"confirm refresh {environment}"
    if not _allowed(ctx, tell, user, channel, what, pending.requester):
        return
    taken = ctx.confirmations.take(token, environment, "refresh")
    if taken is None:  # a concurrent click won
        _gone(tell, environment, "refresh")
        return
    progress = ProgressMessage(
        client,
        channel,
        lambda e: blocks.refresh_progress(e, user),
        interval_s=ctx.settings.slack.progress_interval_s,
        ts=ts,
        record=recorder(ctx.repo),
    )

    def refresh() -> None:
        try:
            result = ctx.admin.refresh(
                grammar.Refresh(environment),
                actor=user,
                source=SOURCE,
                channel=channel,
                on_event=progress.on_event,
            )
        except Exception as exc:
            progress.finish(
                blocks.run_aborted(RunKind.REFRESH, environment, taken.requester, _brief(exc))
            )
            raise
        progress.finish(blocks.refresh_result(result, user))
        log.info("refresh of %s finished: %s", environment, result.state.value)

    starting = blocks.refresh_starting(environment, user)
    progress.mark_sent()
    try:
        ctx.jobs.submit(refresh)
    except ClonesError as exc:
        starting = blocks.run_aborted(RunKind.REFRESH, environment, taken.requester, str(exc))
    reporting(
        tell,
        "refresh",
        lambda: client.chat_update(
            channel=channel, ts=ts, text=starting.text, blocks=starting.blocks
        ),
    )


def on_refresh_cancel(
    ctx: HandlerContext, body: dict[str, Any], client: WebClient, tell: Tell
) -> None:
    user, channel, ts, environment, token = _click(body)
    pending = ctx.confirmations.peek(token, environment, "refresh")
    if pending is None:
        _gone(tell, environment, "refresh")
        return
    what = f"cancel refresh {environment}"
    if not _allowed(ctx, tell, user, channel, what, pending.requester):
        return
    if ctx.confirmations.take(token, environment, "refresh") is None:
        _gone(tell, environment, "refresh")
        return
    ctx.repo.audit(
        actor=user,
        source=SOURCE,
        channel=channel,
        command=f"refresh {environment}",
        result="cancelled",
    )
    r = blocks.refresh_cancelled(environment, user)
    reporting(
        tell,
        "cancel refresh",
        lambda: client.chat_update(channel=channel, ts=ts, text=r.text, blocks=r.blocks),
    )


# ===================================================================== the reminder's buttons
def _reminder_click(body: dict[str, Any]) -> tuple[str, str, str, str]:
    """(user, channel, message ts, environment) of an Extend / Strip back now click."""
    user = str(body.get("user", {}).get("id", ""))
    channel = str(body.get("channel", {}).get("id", ""))
    ts = str(body.get("message", {}).get("ts", ""))
    environment = str((body.get("actions") or [{}])[0].get("value", ""))
    return user, channel, ts, environment


def _may(ctx: HandlerContext, tell: Tell, user: str, channel: str, verb: str, command: str) -> bool:
    """The same access rule as the slash command's `verb`; denials are audited."""
    decision = ctx.access.check(user, channel, verb)
    if decision:
        return True
    ctx.repo.audit(
        actor=user,
        source=SOURCE,
        channel=channel,
        command=command,
        result="denied",
        detail=decision.reason,
    )
    tell(f":no_entry: {decision.reason}")
    return False


def on_extend(ctx: HandlerContext, body: dict[str, Any], client: WebClient, tell: Tell) -> None:
    """ "Extend 2h": move the scheduled strip back by the default extension (capped)."""
    user, channel, ts, environment = _reminder_click(body)
    if ctx.refuse_while_draining(tell, "extend"):
        return
    label = extend_label(ctx.settings)
    if not _may(ctx, tell, user, channel, "extend", f"{label} {environment} (reminder button)"):
        return

    def work() -> None:
        result = ctx.schedules.extend(environment, None, actor=user, source=SOURCE, channel=channel)
        env = ctx.service.environment(environment)
        if ts and result.ends_at is not None:
            r = blocks.reminder(
                environment,
                env.owner,
                ctx.schedules.describe(result.ends_at),
                label,
                note=f"Extended by {blocks.who(user)}: {blocks.esc(result.message)}",
            )
            client.chat_update(channel=channel, ts=ts, text=r.text, blocks=r.blocks)
        tell(f":calendar: {blocks.esc(result.message)}")

    reporting(tell, "extend", lambda: ctx.jobs.submit(reporting, tell, "extend", work))


def on_strip_now(ctx: HandlerContext, body: dict[str, Any], client: WebClient, tell: Tell) -> None:
    """ "Strip back now": the usual strip back plan with Confirm / Cancel, in this channel."""
    user, channel, _, environment = _reminder_click(body)
    if ctx.refuse_while_draining(tell, "teardown"):
        return
    command = f"teardown {environment} (reminder button)"
    if not _may(ctx, tell, user, channel, "teardown", command):
        return
    reporting(
        tell,
        "strip back now",
        lambda: ctx.jobs.submit(
            reporting,
            tell,
            "teardown plan",
            lambda: post_plan(ctx, environment, user, channel, client),
        ),
    )


# ===================================================================== orphans remove
def on_orphans_click(
    ctx: HandlerContext, body: dict[str, Any], client: WebClient, tell: Tell, *, confirm: bool
) -> None:
    """Confirm: destroy exactly the orphans that were shown (if still orphans); Cancel: nothing."""
    user, channel, ts, environment, token = _click(body)
    if confirm and ctx.refuse_while_draining(tell, "orphans"):
        return
    pending = ctx.confirmations.peek(token, environment, "orphans")
    if pending is None:
        _gone(tell, environment, "orphans remove")
        return
    what = f"{'confirm' if confirm else 'cancel'} orphans remove"
    if not _allowed(ctx, tell, user, channel, what, pending.requester):
        return
    taken = ctx.confirmations.take(token, environment, "orphans")
    if taken is None:
        _gone(tell, environment, "orphans remove")
        return
    if not confirm:
        ctx.repo.audit(
            actor=user, source=SOURCE, channel=channel, command="orphans remove", result="cancelled"
        )
        r = blocks.orphans_cancelled(user)
        reporting(
            tell,
            "cancel orphans",
            lambda: client.chat_update(channel=channel, ts=ts, text=r.text, blocks=r.blocks),
        )
        return

    def remove() -> None:
        shown = set(taken.items)
        removed: list[str] = []
        failed = []
        for o in ctx.recovery.orphans():
            if not o.ours or o.vm.moref not in shown:
                continue
            failure = ctx.recovery.remove(o, actor=user)
            if failure is None:
                removed.append(o.vm.name)
            else:
                failed.append(failure)
        done = blocks.orphans_removed(removed, failed, user)
        client.chat_update(channel=channel, ts=ts, text=done.text, blocks=done.blocks)

    reporting(tell, "orphans remove", lambda: ctx.jobs.submit(reporting, tell, "orphans", remove))
