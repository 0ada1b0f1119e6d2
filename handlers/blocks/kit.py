"""What every message is built from: `Rendered`, sections and buttons, escaping, Slack's limits,
the progress bar, how people are named, the mrkdwn `Marks` for the shared sentences, and the
one-line answers for errors."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.domain import grammar
from bot.domain.results import FailedClone
from bot.services.sentences import Marks

Block = dict[str, Any]
SLACK_ID = re.compile(r"[UW][A-Z0-9]{2,}")

SECTION_MAX = 3000
MESSAGE_MAX_BLOCKS = 50
BAR_WIDTH = 20
MAX_LISTED_FAILURES = 15  # more would push the message past Slack's block and length limits


@dataclass(frozen=True)
class Rendered:
    text: str  # notification and screen-reader fallback
    blocks: list[Block] = field(default_factory=list)


# ===================================================================== text
def esc(text: str) -> str:
    """Escape user- or vCenter-supplied text for mrkdwn (Slack reads <, > and & as markup)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def unescape(text: str) -> str:
    """Text as the user typed it, from Slack's escaped form (a slash command's text, sent with
    `should_escape`: `&amp;`, `&lt;`, `&gt;`). What the bot shows back is escaped once, by `esc`."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def clip(text: str, limit: int = SECTION_MAX) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def who(user: str) -> str:
    """A Slack user ID as a mention; a terminal login name (or "scheduler") as plain text."""
    return f"<@{user}>" if SLACK_ID.fullmatch(user) else esc(user or "someone")


# The shared sentences (bot.services.sentences) in mrkdwn: names bold, VM names as code.
MRKDWN = Marks(
    name=lambda s: f"*{esc(s)}*",
    code=lambda s: f"`{esc(s)}`",
    text=esc,
    strong=lambda s: f"*{s}*",
    em=lambda s: f"_{s}_",
    command=lambda words: f"/clones {words}",
    person=lambda user: who(user),
)


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


# ===================================================================== blocks
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


def actions(block_id: str, *buttons: Block) -> Block:
    return {"type": "actions", "block_id": block_id, "elements": list(buttons)}


def failures(title: str, failed: Sequence[FailedClone]) -> list[Block]:
    """A titled list of failed (or left alone) clones, cut to fit one section."""
    if not failed:
        return []
    lines = [
        f"• `{esc(f.name)}` ({esc(f.type)}): {esc(f.error)}" for f in failed[:MAX_LISTED_FAILURES]
    ]
    if len(failed) > MAX_LISTED_FAILURES:
        lines.append(f"…and {len(failed) - MAX_LISTED_FAILURES} more (see `status ENV`)")
    return [section(capped_lines([f"*{title}*", *lines]))]


# ===================================================================== one-line answers
def usage_error(message: str) -> str:
    return f":warning: {esc(message)}\n\n{grammar.usage()}"


def error(message: str) -> str:
    return f":warning: {esc(message)}"


def denied(reason: str) -> str:
    return f":no_entry: {reason}"


def checking_access(verb: str) -> str:
    """The ack while the asker's operator groups are still being read from Slack."""
    return (
        f":hourglass_flowing_sand: Checking with Slack that you may `{esc(verb)}` (your "
        "operator group); the answer follows here."
    )


def internal_error(incident: str) -> str:
    return f":boom: Internal error, logged as `{incident}`. Tell whoever runs the bot."


def restarting(verb: str) -> str:
    """The answer to a changing command while the bot drains its work before a restart."""
    return (
        f":arrows_counterclockwise: The bot is restarting, so `{esc(verb)}` is paused: nothing "
        "was done. Run it again in a minute, when the bot is back. (Read-only commands such "
        "as `status` still work.)"
    )
