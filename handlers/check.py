"""Block Kit rendering of `/clones check` (the terminal prints every line; Slack shows the
problems and notes in full and counts what is fine)."""

from __future__ import annotations

from bot.services.check import CheckReport
from bot.services.preflight import Finding
from handlers.blocks import SECTION_MAX, Block, Rendered, context, esc, section

MAX_SECTIONS = 40  # leaves room under Slack's 50 blocks a message


def _line(f: Finding) -> str:
    fix = f" _Fix:_ {esc(f.fix)}" if f.fix else ""
    return f"• *{esc(f.subject)}*: {esc(f.text)}{fix}"


def _sections(title: str, findings: list[Finding]) -> list[Block]:
    """The findings under a title, split into sections of at most SECTION_MAX characters."""
    out: list[Block] = []
    chunk = title
    for f in findings:
        line = _line(f)
        if len(chunk) + 1 + len(line) > SECTION_MAX:
            out.append(section(chunk))
            chunk = ""
        chunk = f"{chunk}\n{line}" if chunk else line
    if chunk:
        out.append(section(chunk))
    return out


def render(report: CheckReport) -> Rendered:
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
    blocks = blocks[:MAX_SECTIONS]
    connection = next((f for f in fine if f.subject == "connection"), None)
    tail = [f"{len(fine)} checks fine; `clones check` in a terminal lists each one."]
    if connection is not None:
        tail.insert(0, esc(connection.text))
    blocks.append(context(*tail))
    return Rendered(text, blocks)
