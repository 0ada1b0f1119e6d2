"""Stopping a type at its first full copy: one clone of each type goes first, and an endpoint
that ignores linked cloning writes one full copy (removed at once), not one per clone."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence
from typing import Protocol

from bot.domain.errors import LinkedCloneCheckFailed
from bot.domain.models import Clone


class FullCopyGuard:
    """Per type, one clone goes first (a probe); the others wait until vCenter has made a
    linked clone of that type, and a type whose clone comes out as a full copy stops there.

    An endpoint that ignores linked cloning (VMware's simulator, a parent with per-disk
    overrides) so writes one full copy, removed at once, instead of one per clone. A probe that
    fails for another reason hands the turn to the next clone; after PROBE_TRIES such failures
    the type runs in parallel anyway (a full copy among those still stops what has not started).
    """

    PROBE_TRIES = 3

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._state: dict[str, str] = {}  # type -> "probing", "open" or "stopped"
        self._failed_probes: Counter[str] = Counter()
        self._first_copy: dict[str, tuple[str, bool]] = {}  # type -> (full copy, removed?)
        self._skipped: Counter[str] = Counter()  # clones not attempted, by type

    def enter(self, type_name: str) -> str | None:
        """Wait for this clone's turn: "probe", "go", or None when the type has stopped."""
        with self._cond:
            while True:
                state = self._state.get(type_name)
                if state is None:
                    self._state[type_name] = "probing"
                    return "probe"
                if state == "open":
                    return "go"
                if state == "stopped":
                    return None
                self._cond.wait()

    def leave(
        self,
        type_name: str,
        turn: str,
        *,
        linked: bool,
        name: str,
        full_copy: LinkedCloneCheckFailed | None = None,
    ) -> None:
        with self._cond:
            if full_copy is not None:
                self._state[type_name] = "stopped"
                self._first_copy.setdefault(type_name, (name, full_copy.removed))
            elif turn == "probe" and self._state.get(type_name) == "probing":
                if linked:
                    self._state[type_name] = "open"
                else:
                    self._failed_probes[type_name] += 1
                    if self._failed_probes[type_name] >= self.PROBE_TRIES:
                        self._state[type_name] = "open"
                    else:
                        del self._state[type_name]  # the next clone probes
            self._cond.notify_all()

    @property
    def stopped(self) -> bool:
        with self._cond:
            return bool(self._first_copy)

    def slot(self, slots: Slot, type_name: str) -> _TypeSlot:
        return _TypeSlot(self, slots, type_name)

    def proven(self, type_name: str) -> None:
        """A clone of the type came out linked: the others go (if it was the probe)."""
        with self._cond:
            if self._state.get(type_name) == "probing":
                self._state[type_name] = "open"
                self._cond.notify_all()

    def halt(self, type_name: str) -> None:
        """Stop the type now for clones waiting for a slot; those waiting for their turn hear
        of it from `leave`, once the full copy is recorded."""
        with self._cond:
            self._state[type_name] = "stopped"

    def has_stopped(self, type_name: str) -> bool:
        with self._cond:
            return self._state.get(type_name) == "stopped"

    def not_attempted(self, type_name: str, what: str = "not attempted") -> str:
        """The error of a clone skipped because its type stopped (and count it)."""
        with self._cond:
            self._skipped[type_name] += 1
            first = self._first_copy.get(type_name, ("?", True))[0]
        return (
            f"{what}: {type_name} stopped at its first full copy ({first}); that clone's error "
            "says why."
        )

    def summary(self, what: str = "not attempted") -> str:
        with self._cond:
            parts = []
            for t, (name, removed) in sorted(self._first_copy.items()):
                fate = "removed" if removed else "NOT removed"
                skipped = self._skipped[t]
                rest = f"{skipped} {t} clone{'' if skipped == 1 else 's'} {what}"
                parts.append(f"{t} stopped at its first full copy ({name}, {fate}); {rest}")
        return "; ".join(parts) + "."


class Slot(Protocol):
    """Room for one clone task (a semaphore, or a ticket of bot.services.limits)."""

    def acquire(self) -> object: ...
    def release(self) -> None: ...


class TypeStopped(Exception):
    """A clone's type stopped at a full copy while the clone waited for a slot."""


class _TypeSlot:
    """A clone slot that, once had, checks the clone's type has not stopped meanwhile (a
    clone waiting for a slot has not started: it must not start after a full copy)."""

    def __init__(self, guard: FullCopyGuard, slots: Slot, type_name: str) -> None:
        self.guard = guard
        self.slots = slots
        self.type_name = type_name

    def __enter__(self) -> None:
        self.slots.acquire()
        if self.guard.has_stopped(self.type_name):
            self.slots.release()
            raise TypeStopped(self.type_name)

    def __exit__(self, kind: object, exc: object, tb: object) -> None:
        if exc is None:  # vCenter made it and it is linked: the type's others may start now,
            self.guard.proven(self.type_name)  # while this one is labelled
        elif isinstance(exc, LinkedCloneCheckFailed):  # stop the type before the slot is free
            self.guard.halt(self.type_name)
        self.slots.release()


def probes_first(clones: Sequence[Clone]) -> list[Clone]:
    """The first clone of each type, then the rest, each in their order."""
    seen: set[str] = set()
    first: list[Clone] = []
    rest: list[Clone] = []
    for c in clones:
        (rest if c.type in seen else first).append(c)
        seen.add(c.type)
    return first + rest
