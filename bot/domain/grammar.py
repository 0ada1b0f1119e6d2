"""The command grammar: one parser for Slack's `/clones ...` and the terminal's `clones ...`.

`parse(text)` turns the words after `/clones` (or `clones`) into a frozen command dataclass, or
raises `UsageError` with one line that names the problem and shows what to type instead.

To add a verb: define a frozen dataclass, add it to `Command`, and write a small parser decorated
with `@_verb(...)` that takes the words after the verb and returns the dataclass.
"""

from __future__ import annotations

import difflib
import enum
import re
import shlex
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import ClassVar, Protocol

from bot.domain import trainees
from bot.domain.errors import UsageError
from bot.domain.timeparse import DURATION_EXAMPLES, parse_duration, since_text

ENV_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")
# Type names are configured by the operator; this only keeps junk (quotes, unicode) out of commands.
TYPE_PATTERN = re.compile(r"[a-z0-9][a-z0-9_.-]{0,39}")
# ASCII digits only: int() would accept "٢٥" and "2_5". How many clones a type allows is one
# limit, the type's max_count setting, checked against the configuration by each front end and
# the service layer; the grammar only keeps counts to a sane length.
COUNT_PATTERN = re.compile(r"[0-9]{1,6}")

# ---------------------------------------------------------------------------------------------
# Commands


class Access(enum.StrEnum):
    """Who may run a command: anyone (it only reads), operators (it changes the lab), admins
    (it only reads, but shows how vCenter is set up), trainees on the VM they were given
    (operators on anyone's), or only someone at a terminal on the bot's machine (it works on
    the bot's own database files: Slack refuses it)."""

    READ = "read"
    CHANGE = "change"
    ADMIN = "admin"
    SELF = "self"
    TERMINAL = "terminal"


@dataclass(frozen=True, slots=True)
class DeployItem:
    type: str
    count: int


@dataclass(frozen=True, slots=True)
class Deploy:
    """Deploy clones of one or more types; `at`/`until` are raw time text, parsed later."""

    verb: ClassVar[str] = "deploy"
    access: ClassVar[Access] = Access.CHANGE

    items: tuple[DeployItem, ...]
    environment: str | None = None
    power_on: bool = False
    at: str | None = None
    until: str | None = None


@dataclass(frozen=True, slots=True)
class Status:
    """Live environments; `everything` (`status --all`): finished ones too."""

    verb: ClassVar[str] = "status"
    access: ClassVar[Access] = Access.READ

    environment: str | None = None
    everything: bool = False


@dataclass(frozen=True, slots=True)
class History:
    """What became of environments (when, who, how many, savings, outcome), or of one."""

    verb: ClassVar[str] = "history"
    access: ClassVar[Access] = Access.READ

    environment: str | None = None


@dataclass(frozen=True, slots=True)
class Audit:
    """The audit log from `since` on (raw text: a date, a time or a length of time back)."""

    verb: ClassVar[str] = "audit"
    access: ClassVar[Access] = Access.ADMIN

    since: str | None = None


@dataclass(frozen=True, slots=True)
class Savings:
    verb: ClassVar[str] = "savings"
    access: ClassVar[Access] = Access.READ

    environment: str | None = None


@dataclass(frozen=True, slots=True)
class Teardown:
    verb: ClassVar[str] = "teardown"
    access: ClassVar[Access] = Access.CHANGE

    environment: str


@dataclass(frozen=True, slots=True)
class Schedule:
    """Set or move an environment's start (a scheduled deploy) and/or end (raw time text)."""

    verb: ClassVar[str] = "schedule"
    access: ClassVar[Access] = Access.CHANGE

    environment: str
    at: str | None = None
    until: str | None = None


@dataclass(frozen=True, slots=True)
class Extend:
    """Move an environment's scheduled end later; `by` is raw duration text (None: default)."""

    verb: ClassVar[str] = "extend"
    access: ClassVar[Access] = Access.CHANGE

    environment: str
    by: str | None = None


@dataclass(frozen=True, slots=True)
class CancelSchedule:
    verb: ClassVar[str] = "cancel-schedule"
    access: ClassVar[Access] = Access.CHANGE

    environment: str


@dataclass(frozen=True, slots=True)
class Types:
    verb: ClassVar[str] = "types"
    access: ClassVar[Access] = Access.READ


@dataclass(frozen=True, slots=True)
class Help:
    verb: ClassVar[str] = "help"
    access: ClassVar[Access] = Access.READ

    topic: str | None = None  # a canonical verb name


@dataclass(frozen=True, slots=True)
class Prepare:
    """Check a type's parent; optionally power it off; create the base snapshot if missing."""

    verb: ClassVar[str] = "prepare"
    access: ClassVar[Access] = Access.CHANGE

    type: str
    power_off: bool = False


@dataclass(frozen=True, slots=True)
class Power:
    verb: ClassVar[str] = "power"
    access: ClassVar[Access] = Access.CHANGE

    action: str  # "on", "off" or "reset"
    environment: str


@dataclass(frozen=True, slots=True)
class Plan:
    verb: ClassVar[str] = "plan"
    access: ClassVar[Access] = Access.READ

    items: tuple[DeployItem, ...]
    power_on: bool = False


@dataclass(frozen=True, slots=True)
class Inventory:
    verb: ClassVar[str] = "inventory"
    access: ClassVar[Access] = Access.READ

    environment: str | None = None


@dataclass(frozen=True, slots=True)
class Refresh:
    verb: ClassVar[str] = "refresh"
    access: ClassVar[Access] = Access.CHANGE

    environment: str


@dataclass(frozen=True, slots=True)
class Resume:
    """Finish deployments and strip backs that a crash or a lost vCenter interrupted."""

    verb: ClassVar[str] = "resume"
    access: ClassVar[Access] = Access.CHANGE


@dataclass(frozen=True, slots=True)
class Orphans:
    verb: ClassVar[str] = "orphans"
    access: ClassVar[Access] = Access.CHANGE

    action: str | None = None  # None: list; "adopt" or "remove"


@dataclass(frozen=True, slots=True)
class Check:
    """A pre-flight of the configuration against vCenter that changes nothing."""

    verb: ClassVar[str] = "check"
    access: ClassVar[Access] = Access.ADMIN


@dataclass(frozen=True, slots=True)
class DbCopy:
    """Copy a SQLite database (`source`, a path) into an empty PostgreSQL one (`target`, a
    postgresql:// URL): every table, ids and sequences kept. Terminal only."""

    verb: ClassVar[str] = "db"
    access: ClassVar[Access] = Access.TERMINAL

    source: str
    target: str


@dataclass(frozen=True, slots=True)
class Assign:
    """Give each trainee one ready clone of an environment, then message them its details.

    `people` are Slack member IDs or e-mail addresses; or `channel` (its members); or `roster`
    (a CSV file the terminal reads into `people`)."""

    verb: ClassVar[str] = "assign"
    access: ClassVar[Access] = Access.CHANGE

    environment: str
    people: tuple[str, ...] = ()
    channel: str | None = None
    roster: str | None = None


@dataclass(frozen=True, slots=True)
class Handout:
    """Send the hand-out again to the environment's trainees it has not reached yet (Slack
    kept rate limiting it, a scope was missing, ...)."""

    verb: ClassVar[str] = "handout"
    access: ClassVar[Access] = Access.CHANGE

    environment: str


@dataclass(frozen=True, slots=True)
class Unassign:
    verb: ClassVar[str] = "unassign"
    access: ClassVar[Access] = Access.CHANGE

    environment: str
    people: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class My:
    """The VMs the person asking holds."""

    verb: ClassVar[str] = "my"
    access: ClassVar[Access] = Access.READ


@dataclass(frozen=True, slots=True)
class Reset:
    """Power-reset the asker's VM (`vm`: one of theirs by name; `trainee`: an operator acting
    for that trainee; `ref`: the VM a button or a settled command names, by identity)."""

    verb: ClassVar[str] = "reset"
    access: ClassVar[Access] = Access.SELF

    vm: str | None = None
    trainee: str | None = None
    ref: trainees.VmRef | None = None  # a button's or settled command's VM, by identity


@dataclass(frozen=True, slots=True)
class Rebuild:
    """Re-create the asker's VM from its base snapshot, same name and assignment."""

    verb: ClassVar[str] = "rebuild"
    access: ClassVar[Access] = Access.SELF

    vm: str | None = None
    trainee: str | None = None
    ref: trainees.VmRef | None = None


@dataclass(frozen=True, slots=True)
class MyPower:
    """`power on|off` without an environment: the asker's own VM (an operator: a trainee's)."""

    verb: ClassVar[str] = "power"
    access: ClassVar[Access] = Access.SELF

    action: str  # "on" or "off"
    vm: str | None = None
    trainee: str | None = None
    ref: trainees.VmRef | None = None


class _CommandClass(Protocol):
    verb: ClassVar[str]
    access: ClassVar[Access]


COMMAND_CLASSES: tuple[type[_CommandClass], ...] = (
    Deploy,
    Status,
    History,
    Audit,
    Savings,
    Teardown,
    Schedule,
    Extend,
    CancelSchedule,
    Types,
    Help,
    Prepare,
    Power,
    Plan,
    Inventory,
    Refresh,
    Resume,
    Orphans,
    Check,
    Assign,
    Handout,
    Unassign,
    My,
    Reset,
    Rebuild,
    MyPower,
    DbCopy,
)


def verbs_with(access: Access) -> frozenset[str]:
    """The verbs of every command with this access (e.g. the read-only ones)."""
    return frozenset(c.verb for c in COMMAND_CLASSES if c.access is access)


Command = (
    Deploy
    | Status
    | History
    | Audit
    | Savings
    | Teardown
    | Schedule
    | Extend
    | CancelSchedule
    | Types
    | Help
    | Prepare
    | Power
    | Plan
    | Inventory
    | Refresh
    | Resume
    | Orphans
    | Check
    | Assign
    | Handout
    | Unassign
    | My
    | Reset
    | Rebuild
    | MyPower
    | DbCopy
)

# ---------------------------------------------------------------------------------------------
# The verb registry


@dataclass(frozen=True, slots=True)
class VerbSpec:
    """One verb: its parser and the help text shown for it."""

    name: str
    parse: Callable[[list[str]], Command]
    summary: str
    example: str
    syntax: str
    detail: tuple[str, ...] = ()
    examples: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()  # may hold several words, e.g. "strip back"


_REGISTRY: dict[str, VerbSpec] = {}
_ALIASES: dict[tuple[str, ...], str] = {}  # words -> canonical verb


def _verb(
    name: str,
    *,
    summary: str,
    example: str,
    syntax: str,
    detail: Iterable[str] = (),
    examples: Iterable[str] = (),
    aliases: Iterable[str] = (),
) -> Callable[[Callable[[list[str]], Command]], Callable[[list[str]], Command]]:
    """Register a verb's parser (which receives the words after the verb)."""

    def register(fn: Callable[[list[str]], Command]) -> Callable[[list[str]], Command]:
        spec = VerbSpec(
            name, fn, summary, example, syntax, tuple(detail), tuple(examples), tuple(aliases)
        )
        _REGISTRY[name] = spec
        for words in (name, *spec.aliases):
            _ALIASES[tuple(words.split())] = name
        return fn

    return register


# ---------------------------------------------------------------------------------------------
# Helpers


def suggest(word: str, choices: Iterable[str]) -> str | None:
    """The choice closest to `word` (case-insensitive), or None when nothing is close."""
    options = {c.lower(): c for c in choices}
    match = difflib.get_close_matches(word.lower(), list(options), n=1, cutoff=0.6)
    return options[match[0]] if match else None


def _show(word: str, limit: int = 30) -> str:
    """A user's word made safe to echo inside a one-line message."""
    clean = "".join(ch if ch.isprintable() else "?" for ch in word)
    return clean if len(clean) <= limit else clean[: limit - 3] + "..."


_QUOTES = str.maketrans(
    {
        "\u201c": '"',
        "\u201d": '"',
        "\u201e": '"',
        "\u201f": '"',
        "\u2033": '"',
        "\u00ab": '"',
        "\u00bb": '"',
        "\u2018": "'",
        "\u2019": "'",
        "\u201a": "'",
        "\u201b": "'",
        "\u2032": "'",
        # Phones and Slack turn "-" into dashes; environment names only use the ASCII one.
        "\u2010": "-",
        "\u2011": "-",
        "\u2012": "-",
        "\u2013": "-",
        "\u2014": "-",
        "\u2212": "-",
        # Invisible characters pasted from documents.
        "\u200b": None,
        "\u200c": None,
        "\u200d": None,
        "\u2060": None,
        "\ufeff": None,
    }
)


def normalise(text: str) -> str:
    """Straighten smart quotes and dashes, turn any unicode space into a plain space, and
    Slack's escaped mentions into plain words (`<@U0123|alice>` -> `@U0123`)."""
    text = trainees.unescape_mentions(text.translate(_QUOTES))
    # shlex only splits on ASCII whitespace; Slack sends non-breaking spaces.
    return "".join(" " if ch.isspace() else ch for ch in text)


def _tokens(text: str) -> list[str]:
    try:
        words = shlex.split(normalise(text))
    except ValueError as exc:  # unbalanced quotes or a trailing backslash
        raise UsageError(
            f'could not read the command ({exc}): check the quotes, e.g. "deploy capture 25"'
        ) from None
    # Tolerate the command name itself, pasted from a terminal or Slack.
    if words and words[0].lower() in ("clones", "/clones"):
        words = words[1:]
    return words


def _environment(word: str, example: str) -> str:
    name = word.lower()
    if not ENV_PATTERN.fullmatch(name):
        raise UsageError(
            f'"{_show(word)}" is not a valid environment name: use lower-case letters, digits and '
            f'dashes, up to 40 characters, starting with a letter or digit, e.g. "{example}"'
        )
    return name


def _optional_environment(verb: str, args: list[str]) -> str | None:
    example = f"{verb} nov-cohort"
    if len(args) > 1:
        raise UsageError(
            f'{verb} takes at most one environment name, got "{_show(" ".join(args))}", '
            f'e.g. "{example}"'
        )
    return _environment(args[0], example) if args else None


def _type_name(word: str, example: str) -> str:
    name = word.lower()
    if not TYPE_PATTERN.fullmatch(name):
        raise UsageError(f'"{_show(word)}" is not a type name, e.g. "{example}"')
    return name


def _no_arguments(verb: str, args: list[str]) -> None:
    if args:
        raise UsageError(
            f'{verb} takes nothing after it, got "{_show(" ".join(args))}", e.g. "{verb}"'
        )


# ---------------------------------------------------------------------------------------------
# Deploy

_DEPLOY_EXAMPLE = "deploy capture 25 as nov-cohort"
_POWER_ON_TAILS = (("power", "on"), ("power-on",), ("poweron",))


def _strip_power_on(words: list[str]) -> tuple[list[str], bool]:
    """Remove a trailing `[and] power on` / `power-on` flag."""
    lowered = [w.lower() for w in words]
    for tail in _POWER_ON_TAILS:
        n = len(tail)
        if len(words) >= n and tuple(lowered[-n:]) == tail:
            rest = words[:-n]
            if rest and rest[-1].lower() == "and":
                rest = rest[:-1]
            return rest, True
    return words, False


def _time_text(keyword: str, words: list[str]) -> str:
    if not words:
        raise UsageError(
            f'"{keyword}" needs a time after it, e.g. "deploy capture 25 as nov-cohort '
            f'at mon 08:00 until fri 17:00"'
        )
    return " ".join(words)


def _count(type_name: str, word: str) -> int:
    if not COUNT_PATTERN.fullmatch(word) or int(word) < 1:
        raise UsageError(
            f'count must be a whole number of 1 or more, got "{_show(word)}" for '
            f'{_show(type_name)}, e.g. "deploy {_show(type_name)} 25 as nov-cohort"'
        )
    return int(word)


def _deploy_items(words: list[str]) -> tuple[DeployItem, ...]:
    # "capture 25 and packaging 10" reads naturally; "and" between pairs is a separator.
    words = [w for w in words if w.lower() != "and"]
    if not words:
        raise UsageError(f'say which type and how many, e.g. "{_DEPLOY_EXAMPLE}"')
    items: list[DeployItem] = []
    seen: set[str] = set()
    for i in range(0, len(words), 2):
        word = words[i]
        following = words[i + 1] if i + 1 < len(words) else None
        if COUNT_PATTERN.fullmatch(word) or (word.startswith("-") and word[1:].isdigit()):
            if following is not None and not COUNT_PATTERN.fullmatch(following):
                raise UsageError(
                    f"put the type before its count, "
                    f'e.g. "deploy {_show(following.lower())} {_show(word)}" '
                    f'not "deploy {_show(word)} {_show(following)}"'
                )
            raise UsageError(f'a count needs a type before it, e.g. "{_DEPLOY_EXAMPLE}"')
        type_name = word.lower()
        if not TYPE_PATTERN.fullmatch(type_name):
            raise UsageError(
                f'"{_show(word)}" is not a type name: use letters, digits, "-" or "_", '
                f'e.g. "{_DEPLOY_EXAMPLE}" (`types` lists them)'
            )
        if following is None:
            if items:  # most likely an environment name without "as"
                raise UsageError(
                    f'"{_show(word)}" has no count after it; to name the environment use "as", '
                    f'e.g. "deploy capture 25 as {_show(type_name)}"'
                )
            raise UsageError(
                f"say how many {_show(type_name)} VMs after the type, "
                f'e.g. "deploy {_show(type_name)} 25 as nov-cohort"'
            )
        count = _count(type_name, following)
        if type_name in seen:
            raise UsageError(
                f"{_show(type_name)} appears twice: give each type once with its total count, "
                f'e.g. "deploy capture 25 packaging 10"'
            )
        seen.add(type_name)
        items.append(DeployItem(type_name, count))
    return tuple(items)


def _parse_deploy(args: list[str]) -> Command:
    # The time tail: `at ...` runs to `until`; `until ...` runs to the end (so that
    # "until fri at 17:00" keeps its "at"). Each part may end with the power-on flag.
    lowered = [w.lower() for w in args]
    first = next((i for i, w in enumerate(lowered) if w in ("at", "until")), len(args))
    at_words: list[str] | None = None
    until_words: list[str] | None = None
    if first < len(args) and lowered[first] == "at":
        cut = lowered.index("until", first) if "until" in lowered[first:] else len(args)
        at_words = args[first + 1 : cut]
        if cut < len(args):
            until_words = args[cut + 1 :]
    elif first < len(args):
        until_words = args[first + 1 :]

    power_on = False
    at = until = None
    if at_words is not None:
        at_words, flag = _strip_power_on(at_words)
        at, power_on = _time_text("at", at_words), power_on or flag
    if until_words is not None:
        until_words, flag = _strip_power_on(until_words)
        until, power_on = _time_text("until", until_words), power_on or flag

    # Commas separate type/count pairs: treat them as spaces ("capture 25, packaging 10").
    head = [part for arg in args[:first] for part in arg.split(",") if part]
    head, flag = _strip_power_on(head)
    power_on = power_on or flag

    environment: str | None = None
    head_lower = [w.lower() for w in head]
    if "as" in head_lower:
        cut = head_lower.index("as")
        after = head[cut + 1 :]
        if len(after) != 1:
            raise UsageError(
                f'"as" takes one environment name at the end, e.g. "{_DEPLOY_EXAMPLE}"'
                if after
                else f'"as" needs an environment name after it, e.g. "{_DEPLOY_EXAMPLE}"'
            )
        if after[0].lower() in ("at", "until", "as", "and"):
            raise UsageError(f'"{after[0]}" is a keyword, not a name, e.g. "{_DEPLOY_EXAMPLE}"')
        environment = _environment(after[0], _DEPLOY_EXAMPLE)
        head = head[:cut]

    return Deploy(_deploy_items(head), environment, power_on, at, until)


_verb(
    "deploy",
    summary="deploy linked clones of one or more types into an environment",
    example=_DEPLOY_EXAMPLE,
    syntax="deploy TYPE COUNT [TYPE COUNT ...] [as ENV] [and power on] [at WHEN] [until WHEN]",
    detail=(
        "COUNT is 1 up to the type's maximum (its max_count setting; `types` shows it); "
        "separate pairs with spaces, commas or `and`.",
        "ENV names the environment: lower-case letters, digits and dashes, up to 40 characters.",
        "`and power on` powers the clones on once they are ready.",
        "`at WHEN` deploys later; `until WHEN` strips the environment back then (put it last).",
    ),
    examples=(
        "deploy capture 25",
        "deploy capture 25 packaging 25 verification 25 as nov-cohort",
        "deploy capture 25, packaging 10 as demo and power on",
        "deploy capture 25 as nov-cohort at mon 08:00 until fri 17:00",
    ),
)(_parse_deploy)

# ---------------------------------------------------------------------------------------------
# The other verbs


_ALL_FLAGS = ("--all", "-all")  # a phone's "—all" arrives as "-all" (normalise)


@_verb(
    "status",
    summary="show live environments, or one environment's clones",
    example="status nov-cohort",
    syntax="status [ENV | --all]",
    detail=(
        "Lists environments with clones in vCenter, a deploy or strip back to come, or a run "
        "to finish; `--all` lists finished ones too (`history` says what became of them).",
    ),
    examples=("status", "status nov-cohort", "status --all"),
)
def _parse_status(args: list[str]) -> Command:
    flags = [a for a in args if a.lower() in _ALL_FLAGS]
    rest = [a for a in args if a.lower() not in _ALL_FLAGS]
    if flags and rest:
        raise UsageError(
            '"--all" lists every environment: give an environment or --all, not both, '
            'e.g. "status --all" or "status nov-cohort"'
        )
    if not flags and any(a.startswith("-") for a in rest):
        raise UsageError(
            f'status knows one option, --all, not "{_show(rest[0])}", e.g. "status --all"'
        )
    return Status(_optional_environment("status", rest), everything=bool(flags))


@_verb(
    "history",
    summary="what became of environments: when, who, how many, savings, outcome",
    example="history nov-cohort",
    syntax="history [ENV]",
    detail=(
        "Without ENV: the most recently run environments, finished ones included. With ENV: "
        "its runs, newest first. History is kept for the [clones] history_days setting.",
    ),
    examples=("history", "history nov-cohort"),
)
def _parse_history(args: list[str]) -> Command:
    return History(_optional_environment("history", args))


_AUDIT_EXAMPLE = "audit --since 2026-01-31"


@_verb(
    "audit",
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
def _parse_audit(args: list[str]) -> Command:
    words = list(args)
    if not words:
        return Audit()
    if words[0].lower() in ("--since", "-since", "since") and len(words) == 2:
        return Audit(since_text(words[1], _AUDIT_EXAMPLE))
    raise UsageError(f'audit takes "--since DATE" or nothing, e.g. "{_AUDIT_EXAMPLE}"')


@_verb(
    "savings",
    summary="disk space linked clones save against thick and thin full clones",
    example="savings nov-cohort",
    syntax="savings [ENV]",
    detail=("Without ENV, counts every live clone.",),
    examples=("savings", "savings nov-cohort"),
)
def _parse_savings(args: list[str]) -> Command:
    return Savings(_optional_environment("savings", args))


@_verb(
    "teardown",
    summary="power off and destroy an environment's clones (never anything else)",
    example="teardown nov-cohort",
    syntax="teardown ENV",
    detail=("Also `strip-back`, `strip back` or `destroy`.",),
    examples=("teardown nov-cohort", "strip back nov-cohort"),
    aliases=("strip-back", "stripback", "strip back", "destroy"),
)
def _parse_teardown(args: list[str]) -> Command:
    example = "teardown nov-cohort"
    if not args:
        raise UsageError(f'say which environment to strip back, e.g. "{example}"')
    if len(args) > 1:
        raise UsageError(
            f'teardown takes one environment name, got "{_show(" ".join(args))}", e.g. "{example}"'
        )
    return Teardown(_environment(args[0], example))


def _one_environment(args: list[str], example: str) -> str:
    if not args:
        raise UsageError(f'say which environment, e.g. "{example}"')
    return _environment(args[0], example)


_SCHEDULE_EXAMPLE = "schedule nov-cohort until fri 17:00"


@_verb(
    "schedule",
    summary="set when an environment is stripped back (and when a scheduled deploy starts)",
    example=_SCHEDULE_EXAMPLE,
    syntax="schedule ENV [at WHEN] [until WHEN]",
    detail=(
        "`until WHEN` strips the environment back then; the owner is reminded beforehand.",
        "`at WHEN` moves a deployment scheduled with `deploy ... at WHEN`.",
        'WHEN is in the team\'s time zone: "fri 17:00", "tomorrow 9:00", "in 3h", '
        '"2026-12-01 09:00".',
    ),
    examples=(
        _SCHEDULE_EXAMPLE,
        "schedule nov-cohort at mon 08:00 until fri 17:00",
        "schedule nov-cohort until in 3h",
    ),
)
def _parse_schedule(args: list[str]) -> Command:
    env = _one_environment(args, _SCHEDULE_EXAMPLE)
    rest = args[1:]
    lowered = [w.lower() for w in rest]
    if not rest or lowered[0] not in ("at", "until"):
        got = f', got "{_show(" ".join(rest))}"' if rest else ""
        raise UsageError(
            f'say when with "until" (and "at" for a scheduled deploy){got}, '
            f'e.g. "schedule {env} until fri 17:00"'
        )
    at = until = None
    if lowered[0] == "at":
        cut = lowered.index("until") if "until" in lowered else len(rest)
        at = _time_text("at", rest[1:cut])
        if cut < len(rest):
            until = _time_text("until", rest[cut + 1 :])
    else:
        until = _time_text("until", rest[1:])
    return Schedule(env, at, until)


_EXTEND_EXAMPLE = "extend nov-cohort 2h"


@_verb(
    "extend",
    summary="strip an environment back later than scheduled",
    example=_EXTEND_EXAMPLE,
    syntax="extend ENV [by] [HOW-LONG]",
    detail=(
        f"HOW-LONG is like {DURATION_EXAMPLES}; without it, the configured default (usually 2h).",
        "Extensions are capped by the configured maximum lease.",
    ),
    examples=(_EXTEND_EXAMPLE, "extend nov-cohort by 1h30m", "extend nov-cohort"),
)
def _parse_extend(args: list[str]) -> Command:
    env = _one_environment(args, _EXTEND_EXAMPLE)
    words = args[1:]
    if not words:
        return Extend(env)
    text = " ".join(words)
    parse_duration(text)  # refuse nonsense here; the schedule service re-reads the text
    return Extend(env, text)


_CANCEL_EXAMPLE = "cancel-schedule nov-cohort"


@_verb(
    "cancel-schedule",
    summary="drop an environment's scheduled deploy, strip back and reminder",
    example=_CANCEL_EXAMPLE,
    syntax="cancel-schedule ENV",
    detail=("Also `unschedule`. The clones stay until you strip them back.",),
    examples=(_CANCEL_EXAMPLE, "unschedule nov-cohort"),
    aliases=("unschedule", "cancel schedule"),
)
def _parse_cancel_schedule(args: list[str]) -> Command:
    env = _one_environment(args, _CANCEL_EXAMPLE)
    if len(args) > 1:
        raise UsageError(
            f'cancel-schedule takes one environment name, got "{_show(" ".join(args))}", '
            f'e.g. "{_CANCEL_EXAMPLE}"'
        )
    return CancelSchedule(env)


@_verb(
    "types",
    summary="list the VM types you can deploy",
    example="types",
    syntax="types",
)
def _parse_types(args: list[str]) -> Command:
    _no_arguments("types", args)
    return Types()


@_verb(
    "prepare",
    summary="check a type's parent and create its base snapshot if missing",
    example="prepare capture",
    syntax="prepare TYPE [power-off]",
    detail=(
        "Reports what would stop linked clones: a powered-on parent, independent disks, thick "
        "disks, a missing or doubled base snapshot.",
        "`power-off` shuts the parent down first (cleanly when VMware Tools runs).",
    ),
    examples=("prepare capture", "prepare capture power-off"),
)
def _parse_prepare(args: list[str]) -> Command:
    example = "prepare capture"
    words, power_off = list(args), False
    if words and words[-1].lower() in ("power-off", "poweroff", "shutdown"):
        words, power_off = words[:-1], True
    elif len(words) >= 2 and [w.lower() for w in words[-2:]] == ["power", "off"]:
        words, power_off = words[:-2], True
    if len(words) != 1:
        raise UsageError(f'say which type to prepare, e.g. "{example}" or "{example} power-off"')
    return Prepare(_type_name(words[0], example), power_off)


_POWER_ACTIONS = {"on": "on", "off": "off", "reset": "reset", "restart": "reset"}


@_verb(
    "power",
    summary="power an environment's clones on, off or reset; without ENV, your own VM",
    example="power on nov-cohort",
    syntax="power on|off|reset ENV, or power on|off [@TRAINEE]",
    detail=(
        "With ENV (operators): every ready clone of the environment; with a trainee's VM name "
        "in its place: that VM.",
        "Without it: the VM you were given (`my` shows it); operators may name a trainee.",
    ),
    examples=("power on nov-cohort", "power reset nov-cohort", "power off", "power on @U01ALICE"),
)
def _parse_power(args: list[str]) -> Command:
    example = "power on nov-cohort"
    if not args or len(args) > 2:
        raise UsageError(
            f'say on, off or reset and the environment, e.g. "{example}" (or "power on" for '
            "your own VM)"
        )
    action = _POWER_ACTIONS.get(args[0].lower())
    if action is None:
        raise UsageError(
            f'"{_show(args[0])}" is not a power action: use on, off or reset, e.g. "{example}"'
        )
    if len(args) == 1:
        return Reset() if action == "reset" else MyPower(action)
    who = trainees.person(args[1])
    if who is not None and not trainees.is_email(who):
        return Reset(trainee=who) if action == "reset" else MyPower(action, trainee=who)
    return Power(action, _environment(args[1], example))


@_verb(
    "plan",
    summary="estimate thick, thin and linked sizes and check the datastore's free space",
    example="plan capture 25",
    syntax="plan TYPE COUNT [TYPE COUNT ...] [and power on]",
    detail=("Nothing is created; `and power on` counts RAM-sized swap files too.",),
    examples=("plan capture 25", "plan capture 25 packaging 25 and power on"),
)
def _parse_plan(args: list[str]) -> Command:
    words, power_on = _strip_power_on(list(args))
    return Plan(_deploy_items(words), power_on)


@_verb(
    "inventory",
    summary="list clones with their custom attributes, power state and storage",
    example="inventory nov-cohort",
    syntax="inventory [ENV]",
    detail=("In a terminal, `--csv` prints CSV.",),
    examples=("inventory", "inventory nov-cohort"),
)
def _parse_inventory(args: list[str]) -> Command:
    return Inventory(_optional_environment("inventory", args))


@_verb(
    "refresh",
    summary="re-create an environment's clones from the current base snapshot, same names",
    example="refresh nov-cohort",
    syntax="refresh ENV",
    detail=("For a parent that was patched and re-snapshotted, or a lab reset between cohorts.",),
    examples=("refresh nov-cohort",),
)
def _parse_refresh(args: list[str]) -> Command:
    example = "refresh nov-cohort"
    if len(args) != 1:
        raise UsageError(f'say which environment to refresh, e.g. "{example}"')
    return Refresh(_environment(args[0], example))


@_verb(
    "resume",
    summary="finish deployments and strip backs that a crash or a lost vCenter interrupted",
    example="resume",
    syntax="resume",
    detail=(
        "Clones already in vCenter are adopted (found by the instance UUID the bot chose), "
        "missing ones are re-created under the same names. The bot also does this at start-up.",
    ),
    examples=("resume",),
)
def _parse_resume(args: list[str]) -> Command:
    _no_arguments("resume", args)
    return Resume()


@_verb(
    "orphans",
    summary="VMs this bot made that no environment records; adopt or remove them",
    example="orphans",
    syntax="orphans [adopt|remove]",
    detail=(
        "Only VMs the bot itself made can be adopted or removed: their instance UUID is on "
        "record, or (its records lost) their Notes carry its provenance and they are linked "
        "clones of the parent named there. adopt records a lost one again in the environment "
        "its Notes name when a type's parent and name pattern fit it; remove destroys the "
        "bot's own. Any other VM carrying ManagedBy is listed and never touched.",
    ),
    examples=("orphans", "orphans adopt", "orphans remove"),
)
def _parse_orphans(args: list[str]) -> Command:
    example = "orphans adopt"
    if not args:
        return Orphans()
    if len(args) == 1 and args[0].lower() in ("adopt", "remove"):
        return Orphans(args[0].lower())
    raise UsageError(f'orphans takes nothing, "adopt" or "remove", e.g. "{example}"')


@_verb(
    "check",
    summary="check the connection, every type's setup and the account's privileges in vCenter",
    example="check",
    syntax="check",
    detail=(
        "Changes nothing. Checks TLS and the login, then each type's parent, base snapshot, "
        "folder, resource pool, datastore, network, customization spec, host limit and free "
        "space, and the vSphere privileges the bot needs; one line per finding with its fix.",
        "In Slack, for admins only.",
    ),
    examples=("check",),
    aliases=("preflight",),
)
def _parse_check(args: list[str]) -> Command:
    _no_arguments("check", args)
    return Check()


DB_COPY_EXAMPLE = "db copy clones.db postgresql://clones@db.example.com:5432/clones"


@_verb(
    "db",
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
def _parse_db(args: list[str]) -> Command:
    if not args or args[0].lower() != "copy":
        raise UsageError(f'"db" takes "copy SOURCE TARGET", e.g. "{DB_COPY_EXAMPLE}"')
    if len(args) != 3:
        raise UsageError(
            f'"db copy" takes a SOURCE file and a TARGET URL, e.g. "{DB_COPY_EXAMPLE}"'
        )
    return DbCopy(source=args[1], target=args[2])


_ASSIGN_EXAMPLE = "assign nov-cohort @U01ALICE @U02BOB"


def _people(words: list[str], verb: str, example: str) -> tuple[str, ...]:
    """Slack member IDs (from @mentions) and e-mail addresses, each once, in order."""
    found: list[str] = []
    for word in words:
        for part in word.split(","):
            if not part or part.lower() == "and":
                continue
            who = trainees.person(part)
            if who is None:
                raise UsageError(
                    f'"{_show(part)}" is not a person I can identify: pick them from Slack\'s @ '
                    "list (so Slack sends their member ID), or give their member ID or e-mail "
                    f'address, e.g. "{example}" or "{verb} nov-cohort alice@example.com"'
                )
            if who not in found:
                found.append(who)
    if not found:
        raise UsageError(f'say who, e.g. "{example}"')
    return tuple(found)


@_verb(
    "assign",
    summary="give each trainee one ready VM of an environment and message them its details",
    example=_ASSIGN_EXAMPLE,
    syntax="assign ENV @PERSON ..., assign ENV from #CHANNEL, or assign ENV from ROSTER.csv",
    detail=(
        "One ready clone per trainee; run it again to add trainees: existing pairs are kept.",
        "PERSON is an @mention picked from Slack's list, a Slack member ID (U0123ABCD, in a "
        "profile's ... menu) or an e-mail address.",
        "`from #CHANNEL`: the channel's members, less bots and the people who run the lab.",
        "`from ROSTER.csv` (terminal): a Slack member ID or e-mail address on each line.",
        "Each trainee gets a direct message: the VM, its vSphere Client and console links, "
        "when the lab ends and what they can do.",
    ),
    examples=(
        _ASSIGN_EXAMPLE,
        "assign nov-cohort alice@example.com bob@example.com",
        "assign nov-cohort from #C0123ABCD",
        "assign nov-cohort from roster.csv",
    ),
)
def _parse_assign(args: list[str]) -> Command:
    env = _one_environment(args, _ASSIGN_EXAMPLE)
    rest = args[1:]
    if rest and rest[0].lower() == "from":
        if len(rest) != 2:
            raise UsageError(
                '"from" takes one channel or one roster file, e.g. "assign nov-cohort from '
                '#nov-trainees" or "assign nov-cohort from roster.csv"'
            )
        source = rest[1]
        found = trainees.channel(source)
        if found is not None:
            return Assign(env, channel=found)
        if source.startswith("#"):
            raise UsageError(
                f'"{_show(source)}" is not a channel I can identify: pick it from Slack\'s # '
                'list (so Slack sends its ID), or give its ID, e.g. "from #C0123ABCD"'
            )
        return Assign(env, roster=source)
    return Assign(env, people=_people(rest, "assign", _ASSIGN_EXAMPLE))


_HANDOUT_EXAMPLE = "handout nov-cohort"


@_verb(
    "handout",
    summary="send the hand-out again to an environment's trainees it has not reached yet",
    example=_HANDOUT_EXAMPLE,
    syntax="handout ENV",
    detail=(
        "For those `assign` listed as not reached (Slack kept rate limiting the messages, a "
        "scope was missing): each gets their direct message; those reached already get "
        "nothing again.",
    ),
    examples=(_HANDOUT_EXAMPLE,),
)
def _parse_handout(args: list[str]) -> Command:
    if len(args) > 1:
        raise UsageError(
            f'handout takes one environment name, got "{_show(" ".join(args))}", e.g. '
            f'"{_HANDOUT_EXAMPLE}"'
        )
    return Handout(_one_environment(args, _HANDOUT_EXAMPLE))


_UNASSIGN_EXAMPLE = "unassign nov-cohort @U01ALICE"


@_verb(
    "unassign",
    summary="take an environment's VM back from trainees (the VM stays)",
    example=_UNASSIGN_EXAMPLE,
    syntax="unassign ENV @PERSON ...",
    examples=(_UNASSIGN_EXAMPLE,),
)
def _parse_unassign(args: list[str]) -> Command:
    env = _one_environment(args, _UNASSIGN_EXAMPLE)
    return Unassign(env, _people(args[1:], "unassign", _UNASSIGN_EXAMPLE))


@_verb(
    "my",
    summary="the training VMs you were given, their state and links",
    example="my",
    syntax="my",
    aliases=("my vm", "my vms", "mine"),
)
def _parse_my(args: list[str]) -> Command:
    _no_arguments("my", args)
    return My()


def _target(verb: str, args: list[str]) -> tuple[str | None, str | None]:
    """(vm, trainee) named after a self-service verb: nothing (your VM), a VM name, or (for
    operators) an @mention."""
    example = f"{verb} TRN-CAP-001"
    if not args:
        return None, None
    if len(args) > 1:
        raise UsageError(
            f'{verb} takes at most one VM name, got "{_show(" ".join(args))}", e.g. "{verb}" '
            f'for your VM or "{example}"'
        )
    who = trainees.person(args[0])
    if who is not None and not trainees.is_email(who):
        return None, who
    if not trainees.VM_NAME.fullmatch(args[0]):
        raise UsageError(f'"{_show(args[0])}" is not a VM name, e.g. "{example}"')
    return args[0], None


@_verb(
    "reset",
    summary="power-reset your training VM (with non-persistent disks: back to the base image)",
    example="reset",
    syntax="reset [VM]",
    detail=(
        "Without VM: the VM you were given (`my` shows it); operators may name any trainee's.",
    ),
    examples=("reset", "reset TRN-CAP-001"),
)
def _parse_reset(args: list[str]) -> Command:
    vm, trainee = _target("reset", args)
    return Reset(vm, trainee)


@_verb(
    "rebuild",
    summary="re-create your training VM from its base snapshot: same name, same assignment",
    example="rebuild",
    syntax="rebuild [VM]",
    detail=(
        "Everything on the VM is lost; you confirm first.",
        "Without VM: the VM you were given; operators may name any trainee's.",
    ),
    examples=("rebuild", "rebuild TRN-CAP-001"),
)
def _parse_rebuild(args: list[str]) -> Command:
    vm, trainee = _target("rebuild", args)
    return Rebuild(vm, trainee)


@_verb(
    "help",
    summary="list the commands, or explain one",
    example="help deploy",
    syntax="help [COMMAND]",
    examples=("help", "help deploy"),
)
def _parse_help(args: list[str]) -> Command:
    if not args:
        return Help()
    return Help(_topic(args))


def _topic(words: list[str]) -> str:
    """The canonical verb named by `words` (aliases allowed), or UsageError."""
    verb, n = _match_verb(words)
    if verb is None or n != len(words):
        raise UsageError(
            f'no help on "{_show(" ".join(words))}"{_did_you_mean(words[0])}; '
            "type `help` for the list"
        )
    return verb


VERBS: tuple[str, ...] = tuple(_REGISTRY)

# ---------------------------------------------------------------------------------------------
# Parsing and help


def _match_verb(words: list[str]) -> tuple[str | None, int]:
    """The verb at the start of `words` (longest alias wins) and how many words name it."""
    lowered = [w.lower() for w in words]
    longest = max(len(alias) for alias in _ALIASES)
    for n in range(min(longest, len(lowered)), 0, -1):
        verb = _ALIASES.get(tuple(lowered[:n]))
        if verb is not None:
            return verb, n
    return None, 0


def _did_you_mean(word: str) -> str:
    names = [" ".join(words) for words in _ALIASES]
    guess = suggest(word, names)
    return f' (did you mean "{guess}"?)' if guess else ""


def parse(text: str) -> Command:
    """Parse the words after `/clones` (Slack) or `clones` (terminal) into a command."""
    words = _tokens(text)
    if not words:
        return Help()
    verb, n = _match_verb(words)
    if verb is None:
        raise UsageError(
            f'unknown command "{_show(words[0])}"{_did_you_mean(words[0])}; '
            "type `help` for the list"
        )
    return _REGISTRY[verb].parse(words[n:])


def usage(topic: str | None = None) -> str:
    """Help text: every command with an example, or one command in detail.

    Commands are in backticks, which Slack shows as code and a terminal shows as is.
    """
    if topic is None:
        lines = ["Type these after `/clones` in Slack or `clones` in a terminal:"]
        lines += [f"`{spec.example}` - {spec.summary}" for spec in _REGISTRY.values()]
        lines.append("Type `help COMMAND` for more, e.g. `help deploy`.")
        return "\n".join(lines)
    spec = _REGISTRY[_topic(_tokens(topic))]
    lines = [f"`{spec.syntax}`", spec.summary[0].upper() + spec.summary[1:] + "."]
    lines += spec.detail
    if spec.examples:
        lines.append("Examples:")
        lines += [f"  `{example}`" for example in spec.examples]
    return "\n".join(lines)
