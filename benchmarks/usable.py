"""3. Time to a usable lab: N clones cloned, powered on and customized (issue 16).

One lab vCenter with `hosts` hosts, clone latency L_clone, power-on latency L_power and
customization latency L_custom (the time from a customizing power-on to its outcome event),
concurrency C. Three ways, one after the other on the same lab, each from its first call to the
last clone's customization outcome:

- **ours**: `deploy ... and power on` (each clone is powered on as soon as it is made and verified;
  customization runs while later clones are made);
- **batch barrier**: the way deployments ran before issue 16, through the same vCenter port:
  deploy, then power on in batches of C (each batch waits for its slowest), then wait for every
  customization;
- **peer**: a plain pyVmomi thread pool of C workers (`benchmarks/peer.py`): clone from the
  snapshot, `WaitForTask`, the same three custom attributes, power on, `WaitForTask`; the main
  thread polls the customization events.

The pipelined bound is ceil(N/C) x L_clone + L_power + L_custom; the batch-barrier bound is
ceil(N/C) x (L_clone + L_power) + L_custom. SOAP calls are the lab's request counts per phase.
"""

from __future__ import annotations

import math
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks import peer
from benchmarks.common import (
    LAB_TYPES,
    TYPES,
    Profile,
    Table,
    deploy_text,
    lab,
    settings_for,
    targets_table,
    write_result,
)
from bot import bootstrap
from bot.domain import grammar
from bot.domain.models import CloneState

TARGET_PIPELINED = 1.10
SPEC = "win-training"
ACTOR = "bench"


def _types() -> dict[str, dict[str, Any]]:
    return {name: {**t, "customization_spec": SPEC} for name, t in LAB_TYPES.items()}


def _deploy(app: Any, text: str) -> Any:
    return app.use_cases.deployer.deploy(grammar.parse(text), actor=ACTOR)


def _batch_barrier(app: Any, n: int, c: int, env: str) -> float:
    """Deploy, power on in batches of c, then wait for every customization (the pre-issue-16
    way, through the same port); seconds from start to the last outcome."""
    started = time.perf_counter()
    _deploy(app, deploy_text(n, env))
    since = datetime.now(UTC) - timedelta(seconds=30)
    ready = app.repo.clones(environment=env, states=[CloneState.READY])
    morefs = [x.moref for x in ready if x.moref]
    for i in range(0, len(morefs), c):
        app.vcenter.power(morefs[i : i + c], "on")
    app.vcenter.wait_for_customization(morefs, since, timeout_s=300)
    return time.perf_counter() - started


# Kept whole: the three phases in order on one lab, then one table.
def run(profile: Profile, out_dir: Path) -> dict[str, Any]:
    n, c = profile.clones, profile.concurrency
    l_clone = profile.latency_ms / 1000
    l_power = profile.power_on_latency_ms / 1000
    l_custom = profile.customization_latency_ms / 1000
    rounds = math.ceil(n / c)
    pipelined_bound = rounds * l_clone + l_power + l_custom
    batch_bound = rounds * (l_clone + l_power) + l_custom
    phases: dict[str, dict[str, Any]] = {}
    with (
        tempfile.TemporaryDirectory(prefix="clones-bench-") as tmp,
        lab(
            profile.latency_ms,
            hosts=profile.hosts,
            destroy_latency_ms=0,
            power_on_latency_ms=profile.power_on_latency_ms,
            customization_latency_ms=profile.customization_latency_ms,
            customization_specs=[{"name": SPEC, "kind": "sysprep"}],
        ) as lb,
    ):
        settings = settings_for(
            lb, Path(tmp) / "clones.db", types=_types(), concurrency=c, customization_timeout_s=300
        )
        app = bootstrap.build(settings, start_lab=False)
        try:
            _deploy(app, deploy_text(3, "warm"))  # base snapshots, attribute definitions
            app.use_cases.strip_back.teardown("warm", actor=ACTOR)

            lb.control.reset()
            started = time.perf_counter()
            ours = _deploy(app, deploy_text(n, "ours") + " and power on")
            phases["ours"] = {"seconds": time.perf_counter() - started, "stats": lb.control.stats()}
            recorded = app.repo.clones(environment="ours")
            phases["ours"]["ready"] = len(ours.ready)
            phases["ours"]["customized"] = sum(x.customization == "succeeded" for x in recorded)
            phases["ours"]["powered_on"] = sum(x.power_state == "poweredOn" for x in recorded)
            app.use_cases.strip_back.teardown("ours", actor=ACTOR)

            lb.control.reset()
            phases["batch"] = {"seconds": _batch_barrier(app, n, c, "batch")}
            phases["batch"]["stats"] = lb.control.stats()
            app.use_cases.strip_back.teardown("batch", actor=ACTOR)
        finally:
            app.close()

        per_type = [n // len(TYPES) + (1 if i < n % len(TYPES) else 0) for i in range(len(TYPES))]
        plan = [
            (f"PEER-{t[:3].upper()}-{k + 1:03}", LAB_TYPES[t]["parent"], t)
            for t, count in zip(TYPES, per_type, strict=True)
            for k in range(count)
        ]
        lb.control.reset()
        done = peer.deploy(
            lb,
            plan,
            workers=c,
            spec_name=SPEC,
            attributes={"ManagedBy": "peer", "Environment": "peer", "DeployedFrom": "script"},
        )
        phases["peer"] = {
            "seconds": done.seconds,
            "stats": lb.control.stats(),
            "customized": done.customized,
        }
        peer.remove(lb, done.morefs)

    for p in phases.values():
        p["seconds"] = round(p["seconds"], 3)
        p["calls"] = p["stats"].get("total", 0)
        p["calls_per_clone"] = round(p["calls"] / n, 2)
    ours_s, batch_s, peer_s = (phases[k]["seconds"] for k in ("ours", "batch", "peer"))
    ratio = ours_s / pipelined_bound
    targets: dict[str, dict[str, Any]] = {
        "usable_vs_pipelined_bound": {
            "value": round(ratio, 3),
            "target": f"<= {TARGET_PIPELINED}",
            "met": ratio <= TARGET_PIPELINED,
        },
        "all_usable": {
            "value": phases["ours"]["customized"],
            "target": f"== {n}",
            "met": phases["ours"]["customized"] == n,
        },
    }
    table = Table(
        f"3. Time to a usable lab: N={n}, C={c}, {profile.hosts} hosts, L_clone "
        f"{profile.latency_ms} ms, L_power {profile.power_on_latency_ms} ms, L_custom "
        f"{profile.customization_latency_ms} ms",
        ["way", "wall s", "x pipelined bound", "x ours", "SOAP calls", "per clone"],
    )
    names = {"ours": "ours (pipelined)", "batch": "batch barrier", "peer": "peer (pyVmomi pool)"}
    for key, label in names.items():
        p = phases[key]
        table.add(
            label,
            p["seconds"],
            p["seconds"] / pipelined_bound,
            p["seconds"] / ours_s,
            p["calls"],
            p["calls_per_clone"],
        )
    table.add("pipelined bound", round(pipelined_bound, 3), 1.0, "", "", "")
    table.add(
        "batch-barrier bound", round(batch_bound, 3), batch_bound / pipelined_bound, "", "", ""
    )
    checks = targets_table(targets)
    print(table.render())
    print(checks.render())
    print(
        f"   ours vs peer: {ours_s / peer_s:.2f} x its time, "
        f"{phases['ours']['calls'] / max(phases['peer']['calls'], 1):.2f} x its calls; "
        f"vs batch barrier: {ours_s / batch_s:.2f} x its time"
    )
    data = {
        "params": {
            "clones": n,
            "concurrency": c,
            "hosts": profile.hosts,
            "clone_latency_ms": profile.latency_ms,
            "power_on_latency_ms": profile.power_on_latency_ms,
            "customization_latency_ms": profile.customization_latency_ms,
        },
        "pipelined_bound_s": round(pipelined_bound, 3),
        "batch_bound_s": round(batch_bound, 3),
        "phases": phases,
        "ours_vs_peer_time": round(ours_s / peer_s, 3),
        "ours_vs_peer_calls": round(phases["ours"]["calls"] / max(phases["peer"]["calls"], 1), 3),
        "ours_vs_batch_time": round(ours_s / batch_s, 3),
        "targets": targets,
        "tables": [table.to_json(), checks.to_json()],
    }
    write_result("usable", profile, data, out_dir)
    return data
