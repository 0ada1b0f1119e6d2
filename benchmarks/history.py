"""10. A year of history (issue 26): `clones status` and App Home on a database holding a year of
finished courses answer within 10 ms of what they take on a database holding only what is live.

Two SQLite files hold the same live environments (three of 25 ready clones, one with a scheduled
strip back); one of them also holds a year of history, written with SQL (tests/history.py:
7,860 finished environments, 157,200 destroyed clones, their runs, members, assignments and
audit rows). Each is timed in the same run: `clones status` in-process through the console
script's code (settings, wiring, dispatch, the text printed), the Slack `/clones status` answer
and the App Home view through the code the handlers run (service layer, Block Kit, JSON; no
HTTP to Slack), and `clones history` (a read of the past, on request).
"""

from __future__ import annotations

import contextlib
import io
import os
import sqlite3
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.common import (
    Profile,
    Table,
    median_ms,
    settings_for,
    targets_table,
    timed,
    write_result,
)
from benchmarks.scale import PARENTS, _home, _read
from benchmarks.slackbot import FakeSlack, build_context, slack_settings
from bot import bootstrap
from bot.domain import grammar
from bot.domain.models import CloneState, ParentFacts
from handlers.app import make_client
from storage import Repository
from tests.helpers import to_toml
from tests.history import fill

TARGET_EXTRA_MS = 10.0
_KEYS = {"clones status": "cli_status_extra", "/clones status": "slack_status_extra"}
_KEYS["app home"] = "app_home_extra"
GIB = 2**30
LIVE = (("live-capture", "capture", "Capture"), ("live-packaging", "packaging", "Packaging"))


def seed_live(path: Path) -> None:
    """What is live: two environments of 25 ready clones and one with a strip back to come."""
    with Repository(path) as repo:
        for name, disk_gb, used_gb in PARENTS:
            repo.save_parent_facts(ParentFacts(name, int(disk_gb * GIB), int(used_gb * GIB)))
        for env, type_name, parent in LIVE:
            repo.ensure_environment(env, owner="UBENCHOP", channel="CBENCH")
            for c in repo.reserve_clones(
                environment=env,
                type=type_name,
                parent=parent,
                pattern=f"{env.upper()}-{{n:03}}",
                count=25,
                run_id=None,
            ):
                repo.update_clone(c.id, state=CloneState.CLONING)
                repo.update_clone(
                    c.id,
                    state=CloneState.READY,
                    moref=f"vm-{c.id}",
                    delta_bytes=int(0.13 * GIB),
                    power_state="poweredOff",
                )
        repo.ensure_environment("next-week", owner="UBENCHOP", channel="CBENCH")
        repo.update_environment("next-week", ends_at=datetime.now(UTC) + timedelta(days=7))


def _cli(config: Path) -> float:
    """One `clones status` in this process (stdout discarded); seconds."""
    os.environ["CLONES_CONFIG"] = str(config)
    out = io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stdout(out):
        code = bootstrap.cli(["status"])
    took = time.perf_counter() - started
    if code != 0 or "live-capture" not in out.getvalue():
        raise RuntimeError(f"clones status failed ({code}): {out.getvalue()[:300]}")
    return took


def measure(path: Path, fake: FakeSlack, repeats: int) -> dict[str, float]:
    settings = slack_settings(settings_for(None, path), fake)
    config = path.with_suffix(".toml")
    config.write_text(
        to_toml(
            {
                "vcenter": {"url": "http://127.0.0.1:9/sdk", "user": "x", "insecure": True},
                "clones": {"database": str(path)},
                "types": {
                    t.name: {
                        "parent": t.parent,
                        "folder": t.folder,
                        "resource_pool": t.resource_pool,
                        "datastore": t.datastore,
                        "name_pattern": t.name_pattern,
                    }
                    for t in settings.types.values()
                },
            }
        ),
        encoding="utf-8",
    )
    core = bootstrap.build(settings, start_lab=False)
    try:
        bot, _ = build_context(core, make_client(core.settings.slack, "xoxb-bench"))
        ctx = bot.ctx
        views = {
            "clones status": lambda: _cli(config),
            "/clones status": lambda: _read(ctx, grammar.Status(None)),
            "app home": lambda: _home(ctx),
            "clones history": lambda: _read(ctx, grammar.History(None)),
        }
        out: dict[str, float] = {}
        for name, fn in views.items():
            fn()  # warm: connections, page cache
            samples, _ = timed(fn, repeats)
            out[name] = median_ms(samples)
        ctx.jobs.shutdown(wait=False)
        return out
    finally:
        core.close()


def used_bytes(path: Path) -> int:
    """The bytes the database's pages hold (free pages left out), WAL checkpointed first."""
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
        size = conn.execute("PRAGMA page_size").fetchone()[0]
        return int((pages - free) * size)
    finally:
        conn.close()


def course_growth(path: Path, courses: int) -> dict[str, float]:
    """What one course adds to the database, as the services write it (the same rows as from
    Slack, less its replay keys, which expire): 25 clones deployed, assigned to 25 trainees and
    stripped back, through the service layer over an in-memory vCenter (tests/fakes.py)."""
    from bot.services.admin import Admin
    from bot.services.container import Services
    from bot.services.dispatch import Invocation, dispatch
    from bot.services.recovery import Recovery
    from bot.services.usecases import UseCases
    from tests.fakes import FakePeople, FakeVCenter

    settings = settings_for(None, path)
    repo, vcenter = Repository(path), FakeVCenter()
    service = UseCases(settings, repo, vcenter)
    services = Services(settings, repo, vcenter, service, Admin(service), Recovery.over(service))
    people = FakePeople()
    trainees = [f"UT{n:04d}" for n in range(25)]
    for user in trainees:
        people.add(user, f"Trainee {user}", f"{user.lower()}@example.com")
    service.trainees.connect(people, people, staff=lambda user: user == "UTRAINER")
    who = Invocation("UTRAINER", "slack", channel="CBENCH")
    try:
        before = used_bytes(path)
        for i in range(courses):
            env = f"course-{i:04d}"
            dispatch(
                services,
                grammar.parse(f"deploy capture 10 packaging 10 verification 5 as {env}"),
                who,
            )
            dispatch(
                services,
                grammar.parse(f"assign {env} " + " ".join(f"<@{u}>" for u in trainees)),
                who,
            )
            dispatch(services, grammar.Teardown(env), who)
        after = used_bytes(path)
    finally:
        services.close()
    per_course = (after - before) / courses
    return {
        "courses": courses,
        "kb_per_course": round(per_course / 1024, 1),
        "mb_per_100_courses": round(per_course * 100 / 2**20, 2),
    }


def run(profile: Profile, out_dir: Path) -> dict[str, Any]:
    environments = profile.history_environments
    fake = FakeSlack().start()
    saved_config = os.environ.get("CLONES_CONFIG")
    try:
        with tempfile.TemporaryDirectory(prefix="clones-history-") as tmp:
            empty, year = Path(tmp) / "empty.db", Path(tmp) / "year.db"
            for path in (empty, year):
                seed_live(path)
            started = time.perf_counter()
            made = fill(year, environments=environments)
            fill_s = time.perf_counter() - started
            size_mb = round(sum(p.stat().st_size for p in Path(tmp).glob("year.db*")) / 2**20, 1)
            repeats = max(profile.repeats * 4, 5)
            times = {"empty": measure(empty, fake, repeats), "year": measure(year, fake, repeats)}
            growth = course_growth(Path(tmp) / "courses.db", profile.history_courses)
    finally:
        fake.stop()
        if saved_config is None:
            os.environ.pop("CLONES_CONFIG", None)
        else:
            os.environ["CLONES_CONFIG"] = saved_config
    table = Table(
        f"10. A year of history: {made.environments:,} finished environments, "
        f"{made.clones:,} destroyed clones, {made.runs:,} runs ({size_mb} MB, written in "
        f"{fill_s:.1f} s), beside 3 live environments; medians of {repeats}",
        ["read", "live only ms", "with a year ms", "extra ms", "target"],
    )
    targets: dict[str, dict[str, Any]] = {}
    for name in times["empty"]:
        extra = round(times["year"][name] - times["empty"][name], 1)
        target = "" if name == "clones history" else f"<= {TARGET_EXTRA_MS:g} ms"
        table.add(name, times["empty"][name], times["year"][name], extra, target or "(on request)")
        if target:
            key = _KEYS[name]
            targets[key] = {"value": extra, "target": target, "met": extra <= TARGET_EXTRA_MS}
    checks = targets_table(targets)
    print(table.render())
    print(
        f"   a course of 25 clones (deployed, assigned, stripped back) adds "
        f"{growth['kb_per_course']} KB to the database ({growth['mb_per_100_courses']} MB per "
        f"100 courses; measured over {growth['courses']})"
    )
    print(checks.render())
    data = {
        "params": {
            "environments": made.environments,
            "clones": made.clones,
            "runs": made.runs,
            "audit": made.audit,
            "database_mb": size_mb,
            "repeats": repeats,
        },
        "times_ms": times,
        "course_growth": growth,
        "targets": targets,
        "tables": [table.to_json(), checks.to_json()],
    }
    write_result("history", profile, data, out_dir)
    return data
