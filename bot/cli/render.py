"""The terminal's renderings of each command's result: text for people, `--json` for scripts,
and the exit code (0 done, 1 error, 2 bad command, 3 partly done)."""

from __future__ import annotations

import csv
import dataclasses
import enum
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from bot.cli.options import EXIT_ERROR, EXIT_OK, EXIT_PARTIAL, Options
from bot.domain import grammar
from bot.domain.errors import UsageError
from bot.domain.history import AuditLog, History
from bot.domain.models import RunState
from bot.domain.results import (
    FAILURE_STATES,
    DatabaseCopied,
    DeployResult,
    EnvironmentStatus,
    FailedClone,
    TeardownResult,
)
from bot.domain.savings import Savings, format_table
from bot.domain.timeparse import describe_time
from bot.domain.trainees import Assigned, HandedOut, MyVms, SelfService, Unassigned
from bot.services import sentences as say
from bot.services.admin import BulkResult, InventoryRow, PlanResult, PrepareReport, RefreshResult
from bot.services.check import CheckReport
from bot.services.container import Services
from bot.services.dispatch import Deployed
from bot.services.orphans import OrphansOutcome
from bot.services.queries import TypeStatus
from bot.services.recovery import RecoveryReport
from bot.services.schedules import ScheduleResult


@dataclass(frozen=True)
class View:
    """Where and how a result is shown: the command, the options, the output, the services."""

    command: Any
    opts: Options
    out: TextIO
    services: Services


def show_schedule(result: ScheduleResult, v: View) -> int:
    opts, out, app = v.opts, v.out, v.services
    running = app.schedules.scheduler_running() if app.schedules is not None else False
    if opts.json:
        data = {
            "environment": result.environment,
            "starts_at": iso(result.starts_at),
            "ends_at": iso(result.ends_at),
            "changed": result.changed,
            "message": result.message,
            "scheduler_running": running,
        }
        print(json.dumps(data, indent=2), file=out)
        return EXIT_OK
    print(result.message, file=out)  # says so when no bot runs the scheduler (keeper_note)
    return EXIT_OK


def show_deploy_result(result: DeployResult, v: View) -> int:
    opts, out = v.opts, v.out
    if opts.chart and result.savings is not None:
        write_chart(v, result.savings, opts.chart)
    if opts.json:
        print(
            json.dumps(
                {
                    "run": result.run_id,
                    "environment": result.environment,
                    "state": result.state.value,
                    "requested": result.requested,
                    "ready": result.ready,
                    "failed": [f.__dict__ for f in result.failed],
                    "interrupted": result.interrupted,
                    "elapsed_s": round(result.elapsed_s, 2),
                    "savings": result.savings.as_dict() if result.savings else None,
                },
                indent=2,
            ),
            file=out,
        )
    else:
        print(f"{say.deployed(result)} ({result.elapsed_s:.1f} s).", file=out)
        for line in failure_lines(result.failed):
            print(line, file=out)
        if result.interrupted:
            print(f"  interrupted: {', '.join(result.interrupted)}", file=out)
        if result.message and result.state is not RunState.SUCCEEDED:
            print(result.message, file=out)
        if result.savings is not None:
            print("", file=out)
            print(format_table(result.savings), file=out)
        if opts.chart:
            print(f"Chart written to {opts.chart}", file=out)
    if result.state is RunState.SUCCEEDED:
        return EXIT_OK
    return EXIT_PARTIAL if result.state is RunState.PARTIAL else EXIT_ERROR


def failure_lines(failed: Sequence[FailedClone]) -> list[str]:
    """One line per failed clone; clones of one type that failed with the same words (e.g. not
    attempted after a full copy) share one line."""
    groups: dict[tuple[str, str], list[str]] = {}
    for f in failed:
        groups.setdefault((f.type, f.error), []).append(f.name)
    lines = []
    for (type_name, error), names in groups.items():
        if len(names) == 1:
            lines.append(f"  failed: {names[0]} ({type_name}): {error}")
        else:
            span = f"{names[0]} ... {names[-1]}" if len(names) > 2 else ", ".join(names)
            lines.append(f"  failed: {len(names)} {type_name} clones ({span}): {error}")
    return lines


def show_teardown(result: TeardownResult, v: View) -> int:
    opts, out = v.opts, v.out
    if opts.json:
        print(
            json.dumps(
                {
                    "run": result.run_id,
                    "environment": result.environment,
                    "state": result.state.value,
                    "destroyed": result.destroyed,
                    "already_gone": result.already_gone,
                    "cleared": result.cleared,
                    "skipped": [f.__dict__ for f in result.skipped],
                    "unseen": [f.__dict__ for f in result.unseen],
                    "failed": [f.__dict__ for f in result.failed],
                    "renamed": result.renamed,
                    "reclaimed_gb": result.reclaimed_gb,
                    "elapsed_s": round(result.elapsed_s, 2),
                },
                indent=2,
            ),
            file=out,
        )
    else:
        print(f"{say.stripped_back(result)} ({result.elapsed_s:.1f} s).", file=out)
        if result.already_gone:
            print(f"  {say.already_gone(len(result.already_gone))}", file=out)
        if result.cleared:
            print(f"  {say.cleared(result.cleared)}", file=out)
        for old, new in sorted(result.renamed.items()):
            print(f"  {say.renamed(old, new)}: destroyed", file=out)
        for f in result.skipped:
            print(f"  left alone: {f.name}: {f.error}", file=out)
        for f in result.unseen:
            print(f"  left as recorded: {f.error}", file=out)
        for f in result.failed:
            print(f"  failed: {f.name}: {f.error}", file=out)
        if result.message and result.state is RunState.INTERRUPTED:
            print(result.message, file=out)
    if result.state is RunState.SUCCEEDED:
        return EXIT_OK
    return EXIT_PARTIAL if result.state is RunState.PARTIAL else EXIT_ERROR


def _status_json(statuses: list[EnvironmentStatus], v: View) -> list[dict[str, Any]]:
    command, app = v.command, v.services
    envs = []
    for st in statuses:
        clones = st.clones or app.use_cases.queries.clones_of(st.environment.name)
        envs.append(
            {
                "name": st.environment.name,
                "owner": st.environment.owner,
                "channel": st.environment.channel,
                "created_at": iso(st.environment.created_at),
                "counts": st.by_type,
                "clones": [
                    {
                        "name": c.name,
                        "type": c.type,
                        "state": c.state.value,
                        "parent": c.parent,
                        "moref": c.moref,
                        "host": c.host,
                        "power_state": c.known_power,
                        "customization": c.customization,
                        "error": c.error,
                        "drift": plain(st.drift[c.id]) if c.id in st.drift else None,
                        "assigned_to": st.assigned.get(c.id, ""),
                    }
                    for c in clones
                    if c.state.live or command.environment
                ],
                "failures": [dataclasses.asdict(f) for f in st.failures],
                **(
                    {"checked_against_vcenter": st.checked, "unchecked": st.unchecked}
                    if command.environment
                    else {}
                ),
            }
        )
    return envs


def show_status(statuses: list[EnvironmentStatus], v: View) -> int:
    command, opts, out, app = v.command, v.opts, v.out, v.services
    if opts.json:
        print(json.dumps({"environments": _status_json(statuses, v)}, indent=2), file=out)
        return EXIT_OK
    if not statuses:
        print(say.no_environments(), file=out)
        if not command.environment and not command.everything:
            print(say.finished_hint(), file=out)
        return EXIT_OK
    for st in statuses:
        env = st.environment
        print(say.environment_head(st, env.owner), file=out)
        for label, when in (("deploys", env.starts_at), ("strips back", env.ends_at)):
            if when is not None:
                shown = describe_time(when, datetime.now(UTC), app.settings.timezone)
                print(f"  {label} {shown}", file=out)
        for t, states in sorted(st.by_type.items()):
            print(f"  {t:<14} {say.state_counts(states)}", file=out)
        for line in say.failure_lines(st):
            print(f"  {line}", file=out)
        if command.environment:
            limit = app.settings.max_hosts_per_base_disk
            for parent, hosts in st.hosts_by_parent.items():
                print(f"  {say.parent_hosts(parent, hosts, limit)}", file=out)
            print(f"  {say.vcenter_note(st)}", file=out)
            for c in st.clones:
                if c.state.live or c.state in FAILURE_STATES:
                    power = say.power_word(c.known_power)
                    extra = f"  {c.error}" if c.error else ""
                    if c.id in st.drift:
                        extra = f"  ! {st.drift[c.id].text}" + extra
                    if c.id in st.assigned:
                        extra = f"  -> {st.assigned[c.id]}" + extra
                    print(
                        f"    {c.name:<16} {c.type:<14} {c.state.value:<10} {power:<4}{extra}",
                        file=out,
                    )
            if not st.clones:
                print(f"  {say.nothing_live(env.name)}", file=out)
    return EXIT_OK


def show_history(h: History, v: View) -> int:
    out, zone = v.out, v.services.settings.timezone
    if v.opts.json:
        data = {
            "environment": h.environment,
            "environments": [
                {
                    **plain(e),
                    "outcome": e.outcome,
                    "savings": e.savings.as_dict() if e.savings else None,
                }
                for e in h.environments
            ],
            "runs": [
                {**plain(r), "savings": r.savings.as_dict() if r.savings else None} for r in h.runs
            ],
            "more": h.more,
        }
        print(json.dumps(data, indent=2), file=out)
        return EXIT_OK
    if not h.environments:
        print(say.no_history(h.environment), file=out)
    for e in h.environments:
        print(say.environment_life(e, zone), file=out)
    for r in h.runs:
        print(f"  {say.run_life(r, zone)}", file=out)
    if h.more:
        older = "runs" if h.environment else "environments"
        print(f"...and {h.more} older {older}.", file=out)
    return EXIT_OK


AUDIT_COLUMNS = ("at", "actor", "source", "channel", "command", "result", "detail")


def show_audit(log: AuditLog, v: View) -> int:
    out = v.out
    if v.opts.json:
        data = {"since": iso(log.since), "entries": [plain(e) for e in log.entries]}
        print(json.dumps(data, indent=2), file=out)
    elif v.opts.csv:
        writer = csv.writer(out)
        writer.writerow(AUDIT_COLUMNS)
        for e in log.entries:
            writer.writerow([iso(e.at) if c == "at" else getattr(e, c) for c in AUDIT_COLUMNS])
    elif not log.entries:
        print(
            f"No audit entries since {say.moment(log.since, v.services.settings.timezone)}.",
            file=out,
        )
    else:
        for e in log.entries:
            print(say.audit_line(e, v.services.settings.timezone), file=out)
    return EXIT_OK


def show_savings(s: Savings, v: View) -> int:
    environment, opts, out = v.command.environment, v.opts, v.out
    if opts.chart:
        write_chart(v, s, opts.chart)
    if opts.json:
        data = {"environment": environment, **s.as_dict()}
        print(json.dumps(data, indent=2), file=out)
        return EXIT_OK
    print(f"{say.savings_title(environment)}:", file=out)
    print(format_table(s), file=out)
    if opts.chart:
        print(f"Chart written to {opts.chart}", file=out)
    return EXIT_OK


def show_types(types: list[TypeStatus], v: View) -> int:
    opts, out = v.opts, v.out
    if opts.json:
        rows = [
            {
                "type": ts.type.name,
                "parent": ts.type.parent,
                "readiness": ts.readiness,
                "used_gb": round(ts.parent.used_bytes / 2**30, 2) if ts.parent else None,
                "provisioned_gb": (
                    round(ts.parent.provisioned_bytes / 2**30, 2) if ts.parent else None
                ),
                "max_count": ts.type.max_count,
            }
            for ts in types
        ]
        print(json.dumps({"types": rows}, indent=2), file=out)
        return EXIT_OK
    for ts in types:
        size = f"  {say.parent_size(ts.parent)}" if ts.parent else ""
        print(f"{ts.type.name:<14} parent {ts.type.parent:<14} {ts.readiness}{size}", file=out)
    return EXIT_OK


def show_prepare(report: PrepareReport, v: View) -> int:
    opts, out = v.opts, v.out
    if opts.json:
        print(json.dumps(plain(report), indent=2), file=out)
    else:
        print(say.prepared(report), file=out)
        marks = {"ok": "ok", "done": "done", "advice": "advice", "problem": "PROBLEM"}
        for f in report.findings:
            print(f"  {marks.get(f.level, f.level):<8} {f.text}", file=out)
    return EXIT_OK if report.ready else EXIT_ERROR


def show_each_done(result: BulkResult, v: View) -> int:
    opts, out = v.opts, v.out
    if opts.json:
        print(json.dumps(plain(result), indent=2), file=out)
    else:
        print(f"{say.each_done(result)}.", file=out)
        for f in [*result.failed, *result.skipped]:
            print(f"  {f.name}: {f.error}", file=out)
    return EXIT_OK if not result.failed and not result.skipped else EXIT_PARTIAL


def show_plan(plan: PlanResult, v: View) -> int:
    opts, out = v.opts, v.out
    if opts.json:
        data = {
            "estimate": plan.estimate.as_dict(),
            "delta_per_clone": {
                t: {"gb": round(d.bytes / 2**30, 2), "source": d.source, "clones": d.clones}
                for t, d in plan.deltas.items()
            },
            "power_on": plan.power_on,
            "fits": plan.fits,
            "datastores": [{**plain(n), "fits": n.fits} for n in plan.needs],
        }
        print(json.dumps(data, indent=2), file=out)
        return EXIT_OK if plan.fits else EXIT_ERROR
    print(f"{say.ESTIMATED}:", file=out)
    print(format_table(plan.estimate), file=out)
    for t, d in plan.deltas.items():
        print(say.delta_per_clone(t, d), file=out)
    for n in plan.needs:
        print(say.datastore(n), file=out)
    return EXIT_OK if plan.fits else EXIT_ERROR


INVENTORY_COLUMNS = (
    "name",
    "type",
    "parent",
    "environment",
    "state",
    "deployed_by",
    "deployed_at",
    "power_state",
    "committed_gb",
    "host",
    "assigned_to",
)


def show_inventory(rows: list[InventoryRow], v: View) -> int:
    opts, out = v.opts, v.out
    extra = sorted({k for r in rows for k in r.attributes})
    if opts.json:
        print(json.dumps([plain(r) for r in rows], indent=2), file=out)
    elif opts.csv:
        writer = csv.writer(out)
        writer.writerow([*INVENTORY_COLUMNS, *extra])
        for r in rows:
            row = plain(r)
            writer.writerow(
                [row[c] for c in INVENTORY_COLUMNS] + [r.attributes.get(k, "") for k in extra]
            )
    elif not rows:
        print(say.no_clones(v.command.environment), file=out)
    else:
        for r in rows:
            attrs = " ".join(f"{k}={v}" for k, v in sorted(r.attributes.items()))
            print(
                f"{r.name:<14} {r.type:<13} {r.environment:<14} {r.power_state or r.state:<10} "
                f"{r.committed_gb:>6.2f} GB  {r.host:<14} {r.deployed_by} {r.deployed_at} {attrs}"
                + (f" -> {r.assigned_to}" if r.assigned_to else ""),
                file=out,
            )
    return EXIT_OK


def show_refresh(result: RefreshResult, v: View) -> int:
    opts, out = v.opts, v.out
    if opts.json:
        print(json.dumps(plain(result), indent=2), file=out)
    else:
        print(f"{say.refreshed(result)} ({result.elapsed_s:.1f} s).", file=out)
        for f in [*result.failed, *result.skipped]:
            print(f"  {f.name}: {f.error}", file=out)
        if result.message and result.state is RunState.INTERRUPTED:
            print(result.message, file=out)
    if result.state is RunState.SUCCEEDED:
        return EXIT_OK
    return EXIT_PARTIAL if result.state is RunState.PARTIAL else EXIT_ERROR


def show_check(report: CheckReport, v: View) -> int:
    opts, out = v.opts, v.out
    if opts.json:
        data = {"ok": report.ok, "findings": [plain(f) for f in report.findings]}
        print(json.dumps(data, indent=2), file=out)
        return EXIT_OK if report.ok else EXIT_ERROR
    marks = {"ok": "ok", "note": "note", "problem": "PROBLEM"}
    for f in report.findings:
        print(f"{marks.get(f.level, f.level):<8} {say.finding(f)}", file=out)
    problems = len(report.problems)
    if problems:
        print(f"{problems} problem(s) found: fix them, then run `clones check` again.", file=out)
    else:
        print("All checks passed: ready to deploy.", file=out)
    return EXIT_OK if report.ok else EXIT_ERROR


def plain(obj: Any) -> Any:
    """Dataclasses, enums and paths as JSON-ready values."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, list | tuple):
        return [plain(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, datetime):
        return obj.isoformat()
    return obj


def write_chart(v: View, s: Savings, path: Path) -> None:
    if v.services.chart is None:  # pragma: no cover - bootstrap always provides one
        raise UsageError("Charts are not available here.")
    v.services.chart.write(s, path)


def iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def show_deploy(outcome: Deployed | ScheduleResult, v: View) -> int:
    if isinstance(outcome, ScheduleResult):  # deploy ... at: scheduled, nothing created yet
        return show_schedule(outcome, v)
    code = show_deploy_result(outcome.result, v)
    if outcome.end_note:
        print(outcome.end_note, file=sys.stderr if v.opts.json else v.out)
    return code


def show_resume(report: RecoveryReport, v: View) -> int:
    if v.opts.json:
        print(json.dumps(plain(report), indent=2), file=v.out)
    else:
        print(report.text, file=v.out)
    if report.left or report.unchecked:
        return EXIT_ERROR
    return EXIT_OK if report.complete else EXIT_PARTIAL


def show_orphans(outcome: OrphansOutcome, v: View) -> int:
    out = v.out
    if v.opts.json and outcome.action is None:
        rows = [
            {
                "name": o.vm.name,
                "moref": o.vm.moref,
                "instance_uuid": o.vm.instance_uuid,
                "ours": o.ours,
                "recorded": o.recorded,
                "environment": o.environment,
                "type": (o.clone.type if o.clone is not None else o.type) if o.ours else "",
                "linked": o.vm.linked,
            }
            for o in outcome.orphans
        ]
        print(json.dumps({"orphans": rows}, indent=2), file=out)
        return EXIT_OK
    if outcome.action is None:
        if not outcome.orphans:
            print(say.NO_ORPHANS, file=out)
            return EXIT_OK
        print(orphans_text(outcome), file=out)
        if outcome.ours:
            print(say.deal_with_orphans(), file=out)
        return EXIT_OK
    if not outcome.ours:
        print(say.nothing_to(outcome.action), file=out)
        return EXIT_OK
    for name, environment in outcome.adopted:
        print(f"  {say.adopted(name, environment)}", file=out)
    for name in outcome.removed:
        print(f"  {say.removed(name)}", file=out)
    for name, why in outcome.problems:
        print(f"  {name}: {why}", file=out)
    return EXIT_OK if not outcome.problems else EXIT_PARTIAL


def orphans_text(outcome: OrphansOutcome) -> str:
    """The bot's own orphans first, then the foreign ones (never touched)."""
    return "\n".join(f"  {say.orphan(o)}" for o in [*outcome.ours, *outcome.foreign])


def show_help(text: str, v: View) -> int:
    print(text.replace("`", ""), file=v.out)
    return EXIT_OK


def show_assign(r: Assigned, v: View) -> int:
    out = v.out
    if v.opts.json:
        data = {
            "environment": r.environment,
            "new": [{"trainee": a.trainee, "vm": a.clone_name} for a in r.new],
            "kept": [{"trainee": a.trainee, "vm": a.clone_name} for a in r.kept],
            "replaced": [{"trainee": a.trainee, "vm": a.clone_name} for a in r.replaced],
            "left_out": r.left_out,
            "handout": {
                "sent": r.handout.sent,
                "failed": [{"trainee": u, "why": why} for u, why in r.handout.failed],
                "not_sent": r.handout.not_sent,
            },
            "attribute_errors": [{"vm": vm, "why": why} for vm, why in r.attribute_errors],
        }
        print(json.dumps(data, indent=2), file=out)
    else:
        print(f"{say.assigned(r)}.", file=out)
        for a in r.new:
            print(f"  {a.trainee} -> {a.clone_name}", file=out)
        if r.left_out:
            print(f"  {say.left_out(r.left_out)}", file=out)
        print(f"{say.handed_out(r.handout)}.", file=out)
        for trainee, why in r.handout.failed:
            print(f"  not reached: {say.not_reached(trainee, why)}", file=out)
        if r.handout.failed:
            print(f"  {say.retry_handout(r.environment)}.", file=out)
        for vm, why in r.attribute_errors:
            print(f"  AssignedTo not written on {vm}: {why}", file=out)
    return EXIT_PARTIAL if r.handout.failed or r.attribute_errors else EXIT_OK


def show_handout(r: HandedOut, v: View) -> int:
    if v.opts.json:
        data = {
            "environment": r.environment,
            "waiting": r.waiting,
            "sent": r.report.sent,
            "failed": [{"trainee": u, "why": why} for u, why in r.report.failed],
            "not_sent": r.report.not_sent,
        }
        print(json.dumps(data, indent=2), file=v.out)
    else:
        print(f"{say.handed_out_again(r)}.", file=v.out)
        for trainee, why in r.report.failed:
            print(f"  not reached: {say.not_reached(trainee, why)}", file=v.out)
        if r.report.failed:
            print(f"  {say.retry_handout(r.environment)}.", file=v.out)
    return EXIT_PARTIAL if r.report.failed or r.report.not_sent else EXIT_OK


def show_unassign(r: Unassigned, v: View) -> int:
    if v.opts.json:
        data = {
            "environment": r.environment,
            "ended": [{"trainee": a.trainee, "vm": a.clone_name} for a in r.ended],
            "not_assigned": r.not_assigned,
        }
        print(json.dumps(data, indent=2), file=v.out)
        return EXIT_OK
    print(f"{say.unassigned(r)}.", file=v.out)
    if r.not_assigned:
        print(f"  held none there: {', '.join(r.not_assigned)}", file=v.out)
    return EXIT_OK


def show_my(mine: MyVms, v: View) -> int:
    if v.opts.json:
        print(json.dumps({"user": mine.user, "vms": plain(mine.vms)}, indent=2), file=v.out)
        return EXIT_OK
    if not mine.vms:
        print(f"{say.no_vms()} (You are {mine.user} here.)", file=v.out)
    for vm in mine.vms:
        print(say.my_vm(vm), file=v.out)
        for url in (vm.client_url, vm.vmrc_url):
            if url:
                print(f"  {url}", file=v.out)
    return EXIT_OK


def show_self_service(r: SelfService, v: View) -> int:
    if v.opts.json:
        print(json.dumps(plain(r), indent=2), file=v.out)
    else:
        print(f"{say.self_served(r)}.", file=v.out)
        for f in r.failed:
            print(f"  {f.name}: {f.error}", file=v.out)
    return EXIT_OK if not r.failed else EXIT_PARTIAL if r.done else EXIT_ERROR


def show_rebuild(result: RefreshResult, v: View) -> int:
    if v.opts.json:
        print(json.dumps(plain(result), indent=2), file=v.out)
    else:
        print(f"{say.rebuilt(result)} ({result.elapsed_s:.1f} s).", file=v.out)
        if result.message and result.state is RunState.INTERRUPTED:
            print(result.message, file=v.out)
    return EXIT_OK if result.state is RunState.SUCCEEDED else EXIT_ERROR


def show_db_copy(result: DatabaseCopied, v: View) -> int:
    if v.opts.json:
        print(json.dumps(plain(result), indent=2), file=v.out)
        return EXIT_OK
    print(
        f"Copied {result.rows} rows in {len(result.tables)} tables from {result.source} to "
        f"{result.target}; ids and sequences kept.",
        file=v.out,
    )
    for name, rows in result.tables:
        print(f"  {name:<16} {rows:>8}", file=v.out)
    print(
        f'Now set [clones] database = "{result.target}" (its password in the environment) and '
        "start the bots.",
        file=v.out,
    )
    return EXIT_OK


RENDER: dict[type[Any], Callable[[Any, View], int]] = {
    grammar.Deploy: show_deploy,
    grammar.Teardown: show_teardown,
    grammar.Refresh: show_refresh,
    grammar.Status: show_status,
    grammar.History: show_history,
    grammar.Audit: show_audit,
    grammar.Savings: show_savings,
    grammar.Types: show_types,
    grammar.Plan: show_plan,
    grammar.Inventory: show_inventory,
    grammar.Prepare: show_prepare,
    grammar.Power: show_each_done,
    grammar.Schedule: show_schedule,
    grammar.Extend: show_schedule,
    grammar.CancelSchedule: show_schedule,
    grammar.Resume: show_resume,
    grammar.Orphans: show_orphans,
    grammar.Check: show_check,
    grammar.Help: show_help,
    grammar.Assign: show_assign,
    grammar.Handout: show_handout,
    grammar.Unassign: show_unassign,
    grammar.My: show_my,
    grammar.Reset: show_self_service,
    grammar.MyPower: show_self_service,
    grammar.Rebuild: show_rebuild,
    grammar.DbCopy: show_db_copy,
}


def renderer_for(cls: type[Any]) -> Callable[[Any, View], int] | None:
    """A command class's renderer: its entry in RENDER, or, for a bulk verb (its spec names
    `each_clone`), `show_each_done`."""
    spec = grammar.SPECS.get(cls)
    if cls not in RENDER and spec is not None and spec.each_clone is not None:
        return show_each_done
    return RENDER.get(cls)
