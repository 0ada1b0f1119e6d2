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

from bot import grammar
from bot.models import RunKind, RunState
from bot.savings import Savings, format_table
from bot.service import (
    DeployResult,
    EnvironmentStatus,
    FailedClone,
    ProgressEvent,
    TeardownPlan,
    TeardownResult,
    TypeStatus,
)

Block = dict[str, Any]
SLACK_ID = re.compile(r"[UW][A-Z0-9]{2,}")

ACTION_CONFIRM = "clones_teardown_confirm"
ACTION_CANCEL = "clones_teardown_cancel"
ACTION_HOME_TEARDOWN = "clones_home_teardown"
ACTION_HOME_REFRESH = "clones_home_refresh"

SECTION_MAX = 3000
BAR_WIDTH = 20
MAX_LISTED_FAILURES = 15  # more would push the message past Slack's block and length limits
HOME_MAX_ENVIRONMENTS = 20  # each takes 3-4 blocks; a Home view holds 100


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
    return [section(f"*{title}*\n" + "\n".join(lines))]


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


# ===================================================================== deploy
def deploy_progress(e: ProgressEvent, requester: str) -> Rendered:
    bar = progress_bar(e.done, e.failed, e.total)
    eta = duration(e.eta_s) if e.remaining else "0s"
    head = f":hourglass_flowing_sand: Deploying {_plural(e.total, 'linked clone')} into "
    head += f"*{esc(e.environment)}* for <@{requester}>"
    counts = f"ready {e.done} · failed {e.failed} · remaining {e.remaining}"
    text = f"Deploying into {e.environment}: {e.done + e.failed}/{e.total} ({counts})"
    return Rendered(
        text,
        [
            section(head),
            section(f"`{bar}` {e.done + e.failed}/{e.total}\n{counts}"),
            context(f"elapsed {duration(e.elapsed_s)} · ETA {eta} · run {e.run_id}"),
        ],
    )


def deploy_summary(r: DeployResult, requester: str) -> Rendered:
    icon = {RunState.SUCCEEDED: ":white_check_mark:", RunState.PARTIAL: ":warning:"}.get(
        r.state, ":x:"
    )
    ready, failed = len(r.ready), len(r.failed)
    head = (
        f"{icon} {ready} of {_plural(r.requested, 'linked clone')} ready in "
        f"*{esc(r.environment)}* for <@{requester}> ({duration(r.elapsed_s)})"
    )
    text = f"{ready} of {r.requested} linked clones ready in {r.environment}"
    if failed:
        text += f", {failed} failed"
    blocks = [
        section(head),
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
    tail = f"run {r.run_id}"
    if r.savings is not None and r.savings.clones:
        tail += " · savings chart in the thread"
    blocks.append(context(tail))
    return Rendered(text, blocks)


def run_aborted(kind: RunKind, environment: str, requester: str, message: str) -> Rendered:
    """A run that stopped before finishing (vCenter unreachable, a conflict, a bug)."""
    what = "Deployment into" if kind is RunKind.DEPLOY else "Strip back of"
    text = f"{what} {environment} stopped: {message}"
    return Rendered(
        text,
        [section(f":x: {what} *{esc(environment)}* for <@{requester}> stopped: {esc(message)}")],
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


def teardown_result(r: TeardownResult, confirmer: str) -> Rendered:
    icon = ":white_check_mark:" if r.state is RunState.SUCCEEDED else ":warning:"
    gone = len(r.destroyed) + len(r.already_gone)
    text = (
        f"Stripped back {r.environment}: {len(r.destroyed)} clones destroyed, "
        f"{r.reclaimed_gb:.2f} GB reclaimed"
    )
    blocks = [
        section(
            f"{icon} Stripped back *{esc(r.environment)}* (confirmed by <@{confirmer}>): "
            f"{_plural(len(r.destroyed), 'clone')} destroyed, {r.reclaimed_gb:.2f} GB reclaimed "
            f"in {duration(r.elapsed_s)}."
        )
    ]
    if r.already_gone:
        blocks.append(section(f"{len(r.already_gone)} were already gone from vCenter."))
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
def status(statuses: Sequence[EnvironmentStatus], environment: str | None) -> Rendered:
    if not statuses:
        msg = 'No environments with clones. Deploy one with "/clones deploy capture 5 as demo".'
        return Rendered(msg, [section(msg)])
    blocks: list[Block] = []
    for st in statuses[:HOME_MAX_ENVIRONMENTS]:
        blocks.append(section(_environment_summary(st)))
        if environment is not None:
            lines = [
                f"`{esc(c.name)}` {esc(c.type)} {c.state.value}"
                + (f": {esc(c.error)}" if c.error else "")
                for c in st.clones
                if c.state.live or c.error
            ]
            if lines:
                blocks.append(section("\n".join(lines[:60])))
    text = ", ".join(f"{st.environment.name} ({st.live} live)" for st in statuses)
    return Rendered(clip(text), blocks[:50])


def _environment_summary(st: EnvironmentStatus, savings: Savings | None = None) -> str:
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
    if env.ends_at is not None:
        lines.append(
            f"Strip back scheduled: <!date^{int(env.ends_at.timestamp())}^"
            f"{{date_short_pretty}} {{time}}|{env.ends_at:%Y-%m-%d %H:%M} UTC>"
        )
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
    if not statuses:
        blocks.append(
            section("No environments yet. Deploy one with `/clones deploy capture 5 as demo`.")
        )
    for st in statuses[:HOME_MAX_ENVIRONMENTS]:
        blocks.append({"type": "divider"})
        blocks.append(section(_environment_summary(st, savings_by_env.get(st.environment.name))))
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
