"""A command's spec, the domain's part: its dataclass, who may run it, whether it shows progress,
whether it destroys (and so is planned and confirmed), and its grammar (parser, help, examples).

`@command(verb, access, ...)` on a command's class (a `Verb`) makes it a frozen dataclass and is
the one registration a verb makes in the domain; every list of verbs (`grammar.COMMAND_CLASSES`,
`grammar.VERBS`, the help, the access texts, the tests' samples, the generated docs) is read from
the registry it fills. The services, the terminal and
Slack keep one registry each, keyed by the same dataclass (docs/architecture.md, "Adding a
command"), except for a bulk verb: its spec says everything (`each_clone=OnEachClone(...)`) and
the three derive its route, its rendering and its Slack entry from it.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Protocol, TypeVar, dataclass_transform

from bot.domain.results import ProgressLabel
from bot.domain.vsphere import VmTask


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
class OnEachClone:
    """A bulk verb: one vSphere task on each ready, provably ours clone of the command's
    `environment` (the services' `EachClone`: the lock, the ownership proof, the limits, gone ->
    missing, progress, the audit). Its route, its terminal rendering (`show_each_done`) and its
    Slack entry (this ack, the result in the channel) are derived from this: the verb registers
    nothing else. The texts are format strings over the command's fields ("{name}")."""

    task: Callable[[Any, str, str], VmTask]  # (command, actor, source) -> each clone's task
    progress: ProgressLabel  # what its progress events say: SNAPSHOTTING, ...
    doing: str  # what is done to a clone: "snapshot" ("... has no ready clones to snapshot")
    label: str  # the result's sentence before the environment: 'Snapshot "{name}" of'
    action: str  # the result's `action` (its --json): "{name}"
    ack: str  # Slack's answer within 3 s: "Snapshotting the clones of {environment}..."
    shows: str  # what Slack shows after it, for docs/slack.md

    def said(self, text: str, command: Any) -> str:
        """One of the texts above, for this command: its fields in place of "{field}"."""
        return text.format(**_fields_of(command))

    def audited(self, command: Any) -> str:
        """The command as the audit log shows it: its verb and its fields' values."""
        return " ".join([command.verb, *map(str, _fields_of(command).values())])


def _fields_of(command: Any) -> dict[str, object]:
    return {f.name: getattr(command, f.name) for f in fields(command)}


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """One command class: what the front ends and the services read about it."""

    cls: type[Command]
    progress: bool = False  # reports progress as it goes (a bar; a Slack progress message)
    stoppable: bool = False  # Ctrl-C stops it starting operations in vCenter
    destroys: bool = False  # shows a plan and acts only once confirmed
    grammar: Grammar | None = None  # None: a command that another verb's parser returns
    each_clone: OnEachClone | None = None  # a bulk verb: its route and renderings are derived


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
    each_clone: OnEachClone | None = None,
) -> Callable[[type[C]], type[C]]:
    """Make the class a frozen dataclass with this verb and access, and register it with its
    grammar (when `parse` is given: a command another verb's parser returns has none) and
    traits. `each_clone`: a bulk verb (it shows progress; see `OnEachClone`)."""

    def register(cls: type[C]) -> type[C]:
        setattr(cls, "verb", verb)  # noqa: B010 - a ClassVar of `Verb`
        setattr(cls, "access", access)  # noqa: B010
        made = dataclass(frozen=True, slots=True)(cls)
        if each_clone is not None:
            _check_bulk(made, destroys)
        shows_progress = progress or each_clone is not None
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
            progress=shows_progress,
            stoppable=shows_progress if stoppable is None else stoppable,
            destroys=destroys,
            grammar=grammar,
            each_clone=each_clone,
        )
        return made

    return register


def _check_bulk(cls: type[Any], destroys: bool) -> None:
    """A bulk verb acts on an environment's clones, and confirms nothing (the derived route has
    no plan, the derived Slack entry no Confirm / Cancel): one that destroys registers its own."""
    if "environment" not in {f.name for f in fields(cls)}:
        raise TypeError(f"{cls.__name__}: a bulk verb (each_clone=) needs an `environment` field")
    if destroys:
        raise TypeError(
            f"{cls.__name__}: a bulk verb that destroys needs its own route, plan and Slack flow"
        )


def spec_of(command: object) -> CommandSpec:
    return CLASSES[type(command)]
