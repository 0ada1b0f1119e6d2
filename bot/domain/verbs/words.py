"""The words of a command: tokens, names, and the checks every verb's parser shares; each
error says what was wrong and what to type instead."""

from __future__ import annotations

import difflib
import re
import shlex
from collections.abc import Iterable

from bot.domain import trainees
from bot.domain.errors import UsageError
from bot.domain.verbs.spec import ALIASES

ENV_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")
# Type names are configured by the operator; this only keeps junk (quotes, unicode) out of commands.
TYPE_PATTERN = re.compile(r"[a-z0-9][a-z0-9_.-]{0,39}")
# ASCII digits only: int() would accept "٢٥" and "2_5". How many clones a type allows is one
# limit, the type's max_count setting, checked against the configuration by each front end and
# the service layer; the grammar only keeps counts to a sane length.
COUNT_PATTERN = re.compile(r"[0-9]{1,6}")


def suggest(word: str, choices: Iterable[str]) -> str | None:
    """The choice closest to `word` (case-insensitive), or None when nothing is close."""
    options = {c.lower(): c for c in choices}
    match = difflib.get_close_matches(word.lower(), list(options), n=1, cutoff=0.6)
    return options[match[0]] if match else None


def show(word: str, limit: int = 30) -> str:
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


def tokens(text: str) -> list[str]:
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


def environment(word: str, example: str) -> str:
    name = word.lower()
    if not ENV_PATTERN.fullmatch(name):
        raise UsageError(
            f'"{show(word)}" is not a valid environment name: use lower-case letters, digits and '
            f'dashes, up to 40 characters, starting with a letter or digit, e.g. "{example}"'
        )
    return name


def optional_environment(verb: str, args: list[str]) -> str | None:
    example = f"{verb} nov-cohort"
    if len(args) > 1:
        raise UsageError(
            f'{verb} takes at most one environment name, got "{show(" ".join(args))}", '
            f'e.g. "{example}"'
        )
    return environment(args[0], example) if args else None


def type_name(word: str, example: str) -> str:
    name = word.lower()
    if not TYPE_PATTERN.fullmatch(name):
        raise UsageError(f'"{show(word)}" is not a type name, e.g. "{example}"')
    return name


def no_arguments(verb: str, args: list[str]) -> None:
    if args:
        raise UsageError(
            f'{verb} takes nothing after it, got "{show(" ".join(args))}", e.g. "{verb}"'
        )


def time_text(keyword: str, words: list[str]) -> str:
    if not words:
        raise UsageError(
            f'"{keyword}" needs a time after it, e.g. "deploy capture 25 as nov-cohort '
            f'at mon 08:00 until fri 17:00"'
        )
    return " ".join(words)


def one_environment(args: list[str], example: str) -> str:
    if not args:
        raise UsageError(f'say which environment, e.g. "{example}"')
    return environment(args[0], example)


def topic(words: list[str]) -> str:
    """The canonical verb named by `words` (aliases allowed), or UsageError."""
    verb, n = match_verb(words)
    if verb is None or n != len(words):
        raise UsageError(
            f'no help on "{show(" ".join(words))}"{did_you_mean(words[0])}; '
            "type `help` for the list"
        )
    return verb


def match_verb(words: list[str]) -> tuple[str | None, int]:
    """The verb at the start of `words` (longest alias wins) and how many words name it."""
    lowered = [w.lower() for w in words]
    longest = max(len(alias) for alias in ALIASES)
    for n in range(min(longest, len(lowered)), 0, -1):
        verb = ALIASES.get(tuple(lowered[:n]))
        if verb is not None:
            return verb, n
    return None, 0


def did_you_mean(word: str) -> str:
    names = [" ".join(words) for words in ALIASES]
    guess = suggest(word, names)
    return f' (did you mean "{guess}"?)' if guess else ""
