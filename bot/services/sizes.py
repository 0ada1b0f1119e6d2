"""How far clones grow: each clone's committed size is recorded whenever vCenter is read for it
anyway (status, inventory, strip back, refresh: no call of its own), and a type's delta is
estimated from the peaks of its clones that lived at least a day (bot/domain/capacity.py)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from bot.domain.capacity import DeltaEstimate, estimate_delta
from bot.domain.models import Clone
from bot.ports import Clones
from bot.settings import TypeSettings


class Seen(Protocol):
    """A VM as a read saw it (a VmSighting with "storage", or VmFacts)."""

    @property
    def instance_uuid(self) -> str: ...
    @property
    def committed_bytes(self) -> int: ...


def record_seen(repo: Clones, seen: Iterable[tuple[Clone, Seen]]) -> None:
    """Record the size of each clone read from vCenter, when the VM read is that clone (its
    instance UUID) and its size was read (0: not asked for, or an endpoint without figures)."""
    repo.record_sizes(
        (c.id, vm.committed_bytes)
        for c, vm in seen
        if vm.committed_bytes > 0 and c.instance_uuid and vm.instance_uuid == c.instance_uuid
    )


def delta_estimate(repo: Clones, t: TypeSettings) -> DeltaEstimate:
    """A new clone of `t`'s expected delta, and where the figure comes from."""
    return estimate_delta(repo.clone_peaks(type=t.name, parent=t.parent), t.delta_estimate_gb)
