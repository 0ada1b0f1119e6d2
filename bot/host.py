"""This machine and this process, as run ownership names them (ground floor: standard library).

A run records its owner as `host:pid:token`. The token is drawn once per process, so a process
that gets the same host name and pid as a dead one (a container restarted: the bot is PID 1
again) is never taken for it, and the dead one's runs are recovered.
"""

from __future__ import annotations

import os
import socket
import uuid

_TOKEN = uuid.uuid4().hex[:12]


def process_owner() -> str:
    """This process's owner string: `host:pid:token`."""
    return f"{socket.gethostname()}:{os.getpid()}:{_TOKEN}"


def pid_alive(pid: int) -> bool:
    """True while a process with this id exists (a signal-0 probe)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def owner_gone(owner: str) -> bool:
    """True when the process an owner string names has certainly ended: it ran on this machine
    and its pid is dead, or its pid is this process's own but the token is not (an earlier
    process with the same pid, e.g. before a container restart). False when unsure (another
    machine, or a live pid): the caller then goes by the run's heartbeat."""
    if owner == process_owner():
        return False
    parts = owner.split(":")
    host, pid = (parts[0], parts[1]) if len(parts) >= 2 else ("", "")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    if int(pid) == os.getpid():
        return True  # our pid, not our token: a previous life of this pid
    return not pid_alive(int(pid))
