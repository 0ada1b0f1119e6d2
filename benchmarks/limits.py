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

Then the limits across runs (issue 22), at the profile's `concurrency` (8) with
`max_ops_per_host = 2`, so both bind: one deployment of N for reference; then four deployments
of N/4 at once in the same process, beside a strip back of N/4 clones. They share one limiter,
so the lab must still see at most `concurrency` clone tasks and 2 operations on a host; their
total time is compared with the one deployment of N (the same work, one run). And fair shares: a
4-clone deployment started once a deployment of N holds every slot: its time, and how many of the
big run's clones were made by then.
"""

from __future__ import annotations

import math
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.common import (
    TYPES,
    Profile,
    Table,
    deploy_command,
    deploy_text,
    design_ideal_s,
    lab,
    settings_for,
    targets_table,
    warm_up,
    write_result,
)
from bot import bootstrap
from bot.domain import grammar

TARGET_IDEAL_RATIO = 1.15
ACTOR = "bench"
RUNS = 4
SHARED_PER_HOST = 2  # the runs across runs: `max_ops_per_host`, so that it binds


def _deploy(app: Any, text: str) -> Any:
    return app.use_cases.deployer.deploy(grammar.parse(text), actor=ACTOR)


def _at_once(work: list[Callable[[], Any]]) -> tuple[float, list[Any]]:
    """Run each piece of work on its own thread at once; the wall time and the results."""
    results: list[Any] = [None] * len(work)
    errors: list[BaseException] = []

    def one(i: int) -> None:
        try:
            results[i] = work[i]()
        except BaseException as exc:  # raised below, on the benchmark's thread
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(work))]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - started, results


def _shared(lb: Any, folder: Path, n: int, concurrency: int) -> dict[str, Any]:
    """One deployment of N; four of N/4 at once, beside a strip back; a small run beside a big
    one. All at `concurrency` and SHARED_PER_HOST, in one process (one limiter)."""
    settings = settings_for(
        lb,
        folder / "shared.db",
        concurrency=concurrency,
        max_ops_per_host=SHARED_PER_HOST,
        max_hosts_per_base_disk=32,
    )
    app = bootstrap.build(settings, start_lab=False)
    try:
        return _shared_runs(app, lb, n)
    finally:
        app.close()


def _shared_runs(app: Any, lb: Any, n: int) -> dict[str, Any]:
    started = time.perf_counter()
    _deploy(app, deploy_text(n, "one"))
    one_wall = time.perf_counter() - started
    app.use_cases.strip_back.teardown("one", actor=ACTOR)
    parts = [n // RUNS + (1 if i < n % RUNS else 0) for i in range(RUNS)]
    _deploy(app, deploy_text(max(n // RUNS, 1), "old"))
    lb.control.reset()
    wall, results = _at_once(
        [lambda i=i, k=k: _deploy(app, deploy_text(k, f"run{i}")) for i, k in enumerate(parts)]
        + [lambda: app.use_cases.strip_back.teardown("old", actor=ACTOR)]
    )
    stats = lb.control.stats()
    made = sum(len(r.ready) for r in results[:RUNS])
    for i in range(RUNS):
        app.use_cases.strip_back.teardown(f"run{i}", actor=ACTOR)
    if made != n:
        raise RuntimeError(f"{made} of {n} clones ready in {RUNS} concurrent runs")
    # Fair shares: a 4-clone run started once a run of N holds every slot.
    big: dict[str, Any] = {}
    ready = threading.Event()

    def on_big(e: Any) -> None:
        big["ready"] = e.done
        if e.done >= 1:
            ready.set()

    def deploy_big() -> Any:
        return app.use_cases.deployer.deploy(
            grammar.parse(deploy_text(n, "big")), actor=ACTOR, on_event=on_big
        )

    small: dict[str, Any] = {}

    def deploy_small() -> None:
        ready.wait()
        started = time.perf_counter()
        result = _deploy(app, "deploy verification 4 as small")
        small.update(s=time.perf_counter() - started, big_ready=big.get("ready", 0))
        small["ready"] = len(result.ready)

    big_wall, _ = _at_once([deploy_big, deploy_small])
    for env in ("big", "small"):
        app.use_cases.strip_back.teardown(env, actor=ACTOR)
    return {
        "runs": parts,
        "concurrency": app.settings.concurrency,
        "max_ops_per_host": SHARED_PER_HOST,
        "one_run_s": round(one_wall, 3),
        "wall_s": round(wall, 3),
        "clone_calls_in_flight_max": stats.get("clone_calls_in_flight_max"),
        "host_ops_in_flight_max_any": stats.get("host_ops_in_flight_max_any"),
        "soap_calls": stats.get("total"),
        "small_s": round(small["s"], 3),
        "small_ready": small["ready"],
        "big_s": round(big_wall, 3),
        "big_ready_when_small_ended": small["big_ready"],
    }


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
            warm_up(app)
            lb.control.reset()
            started = time.perf_counter()
            deployed = app.use_cases.deployer.deploy(deploy_command(n, "wide"), actor=ACTOR)
            wall = time.perf_counter() - started
            stats = lb.control.stats()
            app.use_cases.strip_back.teardown("wide", actor=ACTOR)
        finally:
            app.close()
        shared = _shared(lb, Path(tmp), n, profile.concurrency)
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
        "shared_most_clone_calls": {
            "value": shared["clone_calls_in_flight_max"],
            "target": f"<= {shared['concurrency']}",
            "met": (shared["clone_calls_in_flight_max"] or 0) <= shared["concurrency"],
        },
        "shared_most_ops_on_a_host": {
            "value": shared["host_ops_in_flight_max_any"],
            "target": f"<= {SHARED_PER_HOST}",
            "met": (shared["host_ops_in_flight_max_any"] or 0) <= SHARED_PER_HOST,
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
    across = Table(
        f"   {RUNS} deployments of {'+'.join(map(str, shared['runs']))} at once, beside a strip "
        f"back of {max(n // RUNS, 1)} (concurrency {shared['concurrency']}, max_ops_per_host "
        f"{SHARED_PER_HOST}, one process)",
        [
            "wall s",
            "one run of N s",
            "x one run",
            "most clone calls",
            "most on a host",
            "SOAP calls",
        ],
    )
    across.add(
        shared["wall_s"],
        shared["one_run_s"],
        shared["wall_s"] / shared["one_run_s"],
        shared["clone_calls_in_flight_max"],
        shared["host_ops_in_flight_max_any"],
        shared["soap_calls"],
    )
    fair = Table(
        f"   a 4-clone run started while a run of {n} holds every slot",
        ["small run s", "big run s", "big's clones ready when the small one ended"],
    )
    fair.add(shared["small_s"], shared["big_s"], shared["big_ready_when_small_ended"])
    checks = targets_table(targets)
    print(table.render())
    print(across.render())
    print(fair.render())
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
        "shared": shared,
        "targets": targets,
        "tables": [table.to_json(), across.to_json(), fair.to_json(), checks.to_json()],
    }
    write_result("limits", profile, data, out_dir)
    return data
