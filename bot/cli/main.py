"""The `clones` terminal front end: the Slack grammar, plus a few terminal-only options.

`clones deploy capture 25 as nov-cohort` means exactly what `/clones deploy capture 25 as
nov-cohort` means in Slack: the words go through `bot.domain.grammar.parse` and the service layer.
On top: `--json`, `--yes`, `--chart FILE`, and the terminal-only verbs `lab` and `demo`.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import enum
import getpass
import io
import json
import logging
import os
import ssl
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO, cast
from urllib.parse import urlsplit

from tqdm import tqdm

from bot.domain import grammar
from bot.domain.errors import ClonesError, UsageError, VCenterUnreachable
from bot.domain.models import CloneState, RunState
from bot.domain.results import (
    DeployResult,
    EnvironmentStatus,
    FailedClone,
    ProgressEvent,
    TeardownPlan,
    TeardownResult,
)
from bot.domain.savings import Savings, format_table
from bot.domain.timeparse import describe_time
from bot.services.admin import InventoryRow, PlanResult, PowerResult, PrepareReport, RefreshResult
from bot.services.check import Checker, CheckReport
from bot.services.core import TypeStatus
from bot.services.schedules import ScheduleResult, SchedulerLock, ScheduleService, lock_path_for
from bot.settings import load_settings

log = logging.getLogger("clones")
EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_PARTIAL = 0, 1, 2, 3


@dataclass
class Options:
    json: bool
    yes: bool
    chart: Path | None
    csv: bool
    config: Path | None
    verbose: bool
    words: list[str]


def parse_options(argv: Sequence[str]) -> Options:
    parser = argparse.ArgumentParser(
        prog="clones",
        add_help=False,
        description="Deploy and strip back vSphere linked-clone training labs.",
    )
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    parser.add_argument("--yes", "-y", action="store_true", help="confirm destructive commands")
    parser.add_argument("--chart", type=Path, help="write the savings chart PNG to this file")
    parser.add_argument("--csv", action="store_true", help="inventory as CSV")
    parser.add_argument("--config", type=Path, help="configuration file (default $CLONES_CONFIG)")
    parser.add_argument("--verbose", "-v", action="store_true", help="log what happens")
    parser.add_argument("--help", "-h", action="store_true", help="show help")
    known, words = parser.parse_known_args(list(argv))
    if known.help:
        words = ["help", *words]
    return Options(
        json=known.json,
        yes=known.yes,
        chart=known.chart,
        csv=known.csv,
        config=known.config,
        verbose=known.verbose,
        words=words,
    )


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        opts = parse_options(argv)
    except SystemExit as exc:  # argparse's own message is already printed
        return int(exc.code or EXIT_USAGE)
    logging.basicConfig(
        level=logging.INFO if opts.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        _check_options(opts)
        return run(opts, cast(TextIO, _PipeSafe(sys.stdout)))
    except UsageError as exc:
        _error(str(exc))
        return EXIT_USAGE
    except ClonesError as exc:
        _error(str(exc))
        return EXIT_ERROR
    except KeyboardInterrupt:
        _error("interrupted; what was done so far is recorded (see `clones status`).")
        return 130
    except Exception as exc:  # the last line of defence: never a traceback on the terminal
        path = _write_crash_report()
        _error(f"unexpected internal error ({type(exc).__name__}: {exc}); details in {path}")
        return EXIT_ERROR


def _check_options(opts: Options) -> None:
    """Refuse unusable options before anything is done."""
    chart = opts.chart
    if chart is not None:
        if chart.is_dir():
            raise UsageError(
                f"--chart {chart} is a folder; give a file name, e.g. "
                f"--chart {chart / 'savings.png'}."
            )
        if not chart.parent.is_dir():
            raise UsageError(
                f"--chart {chart}: the folder {chart.parent} does not exist; create it or give "
                "another file name, e.g. --chart savings.png."
            )


class _PipeSafe(io.TextIOBase):
    """Standard output that stops writing, quietly, once its reader has gone away
    (`clones status | head -1`): the command still finishes and returns its own exit code."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.closed_by_reader = False

    def write(self, text: str) -> int:
        if not self.closed_by_reader:
            try:
                self.stream.write(text)
                self.stream.flush()
            except BrokenPipeError:
                self._reader_gone()
        return len(text)

    def flush(self) -> None:
        if not self.closed_by_reader:
            try:
                self.stream.flush()
            except BrokenPipeError:
                self._reader_gone()

    def isatty(self) -> bool:
        return self.stream.isatty()

    def _reader_gone(self) -> None:
        self.closed_by_reader = True
        # Python flushes stdout again at exit: point it at /dev/null so that cannot fail.
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.stream.fileno())
            os.close(devnull)


def run(opts: Options, out: TextIO) -> int:
    words = opts.words
    if words[:1] == ["lab"]:
        return _lab(words[1:], opts, out)
    if words[:1] == ["demo"]:
        return _demo(words[1:], opts, out)
    if words[:1] == ["thumbprint"]:
        return _thumbprint(words[1:], opts, out)
    command = grammar.parse(" ".join(_quote(w) for w in words))
    if isinstance(command, grammar.Help):
        text = grammar.usage(command.topic)
        if command.topic is None:
            text += (
                "\n\nTerminal only: `clones lab up|down|status|build`, `clones demo`, "
                "`clones thumbprint [URL]` (vCenter's certificate fingerprint, to pin);"
                " options --json, --yes, --chart FILE, --config FILE, -v."
            )
        print(text.replace("`", ""), file=out)
        return EXIT_OK

    from bot.bootstrap import build

    settings = load_settings(opts.config)
    app = build(settings)
    actor = os.environ.get("CLONES_USER") or getpass.getuser()
    try:
        svc = app.service
        if isinstance(command, CHANGING_COMMANDS):
            _warn_abandoned(app)
        if isinstance(command, grammar.Deploy):
            if command.at:
                scheduled = _schedules(app).schedule_deploy(command, actor=actor, source="cli")
                return _show_schedule(scheduled, opts, out, app)
            # `until` alone: check it (and the cap) before deploying, record it after.
            times = _schedules(app).deploy_times(command) if command.until else None
            with _Progress(out, enabled=not opts.json) as progress:
                result = svc.deploy(command, actor=actor, source="cli", on_event=progress)
            code = _show_deploy(result, opts, out)
            if times is not None and times.ends_at is not None and result.ready:
                ended = _schedules(app).set_end(
                    result.environment, times.ends_at, actor=actor, source="cli"
                )
                print(ended.message, file=sys.stderr if opts.json else out)
            return code
        if isinstance(command, grammar.Schedule):
            scheduled = _schedules(app).schedule(command, actor=actor, source="cli")
            return _show_schedule(scheduled, opts, out, app)
        if isinstance(command, grammar.Extend):
            extended = _schedules(app).extend(
                command.environment, command.by, actor=actor, source="cli"
            )
            return _show_schedule(extended, opts, out, app)
        if isinstance(command, grammar.CancelSchedule):
            cancelled = _schedules(app).cancel(command.environment, actor=actor, source="cli")
            return _show_schedule(cancelled, opts, out, app)
        if isinstance(command, grammar.Teardown):
            plan = svc.teardown_plan(command.environment)
            if not opts.yes and not _confirm(plan, opts, out):
                print("Cancelled: nothing was destroyed.", file=out)
                return EXIT_OK
            with _Progress(out, enabled=not opts.json) as progress:
                result_t = svc.teardown(
                    command.environment, actor=actor, source="cli", on_event=progress
                )
            return _show_teardown(result_t, opts, out)
        if isinstance(command, grammar.Status):
            return _show_status(svc.status(command.environment), command, opts, out, app)
        if isinstance(command, grammar.Savings):
            return _show_savings(svc.savings(command.environment), command.environment, opts, out)
        if isinstance(command, grammar.Types):
            return _show_types(svc.types(), opts, out)
        if isinstance(command, grammar.Prepare):
            return _show_prepare(app.admin.prepare(command, actor=actor), opts, out)
        if isinstance(command, grammar.Power):
            return _show_power(app.admin.power(command, actor=actor), opts, out)
        if isinstance(command, grammar.Plan):
            return _show_plan(app.admin.plan(command), opts, out)
        if isinstance(command, grammar.Inventory):
            return _show_inventory(app.admin.inventory(command.environment), opts, out)
        if isinstance(command, grammar.Resume):
            with _Progress(out, enabled=not opts.json) as progress:
                report = app.recovery.recover(actor=actor, on_event=progress)
            if opts.json:
                print(json.dumps(_plain(report), indent=2), file=out)
            else:
                print(report.text, file=out)
            if report.left or report.unchecked:
                return EXIT_ERROR
            return EXIT_OK if report.complete else EXIT_PARTIAL
        if isinstance(command, grammar.Orphans):
            return _orphans(command, app, actor, opts, out)
        if isinstance(command, grammar.Check):
            return _show_check(Checker(app.service).run(), opts, out)
        if isinstance(command, grammar.Refresh):
            if not opts.yes and not _confirm_refresh(command.environment, app, out):
                print("Cancelled: nothing was changed.", file=out)
                return EXIT_OK
            with _Progress(out, enabled=not opts.json) as progress:
                refreshed = app.admin.refresh(command, actor=actor, on_event=progress)
            return _show_refresh(refreshed, opts, out)
        raise UsageError(f'"{words[0]}" is not available in the terminal; type "clones help".')
    finally:
        app.close()


# ===================================================================== schedules
def _schedules(app: Any) -> ScheduleService:
    """The schedule service over this process's service layer (it writes SQLite; the bot process
    that holds the scheduler lock runs the jobs)."""
    return ScheduleService(app.settings, app.repo, app.service)


def _show_schedule(result: ScheduleResult, opts: Options, out: TextIO, app: Any) -> int:
    running = SchedulerLock(lock_path_for(app.settings.database)).is_held_elsewhere()
    if opts.json:
        data = {
            "environment": result.environment,
            "starts_at": _iso(result.starts_at),
            "ends_at": _iso(result.ends_at),
            "changed": result.changed,
            "message": result.message,
            "scheduler_running": running,
        }
        print(json.dumps(data, indent=2), file=out)
        return EXIT_OK
    print(result.message, file=out)  # says so when no bot runs the scheduler (keeper_note)
    return EXIT_OK


# ===================================================================== rendering
def _show_deploy(result: DeployResult, opts: Options, out: TextIO) -> int:
    if opts.chart and result.savings is not None:
        _write_chart(result.savings, opts.chart, result.environment)
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
        print(
            f"{len(result.ready)} of {result.requested} linked clones ready in "
            f"{result.environment} ({result.elapsed_s:.1f} s).",
            file=out,
        )
        for line in _failure_lines(result.failed):
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


def _failure_lines(failed: Sequence[FailedClone]) -> list[str]:
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


def _confirm(plan: TeardownPlan, opts: Options, out: TextIO) -> bool:
    print(_plan_text(plan), file=out)
    if not sys.stdin.isatty():
        raise UsageError(
            f"Strip back needs confirmation: run `clones teardown {plan.environment} --yes`."
        )
    answer = input(f"Type {plan.environment} to destroy these clones: ").strip()
    return answer == plan.environment


def _plan_text(plan: TeardownPlan) -> str:
    kinds = ", ".join(f"{n} {t}" for t, n in plan.by_type.items())
    return (
        f"Strip back {plan.environment}: power off and destroy {plan.clones} clones ({kinds}), "
        f"reclaiming about {plan.reclaim_gb:.2f} GB. Parents and their snapshots are kept."
    )


def _show_teardown(result: TeardownResult, opts: Options, out: TextIO) -> int:
    if opts.json:
        print(
            json.dumps(
                {
                    "run": result.run_id,
                    "environment": result.environment,
                    "state": result.state.value,
                    "destroyed": result.destroyed,
                    "already_gone": result.already_gone,
                    "skipped": [f.__dict__ for f in result.skipped],
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
        print(
            f"Stripped back {result.environment}: {len(result.destroyed)} clones destroyed, "
            f"{result.reclaimed_gb:.2f} GB reclaimed ({result.elapsed_s:.1f} s).",
            file=out,
        )
        if result.already_gone:
            print(f"  already gone from vCenter: {len(result.already_gone)}", file=out)
        for old, new in sorted(result.renamed.items()):
            print(f"  {old}, now named {new}: destroyed", file=out)
        for f in result.skipped:
            print(f"  left alone: {f.name}: {f.error}", file=out)
        for f in result.failed:
            print(f"  failed: {f.name}: {f.error}", file=out)
    if result.state is RunState.SUCCEEDED:
        return EXIT_OK
    return EXIT_PARTIAL if result.state is RunState.PARTIAL else EXIT_ERROR


def _show_status(
    statuses: list[EnvironmentStatus],
    command: grammar.Status,
    opts: Options,
    out: TextIO,
    app: Any,
) -> int:
    if opts.json:
        envs = []
        for st in statuses:
            clones = st.clones or app.repo.clones(environment=st.environment.name)
            envs.append(
                {
                    "name": st.environment.name,
                    "owner": st.environment.owner,
                    "channel": st.environment.channel,
                    "created_at": _iso(st.environment.created_at),
                    "counts": st.by_type,
                    "clones": [
                        {
                            "name": c.name,
                            "type": c.type,
                            "state": c.state.value,
                            "parent": c.parent,
                            "moref": c.moref,
                            "host": c.host,
                            "power_state": c.power_state,
                            "customization": c.customization,
                            "error": c.error,
                            "drift": _plain(st.drift[c.id]) if c.id in st.drift else None,
                        }
                        for c in clones
                        if c.state.live or command.environment
                    ],
                    **(
                        {"checked_against_vcenter": st.checked, "unchecked": st.unchecked}
                        if command.environment
                        else {}
                    ),
                }
            )
        print(json.dumps({"environments": envs}, indent=2), file=out)
        return EXIT_OK
    if not statuses:
        print(
            'No environments with clones. Deploy one with "clones deploy capture 25 as x".',
            file=out,
        )
        return EXIT_OK
    for st in statuses:
        env = st.environment
        print(f"{env.name}  (owner {env.owner}, {st.live} live clones)", file=out)
        for label, when in (("deploys", env.starts_at), ("strips back", env.ends_at)):
            if when is not None:
                shown = describe_time(when, datetime.now(UTC), app.settings.timezone)
                print(f"  {label} {shown}", file=out)
        for t, states in sorted(st.by_type.items()):
            parts = ", ".join(f"{n} {s}" for s, n in sorted(states.items()))
            print(f"  {t:<14} {parts}", file=out)
        if command.environment:
            limit = app.settings.max_hosts_per_base_disk
            for parent, n in st.hosts_by_parent.items():
                print(f"  {parent}: clones on {n} host(s) (limit {limit} per base disk)", file=out)
            if st.checked:
                differ = len(st.drift)
                print(
                    "  vCenter: "
                    + (f"{differ} clone(s) differ from the records" if differ else "matches"),
                    file=out,
                )
            else:
                print(f"  vCenter not checked, records shown as they are: {st.unchecked}", file=out)
            for c in st.clones:
                if c.state.live or c.state in (CloneState.FAILED, CloneState.MISSING):
                    power = {"poweredOn": "on", "poweredOff": "off"}.get(c.power_state or "", "")
                    extra = f"  {c.error}" if c.error else ""
                    if c.id in st.drift:
                        extra = f"  ! {st.drift[c.id].text}" + extra
                    print(
                        f"    {c.name:<16} {c.type:<14} {c.state.value:<10} {power:<4}{extra}",
                        file=out,
                    )
    return EXIT_OK


def _show_savings(s: Savings, environment: str | None, opts: Options, out: TextIO) -> int:
    if opts.chart:
        _write_chart(s, opts.chart, environment)
    if opts.json:
        data = {"environment": environment, **s.as_dict()}
        print(json.dumps(data, indent=2), file=out)
        return EXIT_OK
    print(f"Savings for {environment or 'all environments'}:", file=out)
    print(format_table(s), file=out)
    if opts.chart:
        print(f"Chart written to {opts.chart}", file=out)
    return EXIT_OK


def _show_types(types: list[TypeStatus], opts: Options, out: TextIO) -> int:
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
        size = ""
        if ts.parent:
            size = (
                f"  {ts.parent.used_bytes / 2**30:.2f} GB used of "
                f"{ts.parent.provisioned_bytes / 2**30:.2f} GB"
            )
        print(f"{ts.type.name:<14} parent {ts.type.parent:<14} {ts.readiness}{size}", file=out)
    return EXIT_OK


def _show_prepare(report: PrepareReport, opts: Options, out: TextIO) -> int:
    if opts.json:
        print(json.dumps(_plain(report), indent=2), file=out)
    else:
        verdict = "ready for linked clones" if report.ready else "NOT ready"
        print(f"{report.type} (parent {report.parent}): {verdict}", file=out)
        marks = {"ok": "ok", "done": "done", "advice": "advice", "problem": "PROBLEM"}
        for f in report.findings:
            print(f"  {marks.get(f.level, f.level):<8} {f.text}", file=out)
    return EXIT_OK if report.ready else EXIT_ERROR


def _show_power(result: PowerResult, opts: Options, out: TextIO) -> int:
    if opts.json:
        print(json.dumps(_plain(result), indent=2), file=out)
    else:
        print(
            f"Power {result.action} {result.environment}: {len(result.done)} done, "
            f"{len(result.failed)} failed.",
            file=out,
        )
        for f in [*result.failed, *result.skipped]:
            print(f"  {f.name}: {f.error}", file=out)
    return EXIT_OK if not result.failed and not result.skipped else EXIT_PARTIAL


def _show_plan(plan: PlanResult, opts: Options, out: TextIO) -> int:
    if opts.json:
        data = {
            "estimate": plan.estimate.as_dict(),
            "power_on": plan.power_on,
            "fits": plan.fits,
            "datastores": [{**_plain(n), "fits": n.fits} for n in plan.needs],
        }
        print(json.dumps(data, indent=2), file=out)
        return EXIT_OK if plan.fits else EXIT_ERROR
    print("Estimated sizes (nothing is created):", file=out)
    print(format_table(plan.estimate), file=out)
    for n in plan.needs:
        gb = 2**30
        verdict = "fits" if n.fits else "DOES NOT FIT"
        swap = f" (incl. {n.swap_bytes / gb:.2f} GB swap)" if n.swap_bytes else ""
        print(
            f"Datastore {n.datastore}: {n.free_bytes / gb:.2f} GB free, needs "
            f"{n.needed_bytes / gb:.2f} GB{swap} + {n.headroom_bytes / gb:.2f} GB headroom: "
            f"{verdict}",
            file=out,
        )
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
)


def _show_inventory(rows: list[InventoryRow], opts: Options, out: TextIO) -> int:
    extra = sorted({k for r in rows for k in r.attributes})
    if opts.json:
        print(json.dumps([_plain(r) for r in rows], indent=2), file=out)
    elif opts.csv:
        writer = csv.writer(out)
        writer.writerow([*INVENTORY_COLUMNS, *extra])
        for r in rows:
            plain = _plain(r)
            writer.writerow(
                [plain[c] for c in INVENTORY_COLUMNS] + [r.attributes.get(k, "") for k in extra]
            )
    elif not rows:
        print("No clones recorded.", file=out)
    else:
        for r in rows:
            attrs = " ".join(f"{k}={v}" for k, v in sorted(r.attributes.items()))
            print(
                f"{r.name:<14} {r.type:<13} {r.environment:<14} {r.power_state or r.state:<10} "
                f"{r.committed_gb:>6.2f} GB  {r.host:<14} {r.deployed_by} {r.deployed_at} {attrs}",
                file=out,
            )
    return EXIT_OK


def _confirm_refresh(environment: str, app: Any, out: TextIO) -> bool:
    n = len(app.repo.clones(environment=environment, states=[CloneState.READY]))
    print(
        f"Refresh {environment}: destroy and re-create {n} clones from the current base "
        "snapshot (same names and attributes; whatever is on them now is lost).",
        file=out,
    )
    if not sys.stdin.isatty():
        raise UsageError(f"Refresh needs confirmation: run `clones refresh {environment} --yes`.")
    return input(f"Type {environment} to refresh: ").strip() == environment


def _show_refresh(result: RefreshResult, opts: Options, out: TextIO) -> int:
    if opts.json:
        print(json.dumps(_plain(result), indent=2), file=out)
    else:
        print(
            f"Refreshed {result.environment}: {len(result.refreshed)} clones re-created from the "
            f"current base snapshot ({result.elapsed_s:.1f} s).",
            file=out,
        )
        for f in [*result.failed, *result.skipped]:
            print(f"  {f.name}: {f.error}", file=out)
    if result.state is RunState.SUCCEEDED:
        return EXIT_OK
    return EXIT_PARTIAL if result.state is RunState.PARTIAL else EXIT_ERROR


CHANGING_COMMANDS = (grammar.Deploy, grammar.Teardown, grammar.Refresh, grammar.Power)


def _warn_abandoned(app: Any) -> None:
    runs = app.recovery.abandoned()
    if runs:
        names = ", ".join(f"{r.kind.value} of {r.environment} (run {r.id})" for r in runs[:5])
        print(
            f"clones: note: {len(runs)} interrupted run(s): {names}. "
            'Run "clones resume" to finish them.',
            file=sys.stderr,
        )


def _orphans(command: grammar.Orphans, app: Any, actor: str, opts: Options, out: TextIO) -> int:
    orphans = app.recovery.orphans()
    ours = [o for o in orphans if o.ours]
    foreign = [o for o in orphans if not o.ours]
    if opts.json and command.action is None:
        rows = [
            {
                "name": o.vm.name,
                "moref": o.vm.moref,
                "ours": o.ours,
                "environment": o.vm.attributes.get("Environment", ""),
                "linked": o.vm.linked,
            }
            for o in orphans
        ]
        print(json.dumps({"orphans": rows}, indent=2), file=out)
        return EXIT_OK
    if not orphans:
        print("No orphans: every VM marked as this bot's is recorded.", file=out)
        return EXIT_OK
    for o in ours:
        env = o.vm.attributes.get("Environment", "?")
        print(f"  {o.vm.name:<16} {o.vm.moref:<10} made by this bot (environment {env})", file=out)
    for o in foreign:
        print(
            f"  {o.vm.name:<16} {o.vm.moref:<10} carries ManagedBy but was not made by this bot: "
            "never touched",
            file=out,
        )
    if command.action is None:
        if ours:
            print(
                'Run "clones orphans adopt" or "clones orphans remove" to deal with them.', file=out
            )
        return EXIT_OK
    if not ours:
        print("Nothing this bot made to adopt or remove.", file=out)
        return EXIT_OK
    if not opts.yes:
        if not sys.stdin.isatty():
            raise UsageError(f"Confirm with: clones orphans {command.action} --yes")
        answer = input(f"{command.action} {len(ours)} VMs? Type {command.action} to confirm: ")
        if answer.strip() != command.action:
            print("Cancelled: nothing was changed.", file=out)
            return EXIT_OK
    problems = 0
    for o in ours:
        if command.action == "adopt":
            try:
                clone = app.recovery.adopt(o, actor=actor)
                print(f"  adopted {o.vm.name} into {clone.environment}", file=out)
            except ClonesError as exc:
                problems += 1
                print(f"  {o.vm.name}: {exc}", file=out)
        else:
            failure = app.recovery.remove(o, actor=actor)
            if failure is None:
                print(f"  removed {o.vm.name}", file=out)
            else:
                problems += 1
                print(f"  {o.vm.name}: {failure.error}", file=out)
    return EXIT_OK if not problems else EXIT_PARTIAL


def _plain(obj: Any) -> Any:
    """Dataclasses, enums and paths as JSON-ready values."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, datetime):
        return obj.isoformat()
    return obj


def _write_chart(s: Savings, path: Path, environment: str | None) -> None:
    from bot.adapters.chart import write_savings_chart

    write_savings_chart(s, path)


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


class _Progress:
    """A progress bar on a terminal; plain lines otherwise (logs, CI)."""

    def __init__(self, out: TextIO, enabled: bool) -> None:
        self.out = out
        self.enabled = enabled
        self.bar: tqdm[Any] | None = None
        self.tty = sys.stderr.isatty()

    def __enter__(self) -> Callable[[ProgressEvent], None]:
        return self.on_event

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()

    def on_event(self, e: ProgressEvent) -> None:
        if not self.enabled:
            return
        if e.kind == "started":
            print(e.message, file=sys.stderr)
            if self.tty:
                self.bar = tqdm(total=e.total, unit="vm", file=sys.stderr, dynamic_ncols=True)
            return
        if e.kind in ("clone_ready", "clone_failed"):
            if self.bar is not None:
                self.bar.update(1)
                self.bar.set_postfix(ok=e.done, failed=e.failed)
            elif e.kind == "clone_failed" or (e.done + e.failed) % 10 == 0 or e.remaining == 0:
                eta = f", ETA {e.eta_s:.0f} s" if e.eta_s is not None and e.remaining else ""
                print(
                    f"  [{e.done + e.failed}/{e.total}] {e.done} ok, {e.failed} failed{eta}",
                    file=sys.stderr,
                )
            if e.kind == "clone_failed":
                msg = f"  {e.clone}: {e.message}"
                if self.bar is not None:
                    self.bar.write(msg, file=sys.stderr)
                else:
                    print(msg, file=sys.stderr)
        elif e.kind == "clone_retry" and self.bar is None:
            print(f"  retrying {e.clone}: {e.message}", file=sys.stderr)


def _show_check(report: CheckReport, opts: Options, out: TextIO) -> int:
    if opts.json:
        data = {"ok": report.ok, "findings": [_plain(f) for f in report.findings]}
        print(json.dumps(data, indent=2), file=out)
        return EXIT_OK if report.ok else EXIT_ERROR
    marks = {"ok": "ok", "note": "note", "problem": "PROBLEM"}
    for f in report.findings:
        fix = f" Fix: {f.fix}" if f.fix else ""
        print(f"{marks.get(f.level, f.level):<8} {f.subject}: {f.text}{fix}", file=out)
    problems = len(report.problems)
    if problems:
        print(f"{problems} problem(s) found: fix them, then run `clones check` again.", file=out)
    else:
        print("All checks passed: ready to deploy.", file=out)
    return EXIT_OK if report.ok else EXIT_ERROR


# ===================================================================== terminal-only verbs
def _thumbprint(words: list[str], opts: Options, out: TextIO) -> int:
    """`clones thumbprint [URL|HOST[:PORT]]`: the certificate an endpoint presents (default:
    the configured vCenter), whether the configuration trusts it, and the line that pins it."""
    from bot.adapters.vcenter import tls

    if len(words) > 1:
        raise UsageError("Usage: clones thumbprint [https://vcenter.example.com/sdk | HOST[:PORT]]")
    trust: dict[str, Any] = {}
    if words:
        target = words[0] if "://" in words[0] else f"https://{words[0]}"
    else:
        vc = load_settings(opts.config).vcenter
        if vc.is_lab:
            raise UsageError(
                'The lab vCenter (url = "lab") speaks plain http: it has no certificate. Give '
                "an address: clones thumbprint vcenter.example.com"
            )
        target = vc.url
        trust = {"insecure": vc.insecure, "ca_file": vc.ca_file, "thumbprint": vc.thumbprint}
        trust["timeout"] = vc.timeout_s
    parsed = urlsplit(target)
    if parsed.scheme != "https" or not parsed.hostname:
        raise UsageError(f"{target} is not an https address; e.g. clones thumbprint vc.example.com")
    host, port = parsed.hostname, parsed.port or 443
    try:
        seen = tls.inspect(host, port, **trust)
    except ssl.SSLError as exc:
        raise VCenterUnreachable(
            tls.explain(exc, where=f"{host}:{port}", pinned=False, ca_file=None)
        ) from None
    except OSError as exc:
        raise VCenterUnreachable(f"{host}:{port} is unreachable ({exc}).") from None
    cert = seen.certificate
    if opts.json:
        data = {
            "host": host,
            "port": port,
            "sha256": cert.sha256,
            "sha1": cert.sha1,
            "subject": cert.subject,
            "issuer": cert.issuer,
            "not_after": cert.not_after,
            "names": list(cert.names),
            "trusted": seen.trusted,
            "reason": seen.reason,
        }
        print(json.dumps(data, indent=2), file=out)
        return EXIT_OK
    print(f"{host}:{port} presents this certificate:", file=out)
    print(f"  SHA-256   {cert.sha256}", file=out)
    print(
        f"  SHA-1     {cert.sha1.removeprefix('SHA1:')} (older vSphere screens show this)", file=out
    )
    if cert.subject:
        print(f"  subject   {cert.subject}", file=out)
        print(f"  issuer    {cert.issuer}", file=out)
        print(f"  expires   {cert.not_after}", file=out)
        print(f"  names     {', '.join(cert.names) or '(none)'}", file=out)
    if trust:
        verdict = "trusted by clones.toml" if seen.trusted else f"NOT trusted: {seen.reason}"
        print(f"With the current [vcenter] settings: {verdict}", file=out)
    print(
        "Compare the SHA-256 fingerprint with vCenter's own (vSphere Client, Administration, "
        "Certificate Management, Machine SSL certificate), then pin it under [vcenter]:",
        file=out,
    )
    print(f"  {seen.toml_line}", file=out)
    return EXIT_OK


def _lab(words: list[str], opts: Options, out: TextIO) -> int:
    from bot.adapters import lab

    parser = argparse.ArgumentParser(prog="clones lab", exit_on_error=False, add_help=False)
    parser.add_argument("action", choices=["up", "down", "status", "build"])
    parser.add_argument("--spec", type=Path)
    parser.add_argument("--port", type=int)
    parser.add_argument("--restart", action="store_true")
    try:
        args = parser.parse_args(words)
    except (argparse.ArgumentError, SystemExit):
        raise UsageError(
            "Usage: clones lab up [--spec FILE] [--port N] [--restart] | clones lab down | "
            "clones lab status | clones lab build"
        ) from None
    if args.action == "build":
        path = lab.ensure_built(log=lambda m: print(m, file=sys.stderr))
        print(f"lab vCenter built: {path}", file=out)
        return EXIT_OK
    if args.action == "down":
        stopped = lab.lab_down()
        print("lab vCenter stopped." if stopped else "lab vCenter was not running.", file=out)
        return EXIT_OK
    if args.action == "status":
        info = lab.running_lab()
        if info is None:
            print("lab vCenter is not running; start it with `clones lab up`.", file=out)
            return EXIT_ERROR
    else:
        info = lab.lab_up(spec=args.spec, port=args.port, restart=args.restart)
    if opts.json:
        print(json.dumps(info.__dict__, indent=2), file=out)
    else:
        print(
            f"lab vCenter running at {info.url} (pid {info.pid})\n"
            f"  user {info.user}, password {info.password} (a lab-only password)\n"
            f"  control {info.control}\n"
            "The bundled configuration uses it: `clones types`, `clones deploy capture 5 as try`.",
            file=out,
        )
    return EXIT_OK


def _demo(words: list[str], opts: Options, out: TextIO) -> int:
    """The origin's lab: 25 clones of each type, the savings table and chart, then strip back."""
    from bot.bootstrap import build
    from bot.settings import BUNDLED_LAB_CONFIG

    if words:
        raise UsageError("Usage: clones demo [--chart FILE]")
    settings = load_settings(opts.config) if opts.config else load_settings(BUNDLED_LAB_CONFIG)
    if not settings.vcenter.is_lab:
        raise UsageError('The demo runs against the bundled lab vCenter only (url = "lab").')
    workdir = Path(tempfile.mkdtemp(prefix="clones-demo-"))
    from dataclasses import replace

    settings = replace(settings, database=workdir / "demo.db")
    chart = opts.chart or Path("savings.png")
    app = build(settings)
    try:
        svc = app.service
        env = "demo"
        items = " ".join(f"{t} 25" for t in settings.types)
        print(f"Demo: deploy {items} as {env} against the lab vCenter", file=out)
        command = grammar.parse(f"deploy {items} as {env}")
        assert isinstance(command, grammar.Deploy)
        with _Progress(out, enabled=True) as progress:
            result = svc.deploy(command, actor="demo", source="cli", on_event=progress)
        code = _show_deploy(result, Options(False, True, chart, False, None, False, []), out)
        with _Progress(out, enabled=True) as progress:
            stripped = svc.teardown(env, actor="demo", source="cli", on_event=progress)
        _show_teardown(stripped, Options(False, True, None, False, None, False, []), out)
        return code
    finally:
        app.close()


# ===================================================================== helpers
def _quote(word: str) -> str:
    return word if word and not any(c in word for c in " '\"\\") else json.dumps(word)


def _error(message: str) -> None:
    print(f"clones: {message}", file=sys.stderr)


def _write_crash_report() -> Path:
    """The traceback, in a file of the user's own (never a shared, predictable path)."""
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    folder = base / "clones" / "crashes"
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, name = tempfile.mkstemp(
            prefix=time.strftime("crash-%Y%m%d-%H%M%S-"), suffix=".log", dir=folder
        )
    except OSError:
        fd, name = tempfile.mkstemp(prefix="clones-crash-", suffix=".log")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(traceback.format_exc())
    return Path(name)


if __name__ == "__main__":
    raise SystemExit(main())
