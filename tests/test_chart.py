"""The savings chart renders real PNGs, quickly, from any Savings."""

from __future__ import annotations

import struct
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bot.adapters.chart import render_savings_chart, write_savings_chart
from bot.domain.models import ParentFacts
from bot.domain.savings import GIB, Savings, compute_savings

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

PARENTS = {
    name: ParentFacts(name, round(thick * GIB), round(used * GIB))
    for name, thick, used in [
        ("Capture", 11, 3.34),
        ("Packaging", 8, 3.72),
        ("Verification", 8, 2.49),
    ]
}
ORIGIN = compute_savings(
    [(name, round(0.13 * GIB)) for name in PARENTS for _ in range(25)], PARENTS
)


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_origin_chart_is_a_png_of_reasonable_size() -> None:
    data = render_savings_chart(ORIGIN)
    width, height = png_size(data)
    assert 400 <= width <= 2000 and 300 <= height <= 1500
    assert 5_000 < len(data) < 500_000


def test_renders_with_no_clones() -> None:
    png_size(render_savings_chart(compute_savings([], PARENTS), title="Empty lab"))
    png_size(render_savings_chart(Savings(0, 0, 0, 0)))


def test_renders_many_parents_and_odd_names() -> None:
    parents = {f"parent-{i} ünïcödé": ParentFacts(f"p{i}", GIB * 10, GIB * 3) for i in range(12)}
    s = compute_savings([(name, GIB // 10) for name in parents for _ in range(3)], parents)
    png_size(render_savings_chart(s, title="A lab with a long title " * 3))


def test_write_savings_chart(tmp_path: Path) -> None:
    path = write_savings_chart(ORIGIN, tmp_path / "savings.png")
    assert path == tmp_path / "savings.png"
    png_size(path.read_bytes())
    assert write_savings_chart(ORIGIN, str(tmp_path / "again.png")).exists()


def test_concurrent_renders() -> None:
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: render_savings_chart(ORIGIN), range(8)))
    assert all(png_size(data) == png_size(results[0]) for data in results)
