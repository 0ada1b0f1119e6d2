"""2. vCenter calls per clone, by SOAP method, from the lab's request counts.

One deployment of N clones and its strip back at concurrency c and latency L (the counters are
reset before each). Logins and inventory look-ups done once per process are paid by a warm-up
deployment first, so the figures are what every further deployment costs.
"""

from __future__ import annotations

import tempfile
from collections import Counter
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

TARGET_DEPLOY = 5.0  # issue 16 (issue 7: 6)
TARGET_STRIP = 1.2  # issue 16 (issue 7: 3)
# Calls that only wait for tasks: filters, blocking waits, and direct reads of tasks' state
# (`task_reads` in the lab's stats: RetrievePropertiesEx of vim.Task properties).
WAIT_METHODS = (
    "CreateFilter",
    "DestroyPropertyFilter",
    "WaitForUpdatesEx",
    "WaitForUpdates",
    "CheckForUpdates",
    "CancelWaitForUpdates",
)
ACTOR = "bench"


def run(profile: Profile, out_dir: Path) -> dict[str, Any]:
    n = profile.clones
    with tempfile.TemporaryDirectory(prefix="clones-bench-") as tmp, lab(profile.latency_ms) as lb:
        settings = with_concurrency(settings_for(lb, Path(tmp) / "clones.db"), profile.concurrency)
        app = bootstrap.build(settings, start_lab=False)
        try:
            warm_up(app)
            lb.control.reset()
            app.use_cases.deployer.deploy(deploy_command(n, "calls"), actor=ACTOR)
            deploy = lb.control.stats()
            lb.control.reset()
            app.use_cases.strip_back.teardown("calls", actor=ACTOR)
            strip = lb.control.stats()
        finally:
            app.close()
    by_deploy: Counter[str] = Counter(deploy.get("requests") or {})
    by_strip: Counter[str] = Counter(strip.get("requests") or {})
    per_deploy = sum(by_deploy.values()) / n
    per_strip = sum(by_strip.values()) / n
    wait_deploy = (sum(by_deploy[m] for m in WAIT_METHODS) + deploy.get("task_reads", 0)) / n
    wait_strip = (sum(by_strip[m] for m in WAIT_METHODS) + strip.get("task_reads", 0)) / n
    targets: dict[str, dict[str, Any]] = {
        "per_clone_deployed": {
            "value": round(per_deploy, 2),
            "target": f"<= {TARGET_DEPLOY:g}",
            "met": per_deploy <= TARGET_DEPLOY,
        },
        "per_clone_stripped": {
            "value": round(per_strip, 2),
            "target": f"<= {TARGET_STRIP:g}",
            "met": per_strip <= TARGET_STRIP,
        },
    }
    table = Table(
        f"2. SOAP requests per clone: N={n}, L={profile.latency_ms} ms, "
        f"concurrency {profile.concurrency}",
        ["method", "deploy", "per clone", "strip back", "per clone"],
    )
    for method in sorted(set(by_deploy) | set(by_strip), key=lambda m: -by_deploy[m] - by_strip[m]):
        table.add(
            method,
            by_deploy[method],
            by_deploy[method] / n,
            by_strip[method],
            by_strip[method] / n,
        )
    table.add("TOTAL", sum(by_deploy.values()), per_deploy, sum(by_strip.values()), per_strip)
    table.add("  of which waiting for tasks", "", wait_deploy, "", wait_strip)
    table.add(
        "  of RetrievePropertiesEx: tasks",
        deploy.get("task_reads", 0),
        deploy.get("task_reads", 0) / n,
        strip.get("task_reads", 0),
        strip.get("task_reads", 0) / n,
    )
    checks = targets_table(targets)
    print(table.render())
    print(checks.render())
    data = {
        "params": {
            "clones": n,
            "concurrency": profile.concurrency,
            "latency_ms": profile.latency_ms,
        },
        "deploy": {"by_method": dict(by_deploy), "total": sum(by_deploy.values())},
        "strip": {"by_method": dict(by_strip), "total": sum(by_strip.values())},
        "per_clone": {
            "deploy": round(per_deploy, 3),
            "strip": round(per_strip, 3),
            "deploy_task_waiting": round(wait_deploy, 3),
            "strip_task_waiting": round(wait_strip, 3),
        },
        "lab_stats": {"deploy": deploy, "strip": strip},
        "targets": targets,
        "tables": [table.to_json(), checks.to_json()],
    }
    write_result("calls", profile, data, out_dir)
    return data
