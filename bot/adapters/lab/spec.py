"""Lab specs (docs/lab-spec.md). The `clones-lab` binary is their only validator: these functions
ask it (`clones-lab --check --spec FILE`), building it first if needed, and return the spec as the
lab would run it, defaults filled in."""

from __future__ import annotations

import copy
import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from bot.adapters.lab.build import ensure_built
from bot.adapters.lab.info import LabError

CHECK_TIMEOUT = 60.0


def validate_spec(path: Path) -> dict[str, Any]:
    """Check a spec file; return it with defaults filled in (LabError naming every problem)."""
    try:
        Path(path).read_bytes()
    except OSError as exc:
        raise LabError(f"Cannot read lab spec {path}: {exc.strerror or exc}") from exc
    return _check(Path(path), f"lab spec {path}")


def validate_spec_data(spec: dict[str, Any]) -> dict[str, Any]:
    """Check a spec given as data; return it with defaults filled in (LabError if malformed)."""
    with tempfile.TemporaryDirectory(prefix="clones-lab-spec-") as tmp:
        path = Path(tmp) / "spec.json"
        path.write_text(json.dumps(spec, indent=2), encoding="utf-8")
        return _check(path, "lab spec")


def _check(path: Path, what: str) -> dict[str, Any]:
    command = [str(ensure_built()), "--check", "--spec", str(path)]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=CHECK_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LabError(f"Could not check the {what}: {exc}") from exc
    if result.returncode == 0:
        checked: dict[str, Any] = json.loads(result.stdout)
        return checked
    prefix = f"clones-lab: invalid spec {path}: "
    problems = [line.removeprefix(prefix) for line in result.stderr.splitlines() if line.strip()]
    if result.returncode != 2 or not problems:
        detail = result.stderr.strip() or f"exit status {result.returncode}"
        raise LabError(f"Could not check the {what}: {detail}")
    if len(problems) == 1:
        raise LabError(f"Invalid {what}: {problems[0]}")
    raise LabError(f"Invalid {what}:\n" + "\n".join(f"  {p}" for p in problems))


def deep_merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Return `base` with `overrides` merged in (dicts merge recursively, other values replace)."""
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out
