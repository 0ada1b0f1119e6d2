"""`db copy SOURCE TARGET`: the words checked as the settings check `[clones] database`, then the
copy handed to the storage layer through its port."""

from __future__ import annotations

from pathlib import Path

from bot.domain import grammar
from bot.domain.errors import UsageError
from bot.domain.results import DatabaseCopied
from bot.ports import DatabaseCopier
from bot.settings import DatabaseUrl, database_location


def copy_database(
    copier: DatabaseCopier | None, command: grammar.DbCopy, *, cwd: Path | None = None
) -> DatabaseCopied:
    """Copy the SQLite file `command.source` (relative to `cwd`, the terminal's folder) into
    the empty PostgreSQL database `command.target`."""
    if copier is None:  # pragma: no cover - bootstrap always provides one
        raise UsageError("Copying databases is not available here.")
    here = cwd or Path.cwd()
    source = _location("SOURCE", command.source, here)
    target = _location("TARGET", command.target, here)
    if not isinstance(source, Path):
        raise UsageError(
            "db copy copies a SQLite file into PostgreSQL: SOURCE must be the SQLite file "
            f'(e.g. "clones.db"), not a URL; e.g. "{grammar.DB_COPY_EXAMPLE}"'
        )
    if not isinstance(target, DatabaseUrl):
        raise UsageError(
            "db copy copies into PostgreSQL: TARGET must be a postgresql://USER@HOST:PORT/DB URL "
            f'of an empty database, e.g. "{grammar.DB_COPY_EXAMPLE}"'
        )
    if not source.is_file():
        raise UsageError(
            f"SOURCE {source} does not exist: give the path of the bot's SQLite file ([clones] "
            "database of its configuration)."
        )
    return copier.copy(source, str(target))


def _location(which: str, value: str, cwd: Path) -> Path | DatabaseUrl:
    try:
        return database_location(value, cwd)
    except ValueError as exc:
        raise UsageError(f"{which} {exc}.") from None
