"""The savings bar chart: thick vs thin full clones vs linked clones, as a PNG.

Uses matplotlib's object API (`Figure` + `FigureCanvasAgg`) and never pyplot, whose global figure
state is not safe to share between the threads that serve Slack requests.
"""

from __future__ import annotations

import io
import threading
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bot.domain.savings import GIB, Savings

# Colours per parent (stacked segments), chosen to stay distinct for colour-blind readers
# (Okabe-Ito); the bars are grey when there is nothing to split.
_PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442")
_EMPTY_COLOUR = "#9AA5B1"
_LAYOUTS = ("Thick,\nfull clones", "Thin,\nfull clones", "Linked\nclones")

# matplotlib's text layout and font caches are shared module state; one render at a time keeps
# concurrent requests from tripping over each other, and a render takes well under a second.
_LOCK = threading.Lock()


# Kept whole: one matplotlib figure drawn top to bottom; every step uses the same axes.
def render_savings_chart(s: Savings, title: str = "Disk space used by the training lab") -> bytes:
    """A PNG bar chart of `s`: one bar per layout, split by parent, labelled in GB."""
    totals = (s.thick_gb, s.thin_gb, s.linked_gb)
    with _LOCK:
        fig = Figure(figsize=(7.5, 4.8), dpi=100, layout="constrained")
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        x = range(len(_LAYOUTS))

        if s.by_parent:
            bottoms = [0.0, 0.0, 0.0]
            for i, p in enumerate(s.by_parent):
                heights = [b / GIB for b in (p.thick_bytes, p.thin_bytes, p.linked_bytes)]
                ax.bar(
                    x,
                    heights,
                    bottom=bottoms,
                    width=0.6,
                    color=_PALETTE[i % len(_PALETTE)],
                    edgecolor="white",
                    linewidth=0.8,
                    label=f"{p.parent} ({p.clones})",
                )
                bottoms = [b + h for b, h in zip(bottoms, heights, strict=True)]
            ax.legend(title="Parent (clones)", frameon=False, fontsize=9, title_fontsize=9)
        else:
            ax.bar(x, totals, width=0.6, color=_EMPTY_COLOUR)

        top = max(max(totals), 1.0)
        for xi, gb in zip(x, totals, strict=True):
            ax.annotate(
                f"{gb:,.2f} GB",
                (xi, gb),
                xytext=(0, 4),
                textcoords="offset points",
                ha="center",
                va="bottom",
                fontsize=11,
                fontweight="bold",
            )
        if s.clones:
            # The point of the chart: how much smaller the linked bar is than the thin one.
            ax.annotate(
                f"{s.saved_vs_thin_pct}% less than thin\n{s.saved_vs_thick_pct}% less than thick",
                (2, s.linked_gb),
                xytext=(0, 24),
                textcoords="offset points",
                ha="center",
                va="bottom",
                fontsize=9.5,
                color="#009E73" if s.saved_vs_thin_gb >= 0 else "#D55E00",
            )
        ax.set_ylim(0, top * 1.18)  # room for the labels above the tallest bar
        ax.set_xticks(list(x), _LAYOUTS)
        ax.set_ylabel("GB (GiB)")
        ax.yaxis.grid(True, color="#E4E7EB", linewidth=0.8)
        ax.set_axisbelow(True)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)

        if s.clones:
            clones = f"{s.clones} clone{'' if s.clones == 1 else 's'}"
            subtitle = (
                f"{clones}: linked clones save {s.saved_vs_thin_gb:,.2f} GB against thin "
                f"and {s.saved_vs_thick_gb:,.2f} GB against thick full clones"
            )
        else:
            subtitle = "No clones yet: nothing to compare"
        ax.set_title(subtitle, fontsize=9.5, color="#52606D")
        fig.suptitle(title, fontsize=13, fontweight="bold")

        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
    return buffer.getvalue()


def write_savings_chart(
    s: Savings, path: str | Path, title: str = "Disk space used by the training lab"
) -> Path:
    """Write the chart as a PNG file at `path` and return the path."""
    target = Path(path)
    target.write_bytes(render_savings_chart(s, title))
    return target


class MatplotlibChart:
    """The `Chart` port: the savings bar chart drawn with matplotlib (PNG)."""

    def render(self, savings: Savings, title: str) -> bytes:
        return render_savings_chart(savings, title)

    def write(self, savings: Savings, path: Path) -> None:
        write_savings_chart(savings, path)
