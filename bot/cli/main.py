"""`clones ...`: the terminal front end's entry (the console script goes through
`bot.bootstrap.cli`, which hands it the wiring). Errors become one line on stderr and an exit
code; no traceback ever reaches the terminal."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO, cast

from bot.cli.options import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    check_options,
    parse_options,
)
from bot.cli.run import run
from bot.cli.wiring import Wiring
from bot.domain.errors import ClonesError, Interrupted, UsageError


def main(argv: Sequence[str] | None, wiring: Wiring) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        opts = parse_options(argv)
    except SystemExit as exc:  # argparse's own message is already printed
        return int(exc.code or EXIT_USAGE)
    logging.basicConfig(
        level=logging.INFO if opts.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        check_options(opts)
        return run(opts, cast(TextIO, _PipeSafe(sys.stdout)), wiring)
    except UsageError as exc:
        _error(str(exc))
        return EXIT_USAGE
    except Interrupted as exc:  # Ctrl-C or SIGTERM before the run started: nothing was done
        _error(str(exc))
        return EXIT_INTERRUPTED
    except ClonesError as exc:
        _error(str(exc))
        return EXIT_ERROR
    except KeyboardInterrupt:
        _error("interrupted; what was done so far is recorded (see `clones status`).")
        return EXIT_INTERRUPTED
    except Exception as exc:  # the last line of defence: never a traceback on the terminal
        path = _write_crash_report()
        _error(f"unexpected internal error ({type(exc).__name__}: {exc}); details in {path}")
        return EXIT_ERROR


class _PipeSafe(io.TextIOBase):
    """Standard output that stops writing, quietly, once its reader has gone away
    (`clones status | head -1`): the command still finishes and returns its own exit code."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.closed_by_reader = False

    def write(self, text: str) -> int:
        if not self.closed_by_reader:
            try:
                self.stream.write(text)
                self.stream.flush()
            except BrokenPipeError:
                self._reader_gone()
        return len(text)

    def flush(self) -> None:
        if not self.closed_by_reader:
            try:
                self.stream.flush()
            except BrokenPipeError:
                self._reader_gone()

    def isatty(self) -> bool:
        return self.stream.isatty()

    def _reader_gone(self) -> None:
        self.closed_by_reader = True
        # Python flushes stdout again at exit: point it at /dev/null so that cannot fail.
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.stream.fileno())
            os.close(devnull)


def _error(message: str) -> None:
    print(f"clones: {message}", file=sys.stderr)


def _write_crash_report() -> Path:
    """The traceback, in a file of the user's own (never a shared, predictable path)."""
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    folder = base / "clones" / "crashes"
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, name = tempfile.mkstemp(
            prefix=time.strftime("crash-%Y%m%d-%H%M%S-"), suffix=".log", dir=folder
        )
    except OSError:
        fd, name = tempfile.mkstemp(prefix="clones-crash-", suffix=".log")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(traceback.format_exc())
    return Path(name)
