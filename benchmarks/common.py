"""Shared pieces of the benchmarks: profiles (full and smoke), the lab, tables and JSON results."""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import sys
import time
import tomllib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.adapters.lab import DEFAULT_SPEC, LabProcess
from bot.bootstrap import App
from bot.domain import grammar
from bot.settings import BUNDLED_LAB_CONFIG, Settings, settings_from_dict

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "benchmarks" / "results"

# The bundled lab configuration's three types (bot/data/lab.toml), with room for scale runs.
LAB_TYPES: dict[str, dict[str, Any]] = {
    name: {**table, "max_count": 10_000}
    for name, table in tomllib.loads(BUNDLED_LAB_CONFIG.read_text(encoding="utf-8"))[
        "types"
    ].items()
}
TYPES = tuple(LAB_TYPES)


@dataclass(frozen=True)
class Profile:
    """What a run measures; `full` is the issue's figures, `smoke` keeps CI fast."""

    name: str
    clones: int = 75  # N, split evenly across the three types
    concurrency: int = 8
    latency_ms: int = 400  # lab clone and destroy latency L
    slack_commands: int = 200
    slack_concurrency: int = 20
    slack_background_clones: int = 75
    scale_sizes: tuple[int, ...] = (200, 2_000, 20_000)
    scale_environments: int = 60
    audit_per_clone: int = 10  # 2,000 clones come with 20,000 audit rows
    repeats: int = 5  # timed repetitions of each render (the median is reported)
    memory: bool = True
    # usable: a lab is usable once cloned, powered on and customized (issue 16)
    hosts: int = 12  # hosts in the lab's cluster
    power_on_latency_ms: int = 200
    customization_latency_ms: int = 5_000
    # limits: a wide global limit held back per host
    wide_concurrency: int = 64
    max_ops_per_host: int = 8
    # big: one environment of many clones
    big_clones: int = 600
    big_concurrency: int = 32
    cold_repeats: int = 15  # cold starts of each command (the median is reported)
    # slackscale: Slack's tiers kept by the fake (issue 23)
    slack_minute_s: float = 60.0  # Slack's minute (every rate window scales with it)
    trainees: int = 110  # a hand-out from one channel
    deployments: int = 4  # deployments at once, beside a hand-out
    deployment_clones: int = 60  # clones in each
    deployment_latency_ms: int = 7_000  # lab clone latency while they run (over a minute)
    # history: a year of finished courses beside what is live (issue 26)
    history_environments: int = 7_860
    history_courses: int = 100  # courses deployed, assigned and stripped back, for their size
    # soak: overlapping deploy / status / assign / strip back cycles (issue 26)
    soak_minutes: float = 8.0
    soak_lanes: int = 3
    soak_latency_ms: int = 10
    soak_warmup: float = 0.5  # share of the rounds before slopes are fitted (the first half)


FULL = Profile("full")
SMOKE = Profile(
    "smoke",
    clones=6,
    latency_ms=50,
    slack_commands=20,
    slack_concurrency=5,
    slack_background_clones=6,
    scale_sizes=(200,),
    scale_environments=10,
    repeats=2,
    hosts=4,
    power_on_latency_ms=20,
    customization_latency_ms=200,
    wide_concurrency=8,
    max_ops_per_host=2,
    big_clones=24,
    big_concurrency=8,
    cold_repeats=3,
    slack_minute_s=6.0,
    trainees=12,
    deployments=4,
    deployment_clones=6,
    deployment_latency_ms=300,
    history_environments=300,
    history_courses=5,
    soak_minutes=0.4,
)


def deploy_command(n: int, environment: str) -> grammar.Deploy:
    """The `Deploy` command of `deploy_text(n, environment)`."""
    command = grammar.parse(deploy_text(n, environment))
    assert isinstance(command, grammar.Deploy)
    return command


def deploy_text(n: int, environment: str) -> str:
    """`deploy capture a packaging b verification c as ENV` with a+b+c = n, as even as can be."""
    counts = [n // len(TYPES) + (1 if i < n % len(TYPES) else 0) for i in range(len(TYPES))]
    items = " ".join(f"{t} {c}" for t, c in zip(TYPES, counts, strict=True) if c)
    return f"deploy {items} as {environment}"


def settings_for(
    lab: LabProcess | None,
    database: Path | str,
    *,
    types: dict[str, dict[str, Any]] | None = None,
    **clones: Any,
) -> Settings:
    """Validated settings for the lab (or for no vCenter at all) with the database given (the
    `[clones]` keys and the types as given; default: the bundled lab's three types)."""
    url = lab.info.url if lab is not None else "http://127.0.0.1:9/sdk"
    raw = {
        "vcenter": {
            "url": url,
            "user": lab.info.user if lab else "clones",
            "insecure": True,
            "timeout_s": 30.0,
        },
        "clones": {
            "database": str(database),
            "concurrency": 8,
            "retries": 3,
            "retry_backoff_s": 0,
            "max_environment_clones": 10_000,
            **clones,
        },
        "types": types or LAB_TYPES,
    }
    password = lab.info.password if lab else "lab-password"
    return settings_from_dict(raw, env={"CLONES_VCENTER_PASSWORD": password})


def warm_up(app: App, environment: str = "warm") -> None:
    """A 3-clone deployment into `environment` and its strip back, before what is measured:
    base snapshots made, sessions, connections and caches warm."""
    app.use_cases.deployer.deploy(deploy_command(3, environment), actor="bench")
    app.use_cases.strip_back.teardown(environment, actor="bench")


def with_concurrency(settings: Settings, concurrency: int) -> Settings:
    return replace(settings, concurrency=concurrency)


@contextmanager
def lab(latency_ms: int, **changes: Any) -> Iterator[LabProcess]:
    """A lab vCenter from the default spec with clone and destroy latency `latency_ms` (and
    the spec's other fields changed as given, e.g. `hosts=12` for the cluster's hosts)."""
    spec = json.loads(DEFAULT_SPEC.read_text(encoding="utf-8"))
    spec["clone_latency_ms"] = latency_ms
    spec["destroy_latency_ms"] = latency_ms
    spec["datastores"] = [{"name": "TrainingDS", "capacity_gb": 50_000, "free_gb": 48_000}]
    hosts = changes.pop("hosts", None)
    if hosts is not None:
        spec["clusters"] = [{"name": "Training", "hosts": hosts}]
    spec.update(changes)
    with LabProcess.start(spec) as process:
        yield process


def design_ideal_s(n: int, concurrency: int, latency_s: float, types: int = len(TYPES)) -> float:
    """The ideal of a deployment as the bot runs it: each type's first clone goes alone (the
    full-copy guard's probes, side by side), then the rest `concurrency` at a time. At N = 75
    and concurrency 8 it equals ceil(N/c) x L (the issue's ideal): the probes fill the first
    round's spare slots."""
    probes = min(types, n)
    return latency_s * (1 + math.ceil((n - probes) / concurrency)) if n else 0.0


def machine() -> dict[str, Any]:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "loadavg_1m": round(load[0], 2),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0-100) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def median_ms(samples: Sequence[float]) -> float:
    return round(statistics.median(samples) * 1000, 1)


def timed(fn: Any, repeats: int) -> tuple[list[float], Any]:
    """Call `fn` `repeats` times; return the durations (s) and the last result."""
    out: list[float] = []
    result = None
    for _ in range(repeats):
        started = time.perf_counter()
        result = fn()
        out.append(time.perf_counter() - started)
    return out, result


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)

    def add(self, *cells: Any) -> None:
        self.rows.append(list(cells))

    def render(self) -> str:
        cells = [[_cell(c) for c in row] for row in self.rows]
        widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(self.columns)]
        line = "  ".join("-" * w for w in widths)
        out = [self.title, "  ".join(h.ljust(w) for h, w in zip(self.columns, widths, strict=True))]
        out.append(line)
        for r in cells:
            out.append(
                "  ".join(
                    c.rjust(w) if i else c.ljust(w)
                    for i, (c, w) in enumerate(zip(r, widths, strict=True))
                )
            )
        return "\n".join(out)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def targets_table(targets: dict[str, dict[str, Any]], title: str = "   targets") -> Table:
    """The targets table: a row a check (its value, its target, met or MISSED)."""
    checks = Table(title, ["check", "value", "target", "result"])
    for name, t in targets.items():
        checks.add(name, t["value"], t["target"], verdict(t["met"]))
    return checks


def write_result(name: str, profile: Profile, data: dict[str, Any], out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    payload = {"benchmark": name, "profile": profile.name, "machine": machine(), **data}
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    return path
