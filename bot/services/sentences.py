"""The sentences both front ends say: the terminal prints them as they are, Slack in mrkdwn.

A deployment's summary line, a strip back's, what a strip back or a refresh would destroy, the
orphans, the status notes about vCenter, ... are worded once, here, so that `clones status` and
`/clones status` never drift apart. Each function is pure: a result in, a string out.

Why this module is in `bot.services`: a sentence says a result, and half of the results are the
services' own (`BulkResult`, `RefreshPlan`, `OrphansOutcome`, `TypeStatus`, ...), so it cannot be
in `bot.domain` (which imports only the domain); and it is the one layer both front ends already
import, so neither imports the other. It knows neither Slack nor a terminal: how a front end sets
a word apart (Slack bolds an environment, quotes a VM name and escapes what vCenter or a user
wrote; the terminal leaves words as they are) comes in as `Marks`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo

from bot.domain.capacity import DeltaEstimate
from bot.domain.history import EnvironmentHistory, RunHistory
from bot.domain.models import AuditEntry, ParentFacts
from bot.domain.results import (
    CapacityNeed,
    DeployResult,
    EnvironmentStatus,
    TeardownPlan,
    TeardownResult,
)
from bot.domain.savings import GIB, Savings
from bot.domain.timeparse import zone_of
from bot.domain.trainees import (
    Assigned,
    HandedOut,
    HandOutReport,
    MyVm,
    RebuildPlan,
    SelfService,
    Unassigned,
)
from bot.services.bulk import BulkResult
from bot.services.orphans import Orphan, OrphansOutcome
from bot.services.preflight import Finding
from bot.services.prepare import PrepareReport
from bot.services.refresh import RefreshPlan, RefreshResult

Mark = Callable[[str], str]


def _same(text: str) -> str:
    return text


@dataclass(frozen=True)
class Marks:
    """How a front end sets words apart inside a shared sentence."""

    name: Mark = _same  # an environment or a type
    code: Mark = _same  # a VM, a parent, a datastore, a moref
    text: Mark = _same  # words a user or vCenter wrote
    strong: Mark = _same  # the figure a reader must not miss
    em: Mark = _same  # a label inside a line ("Fix:")
    command: Mark = lambda words: f"clones {words}"  # how to type a command here
    person: Mark = _same  # a Slack member ID (Slack mentions it; the terminal shows the ID)


PLAIN = Marks()  # the terminal


# ===================================================================== words and figures
def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def gb(nbytes: float) -> str:
    return f"{nbytes / GIB:.2f} GB"


def kinds(by_type: Mapping[str, int]) -> str:
    """ "3 capture, 2 packaging" """
    return ", ".join(f"{n} {t}" for t, n in by_type.items())


def state_counts(states: Mapping[str, int]) -> str:
    """ "2 ready, 1 failed": one type's clones by state, as status lists them."""
    return ", ".join(f"{n} {s}" for s, n in sorted(states.items()))


def power_word(power_state: str | None) -> str:
    """vCenter's power state as a person says it ("on", "off"; anything else as it is)."""
    return {"poweredOn": "on", "poweredOff": "off"}.get(power_state or "", power_state or "")


# ===================================================================== deploy and strip back
def ready_count(r: DeployResult) -> str:
    return f"{len(r.ready)} of {r.requested} linked clones ready"


def deployed(r: DeployResult, m: Marks = PLAIN) -> str:
    """ "4 of 5 linked clones ready in nov-cohort": a deployment's outcome."""
    return f"{ready_count(r)} in {m.name(r.environment)}"


def destroyed_count(r: TeardownResult) -> str:
    done = f"{plural(len(r.destroyed), 'clone')} destroyed, {r.reclaimed_gb:.2f} GB reclaimed"
    return f"{done}; {cannot_see(len(r.unseen))}" if r.unseen else done


def cannot_see(n: int) -> str:
    """Clones vCenter would not show: never counted gone, left as they were recorded."""
    return f"{plural(n, 'clone')} vCenter would not show, left as recorded"


def stripped_back(r: TeardownResult, m: Marks = PLAIN, how: str = "") -> str:
    """ "Stripped back nov-cohort: 25 clones destroyed, 3.10 GB reclaimed"; `how` goes in
    brackets after the name ("confirmed by ...", "scheduled")."""
    said_how = f" ({how})" if how else ""
    return f"Stripped back {m.name(r.environment)}{said_how}: {destroyed_count(r)}"


def already_gone(n: int) -> str:
    return f"{n} already gone from vCenter"


def cleared(names: Sequence[str], m: Marks = PLAIN) -> str:
    """Failed records a strip back cleared: their VM was not in vCenter."""
    return (
        f"{plural(len(names), 'failed record')} cleared, no VM in vCenter: "
        f"{', '.join(m.code(n) for n in names)}"
    )


def renamed(old: str, new: str, m: Marks = PLAIN) -> str:
    """A clone renamed outside the bot (and destroyed all the same: it was provably ours)."""
    return f"{m.code(old)}, now named {m.code(new)}"


def teardown_plan(plan: TeardownPlan, m: Marks = PLAIN) -> str:
    """What a strip back would do, shown before it is confirmed."""
    records = m.strong(plural(plan.failed_records, "failed record"))
    clearing = f"clears {records} (a VM left of one is destroyed too, only when provably the bot's)"
    if not plan.clones:
        return f"This {clearing}. Nothing else is touched."
    also = f" It also {clearing}." if plan.failed_records else ""
    return (
        f"This powers off and destroys {m.strong(plural(plan.clones, 'clone'))} "
        f"({m.text(kinds(plan.by_type))}) and reclaims about {m.strong(gb(plan.reclaim_bytes))}."
        f"{also} Parents and their base snapshots are kept."
    )


# ===================================================================== refresh and power
def refresh_plan(plan: RefreshPlan, m: Marks = PLAIN) -> str:
    """What a refresh would do, shown before it is confirmed."""
    return (
        f"This destroys and re-creates {m.strong(plural(plan.clones, 'clone'))} "
        f"({m.text(kinds(plan.by_type))}) from the current base snapshot, with the same names "
        f"and attributes. {m.strong('Whatever is on them now is lost.')}"
    )


def refreshed(r: RefreshResult, m: Marks = PLAIN, how: str = "") -> str:
    said_how = f" ({how})" if how else ""
    return (
        f"Refreshed {m.name(r.environment)}{said_how}: {plural(len(r.refreshed), 'clone')} "
        "re-created from the current base snapshot"
    )


def each_done(r: BulkResult, m: Marks = PLAIN) -> str:
    """An operation on each clone of an environment: "Power on nov-cohort: 25 done, 0 failed"."""
    left = f", {len(r.skipped)} left alone" if r.skipped else ""
    return f"{r.label} {m.name(r.environment)}: {len(r.done)} done, {len(r.failed)} failed{left}"


# ===================================================================== admin reads
def prepared(r: PrepareReport, m: Marks = PLAIN) -> str:
    verdict = "ready for linked clones" if r.ready else "NOT ready for linked clones"
    return f"{m.name(r.type)} (parent {m.code(r.parent)}): {verdict}"


def parent_size(facts: ParentFacts) -> str:
    return f"{gb(facts.used_bytes)} used of {gb(facts.provisioned_bytes)}"


ESTIMATED = "Estimated sizes (nothing is created)"


def delta_per_clone(type_name: str, est: DeltaEstimate, m: Marks = PLAIN) -> str:
    """ "capture: 2.40 GB a clone, from 25 clones of nov-cohort that lived a day or more, ..." """
    return f"{m.name(type_name)}: {gb(est.bytes)} a clone, {m.text(est.source)}"


def datastore(n: CapacityNeed, m: Marks = PLAIN) -> str:
    """One datastore of a plan: free, needed (swap included), headroom, and whether it fits."""
    swap = f" (incl. {gb(n.swap_bytes)} swap)" if n.swap_bytes else ""
    return (
        f"Datastore {m.code(n.datastore)}: {gb(n.free_bytes)} free, needs "
        f"{gb(n.needed_bytes)}{swap} + {gb(n.headroom_bytes)} headroom: "
        f"{'fits' if n.fits else 'DOES NOT FIT'}"
    )


def finding(f: Finding, m: Marks = PLAIN) -> str:
    """One finding of `check`: the subject, what was found, and the fix when there is one."""
    fix = f" {m.em('Fix:')} {m.text(f.fix)}" if f.fix else ""
    return f"{m.strong(m.text(f.subject))}: {m.text(f.text)}{fix}"


# ===================================================================== status, savings, inventory
def environment_head(st: EnvironmentStatus, owner: str, m: Marks = PLAIN) -> str:
    """ "nov-cohort: 25 live clones, owner alice" (`owner` as the front end shows people);
    "nov-cohort: 0 live clones, 3 failed, owner alice" while it has failed records."""
    failed = f", {st.failed} failed" if st.failed else ""
    return f"{m.name(st.environment.name)}: {plural(st.live, 'live clone')}{failed}, owner {owner}"


SHOWN_FAILURES = 3  # failed clones named per environment in the environments list


def failure_lines(st: EnvironmentStatus, m: Marks = PLAIN) -> list[str]:
    """The environments list's lines for an environment's failed records: a few, with why,
    and how to see the rest and clear them."""
    if not st.failures:
        return []
    shown = st.failures[:SHOWN_FAILURES]
    lines = [f"failed: {m.code(f.name)}: {m.text(f.error)}" for f in shown]
    more = len(st.failures) - len(shown)
    rest = f"{more} more in {m.command(f'status {st.environment.name}')}; " if more else ""
    clear = m.command(f"teardown {st.environment.name}")
    lines.append(f"({rest}{clear} clears failed records that have no VM in vCenter)")
    return lines


def parent_hosts(parent: str, hosts: Sequence[str], limit: int, m: Marks = PLAIN) -> str:
    """ "Capture: clones on 3 hosts (limit 8 per base disk): esx-01, esx-02, esx-03" """
    return (
        f"{m.code(parent)}: clones on {plural(len(hosts), 'host')} (limit {limit} per base "
        f"disk): {m.text(', '.join(hosts))}"
    )


def vcenter_note(st: EnvironmentStatus) -> str:
    """Whether one environment's records were compared with vCenter, and how they differ."""
    if not st.checked:
        return f"vCenter not checked, records shown as they are: {st.unchecked}"
    unseen = sum(1 for d in st.drift.values() if d.unseen)
    differ = len(st.drift) - unseen
    parts = [f"{differ} clone(s) differ from the records"] if differ else []
    if unseen:
        parts.append(
            f"{unseen} clone(s) cannot be seen (left as recorded: grant the bot's account the "
            "privilege named)"
        )
    return f"vCenter: {'; '.join(parts)}" if parts else "vCenter: matches"


def no_environments(m: Marks = PLAIN) -> str:
    return (
        f'No environments with clones. Deploy one with "{m.command("deploy capture 5 as demo")}".'
    )


def savings_title(environment: str | None) -> str:
    return f"Savings for {environment or 'all environments'}"


def no_clones(environment: str | None) -> str:
    return f"No clones recorded{f' in {environment}' if environment else ''}."


def nothing_live(environment: str, m: Marks = PLAIN) -> str:
    """Said under a finished environment's status."""
    return f'Nothing of it is live; "{m.command(f"history {environment}")}" shows its past.'


def finished_hint(m: Marks = PLAIN) -> str:
    return f'Finished environments: "{m.command("status --all")}", "{m.command("history")}".'


# ===================================================================== history and audit
def moment(when: datetime | None, zone: str | tzinfo) -> str:
    """ "Mon 3 Nov 2025 09:00" in the team's zone ("-" when not known)."""
    if when is None:
        return "-"
    local = when.astimezone(zone_of(zone))
    return f"{local:%a} {local.day} {local:%b %Y %H:%M}"


def _span(start: datetime | None, end: datetime | None, zone: str | tzinfo) -> str:
    return f"{moment(start, zone)} to {moment(end, zone) if end else 'now'}"


def saved(s: Savings | None, m: Marks = PLAIN) -> str:
    """ "saved 60.20 GB against thin full clones (95.1%)", or "" when not known."""
    if s is None or not s.clones:
        return ""
    figure = m.strong(f"{s.saved_vs_thin_gb:.2f} GB")
    return f"saved {figure} against thin full clones ({s.saved_vs_thin_pct}%)"


def environment_life(h: EnvironmentHistory, zone: str | tzinfo, m: Marks = PLAIN) -> str:
    """ "nov-cohort: stripped back; 25 clones made by U1 (1 failed), Mon 3 Nov 2025 09:00 to
    Fri 7 Nov 2025 17:05; saved 60.20 GB against thin full clones (95.1%)": when, who, how many,
    savings, outcome."""
    who = ", ".join(m.person(p) for p in h.deployed_by) or m.person(h.environment.owner)
    notes = [f"{h.failed} failed"] * bool(h.failed) + [f"{h.live} live"] * bool(h.live)
    extra = f" ({', '.join(notes)})" if notes else ""
    made = f"{plural(h.made, 'clone')} made by {who}{extra}"
    tail = saved(h.savings, m)
    span = _span(h.started_at, h.finished_at, zone)
    return f"{m.name(h.environment.name)}: {h.outcome}; {made}, {span}" + (
        f"; {tail}" if tail else ""
    )


def run_life(r: RunHistory, zone: str | tzinfo, m: Marks = PLAIN) -> str:
    """ "run 42, deploy by U1, Mon 3 Nov 2025 09:00 to 09:21: succeeded, 25 of 25 (saved ...)" """
    run = r.run
    done = f"{run.succeeded} of {run.requested}" + (f", {run.failed} failed" if run.failed else "")
    tail = saved(r.savings, m)
    message = f"; {m.text(run.message)}" if run.message else ""
    return (
        f"run {run.id}, {run.kind.value} by {m.person(run.requested_by)}, "
        f"{_span(run.started_at, run.finished_at, zone)}: {run.state.value}, {done}"
        + (f"; {tail}" if tail else "")
        + message
    )


def no_history(environment: str | None) -> str:
    return f"No runs recorded{f' for {environment}' if environment else ''}."


def audit_line(e: AuditEntry, zone: str | tzinfo, m: Marks = PLAIN) -> str:
    """ "Mon 3 Nov 2025 09:00 U1 (slack, C1): deploy capture 5 as x: ok" """
    where = f"{e.source}, {e.channel}" if e.channel else e.source
    detail = f" ({m.text(e.detail)})" if e.detail else ""
    said = f"{m.text(e.command)}: {e.result}{detail}"
    return f"{moment(e.at, zone)} {m.person(e.actor)} ({where}): {said}"


# ===================================================================== orphans
NO_ORPHANS = "No orphans: every VM marked as this bot's is recorded."


def orphan(o: Orphan, m: Marks = PLAIN) -> str:
    """One orphan: the bot's own (which adopt or remove may act on), or foreign (never)."""
    vm = o.vm
    head = f"{m.code(vm.name)} ({m.text(vm.moref)})"
    if not o.ours:
        why = o.why_not or "carries ManagedBy but was not made by this bot"
        return f"{head}: {why}: never touched"
    line = f"{head}: made by this bot, environment {m.text(o.environment or '?')}"
    if o.recorded:
        return line
    if o.type:
        return f"{line}, its record lost (its Notes say so): adopt takes it back as {o.type}"
    return f"{line}, its record lost (its Notes say so); it matches no configured type: remove only"


def orphans_found(outcome: OrphansOutcome) -> str:
    return f"{len(outcome.orphans)} orphan VMs, {len(outcome.ours)} made by this bot"


def nothing_to(action: str) -> str:
    return f"Nothing this bot made to {action}."


def deal_with_orphans(m: Marks = PLAIN) -> str:
    return (
        f'Run "{m.command("orphans adopt")}" or "{m.command("orphans remove")}" to deal with them.'
    )


def adopted(name: str, environment: str, m: Marks = PLAIN) -> str:
    return f"adopted {m.code(name)} into {m.name(environment)}"


def removed(name: str, m: Marks = PLAIN) -> str:
    return f"removed {m.code(name)}"


# ===================================================================== trainees
def assigned(r: Assigned, m: Marks = PLAIN) -> str:
    """ "nov-cohort: 25 trainees hold a VM (22 new, 3 kept)" """
    parts = [f"{len(r.new)} new", f"{len(r.kept)} kept"]
    if r.replaced:
        parts.append(f"{len(r.replaced)} given another: theirs was not ready")
    return (
        f"{m.name(r.environment)}: {m.strong(plural(r.trainees, 'trainee'))} hold a VM "
        f"({', '.join(parts)})"
    )


def left_out(n: int) -> str:
    return f"{plural(n, 'channel member')} left out: bots, and the people who run the lab"


def handed_out(r: HandOutReport, m: Marks = PLAIN) -> str:
    """The hand-out's outcome, in one line (who was not reached follows, one line each)."""
    if r.not_sent:
        return f"Hand-out: {m.text(r.not_sent)}"
    if not r.sent and not r.failed:
        return "Hand-out: every trainee named already has theirs"
    missed = f", {m.strong(plural(len(r.failed), 'trainee'))} not reached" if r.failed else ""
    return f"Hand-out: {plural(len(r.sent), 'trainee')} reached{missed}"


def handed_out_again(r: HandedOut, m: Marks = PLAIN) -> str:
    """ "nov-cohort: the hand-out again to 3 trainees not reached before: 3 trainees reached" """
    if not r.waiting:
        return f"{m.name(r.environment)}: every trainee has their hand-out; nothing to send"
    return (
        f"{m.name(r.environment)}: the hand-out again to "
        f"{plural(r.waiting, 'trainee')} not reached before. {handed_out(r.report, m)}"
    )


def retry_handout(environment: str, m: Marks = PLAIN) -> str:
    """What to type to try those not reached again."""
    return f'"{m.command(f"handout {environment}")}" sends it to them again'


def not_reached(trainee: str, why: str, m: Marks = PLAIN) -> str:
    return f"{m.person(trainee)}: {m.text(why)}"


def unassigned(r: Unassigned, m: Marks = PLAIN) -> str:
    if not r.ended:
        return f"{m.name(r.environment)}: nobody named held a VM there; nothing changed"
    vms = ", ".join(m.code(a.clone_name) for a in r.ended)
    verb = "holds" if len(r.ended) == 1 else "hold"
    return (
        f"{m.name(r.environment)}: {plural(len(r.ended), 'trainee')} no longer {verb} a VM "
        f"({vms}); the VMs stay as they are"
    )


def no_vms() -> str:
    return 'You hold no training VM. Your trainer gives you one with "assign".'


def my_vm(v: MyVm, m: Marks = PLAIN) -> str:
    """ "TRN-CAP-003 (capture) in nov-cohort: ready, on; the lab ends Fri ..." """
    a = v.assignment
    power = power_word(v.power_state)
    state = v.state + (f", {power}" if power and v.state == "ready" else "")
    ends = f"; the lab ends {m.strong(v.ends)}" if v.ends else ""
    return f"{m.code(a.clone_name)} ({m.text(v.type)}) in {m.name(a.environment)}: {state}{ends}"


_SELF_DONE = {"reset": "Reset", "on": "Powered on", "off": "Powered off"}


def self_served(r: SelfService, m: Marks = PLAIN) -> str:
    """ "Reset TRN-CAP-003" / "Powered on TRN-CAP-003; 1 failed" """
    done = ", ".join(m.code(n) for n in r.done) or "nothing"
    failed = f"; {len(r.failed)} failed" if r.failed else ""
    return f"{_SELF_DONE.get(r.action, r.action)} {done}{failed}"


def rebuild_plan(plan: RebuildPlan, m: Marks = PLAIN) -> str:
    return (
        f"This destroys {m.code(plan.vm)} ({m.text(plan.type)} in {m.name(plan.environment)}, "
        f"held by {m.person(plan.trainee)}) and clones it again from its base snapshot, same "
        f"name. {m.strong('Whatever is on it now is lost.')}"
    )


def rebuilt(r: RefreshResult, m: Marks = PLAIN) -> str:
    if r.refreshed:
        return f"Rebuilt {m.code(r.refreshed[0])} from its base snapshot: same name, same trainee"
    problems = r.failed or r.skipped
    if not problems:
        return "Nothing was rebuilt"
    return f"Rebuilding {m.code(problems[0].name)} failed: {m.text(problems[0].error)}"
