"""`python -m benchmarks.soak_bot`: `python -m bot`, with a thread that writes what the process
holds every few seconds to the JSON-lines file named by $CLONES_SOAK_PROBE: SQLite's own heap
(`sqlite3_memory_used`: page caches, statements), Python's allocated blocks, the C allocator's
bytes in use and freed-but-kept (`mallinfo2`), and the threads; with CLONES_SOAK_CENSUS=1 also a
census of Python objects by type. The soak reads it to tell what a growing RSS is made of."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import itertools
import json
import os
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

PROBE_EVERY_S = 3.0


def _sqlite() -> ctypes.CDLL | None:
    """The SQLite library the sqlite3 module runs on (the same process-wide counters)."""
    name = ctypes.util.find_library("sqlite3")
    if name is None:
        return None
    lib = ctypes.CDLL(name)
    lib.sqlite3_memory_used.restype = ctypes.c_int64
    lib.sqlite3_memory_highwater.restype = ctypes.c_int64
    lib.sqlite3_memory_highwater.argtypes = [ctypes.c_int]
    return lib


def _types(objects: list[object]) -> dict[str, int]:
    """How many objects of each type (by module and name), the 60 most common."""
    counts = Counter(f"{type(o).__module__}.{type(o).__qualname__}" for o in objects)
    return dict(counts.most_common(60))


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
            "fordblks", "keepcost",
        )
    ]  # fmt: skip


def _malloc() -> Any:
    """glibc's mallinfo2 (None elsewhere): what the C allocator holds, in use and free."""
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    if libc is None or not hasattr(libc, "mallinfo2"):
        return None
    libc.mallinfo2.restype = _MallInfo2
    return libc.mallinfo2


def probe(path: Path, census: bool) -> None:
    lib, mallinfo = _sqlite(), _malloc()
    for n in itertools.count():
        heap = mallinfo() if mallinfo else None
        line: dict[str, Any] = {
            "t": time.time(),
            "sqlite_mb": round(lib.sqlite3_memory_used() / 2**20, 3) if lib else None,
            "sqlite_high_mb": round(lib.sqlite3_memory_highwater(0) / 2**20, 3) if lib else None,
            "py_blocks": sys.getallocatedblocks(),
            "threads": threading.active_count(),
            # The C heap: bytes in use, and bytes freed but kept by the allocator (not returned
            # to the system), over all its arenas; mmapped blocks apart.
            "malloc_used_mb": round(heap.uordblks / 2**20, 2) if heap else None,
            "malloc_free_mb": round(heap.fordblks / 2**20, 2) if heap else None,
            "malloc_mmap_mb": round(heap.hblkhd / 2**20, 2) if heap else None,
        }
        if census and n % 10 == 0:  # a census of every object: costly, and it moves the RSS
            objects = gc.get_objects()
            line["py_objects"] = len(objects)
            line["types"] = _types(objects)
            del objects
        with path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(line) + "\n")
        time.sleep(PROBE_EVERY_S)


def main() -> int:
    path = os.environ.get("CLONES_SOAK_PROBE")
    if path:
        census = os.environ.get("CLONES_SOAK_CENSUS") == "1"
        threading.Thread(
            target=probe, args=(Path(path), census), name="soak-probe", daemon=True
        ).start()
    from bot.bootstrap import slack

    return slack()


if __name__ == "__main__":
    sys.exit(main())
