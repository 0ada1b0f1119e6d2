"""Typed records shared by the service layer, storage and the front ends."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime


class CloneState(enum.StrEnum):
    """The life of one linked clone."""

    PLANNED = "planned"  # name reserved in SQLite, nothing in vCenter yet
    CLONING = "cloning"  # CloneVM_Task issued
    READY = "ready"  # exists in vCenter, verified linked, attributes written
    FAILED = "failed"  # gave up; `error` says why; nothing of it remains in vCenter
    DESTROYING = "destroying"  # strip back in progress
    DESTROYED = "destroyed"  # gone from vCenter; the name may be reused

    @property
    def live(self) -> bool:
        """True while the clone may exist in vCenter (its name stays reserved)."""
        return self not in (CloneState.FAILED, CloneState.DESTROYED)


class RunKind(enum.StrEnum):
    DEPLOY = "deploy"
    TEARDOWN = "teardown"
    REFRESH = "refresh"


class RunState(enum.StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    PARTIAL = "partial"  # some clones failed
    FAILED = "failed"
    INTERRUPTED = "interrupted"  # process died or vCenter went away; resumable


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
    run_id: int | None = None
    moref: str | None = None
    instance_uuid: str | None = None
    error: str | None = None
    attempts: int = 0
    delta_bytes: int | None = None  # the clone's own (unshared) storage, from vCenter
    host: str | None = None  # moref of the host it was placed on
    power_state: str | None = None  # last known: poweredOn / poweredOff / suspended
    customization: str = ""  # "", "pending", "succeeded", "failed"
    created_at: datetime | None = None
    updated_at: datetime | None = None


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
