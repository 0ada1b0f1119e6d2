"""The terminal's options and exit codes."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bot.domain.errors import UsageError

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_PARTIAL = 0, 1, 2, 3
EXIT_INTERRUPTED = 130  # Ctrl-C or SIGTERM, as a shell reports it (bot/cli/stopping.py)

# The verbs only the terminal has (bot/cli/terminal.py), and the line `clones help` adds for them.
TERMINAL_VERBS = ("lab", "demo", "thumbprint")
TERMINAL_HELP = (
    "\n\nTerminal only: `clones lab up|down|status|build`, `clones demo`, "
    "`clones thumbprint [URL]` (vCenter's certificate fingerprint, to pin);"
    " options --json, --yes, --chart FILE, --config FILE, -v."
)


@dataclass
class Options:
    json: bool
    yes: bool
    chart: Path | None
    csv: bool
    config: Path | None
    verbose: bool
    words: list[str]


def parse_options(argv: Sequence[str]) -> Options:
    parser = argparse.ArgumentParser(
        prog="clones",
        add_help=False,
        description="Deploy and strip back vSphere linked-clone training labs.",
    )
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    parser.add_argument("--yes", "-y", action="store_true", help="confirm destructive commands")
    parser.add_argument("--chart", type=Path, help="write the savings chart PNG to this file")
    parser.add_argument("--csv", action="store_true", help="inventory and audit as CSV")
    parser.add_argument("--config", type=Path, help="configuration file (default $CLONES_CONFIG)")
    parser.add_argument("--verbose", "-v", action="store_true", help="log what happens")
    parser.add_argument("--help", "-h", action="store_true", help="show help")
    known, words = parser.parse_known_args(list(argv))
    if known.help:
        words = ["help", *words]
    return Options(
        json=known.json,
        yes=known.yes,
        chart=known.chart,
        csv=known.csv,
        config=known.config,
        verbose=known.verbose,
        words=words,
    )


def check_options(opts: Options) -> None:
    """Refuse unusable options before anything is done."""
    chart = opts.chart
    if chart is not None:
        if chart.is_dir():
            raise UsageError(
                f"--chart {chart} is a folder; give a file name, e.g. "
                f"--chart {chart / 'savings.png'}."
            )
        if not chart.parent.is_dir():
            raise UsageError(
                f"--chart {chart}: the folder {chart.parent} does not exist; create it or give "
                "another file name, e.g. --chart savings.png."
            )
