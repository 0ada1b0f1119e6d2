"""Block Kit rendering: every message and view the bot shows in Slack, as plain data.

Nothing here calls Slack or the service layer; each function turns results into a `Rendered`
(fallback text for notifications plus blocks) so tests can assert exactly what a channel shows.
Limits that shape this module: 50 blocks per message, 100 per Home view, 3,000 characters per
section text, 2,000 per button value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.domain import grammar
from bot.domain.models import Run, RunKind, RunState
from bot.domain.results import (
    DeployResult,
    EnvironmentStatus,
    FailedClone,
    ProgressEvent,
    TeardownPlan,
    TeardownResult,
)
from bot.domain.savings import GIB, Savings, format_table
from bot.services.admin import InventoryRow, PlanResult, PowerResult, PrepareReport, RefreshResult
from bot.services.core import TypeStatus
from bot.services.recovery import Orphan, RecoveryReport
from bot.services.schedules import ScheduleResult

Block = dict[str, Any]
SLACK_ID = re.compile(r"[UW][A-Z0-9]{2,}")

ACTION_CONFIRM = "clones_teardown_confirm"
ACTION_CANCEL = "clones_teardown_cancel"
ACTION_HOME_TEARDOWN = "clones_home_teardown"
ACTION_HOME_REFRESH = "clones_home_refresh"
ACTION_REFRESH_CONFIRM = "clones_refresh_confirm"
ACTION_REFRESH_CANCEL = "clones_refresh_cancel"
ACTION_EXTEND = "clones_schedule_extend"  # the reminder's "Extend 2h"
ACTION_STRIP_NOW = "clones_schedule_strip_now"  # the reminder's "Strip back now"

SECTION_MAX = 3000
BAR_WIDTH = 20
MAX_LISTED_FAILURES = 15  # more would push the message past Slack's block and length limits
HOME_MAX_ENVIRONMENTS = 20  # each takes 3-4 blocks; a Home view holds 100
HOME_MAX_RUNNING = 10  # runs listed under "Working now" on the Home tab
MESSAGE_MAX_BLOCKS = 50
INVENTORY_MAX_ROWS = 40  # rows in Slack's inventory table; the terminal has --csv for all


@dataclass(frozen=True)
class Rendered:
    text: str  # notification and screen-reader fallback
    blocks: list[Block] = field(default_factory=list)


# ===================================================================== primitives
def esc(text: str) -> str:
    """Escape user- or vCenter-supplied text for mrkdwn (Slack reads <, > and & as markup)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(text: str, limit: int = SECTION_MAX) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": clip(text)}}


def context(*parts: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": clip(p)} for p in parts]}


def code(text: str) -> str:
    # A code block cannot contain ``` itself; the savings table never does.
    return clip(f"```\n{text}\n```")


def button(text: str, action_id: str, value: str, style: str | None = None) -> Block:
    b: Block = {
        "type": "button",
        "text": {"type": "plain_text", "text": text},
        "action_id": action_id,
        "value": value,
    }
    if style:
        b["style"] = style
    return b


def progress_bar(done: int, failed: int, total: int, width: int = BAR_WIDTH) -> str:
    """`████▒▒░░░░` : ready, failed, remaining, in proportion to `total`."""
    if total <= 0:
        return "░" * width
    ready_w = round(width * done / total)
    failed_w = min(width - ready_w, round(width * failed / total))
    if failed and not failed_w:  # one failure among many must still show
        failed_w = 1
        ready_w = min(ready_w, width - 1)
    return "█" * ready_w + "▒" * failed_w + "░" * (width - ready_w - failed_w)


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m}m {s:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h {m:02d}m"


def capped_lines(lines: Sequence[str], limit: int = SECTION_MAX, more: str = "") -> str:
    """As many whole lines as fit in `limit` characters, then "…and N more" for the rest."""
    out: list[str] = []
    used = 0
    for i, line in enumerate(lines):
        left = len(lines) - i  # this line and the ones after it
        tail = len(f"…and {left} more{more}") + 1 if left > 1 else 0
        if used + len(line) + 1 + tail > limit:
            out.append(f"…and {left} more{more}")
            break
        out.append(line)
        used += len(line) + 1
    return "\n".join(out)


def who(user: str) -> str:
    """A Slack user ID as a mention; a terminal login name (or "scheduler") as plain text."""
    return f"<@{user}>" if SLACK_ID.fullmatch(user) else esc(user or "someone")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _kinds(by_type: dict[str, int]) -> str:
    return ", ".join(f"{n} {t}" for t, n in by_type.items())


def _failures(title: str, failures: Sequence[FailedClone]) -> list[Block]:
    if not failures:
        return []
    lines = [
        f"• `{esc(f.name)}` ({esc(f.type)}): {esc(f.error)}" for f in failures[:MAX_LISTED_FAILURES]
    ]
    if len(failures) > MAX_LISTED_FAILURES:
        lines.append(f"…and {len(failures) - MAX_LISTED_FAILURES} more (see `status ENV`)")
    return [section(capped_lines([f"*{title}*", *lines]))]


# ===================================================================== usage and errors
def usage(topic: str | None = None) -> str:
    return grammar.usage(topic)


def usage_error(message: str) -> str:
    return f":warning: {esc(message)}\n\n{grammar.usage()}"


def error(message: str) -> str:
    return f":warning: {esc(message)}"


def internal_error(incident: str) -> str:
    return f":boom: Internal error, logged as `{incident}`. Tell whoever runs the bot."


def deploy_ack(total: int, by_type: dict[str, int], environment: str) -> str:
    if len(by_type) == 1:
        (kind,) = by_type
        what = f"{total} {kind} clones"
    else:
        what = f"{total} clones ({_kinds(by_type)})"
    return f"Deploying {what} into {environment}... Progress follows in this channel."


def restarting(verb: str) -> str:
    """The answer to a changing command while the bot drains its work before a restart."""
    return (
        f":arrows_counterclockwise: The bot is restarting, so `{esc(verb)}` is paused: nothing "
        "was done. Run it again in a minute, when the bot is back. (Read-only commands such "
        "as `status` still work.)"
    )


def unsupported(verb: str) -> str:
    return error(
        f'"{verb}" is not available from Slack yet; run `clones {verb} ...` in a terminal.'
    )


# ===================================================================== deploy
def deploy_progress(e: ProgressEvent, requester: str) -> Rendered:
    bar = progress_bar(e.done, e.failed, e.total)
    eta = duration(e.eta_s) if e.remaining or e.eta_s is None else "0s"
    head = f":hourglass_flowing_sand: Deploying {_plural(e.total, 'linked clone')} into "
    head += f"*{esc(e.environment)}* for {who(requester)}"
    counts = f"ready {e.done} · failed {e.failed} · remaining {e.remaining}"
    stages = f"\n{e.stages_text}" if e.stages_text else ""  # cloned / powered on / customized
    text = f"Deploying into {e.environment}: {e.done + e.failed}/{e.total} ({counts})"
    return Rendered(
        text,
        [
            section(head),
            section(f"`{bar}` {e.done + e.failed}/{e.total}\n{counts}{stages}"),
            context(f"elapsed {duration(e.elapsed_s)} · ETA {eta} · run {e.run_id}"),
        ],
    )


def deploy_summary(
    r: DeployResult,
    requester: str,
    schedule_note: str = "",
    *,
    origin: str = "",
    chart_failed: bool = False,
) -> Rendered:
    """A deployment's final state. `origin` says how it came about (scheduled, resumed after a
    restart); `chart_failed`: the chart promised in the thread could not be uploaded."""
    icon = {RunState.SUCCEEDED: ":white_check_mark:", RunState.PARTIAL: ":warning:"}.get(
        r.state, ":x:"
    )
    ready, failed = len(r.ready), len(r.failed)
    head = (
        f"{icon} {ready} of {_plural(r.requested, 'linked clone')} ready in "
        f"*{esc(r.environment)}* for {who(requester)} ({duration(r.elapsed_s)})"
    )
    text = f"{ready} of {r.requested} linked clones ready in {r.environment}"
    if failed:
        text += f", {failed} failed"
    blocks = [
        section(head),
        *([context(origin)] if origin else []),
        section(
            f"`{progress_bar(ready, failed, r.requested)}` {ready + failed}/{r.requested}\n"
            f"ready {ready} · failed {failed} · remaining {r.requested - ready - failed}"
        ),
    ]
    if r.message and r.state is not RunState.SUCCEEDED:
        blocks.append(section(esc(r.message)))
    if r.savings is not None:
        blocks.append(
            section(f"*Savings in {esc(r.environment)}*\n{code(format_table(r.savings))}")
        )
    blocks += _failures("Failed clones", r.failed)
    if schedule_note:
        blocks.append(section(f":calendar: {esc(schedule_note)}"))
    tail = f"run {r.run_id}"
    if r.savings is not None and r.savings.clones:
        tail += (
            " · the savings chart could not be uploaded (see the thread)"
            if chart_failed
            else " · savings chart in the thread"
        )
    blocks.append(context(tail))
    return Rendered(text, blocks)


def deploy_starting(
    by_type: dict[str, int], environment: str, requester: str, origin: str = ""
) -> Rendered:
    """The run's message before anything is created; posting it proves the bot may post here."""
    total = sum(by_type.values())
    what = _plural(total, f"{next(iter(by_type))} clone" if len(by_type) == 1 else "clone")
    text = f"Deploying {what} into {environment}: checking parents and datastores"
    blocks = [
        section(
            f":hourglass_flowing_sand: Deploying {esc(what)} into *{esc(environment)}* for "
            f"{who(requester)}: checking parents and datastores..."
        )
    ]
    if origin:
        blocks.append(context(origin))
    return Rendered(text, blocks)


def scheduling(by_type: dict[str, int], environment: str, requester: str) -> Rendered:
    """The channel message of `deploy ... at`, posted before anything is recorded."""
    return Rendered(
        f"Scheduling a deployment into {environment}",
        [
            section(
                f":calendar: Scheduling a deployment of {esc(_kinds(by_type))} into "
                f"*{esc(environment)}* for {who(requester)}..."
            )
        ],
    )


def scheduling_failed(environment: str, message: str) -> Rendered:
    return Rendered(
        clip(f"Scheduling a deployment into {environment} failed: {message}"),
        [
            section(
                f":x: Scheduling a deployment into *{esc(environment)}* failed: {esc(message)} "
                "Nothing was scheduled."
            )
        ],
    )


def deploy_not_started(environment: str, requester: str, message: str) -> Rendered:
    """A deployment refused before anything was created (busy, capacity, parent problems)."""
    text = f"Deployment into {environment} did not start: {message}"
    return Rendered(
        clip(text),
        [
            section(
                f":x: Deployment into *{esc(environment)}* for {who(requester)} did not start: "
                f"{esc(message)} No clones were created."
            )
        ],
    )


def resumed_progress(e: ProgressEvent, requester: str) -> Rendered:
    """A run taken over after a restart: what is left of it, live."""
    deploying = e.action is RunKind.DEPLOY
    verb = "re-creating" if deploying else "stripping back"
    what = "deployment into" if deploying else "strip back of"
    done_word = "ready" if deploying else "destroyed"
    bar = progress_bar(e.done, e.failed, e.total)
    counts = f"{done_word} {e.done} · failed {e.failed} · remaining {e.remaining}"
    return Rendered(
        f"Resuming the {what} {e.environment} after a restart: {e.done + e.failed}/{e.total}",
        [
            section(
                f":recycle: Resuming the {what} *{esc(e.environment)}* for {who(requester)} "
                f"after a restart: {verb} {_plural(e.total, 'clone')}"
            ),
            section(f"`{bar}` {e.done + e.failed}/{e.total}\n{counts}"),
            context(f"elapsed {duration(e.elapsed_s)} · ETA {duration(e.eta_s)} · run {e.run_id}"),
        ],
    )


def resumed_origin(adopted: int, recreated: int) -> str:
    return (
        f":recycle: Resumed after a restart of the bot: {_plural(adopted, 'clone')} found in "
        f"vCenter and adopted, {recreated} re-created."
    )


def recovery_stopped(kind: RunKind, environment: str, requester: str, why: str) -> Rendered:
    """A run interrupted by a restart that could not be finished at start-up."""
    what = {RunKind.DEPLOY: "Deployment into", RunKind.REFRESH: "Refresh of"}.get(
        kind, "Strip back of"
    )
    text = f"{what} {environment} was interrupted by a restart and is not finished: {why}"
    return Rendered(
        clip(text),
        [
            section(
                f":warning: {what} *{esc(environment)}* for {who(requester)} was interrupted by a "
                f"restart of the bot and could not be finished: {esc(why)}"
            ),
            context("Once the cause is fixed, `/clones resume` finishes it."),
        ],
    )


def restart_pending(run: Run, ready: int) -> Rendered:
    """A run the bot stopped in the middle of (SIGTERM past the drain limit)."""
    what = {RunKind.DEPLOY: "Deployment into", RunKind.REFRESH: "Refresh of"}.get(
        run.kind, "Strip back of"
    )
    done = f"{ready} of {run.requested} clones ready" if run.kind is RunKind.DEPLOY else ""
    text = f"{what} {run.environment} paused by a restart of the bot"
    return Rendered(
        text,
        [
            section(
                f":double_vertical_bar: {what} *{esc(run.environment)}* for "
                f"{who(run.requested_by)} was paused by a restart of the bot"
                + (f" ({done})" if done else "")
                + ". It resumes in this message when the bot is back."
            ),
            context(f"run {run.id}"),
        ],
    )


def chart_failed(reason: str) -> str:
    """The thread reply when the savings chart could not be uploaded."""
    return f":warning: The savings chart could not be uploaded: {esc(reason)}"


def run_aborted(kind: RunKind, environment: str, requester: str, message: str) -> Rendered:
    """A run that stopped before finishing (vCenter unreachable, a conflict, a bug)."""
    what = {RunKind.DEPLOY: "Deployment into", RunKind.REFRESH: "Refresh of"}.get(
        kind, "Strip back of"
    )
    text = f"{what} {environment} stopped: {message}"
    return Rendered(
        text,
        [section(f":x: {what} *{esc(environment)}* for {who(requester)} stopped: {esc(message)}")],
    )


def scheduled_progress(e: ProgressEvent) -> Rendered:
    """A scheduled deploy's or strip back's live message (the same bar as a manual run)."""
    deploying = e.action is RunKind.DEPLOY
    verb = "Deploying" if deploying else "Stripping back"
    done_word = "ready" if deploying else "destroyed"
    bar = progress_bar(e.done, e.failed, e.total)
    counts = f"{done_word} {e.done} · failed {e.failed} · remaining {e.remaining}"
    stages = f"\n{e.stages_text}" if e.stages_text else ""  # cloned / powered on / customized
    if e.kind == "finished":
        icon = ":white_check_mark:" if not e.failed and not e.remaining else ":warning:"
        what = "deployment into" if deploying else "strip back of"
        head = f"{icon} Scheduled {what} *{esc(e.environment)}* finished"
        text = f"Scheduled {what} {e.environment} finished: {counts}"
    else:
        head = f":hourglass_flowing_sand: {verb} *{esc(e.environment)}* (scheduled)"
        text = f"{verb} {e.environment} (scheduled): {e.done + e.failed}/{e.total}"
    return Rendered(
        text,
        [
            section(head),
            section(f"`{bar}` {e.done + e.failed}/{e.total}\n{counts}{stages}"),
            context(f"elapsed {duration(e.elapsed_s)} · ETA {duration(e.eta_s)} · run {e.run_id}"),
        ],
    )


def scheduled_starting(action: RunKind, environment: str, text: str) -> Rendered:
    """A scheduled run's message before its first progress event."""
    verb = "Deploying" if action is RunKind.DEPLOY else "Stripping back"
    return Rendered(
        f"{verb} {environment} (scheduled): starting",
        [
            section(f":hourglass_flowing_sand: {verb} *{esc(environment)}* (scheduled)..."),
            context(esc(text)),
        ],
    )


def scheduled_stopped(action: RunKind, environment: str, text: str) -> Rendered:
    """A scheduled run that ended without a result: refused, nothing to do, or interrupted."""
    what = "deployment into" if action is RunKind.DEPLOY else "strip back of"
    return Rendered(
        clip(text),
        [section(f":warning: Scheduled {what} *{esc(environment)}*: {esc(text)}")],
    )


def resumed_teardown(run: Run) -> Rendered:
    """The final state of a strip back finished after a restart (counts from its run record)."""
    icon = ":white_check_mark:" if run.state is RunState.SUCCEEDED else ":warning:"
    text = f"Stripped back {run.environment}: {run.succeeded} clones destroyed"
    line = (
        f"{icon} Stripped back *{esc(run.environment)}* for {who(run.requested_by)}: "
        f"{_plural(run.succeeded, 'clone')} destroyed"
        + (f", {run.failed} left (see `status {esc(run.environment)}`)" if run.failed else "")
        + "."
    )
    return Rendered(
        text,
        [
            section(line),
            context(":recycle: Finished after a restart of the bot."),
            context(f"run {run.id}"),
        ],
    )


# ===================================================================== teardown
def teardown_plan(plan: TeardownPlan, requester: str, token: str) -> Rendered:
    value = f"{plan.environment} {token}"
    text = (
        f"Strip back {plan.environment}? {plan.clones} clones ({_kinds(plan.by_type)}), "
        f"about {plan.reclaim_gb:.2f} GB to reclaim"
    )
    return Rendered(
        text,
        [
            section(
                f":warning: <@{requester}> asked to strip back *{esc(plan.environment)}*.\n"
                f"This powers off and destroys *{_plural(plan.clones, 'clone')}* "
                f"({esc(_kinds(plan.by_type))}) and reclaims about *{plan.reclaim_gb:.2f} GB*. "
                "Parents and their base snapshots are kept."
            ),
            {
                "type": "actions",
                "block_id": "clones_teardown",
                "elements": [
                    button("Confirm strip back", ACTION_CONFIRM, value, "danger"),
                    button("Cancel", ACTION_CANCEL, value),
                ],
            },
            context(f"Only <@{requester}> or an admin can confirm."),
        ],
    )


def teardown_progress(e: ProgressEvent, confirmer: str) -> Rendered:
    bar = progress_bar(e.done, e.failed, e.total)
    counts = f"destroyed {e.done} · failed {e.failed} · remaining {e.remaining}"
    text = f"Stripping back {e.environment}: {e.done + e.failed}/{e.total}"
    return Rendered(
        text,
        [
            section(
                f":hourglass_flowing_sand: Stripping back *{esc(e.environment)}* "
                f"(confirmed by <@{confirmer}>)"
            ),
            section(f"`{bar}` {e.done + e.failed}/{e.total}\n{counts}"),
            context(f"elapsed {duration(e.elapsed_s)} · ETA {duration(e.eta_s)} · run {e.run_id}"),
        ],
    )


def teardown_result(r: TeardownResult, confirmer: str, how: str = "") -> Rendered:
    """A strip back's final state; `how` replaces "confirmed by ..." (e.g. "scheduled")."""
    icon = ":white_check_mark:" if r.state is RunState.SUCCEEDED else ":warning:"
    gone = len(r.destroyed) + len(r.already_gone)
    text = (
        f"Stripped back {r.environment}: {len(r.destroyed)} clones destroyed, "
        f"{r.reclaimed_gb:.2f} GB reclaimed"
    )
    how = how or f"confirmed by {who(confirmer)}"
    blocks = [
        section(
            f"{icon} Stripped back *{esc(r.environment)}* ({how}): "
            f"{_plural(len(r.destroyed), 'clone')} destroyed, {r.reclaimed_gb:.2f} GB reclaimed "
            f"in {duration(r.elapsed_s)}."
        )
    ]
    if r.already_gone:
        blocks.append(section(f"{len(r.already_gone)} were already gone from vCenter."))
    if r.renamed:
        renamed = [
            f"`{esc(old)}`, now named `{esc(new)}`" for old, new in sorted(r.renamed.items())
        ]
        blocks.append(section("Renamed outside the bot, destroyed:\n" + capped_lines(renamed)))
    blocks += _failures("Left alone (not provably ours)", r.skipped)
    blocks += _failures("Failed", r.failed)
    blocks.append(context(f"run {r.run_id} · {gone} of {gone + len(r.failed) + len(r.skipped)}"))
    return Rendered(text, blocks)


def teardown_cancelled(environment: str, user: str) -> Rendered:
    text = f"Strip back of {environment} cancelled: nothing was destroyed"
    return Rendered(
        text,
        [
            section(
                f":no_entry_sign: Strip back of *{esc(environment)}* cancelled by <@{user}>: "
                "nothing was destroyed."
            )
        ],
    )


def teardown_starting(environment: str, confirmer: str) -> Rendered:
    text = f"Stripping back {environment}"
    return Rendered(
        text,
        [
            section(
                f":hourglass_flowing_sand: Strip back of *{esc(environment)}* confirmed by "
                f"<@{confirmer}>; starting..."
            )
        ],
    )


# ===================================================================== reads
def status(
    statuses: Sequence[EnvironmentStatus],
    environment: str | None,
    next_events: dict[str, str] | None = None,
) -> Rendered:
    """`next_events`: environment -> "strip back Fri 27 Nov 17:00 GMT (in 1 d 7 h)"."""
    if not statuses:
        msg = 'No environments with clones. Deploy one with "/clones deploy capture 5 as demo".'
        return Rendered(msg, [section(msg)])
    events = next_events or {}
    blocks: list[Block] = []
    shown = statuses[:HOME_MAX_ENVIRONMENTS]
    for st in shown:
        blocks.append(section(_environment_summary(st, None, events.get(st.environment.name))))
        if environment is not None:
            if st.checked:
                differ = len(st.drift)
                note = f":warning: {differ} differ from vCenter" if differ else "matches vCenter"
            else:
                note = f"vCenter not checked ({st.unchecked}): records as they are"
            lines = [
                f"`{esc(c.name)}` {esc(c.type)} {c.state.value}"
                + (f" :warning: {esc(st.drift[c.id].text)}" if c.id in st.drift else "")
                + (f": {esc(c.error)}" if c.error else "")
                for c in st.clones
                if c.state.live or c.error
            ]
            if lines:
                lines.insert(0, f"_{esc(note)}_")
                blocks.append(section(capped_lines(lines, more=" (`inventory ENV` lists all)")))
    if len(statuses) > len(shown):
        blocks.append(context(f"…and {len(statuses) - len(shown)} more environments"))
    parts = []
    for st in statuses:
        event = events.get(st.environment.name)
        parts.append(f"{st.environment.name} ({st.live} live" + (f", {event})" if event else ")"))
    return Rendered(clip(", ".join(parts)), blocks[:MESSAGE_MAX_BLOCKS])


def _environment_summary(
    st: EnvironmentStatus, savings: Savings | None = None, next_event: str | None = None
) -> str:
    env = st.environment
    # Owners from Slack are user IDs (shown as mentions); from the terminal, login names.
    owner = f"<@{env.owner}>" if SLACK_ID.fullmatch(env.owner) else esc(env.owner)
    lines = [f"*{esc(env.name)}*: {_plural(st.live, 'live clone')}, owner {owner}"]
    for t, states in sorted(st.by_type.items()):
        parts = ", ".join(f"{n} {s}" for s, n in sorted(states.items()))
        lines.append(f"• {esc(t)}: {parts}")
    if savings is not None and savings.clones:
        lines.append(
            f"Saves {savings.saved_vs_thin_gb:.2f} GB against thin full clones "
            f"({savings.saved_vs_thin_pct}%)"
        )
    if next_event:
        lines.append(f":calendar: Next: {esc(next_event)}")
    return "\n".join(lines)


def savings(s: Savings, environment: str | None) -> Rendered:
    where = environment or "all environments"
    text = (
        f"Savings for {where}: linked clones use {s.linked_gb:.2f} GB, "
        f"{s.saved_vs_thin_gb:.2f} GB less than thin full clones"
    )
    return Rendered(text, [section(f"*Savings for {esc(where)}*\n{code(format_table(s))}")])


def types(rows: Iterable[TypeStatus]) -> Rendered:
    lines = []
    for ts in rows:
        size = ""
        if ts.parent is not None:
            size = (
                f", {ts.parent.used_bytes / 2**30:.2f} GB used of "
                f"{ts.parent.provisioned_bytes / 2**30:.2f} GB"
            )
        desc = f" ({esc(ts.type.description)})" if ts.type.description else ""
        lines.append(
            f"• *{esc(ts.type.name)}*{desc}: parent `{esc(ts.type.parent)}`, "
            f"{ts.readiness}{size}, up to {ts.type.max_count}"
        )
    body = "\n".join(lines) or "No types configured."
    return Rendered(clip(body), [section(body)])


# ===================================================================== App Home
def home(
    user: str,
    statuses: Sequence[EnvironmentStatus],
    savings_by_env: dict[str, Savings | None],
    can_change: bool,
    note: str = "",
    next_events: dict[str, str] | None = None,
    running: Sequence[Run] = (),
) -> dict[str, Any]:
    blocks: list[Block] = [
        {"type": "header", "text": {"type": "plain_text", "text": "Training lab environments"}},
        {
            "type": "actions",
            "block_id": "clones_home_top",
            "elements": [button("Refresh", ACTION_HOME_REFRESH, "refresh")],
        },
    ]
    if note:
        blocks.append(context(note))
    if running:
        blocks.append(section(_running(running)))
    events = next_events or {}
    if not statuses:
        blocks.append(
            section("No environments yet. Deploy one with `/clones deploy capture 5 as demo`.")
        )
    for st in statuses[:HOME_MAX_ENVIRONMENTS]:
        blocks.append({"type": "divider"})
        name = st.environment.name
        blocks.append(section(_environment_summary(st, savings_by_env.get(name), events.get(name))))
        if can_change and st.live:
            blocks.append(
                {
                    "type": "actions",
                    "block_id": f"clones_home_env_{st.environment.name}",
                    "elements": [
                        button("Strip back...", ACTION_HOME_TEARDOWN, st.environment.name, "danger")
                    ],
                }
            )
    if len(statuses) > HOME_MAX_ENVIRONMENTS:
        blocks.append(
            context(f"…and {len(statuses) - HOME_MAX_ENVIRONMENTS} more: `/clones status`")
        )
    if not can_change:
        blocks.append(context("You can view environments; operators and admins can change them."))
    blocks.append(context("Type `/clones help` in any channel for the commands."))
    return {"type": "home", "blocks": blocks[:100]}


_RUN_VERBS = {
    RunKind.DEPLOY: "deploying",
    RunKind.TEARDOWN: "stripping back",
    RunKind.REFRESH: "refreshing",
}


def _running(runs: Sequence[Run]) -> str:
    lines = ["*Working now*"]
    for r in runs[:HOME_MAX_RUNNING]:
        done = f"{r.succeeded + r.failed}/{r.requested}" if r.requested else "starting"
        lines.append(
            f":hourglass_flowing_sand: *{esc(r.environment)}*: {_RUN_VERBS.get(r.kind, r.kind)} "
            f"({done}, run {r.id}, for {who(r.requested_by)})"
        )
    if len(runs) > HOME_MAX_RUNNING:
        lines.append(f"…and {len(runs) - HOME_MAX_RUNNING} more")
    return capped_lines(lines)


# ===================================================================== schedules
def schedule_result(r: ScheduleResult, user: str) -> Rendered:
    icon = ":calendar:" if r.changed else ":information_source:"
    return Rendered(r.message, [section(f"{icon} {esc(r.message)}"), context(f"by {who(user)}")])


def reminder(
    environment: str,
    owner: str,
    ends_text: str,
    extend_label: str,
    note: str = "",
) -> Rendered:
    """The owner's reminder before a scheduled strip back, with Extend and Strip back now."""
    text = f"Reminder: {environment} is stripped back {ends_text}"
    blocks: list[Block] = [
        section(
            f":alarm_clock: {who(owner)}, *{esc(environment)}* is stripped back "
            f"*{esc(ends_text)}*. Need it longer? Extend it; finished? Strip it back now."
        ),
        {
            "type": "actions",
            "block_id": "clones_reminder",
            "elements": [
                button(extend_label, ACTION_EXTEND, environment, "primary"),
                button("Strip back now", ACTION_STRIP_NOW, environment, "danger"),
            ],
        },
    ]
    if note:
        blocks.append(context(note))
    return Rendered(text, blocks)


# ===================================================================== admin verbs
_FINDING_ICONS = {
    "ok": ":white_check_mark:",
    "done": ":heavy_check_mark:",
    "advice": ":bulb:",
    "problem": ":x:",
}


def prepare_report(r: PrepareReport) -> Rendered:
    verdict = "ready for linked clones" if r.ready else "NOT ready for linked clones"
    head = f"*{esc(r.type)}* (parent `{esc(r.parent)}`): {verdict}"
    lines = [f"{_FINDING_ICONS.get(f.level, '•')} {esc(f.text)}" for f in r.findings]
    text = f"{r.type} (parent {r.parent}): {verdict}"
    blocks = [section(head)]
    if lines:
        blocks.append(section(capped_lines(lines)))
    blocks.append(
        context(
            f"{r.used_bytes / GIB:.2f} GB used of {r.provisioned_bytes / GIB:.2f} GB provisioned"
        )
    )
    return Rendered(text, blocks)


def power_result(r: PowerResult, user: str) -> Rendered:
    icon = ":white_check_mark:" if not r.failed and not r.skipped else ":warning:"
    text = f"Power {r.action} {r.environment}: {len(r.done)} done, {len(r.failed)} failed"
    blocks = [
        section(
            f"{icon} Power {esc(r.action)} *{esc(r.environment)}* for {who(user)}: "
            f"{len(r.done)} done, {len(r.failed)} failed"
            + (f", {len(r.skipped)} left alone" if r.skipped else "")
        )
    ]
    blocks += _failures("Failed", r.failed)
    blocks += _failures("Left alone (not provably ours)", r.skipped)
    return Rendered(text, blocks)


def plan(p: PlanResult) -> Rendered:
    lines = []
    for n in p.needs:
        verdict = ":white_check_mark: fits" if n.fits else ":x: does not fit"
        swap = f" (incl. {n.swap_bytes / GIB:.2f} GB swap)" if n.swap_bytes else ""
        lines.append(
            f"• Datastore `{esc(n.datastore)}`: {n.free_bytes / GIB:.2f} GB free, needs "
            f"{n.needed_bytes / GIB:.2f} GB{swap} + {n.headroom_bytes / GIB:.2f} GB headroom: "
            f"{verdict}"
        )
    verdict = "fits" if p.fits else "does NOT fit"
    text = (
        f"Plan for {p.estimate.clones} clones: linked clones use about "
        f"{p.estimate.linked_gb:.2f} GB; {verdict}"
    )
    blocks = [section(f"*Estimated sizes* (nothing is created)\n{code(format_table(p.estimate))}")]
    if lines:
        blocks.append(section(capped_lines(lines)))
    if p.power_on:
        blocks.append(context("Counts RAM-sized swap files for powered-on clones."))
    return Rendered(text, blocks)


_INVENTORY_HEAD = ("NAME", "TYPE", "ENV", "POWER", "GB", "HOST")


def inventory(rows: Sequence[InventoryRow], environment: str | None) -> Rendered:
    """A compact table in a code block, capped to fit one section; the terminal has the rest."""
    where = environment or "all environments"
    if not rows:
        msg = f"No clones recorded in {where}."
        return Rendered(msg, [section(msg)])
    table = [
        (
            r.name,
            r.type,
            r.environment,
            {"poweredOn": "on", "poweredOff": "off"}.get(r.power_state, r.power_state or r.state),
            f"{r.committed_gb:.2f}",
            r.host or "-",
        )
        for r in rows
    ]
    widths = [
        min(24, max(len(h), *(len(row[i]) for row in table))) for i, h in enumerate(_INVENTORY_HEAD)
    ]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c[:w].ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    lines = [line(_INVENTORY_HEAD)]
    budget = SECTION_MAX - 200  # the code fences and the title
    for row in table[:INVENTORY_MAX_ROWS]:
        text = line(row)
        if sum(len(x) + 1 for x in lines) + len(text) > budget:
            break
        lines.append(text)
    shown = len(lines) - 1
    # Plain text inside a code block: escape Slack's control characters; no backticks.
    body = esc("\n".join(lines)).replace("`", "'")
    title = f"*Inventory of {esc(where)}* ({_plural(len(rows), 'clone')})"
    blocks = [section(f"{title}\n```\n{body}\n```")]
    if shown < len(rows):
        blocks.append(
            context(
                f"…and {len(rows) - shown} more: run `clones inventory"
                + (f" {esc(environment)}" if environment else "")
                + " --csv` in a terminal for every clone and custom attribute."
            )
        )
    return Rendered(f"Inventory of {where}: {len(rows)} clones", blocks)


# ===================================================================== refresh
def refresh_plan(environment: str, by_type: dict[str, int], requester: str, token: str) -> Rendered:
    value = f"{environment} {token}"
    n = sum(by_type.values())
    text = f"Refresh {environment}? {n} clones ({_kinds(by_type)}) are destroyed and re-created"
    return Rendered(
        text,
        [
            section(
                f":warning: {who(requester)} asked to refresh *{esc(environment)}*.\n"
                f"This destroys and re-creates *{_plural(n, 'clone')}* "
                f"({esc(_kinds(by_type))}) from the current base snapshot, with the same names "
                "and attributes. *Whatever is on them now is lost.*"
            ),
            {
                "type": "actions",
                "block_id": "clones_refresh",
                "elements": [
                    button("Confirm refresh", ACTION_REFRESH_CONFIRM, value, "danger"),
                    button("Cancel", ACTION_REFRESH_CANCEL, value),
                ],
            },
            context(f"Only {who(requester)} or an admin can confirm."),
        ],
    )


def refresh_progress(e: ProgressEvent, confirmer: str) -> Rendered:
    bar = progress_bar(e.done, e.failed, e.total)
    counts = f"refreshed {e.done} · failed {e.failed} · remaining {e.remaining}"
    return Rendered(
        f"Refreshing {e.environment}: {e.done + e.failed}/{e.total}",
        [
            section(
                f":hourglass_flowing_sand: Refreshing *{esc(e.environment)}* "
                f"(confirmed by {who(confirmer)})"
            ),
            section(f"`{bar}` {e.done + e.failed}/{e.total}\n{counts}"),
            context(f"elapsed {duration(e.elapsed_s)} · ETA {duration(e.eta_s)} · run {e.run_id}"),
        ],
    )


def refresh_result(r: RefreshResult, confirmer: str) -> Rendered:
    icon = ":white_check_mark:" if r.state is RunState.SUCCEEDED else ":warning:"
    text = f"Refreshed {r.environment}: {len(r.refreshed)} clones re-created"
    blocks = [
        section(
            f"{icon} Refreshed *{esc(r.environment)}* (confirmed by {who(confirmer)}): "
            f"{_plural(len(r.refreshed), 'clone')} re-created from the current base snapshot "
            f"in {duration(r.elapsed_s)}."
        )
    ]
    blocks += _failures("Failed", r.failed)
    blocks += _failures("Left alone (not provably ours)", r.skipped)
    blocks.append(context(f"run {r.run_id}"))
    return Rendered(text, blocks)


def refresh_starting(environment: str, confirmer: str) -> Rendered:
    return Rendered(
        f"Refreshing {environment}",
        [
            section(
                f":hourglass_flowing_sand: Refresh of *{esc(environment)}* confirmed by "
                f"{who(confirmer)}; starting..."
            )
        ],
    )


def refresh_cancelled(environment: str, user: str) -> Rendered:
    return Rendered(
        f"Refresh of {environment} cancelled: nothing was changed",
        [
            section(
                f":no_entry_sign: Refresh of *{esc(environment)}* cancelled by {who(user)}: "
                "nothing was changed."
            )
        ],
    )


# ===================================================================== recovery
ACTION_ORPHANS_CONFIRM = "clones_orphans_confirm"
ACTION_ORPHANS_CANCEL = "clones_orphans_cancel"
ORPHANS_TOKEN_ENV = "orphans"  # the confirmation's "environment": orphans belong to none


def recovery_report(r: RecoveryReport, user: str) -> Rendered:
    icon = ":white_check_mark:" if not r.left else ":warning:"
    return Rendered(
        clip(r.text),
        [
            section(
                capped_lines([f"{icon} *resume* for {who(user)}", *map(esc, r.text.split("\n"))])
            )
        ],
    )


def _orphan_line(o: Orphan) -> str:
    env = o.vm.attributes.get("Environment", "?")
    if o.ours:
        return f"• `{esc(o.vm.name)}` ({esc(o.vm.moref)}): made by this bot, environment {esc(env)}"
    return (
        f"• `{esc(o.vm.name)}` ({esc(o.vm.moref)}): carries ManagedBy but was not made by this "
        "bot: never touched"
    )


def orphans_list(orphans: Sequence[Orphan], action: str | None) -> Rendered:
    if not orphans:
        msg = "No orphans: every VM marked as this bot's is recorded."
        return Rendered(msg, [section(msg)])
    ours = sum(o.ours for o in orphans)
    text = f"{len(orphans)} orphan VMs, {ours} made by this bot"
    blocks = [section(capped_lines([f"*{text}*", *map(_orphan_line, orphans)]))]
    if action is None and ours:
        blocks.append(
            context("`/clones orphans adopt` or `/clones orphans remove` deals with them.")
        )
    return Rendered(text, blocks)


def orphans_adopted(adopted: Sequence[tuple[str, str]], problems: Sequence[str]) -> Rendered:
    lines = [f"• adopted `{esc(name)}` into {esc(env)}" for name, env in adopted]
    lines += [f"• {esc(p)}" for p in problems]
    text = f"Adopted {len(adopted)} orphan VMs" + (f", {len(problems)} left" if problems else "")
    return Rendered(text, [section(capped_lines([f"*{text}*", *lines]))])


def orphans_remove_plan(names: Sequence[str], requester: str, token: str) -> Rendered:
    value = f"{ORPHANS_TOKEN_ENV} {token}"
    text = f"Remove {len(names)} orphan VMs made by this bot?"
    return Rendered(
        text,
        [
            section(
                capped_lines(
                    [
                        f":warning: {who(requester)} asked to power off and destroy "
                        f"*{_plural(len(names), 'orphan VM')}* this bot made and no environment "
                        "records:",
                        *[f"• `{esc(n)}`" for n in names],
                    ]
                )
            ),
            {
                "type": "actions",
                "block_id": "clones_orphans",
                "elements": [
                    button("Confirm remove", ACTION_ORPHANS_CONFIRM, value, "danger"),
                    button("Cancel", ACTION_ORPHANS_CANCEL, value),
                ],
            },
            context(f"Only {who(requester)} or an admin can confirm."),
        ],
    )


def orphans_removed(removed: Sequence[str], failed: Sequence[FailedClone], user: str) -> Rendered:
    text = f"Removed {len(removed)} orphan VMs" + (f", {len(failed)} failed" if failed else "")
    blocks = [section(f":wastebasket: {esc(text)} (confirmed by {who(user)}).")]
    blocks += _failures("Not removed", failed)
    return Rendered(text, blocks)


def orphans_cancelled(user: str) -> Rendered:
    text = "Removing orphans cancelled: nothing was changed"
    return Rendered(text, [section(f":no_entry_sign: {esc(text)} by {who(user)}.")])
