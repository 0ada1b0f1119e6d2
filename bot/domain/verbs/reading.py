"""The commands that only read: what is live, what happened, what it saved, the help."""

from __future__ import annotations

from bot.domain.errors import UsageError
from bot.domain.timeparse import DURATION_EXAMPLES, since_text
from bot.domain.verbs import words as w
from bot.domain.verbs.spec import Access, Verb, command

_ALL_FLAGS = ("--all", "-all")  # a phone's "—all" arrives as "-all" (normalise)


def _parse_status(args: list[str]) -> Status:
    flags = [a for a in args if a.lower() in _ALL_FLAGS]
    rest = [a for a in args if a.lower() not in _ALL_FLAGS]
    if flags and rest:
        raise UsageError(
            '"--all" lists every environment: give an environment or --all, not both, '
            'e.g. "status --all" or "status nov-cohort"'
        )
    if not flags and any(a.startswith("-") for a in rest):
        raise UsageError(
            f'status knows one option, --all, not "{w.show(rest[0])}", e.g. "status --all"'
        )
    return Status(w.optional_environment("status", rest), everything=bool(flags))


@command(
    "status",
    Access.READ,
    parse=_parse_status,
    summary="show live environments, or one environment's clones",
    example="status nov-cohort",
    syntax="status [ENV | --all]",
    detail=(
        "Lists environments with clones in vCenter, a deploy or strip back to come, or a run "
        "to finish; `--all` lists finished ones too (`history` says what became of them).",
    ),
    examples=("status", "status nov-cohort", "status --all"),
)
class Status(Verb):
    """Live environments; `everything` (`status --all`): finished ones too."""

    environment: str | None = None
    everything: bool = False


def _parse_history(args: list[str]) -> History:
    return History(w.optional_environment("history", args))


@command(
    "history",
    Access.READ,
    parse=_parse_history,
    summary="what became of environments: when, who, how many, savings, outcome",
    example="history nov-cohort",
    syntax="history [ENV]",
    detail=(
        "Without ENV: the most recently run environments, finished ones included. With ENV: "
        "its runs, newest first. History is kept for the [clones] history_days setting.",
    ),
    examples=("history", "history nov-cohort"),
)
class History(Verb):
    """What became of environments (when, who, how many, savings, outcome), or of one."""

    environment: str | None = None


_AUDIT_EXAMPLE = "audit --since 2026-01-31"


def _parse_audit(args: list[str]) -> Audit:
    words = list(args)
    if not words:
        return Audit()
    if words[0].lower() in ("--since", "-since", "since") and len(words) == 2:
        return Audit(since_text(words[1], _AUDIT_EXAMPLE))
    raise UsageError(f'audit takes "--since DATE" or nothing, e.g. "{_AUDIT_EXAMPLE}"')


@command(
    "audit",
    Access.ADMIN,
    parse=_parse_audit,
    summary="the audit log: who asked for what, from where, and what came of it",
    example=_AUDIT_EXAMPLE,
    syntax="audit [--since DATE]",
    detail=(
        "DATE is a day (2026-01-31, from its start in the team's time zone), a time "
        f'(2026-01-31T09:00) or a length of time back ({DURATION_EXAMPLES}, "30d"); '
        "without it, the last 7 days.",
        "In a terminal, `--csv` prints CSV (every entry). In Slack, for admins only.",
    ),
    examples=("audit", _AUDIT_EXAMPLE, "audit --since 30d"),
)
class Audit(Verb):
    """The audit log from `since` on (raw text: a date, a time or a length of time back)."""

    since: str | None = None


def _parse_savings(args: list[str]) -> Savings:
    return Savings(w.optional_environment("savings", args))


@command(
    "savings",
    Access.READ,
    parse=_parse_savings,
    summary="disk space linked clones save against thick and thin full clones",
    example="savings nov-cohort",
    syntax="savings [ENV]",
    detail=("Without ENV, counts every live clone.",),
    examples=("savings", "savings nov-cohort"),
)
class Savings(Verb):
    environment: str | None = None


def _parse_types(args: list[str]) -> Types:
    w.no_arguments("types", args)
    return Types()


@command(
    "types",
    Access.READ,
    parse=_parse_types,
    summary="list the VM types you can deploy",
    example="types",
    syntax="types",
)
class Types(Verb):
    """Takes nothing after its verb."""


def _parse_inventory(args: list[str]) -> Inventory:
    return Inventory(w.optional_environment("inventory", args))


@command(
    "inventory",
    Access.READ,
    parse=_parse_inventory,
    summary="list clones with their custom attributes, power state and storage",
    example="inventory nov-cohort",
    syntax="inventory [ENV]",
    detail=("In a terminal, `--csv` prints CSV.",),
    examples=("inventory", "inventory nov-cohort"),
)
class Inventory(Verb):
    environment: str | None = None


def _parse_help(args: list[str]) -> Help:
    if not args:
        return Help()
    return Help(w.topic(args))


@command(
    "help",
    Access.READ,
    parse=_parse_help,
    summary="list the commands, or explain one",
    example="help deploy",
    syntax="help [COMMAND]",
    examples=("help", "help deploy"),
)
class Help(Verb):
    topic: str | None = None  # a canonical verb name
