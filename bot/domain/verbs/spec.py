"""A command's spec, the domain's part: its dataclass, who may run it, whether it shows progress,
whether it destroys (and so is planned and confirmed), and its grammar (parser, help, examples).

`@command(verb, access, ...)` on a command's class (a `Verb`) makes it a frozen dataclass and is
the one registration a verb makes in the domain; every list of verbs (`grammar.COMMAND_CLASSES`,
`grammar.VERBS`, the help, the access texts, the tests' samples, the generated docs) is read from
the registry it fills. The services, the terminal and
Slack keep one registry each, keyed by the same dataclass (docs/architecture.md, "Adding a
command").
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, TypeVar, dataclass_transform


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


class Command(Protocol):
    """What every command dataclass has: its verb and who may run it."""

    verb: ClassVar[str]
    access: ClassVar[Access]


class Verb:
    """The base of every command dataclass: its verb and who may run it, set by `@command`."""

    __slots__ = ()
    verb: ClassVar[str]
    access: ClassVar[Access]


Parser = Callable[[list[str]], Any]  # the words after the verb -> a command


@dataclass(frozen=True, slots=True)
class Grammar:
    """One verb as typed: its parser (which receives the words after the verb) and its help."""

    name: str
    parse: Parser
    summary: str
    example: str
    syntax: str
    detail: tuple[str, ...] = ()
    examples: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()  # may hold several words, e.g. "strip back"


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """One command class: what the front ends and the services read about it."""

    cls: type[Command]
    progress: bool = False  # reports progress as it goes (a bar; a Slack progress message)
    stoppable: bool = False  # Ctrl-C stops it starting operations in vCenter
    destroys: bool = False  # shows a plan and acts only once confirmed
    grammar: Grammar | None = None  # None: a command that another verb's parser returns


CLASSES: dict[type[Any], CommandSpec] = {}
GRAMMARS: dict[str, Grammar] = {}  # verb -> its grammar, in the order of registration
ALIASES: dict[tuple[str, ...], str] = {}  # words -> canonical verb

C = TypeVar("C")


@dataclass_transform(frozen_default=True)
def command(
    verb: str,
    access: Access,
    *,
    parse: Parser | None = None,
    summary: str = "",
    example: str = "",
    syntax: str = "",
    detail: Iterable[str] = (),
    examples: Iterable[str] = (),
    aliases: Iterable[str] = (),
    progress: bool = False,
    stoppable: bool | None = None,
    destroys: bool = False,
) -> Callable[[type[C]], type[C]]:
    """Make the class a frozen dataclass with this verb and access, and register it with its
    grammar (when `parse` is given: a command another verb's parser returns has none) and
    traits."""

    def register(cls: type[C]) -> type[C]:
        setattr(cls, "verb", verb)  # noqa: B010 - a ClassVar of `Verb`
        setattr(cls, "access", access)  # noqa: B010
        made = dataclass(frozen=True, slots=True)(cls)
        grammar = None
        if parse is not None:
            grammar = Grammar(
                verb,
                parse,
                summary,
                example,
                syntax,
                tuple(detail),
                tuple(examples),
                tuple(aliases),
            )
            GRAMMARS[verb] = grammar
            for words in (verb, *grammar.aliases):
                ALIASES[tuple(words.split())] = verb
        CLASSES[made] = CommandSpec(
            made,  # type: ignore[arg-type]
            progress=progress,
            stoppable=progress if stoppable is None else stoppable,
            destroys=destroys,
            grammar=grammar,
        )
        return made

    return register


def spec_of(command: object) -> CommandSpec:
    return CLASSES[type(command)]
