"""The read-only commands: status, history, savings, types, plan, inventory and the audit log
(answered privately)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import tzinfo

from bot.domain.history import AuditLog, History
from bot.domain.results import EnvironmentStatus
from bot.domain.savings import Savings, format_table
from bot.services import sentences as say
from bot.services.inventory import InventoryRow
from bot.services.plan import PlanResult
from bot.services.queries import TypeStatus
from handlers.blocks.kit import (
    MESSAGE_MAX_BLOCKS,
    MRKDWN,
    SECTION_MAX,
    Block,
    Rendered,
    capped_lines,
    clip,
    code,
    context,
    esc,
    section,
    who,
)

MAX_ENVIRONMENTS = 20  # each takes 1-2 blocks here and 3-4 on the Home tab (100 blocks a view)
INVENTORY_MAX_ROWS = 40  # rows in Slack's inventory table; the terminal has --csv for all


def environment_summary(
    st: EnvironmentStatus, savings: Savings | None = None, next_event: str | None = None
) -> str:
    """One environment: live clones, owner, counts by type and state, savings, next event."""
    # Owners from Slack are user IDs (shown as mentions); from the terminal, login names.
    lines = [say.environment_head(st, who(st.environment.owner), MRKDWN)]
    for t, states in sorted(st.by_type.items()):
        lines.append(f"• {esc(t)}: {say.state_counts(states)}")
    lines += say.failure_lines(st, MRKDWN)
    if savings is not None and savings.clones:
        lines.append(
            f"Saves {savings.saved_vs_thin_gb:.2f} GB against thin full clones "
            f"({savings.saved_vs_thin_pct}%)"
        )
    if next_event:
        lines.append(f":calendar: Next: {esc(next_event)}")
    return "\n".join(lines)


def _clone_lines(st: EnvironmentStatus, trainees: bool, limit: int) -> list[str]:
    """One environment's hosts by parent, then its clones (those alive or with an error)
    under the vCenter note; who holds each when `trainees` (operators see it; trainees never
    see each other's VMs). `limit`: hosts per shared base disk."""
    hosts = [say.parent_hosts(p, h, limit, MRKDWN) for p, h in st.hosts_by_parent.items()]
    note = say.vcenter_note(st)
    lines = [
        f"`{esc(c.name)}` {esc(c.type)} {c.state.value}"
        + (f" → {who(st.assigned[c.id])}" if trainees and c.id in st.assigned else "")
        + (f" :warning: {esc(st.drift[c.id].text)}" if c.id in st.drift else "")
        + (f": {esc(c.error)}" if c.error else "")
        for c in st.clones
        if c.state.live or c.error
    ]
    if not lines:
        return hosts
    return [*hosts, f"{':warning: ' if st.drift else ''}_{esc(note)}_", *lines]


def status(
    statuses: Sequence[EnvironmentStatus],
    environment: str | None,
    next_events: dict[str, str] | None = None,
    trainees: bool = False,
    hosts_per_base_disk: int = 8,
) -> Rendered:
    """`next_events`: environment -> "strip back Fri 27 Nov 17:00 GMT (in 1 d 7 h)";
    `trainees`: show who holds each clone; `hosts_per_base_disk`: the host limit shown beside
    each parent's hosts."""
    if not statuses:
        text = say.no_environments(MRKDWN)
        return Rendered(text, [section(text), context(say.finished_hint(MRKDWN))])
    events = next_events or {}
    blocks: list[Block] = []
    shown = statuses[:MAX_ENVIRONMENTS]
    for st in shown:
        blocks.append(section(environment_summary(st, None, events.get(st.environment.name))))
        lines = _clone_lines(st, trainees, hosts_per_base_disk) if environment is not None else []
        if lines:
            blocks.append(section(capped_lines(lines, more=" (`inventory ENV` lists all)")))
        if environment is not None and not st.live and not lines:
            blocks.append(context(say.nothing_live(st.environment.name, MRKDWN)))
    if len(statuses) > len(shown):
        blocks.append(context(f"…and {len(statuses) - len(shown)} more environments"))
    parts = []
    for st in statuses:
        event = events.get(st.environment.name)
        parts.append(f"{st.environment.name} ({st.live} live" + (f", {event})" if event else ")"))
    return Rendered(clip(", ".join(parts)), blocks[:MESSAGE_MAX_BLOCKS])


def history(h: History, zone: str | tzinfo) -> Rendered:
    """Environments (or one environment's runs), newest first, cut to fit one message."""
    if not h.environments:
        text = say.no_history(h.environment)
        return Rendered(text, [section(esc(text))])
    lines = [say.environment_life(e, zone, MRKDWN) for e in h.environments]
    blocks: list[Block] = [section(capped_lines(lines))]
    if h.runs:
        runs = [f"• {say.run_life(r, zone, MRKDWN)}" for r in h.runs]
        blocks.append(section(capped_lines(runs)))
    if h.more:
        older = "runs" if h.environment else "environments"
        blocks.append(context(f"…and {h.more} older {older}"))
    where = h.environment or "environments"
    return Rendered(clip(f"History of {where}: {len(h.environments)} shown"), blocks)


def audit(log: AuditLog, zone: str | tzinfo) -> Rendered:
    """The newest entries since the date asked for; the terminal exports them all."""
    since = say.moment(log.since, zone)
    if not log.entries:
        text = f"No audit entries since {since}."
        return Rendered(text, [section(text)])
    lines = [say.audit_line(e, zone, MRKDWN) for e in log.entries]
    blocks: list[Block] = [section(f"*Audit log since {since}*"), section(capped_lines(lines))]
    if log.more:
        blocks.append(
            context(
                f"…and {log.more} earlier: `clones audit --since DATE --csv` in a terminal "
                "exports every entry."
            )
        )
    return Rendered(f"Audit log since {since}: {len(log.entries) + log.more} entries", blocks)


def savings(s: Savings, environment: str | None) -> Rendered:
    title = say.savings_title(environment)
    text = (
        f"{title}: linked clones use {s.linked_gb:.2f} GB, "
        f"{s.saved_vs_thin_gb:.2f} GB less than thin full clones"
    )
    return Rendered(text, [section(f"*{esc(title)}*\n{code(format_table(s))}")])


def types(rows: Iterable[TypeStatus]) -> Rendered:
    lines = []
    for ts in rows:
        size = f", {say.parent_size(ts.parent)}" if ts.parent is not None else ""
        desc = f" ({esc(ts.type.description)})" if ts.type.description else ""
        lines.append(
            f"• *{esc(ts.type.name)}*{desc}: parent `{esc(ts.type.parent)}`, "
            f"{ts.readiness}{size}, up to {ts.type.max_count}"
        )
    body = "\n".join(lines) or "No types configured."
    return Rendered(clip(body), [section(body)])


def plan(p: PlanResult) -> Rendered:
    lines = [
        f"{':white_check_mark:' if n.fits else ':x:'} {say.datastore(n, MRKDWN)}" for n in p.needs
    ]
    verdict = "fits" if p.fits else "does NOT fit"
    text = (
        f"Plan for {p.estimate.clones} clones: linked clones use about "
        f"{p.estimate.linked_gb:.2f} GB; {verdict}"
    )
    blocks = [section(f"*{say.ESTIMATED}*\n{code(format_table(p.estimate))}")]
    deltas = [say.delta_per_clone(t, d, MRKDWN) for t, d in p.deltas.items()]
    if deltas:
        blocks.append(context(clip("\n".join(deltas))))
    if lines:
        blocks.append(section(capped_lines(lines)))
    if p.power_on:
        blocks.append(context("Counts RAM-sized swap files for powered-on clones."))
    return Rendered(text, blocks)


_INVENTORY_HEAD = ("NAME", "TYPE", "ENV", "POWER", "GB", "HOST")


def inventory(
    rows: Sequence[InventoryRow], environment: str | None, trainees: bool = False
) -> Rendered:
    """A compact table in a code block, capped to fit one section; the terminal has the rest.
    `trainees`: a column of who holds each clone (their member IDs)."""
    where = environment or "all environments"
    if not rows:
        return Rendered(say.no_clones(environment), [section(esc(say.no_clones(environment)))])
    head = (*_INVENTORY_HEAD, "TRAINEE") if trainees else _INVENTORY_HEAD
    table = [
        (
            r.name,
            r.type,
            r.environment,
            say.power_word(r.power_state) or r.state,
            f"{r.committed_gb:.2f}",
            r.host or "-",
            *((r.assigned_to or "-",) if trainees else ()),
        )
        for r in rows
    ]
    widths = [min(24, max(len(h), *(len(row[i]) for row in table))) for i, h in enumerate(head)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c[:w].ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    lines = [line(head)]
    budget = SECTION_MAX - 200  # the code fences and the title
    for row in table[:INVENTORY_MAX_ROWS]:
        text = line(row)
        if sum(len(x) + 1 for x in lines) + len(text) > budget:
            break
        lines.append(text)
    shown = len(lines) - 1
    # Plain text inside a code block: escape Slack's control characters; no backticks.
    body = esc("\n".join(lines)).replace("`", "'")
    title = f"*Inventory of {esc(where)}* ({say.plural(len(rows), 'clone')})"
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
