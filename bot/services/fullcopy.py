"""Full copies: one clone of each type goes first, and an endpoint that ignores linked cloning
writes one full copy (removed at once), not one per clone; once a type has proven linked, one
stray full copy is removed and made again, and a second one stops the type."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from bot.domain.errors import LinkedCloneCheckFailed
from bot.domain.models import Clone


@dataclass(frozen=True)
class _Copy:
    """One full copy a clone of the type came out as."""

    name: str
    removed: bool


class FullCopyGuard:
    """Per type, one clone goes first (a probe); the others wait until vCenter has made a
    linked clone of that type. A probe that comes out as a full copy stops the type there: an
    endpoint that ignores linked cloning (VMware's simulator, a parent with per-disk overrides)
    so writes one full copy, removed at once, instead of one per clone. Once the type has
    proven linked, its first full copy (removed) is made again, once, as a linked clone; a
    second full copy stops the type. The clone whose full copy stopped it is recorded in the
    same step as the stop, so whatever the stop leaves out names it.

    A probe that fails for another reason hands the turn to the next clone; after PROBE_TRIES
    such failures the type runs in parallel anyway.
    """

    PROBE_TRIES = 3

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._state: dict[str, str] = {}  # type -> "probing", "open" or "stopped"
        self._failed_probes: Counter[str] = Counter()
        self._copies: dict[str, list[_Copy]] = {}  # type -> its full copies, in order
        self._stopper: dict[str, tuple[_Copy, int]] = {}  # type -> the copy that stopped it, nth
        self._retried: dict[str, list[str]] = {}  # type -> clones whose full copy was made again
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

    def leave(self, type_name: str, turn: str, *, linked: bool) -> None:
        """This clone's turn ends (`linked`: it came out a linked clone). A full copy was
        reported already (`full_copy`), when it happened."""
        with self._cond:
            if turn == "probe" and self._state.get(type_name) == "probing":
                if linked:
                    self._state[type_name] = "open"
                else:
                    self._failed_probes[type_name] += 1
                    if self._failed_probes[type_name] >= self.PROBE_TRIES:
                        self._state[type_name] = "open"
                    else:
                        del self._state[type_name]  # the next clone probes
            self._cond.notify_all()

    def full_copy(self, type_name: str, name: str, exc: LinkedCloneCheckFailed) -> bool:
        """Clone `name` came out as a full copy (told while it holds its slot). True: make it
        again, once (the type had proven linked, this is its first full copy, and the copy was
        removed). False: the type stops here, named by this clone in the same step (unless it
        had stopped already)."""
        with self._cond:
            copies = self._copies.setdefault(type_name, [])
            copy = _Copy(name, exc.removed)
            copies.append(copy)
            if self._state.get(type_name) == "open" and len(copies) == 1 and exc.removed:
                self._retried.setdefault(type_name, []).append(name)
                return True
            if self._state.get(type_name) != "stopped":
                self._state[type_name] = "stopped"
                self._stopper[type_name] = (copy, len(copies))
            self._cond.notify_all()
            return False

    @property
    def stopped(self) -> bool:
        with self._cond:
            return bool(self._stopper)

    def slot(self, slots: Slot, type_name: str) -> _TypeSlot:
        return _TypeSlot(self, slots, type_name)

    def proven(self, type_name: str) -> None:
        """A clone of the type came out linked: the others go (if it was the probe)."""
        with self._cond:
            if self._state.get(type_name) == "probing":
                self._state[type_name] = "open"
                self._cond.notify_all()

    def has_stopped(self, type_name: str) -> bool:
        with self._cond:
            return self._state.get(type_name) == "stopped"

    def not_attempted(self, type_name: str, what: str = "not attempted") -> str:
        """The error of a clone skipped because its type stopped (and count it)."""
        with self._cond:
            self._skipped[type_name] += 1
            stopper, nth = self._stopper[type_name]  # set in the same step as the stop
        return (
            f"{what}: {type_name} stopped at its {_nth(nth)} full copy ({stopper.name}); that "
            "clone's error says why."
        )

    def summary(self, what: str = "not attempted") -> str:
        """The run's full copies, said once: each copy made again, and each stopped type (the
        copy that stopped it, and how many clones that left out)."""
        with self._cond:
            parts = []
            for t in sorted(self._copies):
                again = ", ".join(self._retried.get(t, []))
                if t not in self._stopper:
                    if again:
                        parts.append(
                            f"{t}: {again} came out as a full copy, was removed and made again "
                            "as a linked clone"
                        )
                    continue
                stopper, nth = self._stopper[t]
                fate = "removed" if stopper.removed else "NOT removed"
                before = ""
                if again == stopper.name:
                    before = ", the second time: the first was removed and made again"
                elif again:
                    before = f"; the first, {again}, was removed and made again"
                skipped = self._skipped[t]
                rest = f"{skipped} {t} clone{'' if skipped == 1 else 's'} {what}"
                parts.append(
                    f"{t} stopped at its {_nth(nth)} full copy ({stopper.name}, {fate}{before}); "
                    f"{rest}"
                )
        return "; ".join(parts) + "." if parts else ""


def _nth(n: int) -> str:
    return {1: "first", 2: "second"}.get(n, f"{n}th")


class Slot(Protocol):
    """Room for one clone task (a semaphore, or a ticket of bot.services.limits)."""

    def acquire(self) -> object: ...
    def release(self) -> None: ...


class TypeStopped(Exception):
    """A clone's type stopped at a full copy while the clone waited for a slot."""


class _TypeSlot:
    """A clone slot that, once had, checks the clone's type has not stopped meanwhile (a
    clone waiting for a slot has not started: it must not start after a full copy). The clone
    tells the guard of a full copy (`FullCopyGuard.full_copy`) while it holds the slot, so no
    clone of a type that stops there starts after it, and each one skipped can name it."""

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
