"""The operators' commands on the lab: strip back, prepare, power, refresh, resume, orphans,
check, snapshot."""

from __future__ import annotations

import re

from bot.domain import trainees
from bot.domain.errors import UsageError
from bot.domain.results import SNAPSHOTTING
from bot.domain.verbs import words as w
from bot.domain.verbs.spec import Access, OnEachClone, Verb, command
from bot.domain.verbs.training import MyPower, Reset
from bot.domain.vsphere import VmTask


def _parse_teardown(args: list[str]) -> Teardown:
    example = "teardown nov-cohort"
    if not args:
        raise UsageError(f'say which environment to strip back, e.g. "{example}"')
    if len(args) > 1:
        raise UsageError(
            f'teardown takes one environment name, got "{w.show(" ".join(args))}", e.g. "{example}"'
        )
    return Teardown(w.environment(args[0], example))


@command(
    "teardown",
    Access.CHANGE,
    parse=_parse_teardown,
    summary="power off and destroy an environment's clones (never anything else)",
    example="teardown nov-cohort",
    syntax="teardown ENV",
    detail=("Also `strip-back`, `strip back` or `destroy`.",),
    examples=("teardown nov-cohort", "strip back nov-cohort"),
    aliases=("strip-back", "stripback", "strip back", "destroy"),
    progress=True,
    destroys=True,
)
class Teardown(Verb):
    environment: str


def _parse_prepare(args: list[str]) -> Prepare:
    example = "prepare capture"
    words, power_off = list(args), False
    if words and words[-1].lower() in ("power-off", "poweroff", "shutdown"):
        words, power_off = words[:-1], True
    elif len(words) >= 2 and [w.lower() for w in words[-2:]] == ["power", "off"]:
        words, power_off = words[:-2], True
    if len(words) != 1:
        raise UsageError(f'say which type to prepare, e.g. "{example}" or "{example} power-off"')
    return Prepare(w.type_name(words[0], example), power_off)


@command(
    "prepare",
    Access.CHANGE,
    parse=_parse_prepare,
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
class Prepare(Verb):
    """Check a type's parent; optionally power it off; create the base snapshot if missing."""

    type: str
    power_off: bool = False


_POWER_ACTIONS = {"on": "on", "off": "off", "reset": "reset", "restart": "reset"}


def _parse_power(args: list[str]) -> Power | MyPower | Reset:
    example = "power on nov-cohort"
    if not args or len(args) > 2:
        raise UsageError(
            f'say on, off or reset and the environment, e.g. "{example}" (or "power on" for '
            "your own VM)"
        )
    action = _POWER_ACTIONS.get(args[0].lower())
    if action is None:
        raise UsageError(
            f'"{w.show(args[0])}" is not a power action: use on, off or reset, e.g. "{example}"'
        )
    if len(args) == 1:
        return Reset() if action == "reset" else MyPower(action)
    who = trainees.person(args[1])
    if who is not None and not trainees.is_email(who):
        return Reset(trainee=who) if action == "reset" else MyPower(action, trainee=who)
    return Power(action, w.environment(args[1], example))


@command(
    "power",
    Access.CHANGE,
    parse=_parse_power,
    summary="power an environment's clones on, off or reset; without ENV, your own VM",
    example="power on nov-cohort",
    syntax="power on|off|reset ENV, or power on|off [@TRAINEE]",
    detail=(
        "With ENV (operators): every ready clone of the environment; with a trainee's VM name "
        "in its place: that VM.",
        "Without it: the VM you were given (`my` shows it); operators may name a trainee.",
    ),
    examples=("power on nov-cohort", "power reset nov-cohort", "power off", "power on @U01ALICE"),
    stoppable=True,
)
class Power(Verb):
    action: str  # "on", "off" or "reset"
    environment: str


def _parse_refresh(args: list[str]) -> Refresh:
    example = "refresh nov-cohort"
    if len(args) != 1:
        raise UsageError(f'say which environment to refresh, e.g. "{example}"')
    return Refresh(w.environment(args[0], example))


@command(
    "refresh",
    Access.CHANGE,
    parse=_parse_refresh,
    summary="re-create an environment's clones from the current base snapshot, same names",
    example="refresh nov-cohort",
    syntax="refresh ENV",
    detail=("For a parent that was patched and re-snapshotted, or a lab reset between cohorts.",),
    examples=("refresh nov-cohort",),
    progress=True,
    destroys=True,
)
class Refresh(Verb):
    environment: str


def _parse_resume(args: list[str]) -> Resume:
    w.no_arguments("resume", args)
    return Resume()


@command(
    "resume",
    Access.CHANGE,
    parse=_parse_resume,
    summary="finish deployments and strip backs that a crash or a lost vCenter interrupted",
    example="resume",
    syntax="resume",
    detail=(
        "Clones already in vCenter are adopted (found by the instance UUID the bot chose), "
        "missing ones are re-created under the same names. The bot also does this at start-up.",
    ),
    examples=("resume",),
    progress=True,
)
class Resume(Verb):
    """Finish deployments and strip backs that a crash or a lost vCenter interrupted."""


def _parse_orphans(args: list[str]) -> Orphans:
    example = "orphans adopt"
    if not args:
        return Orphans()
    if len(args) == 1 and args[0].lower() in ("adopt", "remove"):
        return Orphans(args[0].lower())
    raise UsageError(f'orphans takes nothing, "adopt" or "remove", e.g. "{example}"')


@command(
    "orphans",
    Access.CHANGE,
    parse=_parse_orphans,
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
    destroys=True,
)
class Orphans(Verb):
    action: str | None = None  # None: list; "adopt" or "remove"


def _parse_check(args: list[str]) -> Check:
    w.no_arguments("check", args)
    return Check()


@command(
    "check",
    Access.ADMIN,
    parse=_parse_check,
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
class Check(Verb):
    """A pre-flight of the configuration against vCenter that changes nothing."""


_SNAPSHOT_EXAMPLE = "snapshot nov-cohort before-lab-2"
SNAPSHOT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,79}")


def _parse_snapshot(args: list[str]) -> Snapshot:
    if not args:
        raise UsageError(
            f'say which environment and a name for the snapshot, e.g. "{_SNAPSHOT_EXAMPLE}"'
        )
    env = w.environment(args[0], _SNAPSHOT_EXAMPLE)
    if len(args) == 1:
        raise UsageError(
            f'say a name for the snapshot after the environment, e.g. "snapshot {env} before-lab-2"'
        )
    if len(args) > 2 or not SNAPSHOT_NAME.fullmatch(args[1]):
        raise UsageError(
            f'"{w.show(" ".join(args[1:]))}" is not a snapshot name: one word of letters, digits, '
            f'"-", "_" or ".", up to 80 characters, e.g. "snapshot {env} before-lab-2"'
        )
    return Snapshot(env, args[1])


def _snapshot_task(c: Snapshot, actor: str, source: str) -> VmTask:
    """Each clone's snapshot: named, its description saying whose, without memory, not
    quiesced."""
    description = f"clones: {c.environment}, by {actor} ({source})"
    arguments = (("name", c.name), ("description", description), ("memory", False))
    return VmTask("CreateSnapshot_Task", (*arguments, ("quiesce", False)))


@command(
    "snapshot",
    Access.CHANGE,
    parse=_parse_snapshot,
    summary="snapshot every ready clone of an environment: a checkpoint before an exercise",
    example=_SNAPSHOT_EXAMPLE,
    syntax="snapshot ENV NAME",
    detail=(
        "Each ready clone that is provably the bot's gets a snapshot called NAME, `concurrency` "
        "at a time (and per host); the parents and their base snapshots are never touched.",
        "A linked clone's snapshot holds only what changed since it was made, on the clone's "
        "own delta disk. A strip back or refresh destroys the clone and every snapshot it has "
        "(the parent's base snapshot stays): a snapshot is for going back during a course, in "
        "the vSphere Client (Revert to snapshot), not for keeping a lab.",
        "Without the VMs' memory and not quiesced: like pulling the plug at that moment.",
    ),
    examples=(_SNAPSHOT_EXAMPLE,),
    each_clone=OnEachClone(
        _snapshot_task,
        SNAPSHOTTING,
        doing="snapshot",
        label='Snapshot "{name}" of',
        action="{name}",
        ack="Snapshotting the clones of {environment}...",
        shows="the result in the channel: each clone snapshotted, failed or left alone",
    ),
)
class Snapshot(Verb):
    """Snapshot each ready clone of `environment`, the snapshot called `name`."""

    environment: str
    name: str
