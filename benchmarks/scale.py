"""4. Scale: status, savings and App Home render times on a big database, and idle memory.

SQLite is filled directly through storage.Repository (no vCenter: these views read only SQLite,
including the parents' sizes kept by `save_parent_facts`). Each view is timed through the same
code the Slack handlers run (service layer + handlers/blocks rendering + JSON encoding of the
payload), without the HTTP round trip to Slack. Memory is the resident set of a bot process
started in HTTP mode with dummy tokens against the fake Slack Web API.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.common import (
    ROOT,
    TYPES,
    Profile,
    Table,
    median_ms,
    settings_for,
    targets_table,
    timed,
    write_result,
)
from benchmarks.slackbot import (
    CHANNEL,
    OPERATOR,
    SECRET,
    FakeSlack,
    build_context,
    sign,
    slack_settings,
    slash_body,
)
from bot import bootstrap
from bot.domain import grammar
from bot.domain.models import CloneState, ParentFacts
from bot.settings import Settings
from handlers.app import make_client
from storage import Repository

TARGET_RENDER_MS = 200.0
TARGET_RSS_MB = 200.0
GIB = 2**30
PARENTS = (  # the lab's default parents: provisioned and used GB
    ("Capture", 11, 3.34),
    ("Packaging", 8, 3.72),
    ("Verification", 8, 2.49),
)


def seed(repo: Repository, clones: int, environments: int, audit_rows: int) -> str:
    """Fill the database; return the name of the largest environment."""
    for name, disk_gb, used_gb in PARENTS:
        repo.save_parent_facts(
            ParentFacts(name, int(disk_gb * GIB), int(used_gb * GIB), memory_mb=1024)
        )
    now = datetime.now(UTC)
    per_env = [
        clones // environments + (1 if i < clones % environments else 0)
        for i in range(environments)
    ]
    parents = dict(zip(TYPES, (p[0] for p in PARENTS), strict=True))
    patterns = {t: f"TRN-{t[:3].upper()}-{{n:03}}" for t in TYPES}
    made = 0
    for e, count in enumerate(per_env):
        env = f"cohort-{e:03d}"
        owner = f"U{e:08d}"
        with repo.transaction():
            repo.ensure_environment(env, owner=owner, channel=f"C{e:08d}")
            if e % 3 == 0:  # a third have a scheduled strip back
                repo.update_environment(env, ends_at=now + timedelta(days=1 + e % 5))
            for i, t in enumerate(TYPES):
                n = count // len(TYPES) + (1 if i < count % len(TYPES) else 0)
                reserved = repo.reserve_clones(
                    environment=env,
                    type=t,
                    parent=parents[t],
                    pattern=patterns[t],
                    count=n,
                    run_id=None,
                )
                for c in reserved:
                    made += 1
                    if made % 20 == 0:
                        repo.update_clone(c.id, state=CloneState.FAILED, error="FileLocked: busy")
                    elif made % 20 == 1:
                        repo.update_clone(c.id, state=CloneState.DESTROYED)
                    else:
                        repo.update_clone(c.id, state=CloneState.CLONING)
                        repo.update_clone(
                            c.id,
                            state=CloneState.READY,
                            moref=f"vm-{c.id}",
                            instance_uuid=f"00000000-0000-0000-0000-{c.id:012d}",
                            delta_bytes=int(0.13 * GIB),
                            host=f"host-{c.id % 8 + 1}",
                            power_state="poweredOff",
                        )
    with repo.transaction():
        for i in range(audit_rows):
            repo.audit(
                actor=f"U{i % environments:08d}",
                source="slack" if i % 2 else "cli",
                channel=CHANNEL,
                command=f"status cohort-{i % environments:03d}",
                result="ok",
                detail=f"row {i}",
            )
    return f"cohort-{max(range(environments), key=lambda i: per_env[i]):03d}"


@dataclass
class _Tell:
    """Stands in for handlers.context.Reply: keeps the JSON that would go to response_url."""

    sent: list[str] = field(default_factory=list)

    def __call__(self, text: str) -> object:
        self.sent.append(text)
        return None

    def rendered(self, r: Any, *, public: bool = False) -> object:
        self.sent.append(json.dumps({"text": r.text, "blocks": r.blocks}))
        return None


@dataclass
class _Client:
    """Stands in for WebClient in publish_home: keeps the JSON that would go to views.publish."""

    sent: list[str] = field(default_factory=list)

    def views_publish(self, **kwargs: Any) -> object:
        self.sent.append(json.dumps(kwargs))
        return None

    def chat_postMessage(self, **kwargs: Any) -> object:
        self.sent.append(json.dumps(kwargs))
        return None


def _read(ctx: Any, command: grammar.Command) -> int:
    from handlers.context import Request
    from handlers.verbs import reply

    tell = _Tell()
    reply(Request(ctx, command, OPERATOR, CHANNEL, None, tell))  # type: ignore[arg-type]
    if not tell.sent:
        raise RuntimeError(f"{command} rendered nothing")
    return len(tell.sent[-1])


def _home(ctx: Any) -> int:
    from handlers.listeners.home import publish_home

    client = _Client()
    publish_home(ctx, client, OPERATOR)  # type: ignore[arg-type]
    if not client.sent:
        raise RuntimeError("publish_home published nothing")
    return len(client.sent[-1])


def measure_renders(
    settings: Settings, fake: FakeSlack, biggest: str, repeats: int
) -> dict[str, Any]:
    core = bootstrap.build(slack_settings(settings, fake), start_lab=False)
    try:
        bot, wiring = build_context(core, make_client(core.settings.slack, "xoxb-bench"))
        ctx = bot.ctx
        views = {
            "status": lambda: _read(ctx, grammar.Status(None)),
            f"status {biggest}": lambda: _read(ctx, grammar.Status(biggest)),
            "savings": lambda: _read(ctx, grammar.Savings(None)),
            f"savings {biggest}": lambda: _read(ctx, grammar.Savings(biggest)),
            "app home": lambda: _home(ctx),
        }
        out: dict[str, Any] = {}
        for name, fn in views.items():
            fn()  # warm: connections, caches
            samples, size = timed(fn, repeats)
            out[name] = {
                "median_ms": median_ms(samples),
                "max_ms": round(max(samples) * 1000, 1),
                "payload_bytes": size,
            }
        ctx.jobs.shutdown(wait=False)
        return {"views": out, "wiring": wiring}
    finally:
        core.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rss_kb(pid: int) -> tuple[int, int]:
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields.get("VmRSS", 0), fields.get("VmHWM", 0)


def _wait_health(port: int, process: subprocess.Popen[bytes], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
                if r.status == 200:
                    return True
        except OSError:
            time.sleep(0.1)
    return False


def _post(url: str, body: str, headers: dict[str, str]) -> None:
    request = urllib.request.Request(url, data=body.encode(), headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


def measure_memory(database: Path, fake: FakeSlack, tmp: Path) -> dict[str, Any]:
    """RSS of a started bot (HTTP mode, dummy tokens, fake Slack), idle and after serving reads."""
    config = tmp / "clones.toml"
    lines = [
        "[vcenter]",
        'url = "http://127.0.0.1:9/sdk"',  # not contacted: these reads need only SQLite
        'user = "clones"',
        "insecure = true",
        "",
        "[clones]",
        f"database = {json.dumps(str(database))}",
        "",
        "[slack]",
        f'operators = ["{OPERATOR}"]',
        f"api_url = {json.dumps(fake.api_url)}",
        "",
    ]
    for t in TYPES:
        lines += [
            f"[types.{t}]",
            f'parent = "{dict(zip(TYPES, (p[0] for p in PARENTS), strict=True))[t]}"',
            f'name_pattern = "TRN-{t[:3].upper()}-{{n:03}}"',
            'folder = "Training"',
            'resource_pool = "Training"',
            'datastore = "TrainingDS"',
            "",
        ]
    config.write_text("\n".join(lines), encoding="utf-8")
    attempts = [[sys.executable, "-m", "bot"], [sys.executable, "-m", "benchmarks.idle_bot"]]
    for command in attempts:
        port = _free_port()
        env = {
            **os.environ,
            "CLONES_CONFIG": str(config),
            "SLACK_BOT_TOKEN": "xoxb-bench",
            "SLACK_SIGNING_SECRET": SECRET,
            "PORT": str(port),
            "CLONES_VCENTER_PASSWORD": "unused",
            "CLONES_LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(ROOT),
        }
        env.pop("SLACK_APP_TOKEN", None)
        process = subprocess.Popen(
            command, cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        try:
            if not _wait_health(port, process):
                process.kill()
                _, err = process.communicate(timeout=10)
                tail = err.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
                print(f"   ({' '.join(command[1:])} did not serve: {tail[0]})")
                continue
            time.sleep(1.0)
            idle = _rss_kb(process.pid)
            url = f"http://127.0.0.1:{port}/slack/events"
            before = len(fake.of("response_url")) + len(fake.of("views.publish"))
            for text in ("status", "savings", "status cohort-000"):
                body = slash_body(text, OPERATOR, CHANNEL, fake.response_url("mem"))
                _post(url, body, sign(body, SECRET))
            event = json.dumps(
                {
                    "token": "x",
                    "team_id": "T1",
                    "api_app_id": "A1",
                    "type": "event_callback",
                    "event_id": "EvMem",
                    "event_time": int(time.time()),
                    "event": {"type": "app_home_opened", "user": OPERATOR, "tab": "home"},
                }
            )
            headers = sign(event, SECRET)
            headers["Content-Type"] = "application/json"
            _post(url, event, headers)

            def answered(seen: int = before) -> bool:
                return len(fake.of("response_url")) + len(fake.of("views.publish")) >= seen + 4

            fake.wait_for(answered, timeout=30)
            time.sleep(1.0)
            served = _rss_kb(process.pid)
            return {
                "command": " ".join(["python", *command[1:]]),
                "idle_rss_mb": round(idle[0] / 1024, 1),
                "after_reads_rss_mb": round(served[0] / 1024, 1),
                "peak_rss_mb": round(served[1] / 1024, 1),
            }
        finally:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            if process.stderr is not None:
                process.stderr.close()
    raise RuntimeError("neither `python -m bot` nor benchmarks.idle_bot started")


def run(profile: Profile, out_dir: Path) -> dict[str, Any]:
    sizes: dict[str, Any] = {}
    fake = FakeSlack().start()
    try:
        for n in profile.scale_sizes:
            with tempfile.TemporaryDirectory(prefix="clones-scale-") as tmp_name:
                tmp = Path(tmp_name)
                db = tmp / "clones.db"
                settings = settings_for(None, db)
                started = time.perf_counter()
                repo = Repository(db)
                biggest = seed(repo, n, profile.scale_environments, n * profile.audit_per_clone)
                repo.close()
                seed_s = time.perf_counter() - started
                renders = measure_renders(settings, fake, biggest, profile.repeats)
                memory = measure_memory(db, fake, tmp) if profile.memory else None
                sizes[str(n)] = {
                    "clones": n,
                    "environments": profile.scale_environments,
                    "audit_rows": n * profile.audit_per_clone,
                    "seed_s": round(seed_s, 1),
                    "db_mb": round(db.stat().st_size / 2**20, 1),
                    **renders,
                    "memory": memory,
                }
    finally:
        fake.stop()
    names = list(next(iter(sizes.values()))["views"])
    table = Table(
        f"4. Scale: render time (median of {profile.repeats}, ms) by database size",
        ["view", *[f"{int(k):,} clones" for k in sizes], "target"],
    )
    for view in names:
        table.add(
            view,
            *[s["views"][view]["median_ms"] for s in sizes.values()],
            f"<= {TARGET_RENDER_MS:g}",
        )
    table.add("audit rows", *[s["audit_rows"] for s in sizes.values()], "")
    table.add("database MB", *[s["db_mb"] for s in sizes.values()], "")
    mem = Table(
        "   bot process memory (MB RSS)",
        ["measure", *[f"{int(k):,} clones" for k in sizes], "target"],
    )
    if profile.memory:
        mem.add(
            "idle after start",
            *[s["memory"]["idle_rss_mb"] for s in sizes.values()],
            f"<= {TARGET_RSS_MB:g}",
        )
        mem.add(
            "after status/savings/home",
            *[s["memory"]["after_reads_rss_mb"] for s in sizes.values()],
            "",
        )
    reference = sizes.get("2000") or list(sizes.values())[-1]
    targets: dict[str, Any] = {}
    for view in names:
        v = reference["views"][view]["median_ms"]
        key = "render_" + view.split()[0] + ("_env" if " " in view and view != "app home" else "")
        key = "render_app_home" if view == "app home" else key
        targets[key] = {
            "value": v,
            "target": f"<= {TARGET_RENDER_MS:g} ms",
            "met": v <= TARGET_RENDER_MS,
            "at_clones": reference["clones"],
        }
    if profile.memory:
        rss = reference["memory"]["idle_rss_mb"]
        targets["idle_rss"] = {
            "value": rss,
            "target": f"<= {TARGET_RSS_MB:g} MB",
            "met": rss <= TARGET_RSS_MB,
            "at_clones": reference["clones"],
        }
    checks = targets_table(targets, f"   targets (at {reference['clones']:,} clones)")
    print(table.render())
    if profile.memory:
        print(mem.render())
        print(f"   memory measured on: {reference['memory']['command']}")
    print(checks.render())
    data = {
        "params": {
            "sizes": list(profile.scale_sizes),
            "environments": profile.scale_environments,
            "audit_per_clone": profile.audit_per_clone,
            "repeats": profile.repeats,
        },
        "sizes": sizes,
        "targets": targets,
        "tables": [table.to_json(), mem.to_json(), checks.to_json()],
    }
    write_result("scale", profile, data, out_dir)
    return data
