"""The user's lab: `clones lab up` starts it detached, `clones lab down` stops it, and the state
folder (one lab per user, whatever the current directory) records how to reach it."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

from bot.adapters.lab.build import DEFAULT_SPEC, ensure_built
from bot.adapters.lab.control import START_TIMEOUT, LabControl, wait_serving
from bot.adapters.lab.info import LabError, LabInfo
from bot.adapters.lab.spec import validate_spec
from bot.host import pid_alive

DEFAULT_PORT = 8989


def state_folder(state_dir: Path | None = None) -> Path:
    """The lab's state folder: `state_dir`, else $CLONES_LAB_DIR, else
    $XDG_STATE_HOME/clones/lab (~/.local/state/clones/lab)."""
    if state_dir is not None:
        return Path(state_dir)
    # One lab per user, whatever the current directory: `clones lab down` run anywhere stops
    # the lab `clones lab up` started elsewhere, and url = "lab" always finds it.
    if os.environ.get("CLONES_LAB_DIR"):
        return Path(os.environ["CLONES_LAB_DIR"])
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "clones" / "lab"


def _recorded(directory: Path) -> LabInfo | None:
    try:
        return LabInfo.from_json(json.loads((directory / "lab.json").read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError):
        return None


def running_lab(state_dir: Path | None = None) -> LabInfo | None:
    """The lab started by `lab_up` in the state folder if it is alive and answering, else None."""
    info = _recorded(state_folder(state_dir))
    if info is None or not pid_alive(info.pid) or not LabControl(info.control, 2.0).ping():
        return None
    return info


def lab_up(
    spec: Path | None = None,
    port: int | None = None,
    state_dir: Path | None = None,
    *,
    restart: bool = False,
) -> LabInfo:
    """Start a lab in the background (detached), or return the one already running.

    A running lab started with another spec than one asked for (`spec` given, and another file
    with other contents), or on another port than one asked for, is never silently kept: that is
    an error saying so, unless `restart` (then it is stopped first). Asked for nothing in
    particular (the lab configuration, the demo), the running lab is the one used.
    State goes to the state folder (default $CLONES_LAB_DIR, else ~/.local/state/clones/lab):
    lab.json (url, user, password, control, pid, spec) and lab.log.
    """
    directory = state_folder(state_dir)
    spec_path = Path(spec).resolve() if spec is not None else DEFAULT_SPEC
    existing = running_lab(directory)
    if existing is not None:
        differs = []
        if spec is not None and not _same_spec(Path(existing.spec), spec_path):
            differs.append(f"spec {existing.spec}, not {spec_path}")
        if port is not None and port != existing.port:
            differs.append(f"port {existing.port}, not {port}")
        if not differs:
            return existing
        if not restart:
            raise LabError(
                f"A lab vCenter is already running at {existing.url} with "
                + " and ".join(differs)
                + ". Stop it first (`clones lab down`), or add --restart to replace it."
            )
        lab_down(directory)
    validate_spec(spec_path)
    return _start_detached(spec_path, DEFAULT_PORT if port is None else port, directory)


def _same_spec(running: Path, asked: Path) -> bool:
    """The same file, or files with the same contents (e.g. two checkouts' default spec)."""
    if running == asked:
        return True
    try:
        return running.read_bytes() == asked.read_bytes()
    except OSError:
        return False


def _start_detached(spec_path: Path, port: int, directory: Path) -> LabInfo:
    """Start the binary detached from this process and wait until it serves."""
    binary = ensure_built()
    directory.mkdir(parents=True, exist_ok=True)
    state = directory / "lab.json"
    state.unlink(missing_ok=True)
    log_path = directory / "lab.log"
    command = [str(binary), "--spec", str(spec_path), "--listen", f"127.0.0.1:{port}"]
    with open(log_path, "ab") as log, open(os.devnull, "rb") as devnull:
        process = subprocess.Popen(
            [*command, "--state-file", str(state)],
            stdin=devnull,
            stdout=log,
            stderr=log,
            start_new_session=True,
            close_fds=True,
        )
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
            reason = tail[-1] if tail else f"exit status {process.returncode}"
            raise LabError(f"The lab did not start: {reason} (log: {log_path})")
        info = _recorded(directory)
        if info is not None and wait_serving(info, max(0.5, deadline - time.monotonic())):
            return info
        time.sleep(0.1)
    process.terminate()
    raise LabError(f"The lab did not answer within {START_TIMEOUT:.0f} s (log: {log_path}).")


def lab_down(state_dir: Path | None = None) -> bool:
    """Stop the lab started by `lab_up`; False if none was running."""
    directory = state_folder(state_dir)
    info = _recorded(directory)
    if info is None:
        return False
    was_running = pid_alive(info.pid)
    if was_running:
        with contextlib.suppress(ProcessLookupError):
            os.kill(info.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while pid_alive(info.pid) and time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(info.pid, os.WNOHANG)
            time.sleep(0.05)
        if pid_alive(info.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(info.pid, signal.SIGKILL)
    (directory / "lab.json").unlink(missing_ok=True)
    return was_running
