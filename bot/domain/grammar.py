"""The command grammar: one parser for Slack's `/clones ...` and the terminal's `clones ...`.

`parse(text)` turns the words after `/clones` (or `clones`) into a frozen command dataclass, or
raises `UsageError` with one line that names the problem and shows what to type instead.

Each verb is one spec in its family's module under `bot/domain/verbs/` (its dataclass, parser,
help and examples, who may run it, whether it shows progress or destroys), registered by
`@command(...)`; this module reads every list of verbs from that registry.
"""

from __future__ import annotations

from bot.domain.errors import UsageError
from bot.domain.verbs import spec as _spec
from bot.domain.verbs import words as _words
from bot.domain.verbs.spec import Access, Command, CommandSpec, Grammar, spec_of
from bot.domain.verbs.words import COUNT_PATTERN, ENV_PATTERN, TYPE_PATTERN, normalise, suggest

# Each family of verbs, in the order the help lists them; a new family is one more line here, a
# new verb none.
# isort: off
from bot.domain.verbs.deploying import *  # noqa: F403
from bot.domain.verbs.reading import *  # noqa: F403
from bot.domain.verbs.lab import *  # noqa: F403
from bot.domain.verbs.scheduling import *  # noqa: F403
from bot.domain.verbs.training import *  # noqa: F403
from bot.domain.verbs.database import *  # noqa: F403

# isort: on

__all__ = [  # what other modules use besides the command classes (which the star imports bring)
    "COUNT_PATTERN",
    "ENV_PATTERN",
    "TYPE_PATTERN",
    "Access",
    "Command",
    "CommandSpec",
    "Grammar",
    "normalise",
    "spec_of",
    "suggest",
]

SPECS = _spec.CLASSES  # command class -> its spec
COMMAND_CLASSES: tuple[type[Command], ...] = tuple(SPECS)
# The verbs in the order the help lists them (help itself last).
VERBS: tuple[str, ...] = tuple(sorted(_spec.GRAMMARS, key=lambda v: v == "help"))


def verbs_with(access: Access) -> frozenset[str]:
    """The verbs of every command with this access (e.g. the read-only ones)."""
    return frozenset(c.verb for c in COMMAND_CLASSES if c.access is access)


def grammar_of(verb: str) -> Grammar:
    return _spec.GRAMMARS[verb]


def parse(text: str) -> Command:
    """Parse the words after `/clones` (Slack) or `clones` (terminal) into a command."""
    words = _words.tokens(text)
    if not words:
        return Help()  # noqa: F405
    verb, n = _words.match_verb(words)
    if verb is None:
        raise UsageError(
            f'unknown command "{_words.show(words[0])}"{_words.did_you_mean(words[0])}; '
            "type `help` for the list"
        )
    command: Command = _spec.GRAMMARS[verb].parse(words[n:])
    return command


def usage(topic: str | None = None) -> str:
    """Help text: every command with an example, or one command in detail.

    Commands are in backticks, which Slack shows as code and a terminal shows as is.
    """
    if topic is None:
        lines = ["Type these after `/clones` in Slack or `clones` in a terminal:"]
        lines += [f"`{g.example}` - {g.summary}" for g in map(grammar_of, VERBS)]
        lines.append("Type `help COMMAND` for more, e.g. `help deploy`.")
        return "\n".join(lines)
    g = _spec.GRAMMARS[_words.topic(_words.tokens(topic))]
    lines = [f"`{g.syntax}`", g.summary[0].upper() + g.summary[1:] + "."]
    lines += g.detail
    if g.examples:
        lines.append("Examples:")
        lines += [f"  `{example}`" for example in g.examples]
    return "\n".join(lines)
