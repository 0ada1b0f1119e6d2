"""The admin's commands: prepare, power, check (the pre-flight), resume and orphans."""

from __future__ import annotations

from bot.services import sentences as say
from bot.services.bulk import BulkResult
from bot.services.check import CheckReport
from bot.services.orphans import OrphansOutcome
from bot.services.preflight import Finding
from bot.services.prepare import PrepareReport
from bot.services.recovery import RecoveryReport
from handlers.blocks.kit import (
    MRKDWN,
    SECTION_MAX,
    Block,
    Rendered,
    capped_lines,
    clip,
    context,
    esc,
    failures,
    section,
    who,
)

CHECK_MAX_SECTIONS = 40  # leaves room under Slack's 50 blocks a message

_FINDING_ICONS = {
    "ok": ":white_check_mark:",
    "done": ":heavy_check_mark:",
    "advice": ":bulb:",
    "problem": ":x:",
}


# ===================================================================== the slash command's answers
def preparing(type_name: str) -> str:
    return f"Checking the parent of {type_name}..."


def powering(action: str, environment: str) -> str:
    return f"Powering {action} the clones of {environment}..."


CHECKING = "Checking vCenter: the connection, each type's setup and the account's privileges..."
RESUMING = "Looking for interrupted deployments and strip backs to finish..."


def looking_for_orphans(action: str | None) -> str:
    return "" if action is None else f"Looking for orphan VMs to {action}..."


# ===================================================================== prepare and power
def prepare_report(r: PrepareReport) -> Rendered:
    lines = [f"{_FINDING_ICONS.get(f.level, '•')} {esc(f.text)}" for f in r.findings]
    blocks = [section(say.prepared(r, MRKDWN))]
    if lines:
        blocks.append(section(capped_lines(lines)))
    blocks.append(
        context(f"{say.gb(r.used_bytes)} used of {say.gb(r.provisioned_bytes)} provisioned")
    )
    return Rendered(say.prepared(r), blocks)


def each_done(r: BulkResult, user: str) -> Rendered:
    icon = ":white_check_mark:" if not r.failed and not r.skipped else ":warning:"
    blocks = [section(f"{icon} {say.each_done(r, MRKDWN)} (for {who(user)})")]
    blocks += failures("Failed", r.failed)
    blocks += failures("Left alone (not provably ours)", r.skipped)
    return Rendered(say.each_done(r), blocks)


# ===================================================================== check
def _sections(title: str, findings: list[Finding]) -> list[Block]:
    """The findings under a title, split into sections of at most SECTION_MAX characters."""
    out: list[Block] = []
    chunk = title
    for f in findings:
        line = f"• {say.finding(f, MRKDWN)}"
        if len(chunk) + 1 + len(line) > SECTION_MAX:
            out.append(section(chunk))
            chunk = ""
        chunk = f"{chunk}\n{line}" if chunk else line
    if chunk:
        out.append(section(chunk))
    return out


def check(report: CheckReport) -> Rendered:
    """`/clones check`: the problems and notes in full; what is fine, counted (the terminal
    lists every line)."""
    problems = report.problems
    notes = [f for f in report.findings if f.level == "note"]
    fine = [f for f in report.findings if f.level == "ok"]
    if report.ok:
        head = f":white_check_mark: *vCenter check passed*: {len(fine)} checks fine"
        head += f", {len(notes)} note(s)." if notes else "."
        text = "vCenter check passed"
    else:
        head = f":x: *vCenter check: {len(problems)} problem(s)* to fix before deploying."
        text = f"vCenter check: {len(problems)} problem(s)"
    blocks: list[Block] = [section(head)]
    if problems:
        blocks += _sections("*Problems*", problems)
    if notes:
        blocks += _sections("*Notes*", notes)
    blocks = blocks[:CHECK_MAX_SECTIONS]
    connection = next((f for f in fine if f.subject == "connection"), None)
    tail = [f"{len(fine)} checks fine; `clones check` in a terminal lists each one."]
    if connection is not None:
        tail.insert(0, esc(connection.text))
    blocks.append(context(*tail))
    return Rendered(text, blocks)


# ===================================================================== resume and orphans
def recovery_report(r: RecoveryReport, user: str) -> Rendered:
    icon = ":white_check_mark:" if not r.left and not r.unseen else ":warning:"
    lines = [f"{icon} *resume* for {who(user)}", *map(esc, r.text.split("\n"))]
    return Rendered(clip(r.text), [section(capped_lines(lines))])


def orphans_list(outcome: OrphansOutcome) -> Rendered:
    """The orphans found; `orphans adopt|remove` with none of the bot's own says so."""
    if not outcome.orphans:
        return Rendered(say.NO_ORPHANS, [section(say.NO_ORPHANS)])
    text = say.orphans_found(outcome)
    lines = [f"• {say.orphan(o, MRKDWN)}" for o in outcome.orphans]
    blocks = [section(capped_lines([f"*{text}*", *lines]))]
    if outcome.action is None and outcome.ours:
        blocks.append(context(say.deal_with_orphans(MRKDWN)))
    elif outcome.action is not None and not outcome.ours:
        blocks.append(context(say.nothing_to(outcome.action)))
    return Rendered(text, blocks)


def _problems(outcome: OrphansOutcome) -> list[str]:
    return [f"• `{esc(name)}`: {esc(why)}" for name, why in outcome.problems]


def orphans_adopted(outcome: OrphansOutcome, user: str) -> Rendered:
    left = f", {len(outcome.problems)} left" if outcome.problems else ""
    text = f"Adopted {len(outcome.adopted)} orphan VMs{left}"
    lines = [f"• {say.adopted(name, env, MRKDWN)}" for name, env in outcome.adopted]
    head = f"*{text}* (for {who(user)})"
    return Rendered(text, [section(capped_lines([head, *lines, *_problems(outcome)]))])


def orphans_removed(outcome: OrphansOutcome, confirmer: str) -> Rendered:
    failed = f", {len(outcome.problems)} failed" if outcome.problems else ""
    text = f"Removed {len(outcome.removed)} orphan VMs{failed}"
    blocks = [section(f":wastebasket: {esc(text)} (confirmed by {who(confirmer)}).")]
    if outcome.problems:
        blocks.append(section(capped_lines(["*Not removed*", *_problems(outcome)])))
    return Rendered(text, blocks)
