"""What the services and the vCenter adapter say to each other: the VMs, parents, hosts and
requests of the vSphere inventory as plain records, and the custom attribute names the bot
writes. The adapter turns pyVmomi objects into these; nothing here knows pyVmomi."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Generic, TypeVar

# Custom attributes the bot writes on every clone: the origin used them as its asset database.
# Who deployed a clone and when go in its Notes (bot/domain/provenance.py), and also in custom
# attributes when `provenance_attributes` is set.
ATTR_MANAGED_BY = "ManagedBy"
ATTR_ENVIRONMENT = "Environment"
ATTR_DEPLOYED_FROM = "DeployedFrom"
ATTR_DEPLOYED_BY = "DeployedBy"
ATTR_DEPLOYED_AT = "DeployedAt"
CLONE_ATTRIBUTES = (ATTR_MANAGED_BY, ATTR_ENVIRONMENT, ATTR_DEPLOYED_FROM)
PROVENANCE_ATTRIBUTES = (ATTR_DEPLOYED_BY, ATTR_DEPLOYED_AT)


@dataclass(frozen=True)
class VmTask:
    """One vSphere task method started on each of some VMs, with its arguments: what a bulk
    verb does to each clone (`CreateSnapshot_Task` with a name, ...). The adapter starts them as
    one batch and waits for them together; the services say which, and on which VMs."""

    method: str  # a VirtualMachine method that returns a Task, e.g. "CreateSnapshot_Task"
    arguments: tuple[tuple[str, str | bool | int], ...] = ()


@dataclass(frozen=True)
class VmFacts:
    """What the bot needs to know about one VM, read in one round trip."""

    moref: str
    name: str
    instance_uuid: str
    powered_on: bool
    linked: bool  # every disk has a backing parent (a linked clone's delta disk)
    attributes: dict[str, str] = field(default_factory=dict)
    committed_bytes: int = 0
    unshared_bytes: int = 0
    host: str = ""  # moref of the host it runs on
    disk_modes: tuple[str, ...] = ()
    parent_moref: str = ""  # the folder or vApp it sits in
    notes: str = ""  # the VM's Notes (annotation)
    # Disk files: each linked disk's base (its backing parent's file), and every file of each
    # disk's backing chain (its own, then its parents'): a linked clone of a parent has its
    # base disks among the parent's chain files.
    base_disks: tuple[str, ...] = ()
    disk_files: tuple[str, ...] = ()

    def sighting(self) -> VmSighting:
        return VmSighting(
            moref=self.moref,
            instance_uuid=self.instance_uuid,
            name=self.name,
            powered_on=self.powered_on,
            attributes=dict(self.attributes),
            committed_bytes=self.committed_bytes,
            host=self.host,
            notes=self.notes,
        )


@dataclass(frozen=True)
class VmSighting:
    """A VM as a quick inventory read sees it (status drift, resume's reconciliation, the check
    that a VM is ours): its identity, power and labels, and only what else was asked for
    (`SIGHTING_EXTRAS`; left at its default otherwise)."""

    moref: str
    instance_uuid: str
    name: str
    powered_on: bool
    attributes: dict[str, str] = field(default_factory=dict)
    committed_bytes: int = 0  # "storage"
    host: str = ""  # "host": moref of the host it runs on
    notes: str = ""  # "notes": the VM's Notes


# What a sighting may also read, beside identity, power and labels (see VmSighting).
SIGHTING_EXTRAS = ("storage", "host", "notes")


class Visibility(Enum):
    """The three answers to "is this VM there?" (design.md, "Identity and visibility")."""

    SEEN = "seen"  # read, every property asked for
    GONE = "gone"  # vCenter says it does not exist (ManagedObjectNotFound), or a listing that
    # succeeded does not hold it
    UNSEEN = "unseen"  # vCenter answered with a fault instead of its properties: it may exist


@dataclass(frozen=True)
class Unseen:
    """A VM vCenter answered about with a fault instead of its properties (NoPermission: the
    account lost its rights on it; NotAuthenticated: the session ended and a new login did not
    help). Never a sign that it is gone: a record of it is left as it is."""

    moref: str
    fault: str  # the vSphere fault's name, e.g. "NoPermission"
    privilege: str = ""  # the privilege vCenter named, e.g. "System.Read"

    @property
    def reason(self) -> str:
        """ "NoPermission, privilege System.Read"."""
        return f"{self.fault}, privilege {self.privilege}" if self.privilege else self.fault

    def cannot_see(self, name: str) -> str:
        """ "cannot see VM TRN-CAP-001: NoPermission, privilege System.Read"."""
        return f"cannot see VM {name}: {self.reason}"


V = TypeVar("V")


@dataclass(frozen=True)
class VmReading(Generic[V]):
    """One read of VMs (by moref, or every VM under a folder), each VM it covers answered as
    seen, gone or unseen: `visibility` is the one place that says which. A VM asked for by moref
    and not in the answer is gone (vCenter leaves out what does not exist); in a listing, a VM
    that is not in it is gone; a VM the answer carries a fault for is unseen, never gone."""

    seen: Mapping[str, V] = field(default_factory=dict)  # by moref
    unseen: Mapping[str, Unseen] = field(default_factory=dict)  # by moref

    def visibility(self, moref: str) -> Visibility:
        if moref in self.seen:
            return Visibility.SEEN
        if moref in self.unseen:
            return Visibility.UNSEEN
        return Visibility.GONE

    def values(self) -> list[V]:
        """What was seen (only that: ask `visibility` or `unseen` about the rest)."""
        return list(self.seen.values())


@dataclass(frozen=True)
class Destroyed:
    """The outcome of destroying one VM."""

    reclaimed_bytes: int  # what it occupied on the datastore (0 when it was already gone)
    gone: bool  # it no longer existed: nothing was destroyed by this call


@dataclass(frozen=True)
class DiskInfo:
    label: str
    capacity_bytes: int
    thin: bool
    mode: str  # persistent, independent_nonpersistent, ...
    has_parent: bool


@dataclass(frozen=True)
class ParentReport:
    """Everything `prepare` checks about a parent, read in one round trip."""

    name: str
    moref: str
    powered_on: bool
    disks: tuple[DiskInfo, ...]
    snapshots_named: int  # snapshots carrying the base snapshot's name
    used_bytes: int
    memory_mb: int


@dataclass(frozen=True)
class HostInfo:
    moref: str
    name: str
    usable: bool  # connected and not in maintenance mode


@dataclass(frozen=True)
class CustomizationOutcome:
    moref: str
    ok: bool | None  # None: no result before the timeout
    message: str = ""


@dataclass(frozen=True)
class CloneRequest:
    parent: str  # the parent VM's configured name or path
    snapshot: str  # base snapshot name
    name: str
    instance_uuid: str  # chosen by the bot so a lost reply can still be found again
    folder: str
    resource_pool: str
    datastore: str
    attributes: Mapping[str, str]
    notes: str = ""  # the clone's Notes, written by CloneVM_Task itself (no extra call)
    host: str | None = None  # moref of the host to place it on (host-limit confinement)
    customization_spec: str | None = None  # named spec; the computer name is the clone's name
    disk_mode: str | None = None  # applied after cloning: the parent's disks stay cloneable


@dataclass(frozen=True)
class Endpoint:
    """The vCenter a connection talks to, for `clones check`."""

    url: str
    product: str  # e.g. "VMware vCenter Server 8.0.2 build-22385739"
    api_version: str
    user: str  # as vCenter names the session's user, e.g. "VSPHERE.LOCAL\\svc"
    trust: str  # how its TLS certificate is trusted
    instance_uuid: str = ""  # vCenter's own (about.instanceUuid): vSphere Client links use it


@dataclass(frozen=True)
class Entity:
    """An inventory object the pre-flight check looks at; `obj` is opaque outside this module."""

    kind: str  # "vm", "folder", "pool", "datastore", "cluster", "network", "root"
    name: str
    moref: str
    obj: Any = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class NetworkInfo:
    name: str
    moref: str
    accessible: bool
    obj: Any = field(default=None, repr=False, compare=False)

    def entity(self) -> Entity:
        return Entity("network", self.name, self.moref, self.obj)
