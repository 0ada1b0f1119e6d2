"""5. Cold start of the terminal: `clones help` and `clones status` as new processes (issue 16).

Each run starts `python -c "from bot.bootstrap import cli; ..." WORDS` (what the `clones` console
script runs) with this checkout first on PYTHONPATH, against a configuration naming a vCenter that
is never contacted and a SQLite file with three environments of 25 clones. The commands run in
turn with `python -c pass` (paired in one run, so the machine's noise is shared), `cold_repeats`
times each; medians are reported. One more run of each under `-X importtime` lists which heavy
libraries it imported.

The processes use bytecode caches, as an installed package does: they get a cache folder of their
own (`PYTHONPYCACHEPREFIX`, filled by a first untimed run of each command), whatever
`PYTHONDONTWRITEBYTECODE` says here, so the figures are imports and work, not compiling.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT, TYPES, Profile, Table, targets_table, write_result
from bot.domain.models import CloneState, RunKind, RunState
from storage import Repository

TARGETS = {"help": 0.12, "status": 0.25}
HEAVY = (
    "pyVmomi",
    "pyVim",
    "apscheduler",
    "tenacity",
    "tqdm",
    "numpy",
    "sqlite_utils",
    "matplotlib",
    "slack_sdk",
    "slack_bolt",
)
CLI = "import sys; from bot.bootstrap import cli; sys.exit(cli())"


def _config(tmp: Path) -> Path:
    db = tmp / "clones.db"
    types = "\n".join(
        f'[types.{t}]\nparent = "P{i}"\nname_pattern = "TRN-{t[:3].upper()}-{{n:03}}"\n'
        'folder = "Training"\nresource_pool = "Training"\ndatastore = "TrainingDS"\n'
        for i, t in enumerate(TYPES)
    )
    path = tmp / "clones.toml"
    path.write_text(
        '[vcenter]\nurl = "https://vcenter.invalid/sdk"\nuser = "clones"\n\n'
        f'[clones]\ndatabase = "{db}"\n\n{types}',
        encoding="utf-8",
    )
    with Repository(db) as repo:
        for k in range(3):
            env = f"cohort-{k}"
            repo.ensure_environment(env, owner="bench")
            run = repo.start_run(
                environment=env, kind=RunKind.DEPLOY, requested_by="b", requested=25
            )
            for t in TYPES:
                clones = repo.reserve_clones(
                    environment=env,
                    type=t,
                    parent="P",
                    pattern=f"TRN-{t[:3].upper()}-{{n:03}}",
                    count=25 // len(TYPES) + 1,
                    run_id=run.id,
                )
                for x in clones:
                    repo.update_clone(x.id, state=CloneState.CLONING)
                    repo.update_clone(x.id, state=CloneState.READY, delta_bytes=2**27)
            repo.finish_run(run.id, state=RunState.SUCCEEDED, succeeded=25, failed=0)
    return path


def _env(config: Path, pycache: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("CLONES_") and k != "PYTHONDONTWRITEBYTECODE"
    }
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    env["CLONES_CONFIG"] = str(config)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def _time(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    took = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{argv[2:]} exited {done.returncode}: {done.stderr.strip()[-300:]}")
    return took


def _heavy_imports(words: list[str], env: dict[str, str], cwd: Path) -> list[str]:
    argv = [sys.executable, "-X", "importtime", "-c", CLI, *words]
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    seen = set()
    for line in done.stderr.splitlines():
        name = line.rsplit("|", 1)[-1].strip()
        if name.split(".")[0] in HEAVY:
            seen.add(name.split(".")[0])
    return sorted(seen)


def run(profile: Profile, out_dir: Path) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="clones-bench-") as tmp_name:
        tmp = Path(tmp_name)
        env = _env(_config(tmp), tmp / "pycache")
        commands = {
            "pass": [sys.executable, "-c", "pass"],
            "help": [sys.executable, "-c", CLI, "help"],
            "status": [sys.executable, "-c", CLI, "status"],
        }
        for argv in commands.values():  # write the .pyc files, warm the file cache
            _time(argv, env, tmp)
            _time(argv, env, tmp)
        samples: dict[str, list[float]] = {k: [] for k in commands}
        for _ in range(profile.cold_repeats):
            for key, argv in commands.items():
                samples[key].append(_time(argv, env, tmp))
        heavy = {k: _heavy_imports([k], env, tmp) for k in ("help", "status")}
    median = {k: statistics.median(v) for k, v in samples.items()}
    targets: dict[str, dict[str, Any]] = {
        f"{k}_median_s": {
            "value": round(median[k], 3),
            "target": f"<= {limit}",
            "met": median[k] <= limit,
        }
        for k, limit in TARGETS.items()
    }
    table = Table(
        f"5. Cold start: median of {profile.cold_repeats} new processes each, paired",
        ["command", "median s", "min s", "max s", "minus python -c pass", "heavy imports"],
    )
    for key in commands:
        table.add(
            "python -c pass" if key == "pass" else f"clones {key}",
            round(median[key], 3),
            round(min(samples[key]), 3),
            round(max(samples[key]), 3),
            round(median[key] - median["pass"], 3) if key != "pass" else "",
            ", ".join(heavy.get(key, [])) or ("none" if key != "pass" else ""),
        )
    checks = targets_table(targets)
    print(table.render())
    print(checks.render())
    data = {
        "params": {"repeats": profile.cold_repeats},
        "samples_s": {k: [round(x, 4) for x in v] for k, v in samples.items()},
        "median_s": {k: round(v, 4) for k, v in median.items()},
        "heavy_imports": heavy,
        "targets": targets,
        "tables": [table.to_json(), checks.to_json()],
    }
    write_result("coldstart", profile, data, out_dir)
    return data
