"""4. A wide global limit held back per host: `max_ops_per_host` beside `concurrency` (issue 16).

A lab of `hosts` hosts with clone latency L; global concurrency C (64), `max_ops_per_host` P (8)
and `max_hosts_per_base_disk = 32` (VMFS5+), so the clones spread over every host. One
deployment of N after a warm-up; the lab reports the most operations it saw at once on any host
(`host_ops_in_flight_max_any`), which must never pass P.

"ideal" is the deployment as the bot runs it with C_eff = min(C, hosts x P) operations at once:
each type's first clone alone (the full-copy guard's probes, side by side), then the rest C_eff at
a time; "plain ideal" is ceil(N / C_eff) x L, which leaves the probe round out. "lab ideal" adds
what the lab itself cannot overlap: it makes one clone at a time after its latency (its clone
lock), so the widest round's C_eff clones take C_eff x b more, b being the lab's own time per
clone (`busy_ms` of CloneVM_Task).
"""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import (
    TYPES,
    Profile,
    Table,
    deploy_text,
    design_ideal_s,
    lab,
    settings_for,
    verdict,
    write_result,
)
from bot import bootstrap
from bot.domain import grammar

TARGET_IDEAL_RATIO = 1.15
ACTOR = "bench"


def run(profile: Profile, out_dir: Path) -> dict[str, Any]:
    n, c, per_host = profile.clones, profile.wide_concurrency, profile.max_ops_per_host
    latency = profile.latency_ms / 1000
    with (
        tempfile.TemporaryDirectory(prefix="clones-bench-") as tmp,
        lab(profile.latency_ms, hosts=profile.hosts) as lb,
    ):
        settings = settings_for(
            lb,
            Path(tmp) / "clones.db",
            concurrency=c,
            max_ops_per_host=per_host,
            max_hosts_per_base_disk=32,
        )
        app = bootstrap.build(settings, start_lab=False)
        try:
            app.service.deploy(grammar.parse(deploy_text(3, "warm")), actor=ACTOR)  # type: ignore[arg-type]
            app.service.teardown("warm", actor=ACTOR)
            lb.control.reset()
            started = time.perf_counter()
            deployed = app.service.deploy(grammar.parse(deploy_text(n, "wide")), actor=ACTOR)  # type: ignore[arg-type]
            wall = time.perf_counter() - started
            stats = lb.control.stats()
            app.service.teardown("wide", actor=ACTOR)
        finally:
            app.close()
    if len(deployed.ready) != n:
        raise RuntimeError(f"{len(deployed.ready)} of {n} clones ready")
    effective = min(c, profile.hosts * per_host)
    ideal = design_ideal_s(n, effective, latency)
    plain = math.ceil(n / effective) * latency
    most = stats.get("host_ops_in_flight_max_any")
    body_s = (stats.get("busy_ms") or {}).get("CloneVM_Task", 0.0) / 1000 / n
    lab_ideal = ideal + min(effective, max(n - len(TYPES), 0)) * body_s
    targets: dict[str, dict[str, Any]] = {
        "deploy_vs_ideal": {
            "value": round(wall / ideal, 3),
            "target": f"<= {TARGET_IDEAL_RATIO}",
            "met": wall / ideal <= TARGET_IDEAL_RATIO,
        },
        "most_ops_on_a_host": {
            "value": most,
            "target": f"<= {per_host}",
            "met": most is not None and most <= per_host,
        },
    }
    table = Table(
        f"4. Per-host limit: N={n}, L={profile.latency_ms} ms, {profile.hosts} hosts, "
        f"concurrency {c}, max_ops_per_host {per_host}",
        [
            "wall s",
            "ideal s",
            "x ideal",
            "plain ideal s",
            "x plain",
            "lab ideal s",
            "x lab ideal",
            "most on a host",
            "most clone calls",
            "SOAP calls",
        ],
    )
    table.add(
        round(wall, 3),
        round(ideal, 3),
        wall / ideal,
        round(plain, 3),
        wall / plain,
        round(lab_ideal, 3),
        wall / lab_ideal,
        most,
        stats.get("clone_calls_in_flight_max"),
        stats.get("total"),
    )
    checks = Table("   targets", ["check", "value", "target", "result"])
    for name, t in targets.items():
        checks.add(name, t["value"], t["target"], verdict(t["met"]))
    print(table.render())
    print(checks.render())
    data = {
        "params": {
            "clones": n,
            "concurrency": c,
            "max_ops_per_host": per_host,
            "hosts": profile.hosts,
            "latency_ms": profile.latency_ms,
        },
        "wall_s": round(wall, 3),
        "ideal_s": round(ideal, 3),
        "plain_ideal_s": round(plain, 3),
        "lab_ideal_s": round(lab_ideal, 3),
        "lab_ms_per_clone": round(body_s * 1000, 2),
        "host_ops_in_flight_max": stats.get("host_ops_in_flight_max"),
        "lab_stats": stats,
        "targets": targets,
        "tables": [table.to_json(), checks.to_json()],
    }
    write_result("limits", profile, data, out_dir)
    return data
