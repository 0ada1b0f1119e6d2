"""`assign ENV from roster.csv` in the terminal: the file is read here (the services never open
files a user names), into the people the command names; and the hand-out's progress as lines."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO

from bot.cli.options import Options
from bot.domain import grammar
from bot.domain.errors import UsageError
from bot.domain.trainees import HandOutProgress, read_roster
from bot.services.trainees import OnHandOut

ROSTER_MAX_BYTES = 1_000_000  # a roster of thousands of people is well under this


def with_roster(command: Any) -> Any:
    """`assign ... from FILE`: the command with the file's people in place of the file."""
    if not isinstance(command, grammar.Assign) or not command.roster:
        return command
    path = Path(command.roster).expanduser()
    try:
        if path.stat().st_size > ROSTER_MAX_BYTES:
            raise UsageError(f"{path} is over 1 MB: is it the roster? Give a CSV of people.")
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise UsageError(
            f"There is no roster file {path}: give the path of a CSV file with a Slack member "
            'ID or e-mail address on each line, e.g. "assign nov-cohort from roster.csv"'
        ) from None
    except IsADirectoryError:
        raise UsageError(f"{path} is a folder: give the roster's CSV file.") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path} is not UTF-8 text: save the roster as CSV (UTF-8).") from None
    except OSError as exc:
        raise UsageError(f"{path} could not be read ({exc.strerror or exc}).") from None
    return replace(command, people=tuple(read_roster(text, str(path))), roster=None)


def handout_lines(opts: Options, out: TextIO) -> OnHandOut:
    """The hand-out's progress: a line per trainee (on stderr under --json)."""
    stream = sys.stderr if opts.json else out

    def show(p: HandOutProgress) -> None:
        done = p.sent + p.failed
        if p.error:
            print(f"  {done}/{p.total} not reached: {p.trainee}: {p.error}", file=stream)
        else:
            print(f"  {done}/{p.total} handed out to {p.trainee}", file=stream)

    return show
