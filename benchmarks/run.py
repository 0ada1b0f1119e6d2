"""Run the benchmarks: `python -m benchmarks [--smoke] [--only NAME ...] [--out DIR]`.

Each benchmark prints a table and writes benchmarks/results/NAME.json; this writes summary.json
with every target and whether it was met. Timings are measured and reported, never asserted:
the exit status is 0 whenever every benchmark ran, met or not (`--strict` makes a missed target
exit 1).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

if not __package__:  # `python benchmarks/run.py`: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import (
    big,
    calls,
    coldstart,
    history,
    limits,
    scale,
    slack_ack,
    slackscale,
    soak,
    storage,
    throughput,
    usable,
)
from benchmarks.common import FULL, RESULTS_DIR, SMOKE, Profile, machine

BENCHMARKS: dict[str, Callable[[Profile, Path], dict[str, Any]]] = {
    "throughput": throughput.run,
    "calls": calls.run,
    "slack_ack": slack_ack.run,
    "scale": scale.run,
    "usable": usable.run,
    "limits": limits.run,
    "coldstart": coldstart.run,
    "big": big.run,
    "slackscale": slackscale.run,
    "history": history.run,
    "soak": soak.run,
    "storage": storage.run,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, for CI (about 20 s)")
    parser.add_argument("--only", nargs="+", choices=sorted(BENCHMARKS), help="run only these")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="where JSON goes")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--soak-minutes", type=float, help="run the soak this long")
    parser.add_argument(
        "--soak-warmup", type=float, help="share of the soak's rounds before slopes are fitted"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    profile = SMOKE if args.smoke else FULL
    if args.soak_minutes is not None:
        profile = replace(profile, soak_minutes=args.soak_minutes)
    if args.soak_warmup is not None:
        profile = replace(profile, soak_warmup=args.soak_warmup)
    names = args.only or list(BENCHMARKS)
    summary: dict[str, Any] = {"profile": profile.name, "machine": machine(), "benchmarks": {}}
    missed: list[str] = []
    for name in names:
        print(f"== {name} ({profile.name})", flush=True)
        started = time.perf_counter()
        data = BENCHMARKS[name](profile, args.out)
        took = time.perf_counter() - started
        print(f"   ({took:.1f} s)\n", flush=True)
        summary["benchmarks"][name] = {"seconds": round(took, 1), "targets": data["targets"]}
        missed += [f"{name}.{k}" for k, t in data["targets"].items() if not t["met"]]
    summary["missed"] = missed
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print("missed targets: " + (", ".join(missed) if missed else "none"))
    print(f"results: {args.out}")
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
