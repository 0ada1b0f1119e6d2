"""1. Deploy and strip-back throughput: wall time vs the ideal ceil(N/c) x L and vs concurrency 1.

Both concurrency levels run against one lab vCenter in the same run, after a warm-up deployment
(which also creates the parents' base snapshots, so neither measured run pays for them).

The lab spends its own time on each request besides the injected latency L (the simulator makes
the clone's files and objects; `busy_ms` in the lab's stats). "lab ideal" is ceil(N/c) x
(L + the lab's own time per clone), the time if the bot took none: reported beside the issue's
ideal, which charges the lab's own work to the bot. Blocking waits (WaitForUpdatesEx) are left
out of the lab's own time: they are the lab waiting, not working.
"""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import (
    Profile,
    Table,
    deploy_command,
    lab,
    settings_for,
    targets_table,
    warm_up,
    with_concurrency,
    write_result,
)
from bot import bootstrap

TARGET_IDEAL_RATIO = 1.15
TARGET_SPEEDUP = 6.5
BLOCKING = ("WaitForUpdatesEx", "WaitForUpdates")


def lab_own_s(stats: dict[str, Any]) -> float:
    """Seconds the lab spent on the requests in `stats` itself (injected latency excluded)."""
    busy = stats.get("busy_ms") or {}
    return sum(ms for method, ms in busy.items() if method not in BLOCKING) / 1000


ACTOR = "bench"


def run(profile: Profile, out_dir: Path) -> dict[str, Any]:
    n, c, latency = profile.clones, profile.concurrency, profile.latency_ms / 1000
    runs: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="clones-bench-") as tmp, lab(profile.latency_ms) as lb:
        base = settings_for(lb, Path(tmp) / "clones.db")
        for level in (c, 1):
            app = bootstrap.build(with_concurrency(base, level), start_lab=False)
            try:
                warm_up(app, f"warm-c{level}")
                env = f"bench-c{level}"
                lb.control.reset()
                started = time.perf_counter()
                deployed = app.use_cases.deployer.deploy(deploy_command(n, env), actor=ACTOR)
                deploy_s = time.perf_counter() - started
                deploy_stats = lb.control.stats()
                lb.control.reset()
                started = time.perf_counter()
                stripped = app.use_cases.strip_back.teardown(env, actor=ACTOR)
                strip_s = time.perf_counter() - started
                strip_stats = lb.control.stats()
            finally:
                app.close()
            if len(deployed.ready) != n or len(stripped.destroyed) != n:
                raise RuntimeError(
                    f"concurrency {level}: {len(deployed.ready)} ready, "
                    f"{len(stripped.destroyed)} destroyed of {n}"
                )
            ideal = math.ceil(n / level) * latency
            lab_deploy, lab_strip = lab_own_s(deploy_stats), lab_own_s(strip_stats)
            lab_ideal_deploy = math.ceil(n / level) * (latency + lab_deploy / n)
            lab_ideal_strip = math.ceil(n / level) * (latency + lab_strip / n)
            runs[f"c{level}"] = {
                "concurrency": level,
                "ideal_s": ideal,
                "deploy_wall_s": round(deploy_s, 3),
                "deploy_pool_s": round(deployed.elapsed_s, 3),
                "strip_wall_s": round(strip_s, 3),
                "strip_pool_s": round(stripped.elapsed_s, 3),
                "deploy_vs_ideal": round(deploy_s / ideal, 3),
                "strip_vs_ideal": round(strip_s / ideal, 3),
                "deploy_lab_own_ms_per_clone": round(lab_deploy / n * 1000, 2),
                "strip_lab_own_ms_per_clone": round(lab_strip / n * 1000, 2),
                "deploy_lab_ideal_s": round(lab_ideal_deploy, 3),
                "strip_lab_ideal_s": round(lab_ideal_strip, 3),
                "deploy_vs_lab_ideal": round(deploy_s / lab_ideal_deploy, 3),
                "strip_vs_lab_ideal": round(strip_s / lab_ideal_strip, 3),
                "deploy_clone_lock_wait_ms": deploy_stats.get("clone_lock_wait_ms"),
                # Most CloneVM_Task calls at once: never above the concurrency.
                "deploy_clone_calls_in_flight_max": deploy_stats.get("clone_calls_in_flight_max"),
                "deploy_busy_ms": deploy_stats.get("busy_ms"),
                "strip_busy_ms": strip_stats.get("busy_ms"),
                "deploy_requests": deploy_stats.get("total"),
                "strip_requests": strip_stats.get("total"),
            }
    par, ser = runs[f"c{c}"], runs["c1"]
    deploy_speedup = ser["deploy_wall_s"] / par["deploy_wall_s"]
    strip_speedup = ser["strip_wall_s"] / par["strip_wall_s"]
    targets: dict[str, dict[str, Any]] = {
        "deploy_vs_ideal": {
            "value": par["deploy_vs_ideal"],
            "target": f"<= {TARGET_IDEAL_RATIO}",
            "met": par["deploy_vs_ideal"] <= TARGET_IDEAL_RATIO,
        },
        "deploy_speedup": {
            "value": round(deploy_speedup, 2),
            "target": f">= {TARGET_SPEEDUP}",
            "met": deploy_speedup >= TARGET_SPEEDUP,
        },
        "strip_vs_ideal": {
            "value": par["strip_vs_ideal"],
            "target": f"<= {TARGET_IDEAL_RATIO}",
            "met": par["strip_vs_ideal"] <= TARGET_IDEAL_RATIO,
        },
        "strip_speedup": {
            "value": round(strip_speedup, 2),
            "target": f">= {TARGET_SPEEDUP}",
            "met": strip_speedup >= TARGET_SPEEDUP,
        },
    }
    table = Table(
        f"1. Throughput: N={n}, L={profile.latency_ms} ms, concurrency {c} vs 1",
        [
            "phase",
            "concurrency",
            "ideal s",
            "wall s",
            "pool s",
            "x ideal",
            "lab ms/clone",
            "lab ideal s",
            "x lab ideal",
            "SOAP calls",
        ],
    )
    for key in (f"c{c}", "c1"):
        r = runs[key]
        for phase in ("deploy", "strip"):
            table.add(
                "strip back" if phase == "strip" else phase,
                r["concurrency"],
                r["ideal_s"],
                r[f"{phase}_wall_s"],
                r[f"{phase}_pool_s"],
                r[f"{phase}_vs_ideal"],
                r[f"{phase}_lab_own_ms_per_clone"],
                r[f"{phase}_lab_ideal_s"],
                r[f"{phase}_vs_lab_ideal"],
                r[f"{phase}_requests"],
            )
    checks = targets_table(targets)
    print(table.render())
    print(checks.render())
    data = {
        "params": {"clones": n, "concurrency": c, "latency_ms": profile.latency_ms},
        "runs": runs,
        "targets": targets,
        "tables": [table.to_json(), checks.to_json()],
    }
    write_result("throughput", profile, data, out_dir)
    return data
