"""The benchmarks' smoke version runs end to end and writes its JSON (no timing assertions)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.lab

EXPECTED = {
    "throughput": {"params", "runs", "targets", "tables"},
    "calls": {"params", "deploy", "strip", "per_clone", "targets", "tables"},
    "slack_ack": {"params", "ack_ms", "outcomes", "background", "targets", "tables"},
    "scale": {"params", "sizes", "targets", "tables"},
    "usable": {"params", "phases", "pipelined_bound_s", "ours_vs_peer_time", "targets", "tables"},
    "limits": {"params", "wall_s", "ideal_s", "lab_ideal_s", "host_ops_in_flight_max", "targets"},
    "coldstart": {"params", "median_s", "heavy_imports", "targets", "tables"},
    "big": {"params", "sqlite", "precheck_s", "strip_calls_per_clone", "targets", "tables"},
    "slackscale": {"params", "handout", "at_once", "ack", "targets", "tables"},
    "history": {"params", "times_ms", "course_growth", "targets", "tables"},
    "soak": {"params", "slopes_per_100_cycles", "samples", "targets", "tables"},
    "storage": {"params", "deploy", "status", "copy_s", "targets", "tables"},
}


def test_smoke_benchmarks_complete_and_write_json(lab_binary: Path, tmp_path: Path) -> None:
    out = tmp_path / "results"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--smoke", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=420,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    for name, keys in EXPECTED.items():
        data = json.loads((out / f"{name}.json").read_text(encoding="utf-8"))
        assert data["benchmark"] == name and data["profile"] == "smoke"
        assert keys <= set(data), f"{name}: missing {keys - set(data)}"
        for target in data["targets"].values():
            assert {"value", "target", "met"} <= set(target)
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert set(summary["benchmarks"]) == set(EXPECTED)
    assert {"p50", "p99", "max"} <= set(json.loads((out / "slack_ack.json").read_text())["ack_ms"])
