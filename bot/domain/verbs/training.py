"""The trainees' commands: assign, hand out, unassign, and each trainee's own VM."""

from __future__ import annotations

from bot.domain import trainees
from bot.domain.errors import UsageError
from bot.domain.verbs import words as w
from bot.domain.verbs.spec import Access, Verb, command

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
                    f'"{w.show(part)}" is not a person I can identify: pick them from Slack\'s @ '
                    "list (so Slack sends their member ID), or give their member ID or e-mail "
                    f'address, e.g. "{example}" or "{verb} nov-cohort alice@example.com"'
                )
            if who not in found:
                found.append(who)
    if not found:
        raise UsageError(f'say who, e.g. "{example}"')
    return tuple(found)


def _parse_assign(args: list[str]) -> Assign:
    env = w.one_environment(args, _ASSIGN_EXAMPLE)
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
                f'"{w.show(source)}" is not a channel I can identify: pick it from Slack\'s # '
                'list (so Slack sends its ID), or give its ID, e.g. "from #C0123ABCD"'
            )
        return Assign(env, roster=source)
    return Assign(env, people=_people(rest, "assign", _ASSIGN_EXAMPLE))


@command(
    "assign",
    Access.CHANGE,
    parse=_parse_assign,
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
class Assign(Verb):
    """Give each trainee one ready clone of an environment, then message them its details.

    `people` are Slack member IDs or e-mail addresses; or `channel` (its members); or `roster`
    (a CSV file the terminal reads into `people`)."""

    environment: str
    people: tuple[str, ...] = ()
    channel: str | None = None
    roster: str | None = None


_HANDOUT_EXAMPLE = "handout nov-cohort"


def _parse_handout(args: list[str]) -> Handout:
    if len(args) > 1:
        raise UsageError(
            f'handout takes one environment name, got "{w.show(" ".join(args))}", e.g. '
            f'"{_HANDOUT_EXAMPLE}"'
        )
    return Handout(w.one_environment(args, _HANDOUT_EXAMPLE))


@command(
    "handout",
    Access.CHANGE,
    parse=_parse_handout,
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
class Handout(Verb):
    """Send the hand-out again to the environment's trainees it has not reached yet (Slack
    kept rate limiting it, a scope was missing, ...)."""

    environment: str


_UNASSIGN_EXAMPLE = "unassign nov-cohort @U01ALICE"


def _parse_unassign(args: list[str]) -> Unassign:
    env = w.one_environment(args, _UNASSIGN_EXAMPLE)
    return Unassign(env, _people(args[1:], "unassign", _UNASSIGN_EXAMPLE))


@command(
    "unassign",
    Access.CHANGE,
    parse=_parse_unassign,
    summary="take an environment's VM back from trainees (the VM stays)",
    example=_UNASSIGN_EXAMPLE,
    syntax="unassign ENV @PERSON ...",
    examples=(_UNASSIGN_EXAMPLE,),
)
class Unassign(Verb):
    environment: str
    people: tuple[str, ...]


def _parse_my(args: list[str]) -> My:
    w.no_arguments("my", args)
    return My()


@command(
    "my",
    Access.READ,
    parse=_parse_my,
    summary="the training VMs you were given, their state and links",
    example="my",
    syntax="my",
    aliases=("my vm", "my vms", "mine"),
)
class My(Verb):
    """The VMs the person asking holds."""


def _target(verb: str, args: list[str]) -> tuple[str | None, str | None]:
    """(vm, trainee) named after a self-service verb: nothing (your VM), a VM name, or (for
    operators) an @mention."""
    example = f"{verb} TRN-CAP-001"
    if not args:
        return None, None
    if len(args) > 1:
        raise UsageError(
            f'{verb} takes at most one VM name, got "{w.show(" ".join(args))}", e.g. "{verb}" '
            f'for your VM or "{example}"'
        )
    who = trainees.person(args[0])
    if who is not None and not trainees.is_email(who):
        return None, who
    if not trainees.VM_NAME.fullmatch(args[0]):
        raise UsageError(f'"{w.show(args[0])}" is not a VM name, e.g. "{example}"')
    return args[0], None


def _parse_reset(args: list[str]) -> Reset:
    vm, trainee = _target("reset", args)
    return Reset(vm, trainee)


@command(
    "reset",
    Access.SELF,
    parse=_parse_reset,
    summary="power-reset your training VM (with non-persistent disks: back to the base image)",
    example="reset",
    syntax="reset [VM]",
    detail=(
        "Without VM: the VM you were given (`my` shows it); operators may name any trainee's.",
    ),
    examples=("reset", "reset TRN-CAP-001"),
)
class Reset(Verb):
    """Power-reset the asker's VM (`vm`: one of theirs by name; `trainee`: an operator acting
    for that trainee; `ref`: the VM a button or a settled command names, by identity)."""

    vm: str | None = None
    trainee: str | None = None
    ref: trainees.VmRef | None = None  # a button's or settled command's VM, by identity


def _parse_rebuild(args: list[str]) -> Rebuild:
    vm, trainee = _target("rebuild", args)
    return Rebuild(vm, trainee)


@command(
    "rebuild",
    Access.SELF,
    parse=_parse_rebuild,
    summary="re-create your training VM from its base snapshot: same name, same assignment",
    example="rebuild",
    syntax="rebuild [VM]",
    detail=(
        "Everything on the VM is lost; you confirm first.",
        "Without VM: the VM you were given; operators may name any trainee's.",
    ),
    examples=("rebuild", "rebuild TRN-CAP-001"),
    progress=True,
    destroys=True,
)
class Rebuild(Verb):
    """Re-create the asker's VM from its base snapshot, same name and assignment."""

    vm: str | None = None
    trainee: str | None = None
    ref: trainees.VmRef | None = None


@command("power", Access.SELF)
class MyPower(Verb):
    """`power on|off` without an environment: the asker's own VM (an operator: a trainee's)."""

    action: str  # "on" or "off"
    vm: str | None = None
    trainee: str | None = None
    ref: trainees.VmRef | None = None
