"""The savings math, checked against the origin post's figures and by properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.domain.models import Clone, CloneState, ParentFacts
from bot.domain.savings import GIB, compute_savings, estimate, format_table


def gib(gb: float) -> int:
    return round(gb * GIB)


# The origin post: three parents, 25 linked clones of each, 0.13 GB of delta per clone.
ORIGIN_PARENTS = {
    "Capture": ParentFacts("Capture", provisioned_bytes=gib(11), used_bytes=gib(3.34)),
    "Packaging": ParentFacts("Packaging", provisioned_bytes=gib(8), used_bytes=gib(3.72)),
    "Verification": ParentFacts("Verification", provisioned_bytes=gib(8), used_bytes=gib(2.49)),
}
ORIGIN_CLONES = [(parent, gib(0.13)) for parent in ORIGIN_PARENTS for _ in range(25)]


def test_origin_figures() -> None:
    s = compute_savings(ORIGIN_CLONES, ORIGIN_PARENTS)
    assert s.clones == 75
    assert s.thick_gb == 675.00
    assert s.thin_gb == 238.75
    assert s.linked_gb == 19.30
    assert s.saved_vs_thin_gb == 219.45
    assert s.saved_vs_thin_pct == 91.9
    assert s.saved_vs_thick_gb == 655.70
    assert s.saved_vs_thick_pct == 97.1
    assert [(p.parent, p.clones) for p in s.by_parent] == [
        ("Capture", 25),
        ("Packaging", 25),
        ("Verification", 25),
    ]
    capture = s.by_parent[0]
    assert capture.thick_bytes == 25 * gib(11)
    assert capture.thin_bytes == 25 * gib(3.34)
    assert capture.linked_bytes == gib(3.34) + 25 * gib(0.13)


def test_origin_as_dict() -> None:
    d = compute_savings(ORIGIN_CLONES, ORIGIN_PARENTS).as_dict()
    assert {k: v for k, v in d.items() if k != "by_parent"} == {
        "clones": 75,
        "thick_gb": 675.0,
        "thin_gb": 238.75,
        "linked_gb": 19.3,
        "saved_vs_thin_gb": 219.45,
        "saved_vs_thick_gb": 655.7,
        "saved_vs_thin_pct": 91.9,
        "saved_vs_thick_pct": 97.1,
    }
    assert d["by_parent"] == [
        {"parent": "Capture", "clones": 25, "thick_gb": 275.0, "thin_gb": 83.5, "linked_gb": 6.59},
        {
            "parent": "Packaging",
            "clones": 25,
            "thick_gb": 200.0,
            "thin_gb": 93.0,
            "linked_gb": 6.97,
        },
        {
            "parent": "Verification",
            "clones": 25,
            "thick_gb": 200.0,
            "thin_gb": 62.25,
            "linked_gb": 5.74,
        },
    ]


def test_origin_table() -> None:
    table = format_table(compute_savings(ORIGIN_CLONES, ORIGIN_PARENTS))
    lines = table.splitlines()
    assert "Thick, full clones" in table and "675.00" in table and "655.70 (97.1%)" in table
    assert "Thin, full clones" in table and "238.75" in table and "219.45 (91.9%)" in table
    assert "Linked clones" in table and "19.30" in table
    assert any(line.startswith("Capture") and "275.00" in line for line in lines)
    assert "75 clones" in table
    # Fixed width: the rows of each block line up.
    assert len({len(line) for line in lines[:5]}) == 1


def test_clone_records_are_accepted() -> None:
    records = [
        Clone(i, f"cap-{i}", "nov", "capture", "Capture", CloneState.READY, delta_bytes=gib(0.13))
        for i in range(25)
    ]
    from_records = compute_savings(records, ORIGIN_PARENTS)
    from_pairs = compute_savings([("Capture", gib(0.13))] * 25, ORIGIN_PARENTS)
    assert from_records == from_pairs


def test_unknown_delta_uses_the_default() -> None:
    unknown = [("Capture", None)] * 4
    assert compute_savings(unknown, ORIGIN_PARENTS).linked_bytes == gib(3.34)
    with_default = compute_savings(unknown, ORIGIN_PARENTS, default_delta_bytes=100)
    assert with_default.linked_bytes == gib(3.34) + 400


def test_no_clones() -> None:
    s = compute_savings([], ORIGIN_PARENTS)
    assert (s.clones, s.thick_bytes, s.thin_bytes, s.linked_bytes, s.by_parent) == (0, 0, 0, 0, ())
    assert s.saved_vs_thin_pct == 0.0 and s.saved_vs_thick_pct == 0.0
    assert s.as_dict()["by_parent"] == []
    assert "0 clones" in format_table(s)


def test_missing_parent_is_named() -> None:
    with pytest.raises(ValueError, match="Nope"):
        compute_savings([("Nope", 1)], ORIGIN_PARENTS)


def test_negative_sizes_are_refused() -> None:
    with pytest.raises(ValueError):
        compute_savings([("Capture", -1)], ORIGIN_PARENTS)
    with pytest.raises(ValueError):
        estimate(ORIGIN_PARENTS["Capture"], -1, 0)


def test_estimate_matches_one_parent_of_the_origin() -> None:
    s = estimate(ORIGIN_PARENTS["Capture"], 25, gib(0.13))
    assert (s.thick_gb, s.thin_gb, s.linked_gb) == (275.0, 83.5, 6.59)
    assert estimate(ORIGIN_PARENTS["Capture"], 0, gib(0.13)).clones == 0


# ---------------------------------------------------------------------------------------------
# Properties

SIZES = st.integers(min_value=0, max_value=4 * 2**40)


@st.composite
def labs(draw: st.DrawFn) -> tuple[list[tuple[str, int | None]], dict[str, ParentFacts]]:
    """Parents with delta <= used <= provisioned, and some clones of them."""
    names = draw(st.lists(st.sampled_from("abcdefgh"), min_size=1, max_size=8, unique=True))
    parents: dict[str, ParentFacts] = {}
    clones: list[tuple[str, int | None]] = []
    for name in names:
        provisioned = draw(SIZES)
        used = draw(st.integers(0, provisioned))
        parents[name] = ParentFacts(name, provisioned, used)
        deltas = draw(st.lists(st.none() | st.integers(0, used), max_size=30))
        clones += [(name, delta) for delta in deltas]
    return draw(st.permutations(clones)), parents


@given(labs())
def test_linked_le_thin_le_thick(lab: tuple[list[tuple[str, int | None]], dict]) -> None:
    clones, parents = lab
    s = compute_savings(clones, parents)
    assert s.thin_bytes <= s.thick_bytes
    # The shared base disk is linked clones' only overhead over thin full clones: with
    # delta <= used, linked <= thin + each involved parent's used size once.
    bases = sum(parents[p.parent].used_bytes for p in s.by_parent)
    assert s.linked_bytes <= s.thin_bytes + bases
    assert s.saved_vs_thick_pct <= 100.0


@given(labs())
def test_linked_le_thin_once_the_base_is_shared(
    lab: tuple[list[tuple[str, int | None]], dict],
) -> None:
    # With one clone, linked (base + delta) exceeds thin (base); the strict order holds once
    # every parent has at least two clones whose deltas are at most half its used size.
    clones, parents = lab
    clones = [(p, None if d is None else d // 2) for p, d in clones]
    clones += [(p, 0) for p in {p for p, _ in clones}]  # a second clone for lone ones
    s = compute_savings(clones, parents)
    assert s.linked_bytes <= s.thin_bytes <= s.thick_bytes


@given(labs())
def test_totals_are_the_sum_of_parents(lab: tuple[list[tuple[str, int | None]], dict]) -> None:
    clones, parents = lab
    s = compute_savings(clones, parents)
    assert s.clones == len(clones) == sum(p.clones for p in s.by_parent)
    assert s.thick_bytes == sum(p.thick_bytes for p in s.by_parent)
    assert s.thin_bytes == sum(p.thin_bytes for p in s.by_parent)
    assert s.linked_bytes == sum(p.linked_bytes for p in s.by_parent)
    assert [p.parent for p in s.by_parent] == [n for n in parents if any(c[0] == n for c in clones)]
    format_table(s)  # never fails


@given(st.integers(1, 500), SIZES, st.data())
def test_estimate_scales_with_count(count: int, provisioned: int, data: st.DataObject) -> None:
    used = data.draw(st.integers(0, provisioned))
    delta = data.draw(st.integers(0, used))
    parent = ParentFacts("p", provisioned, used)
    s = estimate(parent, count, delta)
    assert s.thick_bytes == count * provisioned
    assert s.thin_bytes == count * used
    assert s.linked_bytes == used + count * delta
