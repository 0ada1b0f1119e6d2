"""The sentences both front ends say: the terminal prints them as they are, Slack in mrkdwn.

A deployment's summary line, a strip back's, what a strip back or a refresh would destroy, the
orphans, the status notes about vCenter, ... are worded once, here, so that `clones status` and
`/clones status` never drift apart. Each function is pure: a result in, a string out.

Why this module is in `bot.services`: a sentence says a result, and half of the results are the
services' own (`PowerResult`, `RefreshPlan`, `OrphansOutcome`, `TypeStatus`, ...), so it cannot be
in `bot.domain` (which imports only the domain); and it is the one layer both front ends already
import, so neither imports the other. It knows neither Slack nor a terminal: how a front end sets
a word apart (Slack bolds an environment, quotes a VM name and escapes what vCenter or a user
wrote; the terminal leaves words as they are) comes in as `Marks`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from bot.domain.models import ParentFacts
from bot.domain.results import (
    CapacityNeed,
    DeployResult,
    EnvironmentStatus,
    TeardownPlan,
    TeardownResult,
)
from bot.domain.savings import GIB
from bot.domain.trainees import (
    Assigned,
    HandOutReport,
    MyVm,
    RebuildPlan,
    SelfService,
    Unassigned,
)
from bot.services.orphans import Orphan, OrphansOutcome
from bot.services.power import PowerResult
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
    return f"{plural(len(r.destroyed), 'clone')} destroyed, {r.reclaimed_gb:.2f} GB reclaimed"


def stripped_back(r: TeardownResult, m: Marks = PLAIN, how: str = "") -> str:
    """ "Stripped back nov-cohort: 25 clones destroyed, 3.10 GB reclaimed"; `how` goes in
    brackets after the name ("confirmed by ...", "scheduled")."""
    said_how = f" ({how})" if how else ""
    return f"Stripped back {m.name(r.environment)}{said_how}: {destroyed_count(r)}"


def already_gone(n: int) -> str:
    return f"{n} already gone from vCenter"


def renamed(old: str, new: str, m: Marks = PLAIN) -> str:
    """A clone renamed outside the bot (and destroyed all the same: it was provably ours)."""
    return f"{m.code(old)}, now named {m.code(new)}"


def teardown_plan(plan: TeardownPlan, m: Marks = PLAIN) -> str:
    """What a strip back would do, shown before it is confirmed."""
    return (
        f"This powers off and destroys {m.strong(plural(plan.clones, 'clone'))} "
        f"({m.text(kinds(plan.by_type))}) and reclaims about {m.strong(gb(plan.reclaim_bytes))}. "
        "Parents and their base snapshots are kept."
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


def powered(r: PowerResult, m: Marks = PLAIN) -> str:
    left = f", {len(r.skipped)} left alone" if r.skipped else ""
    return (
        f"Power {r.action} {m.name(r.environment)}: {len(r.done)} done, "
        f"{len(r.failed)} failed{left}"
    )


# ===================================================================== admin reads
def prepared(r: PrepareReport, m: Marks = PLAIN) -> str:
    verdict = "ready for linked clones" if r.ready else "NOT ready for linked clones"
    return f"{m.name(r.type)} (parent {m.code(r.parent)}): {verdict}"


def parent_size(facts: ParentFacts) -> str:
    return f"{gb(facts.used_bytes)} used of {gb(facts.provisioned_bytes)}"


ESTIMATED = "Estimated sizes (nothing is created)"


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
    """ "nov-cohort: 25 live clones, owner alice" (`owner` as the front end shows people)."""
    return f"{m.name(st.environment.name)}: {plural(st.live, 'live clone')}, owner {owner}"


def vcenter_note(st: EnvironmentStatus) -> str:
    """Whether one environment's records were compared with vCenter, and how they differ."""
    if not st.checked:
        return f"vCenter not checked, records shown as they are: {st.unchecked}"
    differ = len(st.drift)
    return f"vCenter: {differ} clone(s) differ from the records" if differ else "vCenter: matches"


def no_environments(m: Marks = PLAIN) -> str:
    return (
        f'No environments with clones. Deploy one with "{m.command("deploy capture 5 as demo")}".'
    )


def savings_title(environment: str | None) -> str:
    return f"Savings for {environment or 'all environments'}"


def no_clones(environment: str | None) -> str:
    return f"No clones recorded{f' in {environment}' if environment else ''}."


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
