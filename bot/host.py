"""This machine and this process, as run ownership names them, how the process ends on a bus
error, and the process's memory (ground floor: standard library).

A run records its owner as `host:pid:token`. The token is drawn once per process, so a process
that gets the same host name and pid as a dead one (a container restarted: the bot is PID 1
again) is never taken for it, and the dead one's runs are recovered.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import socket
import threading
import uuid
from collections.abc import Callable

_TOKEN = uuid.uuid4().hex[:12]


def machine_name() -> str:
    """This machine's name in owner strings: $CLONES_MACHINE when set (where host names may
    repeat across machines, e.g. containers given the same host name), else the host name."""
    return os.environ.get("CLONES_MACHINE", "").strip().replace(":", "-") or socket.gethostname()


def process_owner() -> str:
    """This process's owner string: `host:pid:token`."""
    return f"{machine_name()}:{os.getpid()}:{_TOKEN}"


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
    if host != machine_name() or not pid.isdigit():
        return False
    if int(pid) == os.getpid():
        return True  # our pid, not our token: a previous life of this pid
    return not pid_alive(int(pid))


# A bus error (SIGBUS) is how the kernel answers a write into a memory-mapped file that can no
# longer be written: SQLite's WAL index (`clones.db-shm`) once the file is made immutable or its
# filesystem is remounted read-only. SQLite cannot catch it, and by default it ends the process
# without a word. The storage core checks the file before each statement (storage/faults.py);
# for a fault in the middle of one, this says one sentence and exits instead. Python runs its
# own signal handlers only in the main thread, between bytecodes, and the faulting thread (the
# main thread too, perhaps) re-runs the faulting write for ever: so the signal is also written to
# a pipe (`signal.set_wakeup_fd`) that a thread of its own waits on.
class _BusError:
    message = (
        "clones: stopped by a bus error (SIGBUS): a file in use, such as the database's -shm "
        "file, could no longer be written."
    )
    code = 1
    watching = False
    once = threading.Lock()


def say_on_bus_error(message: str) -> None:
    """The sentence a bus error ends this process with, from now on."""
    _BusError.message = message


def watch_bus_errors(code: int) -> bool:
    """End this process with the `say_on_bus_error` sentence and exit `code` on a bus error.
    Call from the main thread of an entry point; False (nothing installed) elsewhere, or where
    the signal wake-up descriptor is taken already (an event loop)."""
    if threading.current_thread() is not threading.main_thread() or _BusError.watching:
        return False
    read, write = os.pipe()
    os.set_blocking(write, False)
    taken = signal.set_wakeup_fd(write, warn_on_full_buffer=False)
    if taken != -1:  # someone else's: give it back
        signal.set_wakeup_fd(taken)
        os.close(read)
        os.close(write)
        return False
    _BusError.code, _BusError.watching = code, True
    signal.signal(signal.SIGBUS, lambda signum, frame: _bus_error())
    waiter = threading.Thread(target=_wait_for_bus_error, args=(read,), daemon=True)
    waiter.name = "bus-error"
    waiter.start()
    return True


def _wait_for_bus_error(read: int) -> None:
    while True:
        if bytes([signal.SIGBUS]) in os.read(read, 256):
            _bus_error()


def _bus_error() -> None:
    if _BusError.once.acquire(blocking=False):
        os.write(2, (_BusError.message.rstrip() + "\n").encode("utf-8", "replace"))
        os._exit(_BusError.code)


_TRIM_LOCK = threading.Lock()
_trim: Callable[[int], int] | None = None
_TRIM_LOOKED = False
_M_ARENA_MAX = -8  # glibc's mallopt parameter


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    return ctypes.CDLL(name) if name else None


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """Let glibc's allocator keep at most `arenas` arenas (it makes up to 8 per CPU, one per
    thread that allocates at once), so memory freed by one thread is reused by the next instead
    of sitting in an arena of its own; True when it could (glibc). Call at start-up, before the
    threads start: what MALLOC_ARENA_MAX=2 in the environment does."""
    libc = _libc()
    mallopt = getattr(libc, "mallopt", None) if libc is not None else None
    if mallopt is None:
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_ARENA_MAX, arenas))


def release_freed_memory() -> bool:
    """Hand back to the system the memory the C allocator still holds after it was freed; True
    when it could (glibc's `malloc_trim`; elsewhere nothing is done).

    Why: the bot frees as much as it allocates (a soak of hundreds of deployments showed the
    memory in use flat), but glibc keeps freed chunks in each thread's arena, and with a pool of
    threads rendering charts and parsing SOAP answers what it kept grew by about 2.3 MB per 100
    deployments, never handed back, and the process's RSS with it (benchmarks/soak.py).
    `malloc_trim(0)` returns every free page of every arena; it takes about a millisecond.
    """
    global _trim, _TRIM_LOOKED
    with _TRIM_LOCK:
        if not _TRIM_LOOKED:
            _TRIM_LOOKED = True
            libc = _libc()
            trim = getattr(libc, "malloc_trim", None) if libc is not None else None
            if trim is not None:
                trim.argtypes = [ctypes.c_size_t]
                trim.restype = ctypes.c_int
                _trim = trim
        trim = _trim
    if trim is None:
        return False
    trim(0)
    return True
