"""Typed records shared by the service layer, storage and the front ends."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime


class Keep(enum.Enum):
    """Default of optional updates, distinct from None (which clears the value)."""

    KEEP = enum.auto()


KEEP = Keep.KEEP


class CloneState(enum.StrEnum):
    """The life of one linked clone (transitions: CLONE_TRANSITIONS, docs/reliability.md)."""

    PLANNED = "planned"  # name reserved in SQLite, nothing in vCenter yet
    CLONING = "cloning"  # CloneVM_Task issued (the instance UUID it asked for is recorded)
    READY = "ready"  # exists in vCenter, verified linked, attributes written
    # gave up; `error` says why; nothing of it remains in vCenter, or (its VM could not be
    # destroyed) the moref of what does, which `orphans` then lists as the bot's own
    FAILED = "failed"
    DESTROYING = "destroying"  # strip back (or refresh) in progress
    DESTROYED = "destroyed"  # gone from vCenter at the bot's request; the name may be reused
    MISSING = "missing"  # gone from vCenter though nobody asked the bot to destroy it

    @property
    def live(self) -> bool:
        """True while the clone may exist in vCenter (its name stays reserved)."""
        return self not in (CloneState.FAILED, CloneState.DESTROYED, CloneState.MISSING)


class RunKind(enum.StrEnum):
    DEPLOY = "deploy"
    TEARDOWN = "teardown"
    REFRESH = "refresh"


class RunState(enum.StrEnum):
    """The life of one run (transitions: RUN_TRANSITIONS, docs/reliability.md)."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    PARTIAL = "partial"  # some clones failed
    FAILED = "failed"
    INTERRUPTED = "interrupted"  # process died or vCenter went away; resumable
    SUPERSEDED = "superseded"  # taken over by a newer run over the same clones; never resumed

    @property
    def terminal(self) -> bool:
        """True once the run can never act again (recovery never picks it up)."""
        return self not in (RunState.RUNNING, RunState.INTERRUPTED)


_C = CloneState
# Every change of a clone's recorded state the bot may make; anything else is a bug.
CLONE_TRANSITIONS: dict[CloneState, frozenset[CloneState]] = {
    # reserved -> clone issued; never issued and the run gave up or was stripped back
    _C.PLANNED: frozenset({_C.CLONING, _C.FAILED, _C.DESTROYED}),
    # made and verified / gave up / resume re-creates it (not in vCenter) / a strip back takes
    # over an unfinished deployment: its VM found by the recorded UUID, or not in vCenter
    _C.CLONING: frozenset({_C.READY, _C.FAILED, _C.PLANNED, _C.DESTROYING, _C.DESTROYED}),
    # strip back or refresh starts / a strip back found it already gone / its VM vanished
    # behind the bot's back (a deployment's final re-read, status, resume)
    _C.READY: frozenset({_C.DESTROYING, _C.DESTROYED, _C.MISSING}),
    # destroyed (or found gone) / the destroy failed or was interrupted: still there /
    # refresh re-creates it (new instance UUID) / refresh's resume re-creates a gone one
    _C.DESTROYING: frozenset({_C.DESTROYED, _C.READY, _C.CLONING, _C.PLANNED}),
    # `orphans adopt` (its VM, with the UUID the bot chose, still exists) or `orphans remove`
    _C.FAILED: frozenset({_C.READY, _C.DESTROYED}),
    _C.MISSING: frozenset({_C.READY, _C.DESTROYED}),
    _C.DESTROYED: frozenset(),
}

_R = RunState
RUN_TRANSITIONS: dict[RunState, frozenset[RunState]] = {
    _R.RUNNING: frozenset({_R.SUCCEEDED, _R.PARTIAL, _R.FAILED, _R.INTERRUPTED, _R.SUPERSEDED}),
    _R.INTERRUPTED: frozenset({_R.SUPERSEDED}),
    _R.SUCCEEDED: frozenset(),
    _R.PARTIAL: frozenset(),
    _R.FAILED: frozenset(),
    _R.SUPERSEDED: frozenset(),
}


def clone_transition(current: CloneState, new: CloneState) -> CloneState:
    """Check one change of a clone's state; a same-state update is always allowed."""
    if new is not current and new not in CLONE_TRANSITIONS[current]:
        raise InvalidTransition(f"a clone cannot go from {current} to {new}")
    return new


def run_transition(current: RunState, new: RunState) -> RunState:
    """Check one change of a run's state (a run that ended never changes again)."""
    if new not in RUN_TRANSITIONS[current]:
        raise InvalidTransition(f"a run cannot go from {current} to {new}")
    return new


class InvalidTransition(Exception):
    """A state change the state machine does not allow: a bug, never a user error."""


@dataclass(frozen=True)
class Environment:
    """One training cohort's set of clones."""

    name: str
    owner: str
    channel: str = ""
    created_at: datetime | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None


@dataclass(frozen=True)
class Clone:
    """One linked clone as recorded in SQLite."""

    id: int
    name: str
    environment: str
    type: str
    parent: str
    state: CloneState
    run_id: int | None = None  # the run that created it (runs act on what they own: run_clones)
    moref: str | None = None
    instance_uuid: str | None = None
    error: str | None = None
    attempts: int = 0
    delta_bytes: int | None = None  # the clone's own (unshared) storage, from vCenter
    host: str | None = None  # moref of the host it was placed on
    power_state: str | None = None  # last known: poweredOn / poweredOff / suspended
    customization: str = ""  # "", "pending", "succeeded", "failed"
    # Attributes of the VM a refresh (or rebuild) destroyed, for its successor: recorded with
    # the destroy, so a successor made after a crash gets them too. Name -> value pairs.
    kept_attributes: tuple[tuple[str, str], ...] = ()
    created_at: datetime | None = None
    updated_at: datetime | None = None
    # The largest committed size vCenter showed for it, and when; when its size was last read
    # (status, inventory, strip back, refresh): how far it grew, for the capacity estimate.
    peak_bytes: int | None = None
    peak_at: datetime | None = None
    sized_at: datetime | None = None

    @property
    def known_power(self) -> str | None:
        """Its power state as last seen, while its VM may exist (ready, or being destroyed);
        None for a clone that failed, went missing or was destroyed: a power state recorded
        before that says nothing now."""
        if self.state in (CloneState.READY, CloneState.DESTROYING):
            return self.power_state
        return None


@dataclass(frozen=True)
class Run:
    """One deployment, strip back or refresh of an environment."""

    id: int
    environment: str
    kind: RunKind
    requested_by: str
    state: RunState
    requested: int = 0
    succeeded: int = 0
    failed: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    message: str = ""
    owner: str = ""  # "host:pid" of the process running it
    heartbeat_at: datetime | None = None
    superseded_by: int | None = None  # the run recovery started in its place
    power_on: bool = False  # a deployment that powers its clones on as they are made


@dataclass(frozen=True)
class Assignment:
    """One trainee holding one clone of an environment (a Slack user ID and a clone row).

    Active while `ended_at` is None. It ends when it is unassigned, replaced (its clone was no
    longer ready when the trainee was assigned again), or when its clone leaves `ready` for good,
    in the same write: removed (destroyed: a strip back), missing (gone from vCenter behind the
    bot's back) or failed (a rebuild could not make it again). `told_at` is when the trainee was
    told of one of those three (at most once)."""

    id: int
    environment: str
    trainee: str
    clone_id: int
    clone_name: str
    assigned_by: str
    assigned_at: datetime | None = None
    handed_out_at: datetime | None = None  # the hand-out message reached the trainee
    ended_at: datetime | None = None
    ended_reason: str = ""  # "unassigned", "replaced", "removed", "missing" or "failed"
    told_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.ended_at is None


@dataclass(frozen=True)
class AuditEntry:
    at: datetime
    actor: str
    source: str  # "cli", "slack", "scheduler"
    command: str
    result: str  # "ok", "denied", "error", ...
    channel: str = ""
    detail: str = ""
    id: int | None = None


@dataclass(frozen=True)
class ParentFacts:
    """What vCenter says about a type's parent VM (sizes in bytes)."""

    name: str
    provisioned_bytes: int  # thick size: sum of the parent's virtual disks' capacity
    used_bytes: int  # what the parent occupies on the datastore (thin: committed)
    powered_on: bool = False
    snapshot: str | None = None  # the base snapshot's name when it exists
    memory_mb: int = 0


@dataclass
class Placement:
    """Where clones of one type go."""

    folder: str
    resource_pool: str
    datastore: str
    hosts: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Fence:
    """What a write is done under, checked by the database in the write's own transaction.

    `lease`, `holder`, `epoch`: the leadership lease this process held when it decided to act
    (refused once another bot took the lease over: a newer epoch). `run_id`, `owner`: the run
    it acts for (refused once another bot superseded the run). Either part may be absent."""

    lease: str = ""
    holder: str = ""
    epoch: int = 0
    run_id: int | None = None
    owner: str = ""

    def with_run(self, run_id: int, owner: str) -> Fence:
        return Fence(self.lease, self.holder, self.epoch, run_id, owner)


@dataclass(frozen=True)
class Lease:
    """A row of the `leases` table: who holds `name` (a process's owner string), under which
    epoch (raised by every takeover), until when (Unix time, by the holder's clock)."""

    name: str
    holder: str
    epoch: int
    expires_at: float
    renewed_at: float

    def expired(self, now: float) -> bool:
        return not self.holder or self.expires_at <= now


@dataclass(frozen=True)
class Confirmation:
    """A Confirm / Cancel button's one-time token and what it confirms (handlers/confirm_tokens):
    kept in the database, so the click may reach any bot sharing it. `issued_at`: Unix time."""

    token: str
    environment: str
    requester: str
    channel: str
    issued_at: float
    action: str = "teardown"  # what the token confirms: "teardown", "refresh", "orphans"
    items: tuple[str, ...] = ()  # exactly what was shown, when the action acts on a list


@dataclass(frozen=True)
class RunMessage:
    """Where a run is shown in Slack: the channel and the ts of its progress message."""

    run_id: int
    channel: str
    ts: str


@dataclass(frozen=True)
class ScheduleRecord:
    """An environment's schedule bookkeeping (see migration m003_schedules)."""

    environment: str
    deploy_command: str | None = None
    requested_by: str = ""
    lease_from: datetime | None = None
    reminded_for_end: datetime | None = None
    stripping_for_end: datetime | None = None
    updated_at: datetime | None = None
