"""The bot's own database: `db copy` (terminal only)."""

from __future__ import annotations

from bot.domain.errors import UsageError
from bot.domain.verbs.spec import Access, Verb, command

DB_COPY_EXAMPLE = "db copy clones.db postgresql://clones@db.example.com:5432/clones"


def _parse_db(args: list[str]) -> DbCopy:
    if not args or args[0].lower() != "copy":
        raise UsageError(f'"db" takes "copy SOURCE TARGET", e.g. "{DB_COPY_EXAMPLE}"')
    if len(args) != 3:
        raise UsageError(
            f'"db copy" takes a SOURCE file and a TARGET URL, e.g. "{DB_COPY_EXAMPLE}"'
        )
    return DbCopy(source=args[1], target=args[2])


@command(
    "db",
    Access.TERMINAL,
    parse=_parse_db,
    summary="copy the bot's SQLite database into an empty PostgreSQL one (terminal only)",
    example=DB_COPY_EXAMPLE,
    syntax="db copy SOURCE TARGET",
    detail=(
        "SOURCE is a SQLite file, TARGET a postgresql://USER@HOST:PORT/DB URL of an empty "
        "database (its password in the environment variable [clones] database_password_env "
        "names). Every table is copied in one transaction, ids and sequences kept; a target "
        "that holds rows already is refused and nothing is written. Stop the bots first, then "
        "point [clones] database at TARGET.",
        "In a terminal only: it works on the bot's own database files.",
    ),
    examples=(DB_COPY_EXAMPLE,),
)
class DbCopy(Verb):
    """Copy a SQLite database (`source`, a path) into an empty PostgreSQL one (`target`, a
    postgresql:// URL): every table, ids and sequences kept. Terminal only."""

    source: str
    target: str
