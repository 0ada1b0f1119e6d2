"""The savings math: what linked clones save against thick and thin full clones.

Definitions, from the origin post:
- thick: every clone a full copy of its parent's provisioned disks;
- thin: every clone a full thin copy, i.e. the parent's used size;
- linked: each parent's used size once (the shared base disk) plus each clone's own delta.

Sizes are bytes; "GB" in output means GiB (2**30 bytes), as vSphere reports it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from bot.domain.models import Clone, ParentFacts

GIB = 2**30


def _gb(n_bytes: int) -> float:
    return round(n_bytes / GIB, 2)


def _pct(part: int, whole: int) -> float:
    """The share saved, 0 to 100: linked clones that use more than a full-copy layout (a lone
    clone, or a tiny parent with a large delta estimate) save nothing, not a negative share."""
    return max(0.0, round(100 * part / whole, 1)) if whole > 0 else 0.0


@dataclass(frozen=True)
class ParentSavings:
    """One parent's share of the totals."""

    parent: str
    clones: int
    thick_bytes: int
    thin_bytes: int
    linked_bytes: int

    def as_dict(self) -> dict[str, object]:
        return {
            "parent": self.parent,
            "clones": self.clones,
            "thick_gb": _gb(self.thick_bytes),
            "thin_gb": _gb(self.thin_bytes),
            "linked_gb": _gb(self.linked_bytes),
        }


@dataclass(frozen=True)
class Savings:
    """Totals over a set of clones, with each parent's share in `by_parent`."""

    clones: int
    thick_bytes: int
    thin_bytes: int
    linked_bytes: int
    by_parent: tuple[ParentSavings, ...] = ()

    @property
    def thick_gb(self) -> float:
        return _gb(self.thick_bytes)

    @property
    def thin_gb(self) -> float:
        return _gb(self.thin_bytes)

    @property
    def linked_gb(self) -> float:
        return _gb(self.linked_bytes)

    @property
    def saved_vs_thin_gb(self) -> float:
        return _gb(self.thin_bytes - self.linked_bytes)

    @property
    def saved_vs_thick_gb(self) -> float:
        return _gb(self.thick_bytes - self.linked_bytes)

    @property
    def saved_vs_thin_pct(self) -> float:
        return _pct(self.thin_bytes - self.linked_bytes, self.thin_bytes) if self.clones else 0.0

    @property
    def saved_vs_thick_pct(self) -> float:
        return _pct(self.thick_bytes - self.linked_bytes, self.thick_bytes) if self.clones else 0.0

    def as_dict(self) -> dict[str, object]:
        """Plain data for JSON output and Block Kit rendering."""
        return {
            "clones": self.clones,
            "thick_gb": self.thick_gb,
            "thin_gb": self.thin_gb,
            "linked_gb": self.linked_gb,
            "saved_vs_thin_gb": self.saved_vs_thin_gb,
            "saved_vs_thick_gb": self.saved_vs_thick_gb,
            "saved_vs_thin_pct": self.saved_vs_thin_pct,
            "saved_vs_thick_pct": self.saved_vs_thick_pct,
            "by_parent": [p.as_dict() for p in self.by_parent],
        }


def compute_savings(
    clones: Iterable[tuple[str, int | None] | Clone],
    parents: Mapping[str, ParentFacts],
    default_delta_bytes: int = 0,
) -> Savings:
    """Savings of `clones`, given as `(parent_name, delta_bytes)` pairs or `Clone` records.

    A clone whose delta is not known yet (None) counts as `default_delta_bytes`: 0 by default,
    which is what a freshly made, powered-off linked clone occupies; pass an estimate (e.g. the
    type's typical delta) to plan rather than report. `by_parent` follows the order of `parents`.
    Raises ValueError for a clone whose parent is not in `parents`, or a negative size.
    """
    if default_delta_bytes < 0:
        raise ValueError(f"default_delta_bytes must not be negative, got {default_delta_bytes}")
    counts: dict[str, int] = {}
    deltas: dict[str, int] = {}
    for clone in clones:
        parent, delta = (clone.parent, clone.delta_bytes) if isinstance(clone, Clone) else clone
        if parent not in parents:
            raise ValueError(f'no facts for parent "{parent}"; refresh the inventory of parents')
        delta = default_delta_bytes if delta is None else delta
        if delta < 0:
            raise ValueError(f'a clone of "{parent}" has a negative delta ({delta} bytes)')
        counts[parent] = counts.get(parent, 0) + 1
        deltas[parent] = deltas.get(parent, 0) + delta

    by_parent = tuple(
        ParentSavings(
            parent=name,
            clones=counts[name],
            thick_bytes=counts[name] * facts.provisioned_bytes,
            thin_bytes=counts[name] * facts.used_bytes,
            linked_bytes=facts.used_bytes + deltas[name],
        )
        for name, facts in parents.items()
        if name in counts
    )
    return Savings(
        clones=sum(p.clones for p in by_parent),
        thick_bytes=sum(p.thick_bytes for p in by_parent),
        thin_bytes=sum(p.thin_bytes for p in by_parent),
        linked_bytes=sum(p.linked_bytes for p in by_parent),
        by_parent=by_parent,
    )


def estimate(parent: ParentFacts, count: int, delta_bytes: int) -> Savings:
    """What `count` clones of `parent`, each with `delta_bytes` of its own, would use."""
    if count < 0:
        raise ValueError(f"count must not be negative, got {count}")
    return compute_savings([(parent.name, delta_bytes)] * count, {parent.name: parent})


def _saved(full: int, linked: int) -> str:
    """What linked clones save against one full-copy layout; never a negative saving."""
    if linked > full:
        return f"none (linked uses {_gb(linked - full):.2f} more)"
    return f"{_gb(full - linked):.2f} ({_pct(full - linked, full)}%)"


def format_table(s: Savings) -> str:
    """A fixed-width table for a terminal or a Slack code block."""
    rows = [
        ("Thick, full clones", s.thick_gb, _saved(s.thick_bytes, s.linked_bytes)),
        ("Thin, full clones", s.thin_gb, _saved(s.thin_bytes, s.linked_bytes)),
        ("Linked clones", s.linked_gb, "-"),
    ]
    size_w = max(len("Size GB"), *(len(f"{gb:.2f}") for _, gb, _ in rows))
    saved_w = max(len("Linked saves GB"), *(len(saved) for _, _, saved in rows))
    lines = [f"{'Layout':<18}  {'Size GB':>{size_w}}  {'Linked saves GB':>{saved_w}}"]
    lines.append("-" * len(lines[0]))
    lines += [f"{name:<18}  {gb:>{size_w}.2f}  {saved:>{saved_w}}" for name, gb, saved in rows]
    if s.by_parent:
        name_w = min(30, max(len("Parent"), *(len(p.parent) for p in s.by_parent)))
        cols = [
            (p.clones, _gb(p.thick_bytes), _gb(p.thin_bytes), _gb(p.linked_bytes))
            for p in s.by_parent
        ]
        gb_w = max(len("Linked"), *(len(f"{v:.2f}") for c in cols for v in c[1:]))
        lines.append("")
        lines.append(
            f"{'Parent':<{name_w}}  {'Clones':>6}  {'Thick':>{gb_w}}  {'Thin':>{gb_w}}  "
            f"{'Linked':>{gb_w}}"
        )
        lines.append("-" * len(lines[-1]))
        for p, (n, thick, thin, linked) in zip(s.by_parent, cols, strict=True):
            name = p.parent if len(p.parent) <= name_w else p.parent[: name_w - 3] + "..."
            lines.append(
                f"{name:<{name_w}}  {n:>6}  {thick:>{gb_w}.2f}  {thin:>{gb_w}.2f}  "
                f"{linked:>{gb_w}.2f}"
            )
    plural = "" if s.clones == 1 else "s"
    lines.append("")
    lines.append(f"{s.clones} clone{plural}; GB = GiB (2^30 bytes)")
    return "\n".join(lines)
