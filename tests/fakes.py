"""In-memory fakes of the ports, for the fast unit tier (tests/unit/): the vCenter, and the
workspace's people (`FakePeople`: the Directory and Messenger ports).

`FakeVCenter` implements `bot.ports.VCenter` with a dictionary of VMs: parents with a base
snapshot, linked clones, custom attributes, power, hosts and a datastore. It is a fake, not a
mock: it keeps state and enforces what vCenter enforces that the services rely on (unique names
in a folder, a destroyed VM is gone, a missing VM is `ManagedObjectNotFound`). Faults are
switched on by the test (`fail_clone`, `full_copies`, `lost`, `hidden`: VMs every read answers
unseen, with NoPermission, as vCenter does when the account lost its rights on them). Everything
that speaks SOAP is tested against the lab vCenter instead (tests/test_*.py); these tests run in
milliseconds.

The repository is the real SQLite one on a temporary file (cheap, and the one true
implementation of its transactions).
"""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bot.domain.errors import (
    CannotSee,
    LinkedCloneCheckFailed,
    NotDelivered,
    NotFoundError,
    VCenterError,
    VCenterFault,
    VCenterUnreachable,
)
from bot.domain.models import ParentFacts
from bot.domain.trainees import DirectMessage, Person
from bot.domain.vsphere import (
    CLONE_ATTRIBUTES,
    CloneRequest,
    CustomizationOutcome,
    Destroyed,
    DiskInfo,
    Endpoint,
    Entity,
    HostInfo,
    NetworkInfo,
    ParentReport,
    Unseen,
    VmFacts,
    VmReading,
    VmSighting,
    VmTask,
)
from bot.ports import Directory, Messenger, VCenter
from bot.services.preflight import PRIVILEGES

GIB = 2**30
ALL_PRIVILEGES = frozenset(p.id for p in PRIVILEGES)


@dataclass
class FakeVM:
    moref: str
    name: str
    instance_uuid: str
    folder: str
    linked: bool = True
    powered_on: bool = False
    attributes: dict[str, str] = field(default_factory=dict)
    notes: str = ""
    host: str = ""
    committed_bytes: int = int(0.13 * GIB)
    parent: bool = False
    snapshots: list[str] = field(default_factory=list)

    def facts(self) -> VmFacts:
        return VmFacts(
            moref=self.moref,
            name=self.name,
            instance_uuid=self.instance_uuid,
            powered_on=self.powered_on,
            linked=self.linked,
            attributes=dict(self.attributes),
            committed_bytes=self.committed_bytes,
            unshared_bytes=self.committed_bytes,
            host=self.host,
            notes=self.notes,
        )


class FakeVCenter:
    """A vCenter in memory: one datacenter, one cluster of `hosts` hosts, one datastore."""

    def __init__(
        self,
        parents: Iterable[str] = ("Capture", "Packaging", "Verification"),
        *,
        hosts: int = 4,
        free_bytes: int = 1000 * GIB,
    ) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count(100)
        self.vms: dict[str, FakeVM] = {}
        self.hosts = [HostInfo(f"host-{i}", f"esx-{i:02}", True) for i in range(1, hosts + 1)]
        self.free_bytes = free_bytes
        self.attribute_names: set[str] = set()
        self.calls: Counter[str] = Counter()
        self.sighting_extras: list[tuple[str, ...]] = []  # `also` of each sightings read
        # Faults a test switches on.
        self.fail_clone: dict[str, VCenterFault] = {}  # clone name -> its task fault
        self.fail_finish: dict[str, VCenterError] = {}  # clone name -> labelling's fault
        self.fail_destroy: dict[str, VCenterError] = {}  # VM name -> its destroy's fault
        self.full_copies = False  # every clone comes out as a full copy
        self.lost = False  # every call: vCenter unreachable
        self.hidden: set[str] = set()  # morefs every read answers with NoPermission
        self.tasks_done: list[tuple[str, VmTask]] = []  # vm_tasks: (moref, task), in order
        for name in parents:
            self._add(name, folder="Parents", parent=True, linked=False, committed=3 * GIB)

    # ----------------------------------------------------------------- test helpers
    def _add(self, name: str, **fields: Any) -> FakeVM:
        moref = f"vm-{next(self._ids)}"
        committed = fields.pop("committed", int(0.13 * GIB))
        vm = FakeVM(moref, name, f"uuid-{moref}", committed_bytes=committed, **fields)
        self.vms[moref] = vm
        return vm

    def named(self, name: str) -> FakeVM:
        return next(vm for vm in self.vms.values() if vm.name == name)

    def clones(self) -> list[FakeVM]:
        return sorted((vm for vm in self.vms.values() if not vm.parent), key=lambda v: v.name)

    def _call(self, name: str) -> None:
        with self._lock:
            self.calls[name] += 1
        if self.lost:
            raise VCenterUnreachable(f"Lost contact with vCenter while {name} (fake).")

    def _parent(self, name: str) -> FakeVM:
        found = [vm for vm in self.vms.values() if vm.parent and vm.name == name.split("/")[-1]]
        if not found:
            raise NotFoundError(f'Parent VM "{name}" not found.')
        return found[0]

    # ----------------------------------------------------------------- Inventory
    def connect(self) -> None:
        self._call("connect")

    def close(self) -> None:
        pass

    def endpoint(self) -> Endpoint:
        return Endpoint("fake://vcenter", "Fake vCenter", "8.0", "fake\\svc", "none", "fake-uuid")

    def datacenter_name(self) -> str:
        return "DC"

    def parent_facts(self, parent: str, snapshot: str) -> ParentFacts:
        self._call("parent_facts")
        vm = self._parent(parent)
        return ParentFacts(
            name=parent,
            provisioned_bytes=11 * GIB,
            used_bytes=vm.committed_bytes,
            powered_on=vm.powered_on,
            snapshot=snapshot if snapshot in vm.snapshots else None,
            memory_mb=4096,
        )

    def parent_report(self, parent: str, snapshot: str) -> ParentReport:
        vm = self._parent(parent)
        disk = DiskInfo("Hard disk 1", 11 * GIB, True, "persistent", False)
        return ParentReport(
            parent, vm.moref, vm.powered_on, (disk,), vm.snapshots.count(snapshot),
            vm.committed_bytes, 4096,
        )  # fmt: skip

    def parent_entity(self, parent: str) -> Entity:
        vm = self._parent(parent)
        return Entity("vm", vm.name, vm.moref)

    def parent_networks(self, parent: str) -> tuple[list[NetworkInfo], list[str]]:
        return [NetworkInfo("Training", "network-1", True)], []

    def networks_of(self, parents: Sequence[str]) -> dict[str, list[Entity]]:
        return {p: [Entity("network", "Training", "network-1")] for p in parents}

    def hide(self, *names: str) -> None:
        """Reads answer these VMs unseen (NoPermission), calls on them fail so."""
        self.hidden.update(self.named(n).moref for n in names)

    def _reading(self, vms: Iterable[FakeVM], view: Any) -> VmReading[Any]:
        seen, unseen = {}, {}
        for vm in vms:
            if vm.moref in self.hidden:
                unseen[vm.moref] = Unseen(vm.moref, "NoPermission", "System.Read")
            else:
                seen[vm.moref] = view(vm)
        return VmReading(seen, unseen)

    def _refuse_hidden(self, moref: str) -> None:
        if moref in self.hidden:
            raise CannotSee(Unseen(moref, "NoPermission", "System.Read").cannot_see(moref))

    def find_vms(self, folder: str | None = None) -> VmReading[VmFacts]:
        self._call("find_vms")
        with self._lock:
            where = folder.split("/")[-1] if folder else None
            return self._reading(
                (v for v in self.vms.values() if where is None or v.folder == where),
                FakeVM.facts,
            )

    def vm_by_instance_uuid(self, instance_uuid: str) -> VmFacts | None:
        self._call("vm_by_instance_uuid")
        with self._lock:
            found = [vm for vm in self.vms.values() if vm.instance_uuid == instance_uuid]
        if found:
            self._refuse_hidden(found[0].moref)
        return found[0].facts() if found else None

    def vm_facts(self, morefs: Sequence[str]) -> VmReading[VmFacts]:
        self._call("vm_facts")
        with self._lock:
            return self._reading((self.vms[m] for m in morefs if m in self.vms), FakeVM.facts)

    def sightings(
        self, morefs: Sequence[str] | None = None, *, also: Collection[str] = ()
    ) -> VmReading[VmSighting]:
        self._call("sightings")

        def sighting(vm: FakeVM) -> VmSighting:
            seen = vm.facts().sighting()
            return replace(
                seen,
                committed_bytes=seen.committed_bytes if "storage" in also else 0,
                host=seen.host if "host" in also else "",
                notes=seen.notes if "notes" in also else "",
            )

        with self._lock:
            self.sighting_extras.append(tuple(sorted(also)))
            chosen = self.vms.values() if morefs is None else [
                self.vms[m] for m in morefs if m in self.vms
            ]  # fmt: skip
            return self._reading(chosen, sighting)

    def instance_uuids(self, morefs: Sequence[str]) -> VmReading[str]:
        self._call("instance_uuids")
        with self._lock:
            return self._reading(
                (self.vms[m] for m in morefs if m in self.vms), lambda vm: vm.instance_uuid
            )

    def datastore_free_bytes(self, datastore: str) -> int:
        return self.free_bytes

    def customization_spec_exists(self, spec_name: str) -> bool:
        return spec_name == "win-training"

    def cluster_hosts(self, resource_pool: str) -> tuple[Any, list[HostInfo]]:
        return "cluster-1", list(self.hosts)

    def cluster_entity(self, resource_pool: str) -> Entity | None:
        return Entity("cluster", "Training", "cluster-1")

    def drs_confinement(self, cluster: Any, prefix: str) -> tuple[list[str], list[str], bool]:
        return [], [], False

    def entity(self, kind: str, path: str) -> Entity:
        return Entity(kind, path, f"{kind}-1")

    def root_entity(self) -> Entity:
        return Entity("root", "root", "group-d1")

    def placement_entities(
        self, folder: str, resource_pool: str, datastore: str
    ) -> dict[str, Entity]:
        return {
            "folder": Entity("folder", folder, "folder-1"),
            "pool": Entity("pool", resource_pool, "pool-1"),
            "datastore": Entity("datastore", datastore, "datastore-1"),
        }

    def privileges(self, entities: Sequence[Entity]) -> dict[str, frozenset[str]]:
        return {e.moref: ALL_PRIVILEGES for e in entities}

    def missing_attribute_definitions(self, names: Iterable[str]) -> list[str]:
        return [n for n in names if n not in self.attribute_names]

    # ----------------------------------------------------------------- Provisioning
    def ensure_base_snapshot(self, parent: str, snapshot: str, *, create: bool = True) -> str:
        vm = self._parent(parent)
        if snapshot not in vm.snapshots:
            vm.snapshots.append(snapshot)
        return f"snapshot-{vm.moref}"

    def forget_snapshots(self) -> None:
        pass

    def ensure_attribute_definitions(self, names: Iterable[str] = CLONE_ATTRIBUTES) -> None:
        self.attribute_names.update(names)

    def clone(self, req: CloneRequest, *, finish: bool = True) -> VmFacts:
        self._call("clone")
        if req.name in self.fail_clone:
            raise self.fail_clone[req.name]
        with self._lock:
            if any(v.name == req.name and v.folder == req.folder for v in self.vms.values()):
                raise VCenterFault(f"{req.name} already exists", "DuplicateName")
            vm = self._add(
                req.name,
                folder=req.folder,
                linked=not self.full_copies,
                notes=req.notes,
                host=req.host or self.hosts[0].moref,
            )
            vm.instance_uuid = req.instance_uuid
        if self.full_copies:
            del self.vms[vm.moref]
            raise LinkedCloneCheckFailed(
                f"{req.name} came out as a full copy; removed.", moref=vm.moref, removed=True
            )
        facts = vm.facts()
        return self.finish_clone(facts, req) if finish else facts

    def finish_clone(self, facts: VmFacts, req: CloneRequest) -> VmFacts:
        self._call("finish_clone")
        if req.name in self.fail_finish:
            raise self.fail_finish[req.name]
        with self._lock:
            vm = self.vms[facts.moref]
            vm.attributes.update(req.attributes)
            return vm.facts()

    def destroy(
        self, moref: str, *, expected_uuid: str, facts: VmFacts | VmSighting | None = None
    ) -> Destroyed:
        self._call("destroy")
        self._refuse_hidden(moref)
        with self._lock:
            vm = self.vms.get(moref)
            if vm is None:
                return Destroyed(0, gone=True)
            if vm.instance_uuid != expected_uuid:
                raise VCenterError(f"{moref} is no longer the recorded VM; not touched.")
            if vm.name in self.fail_destroy:
                raise self.fail_destroy[vm.name]
            del self.vms[moref]
            return Destroyed(vm.committed_bytes, gone=False)

    def power(self, morefs: Sequence[str], action: str) -> list[VCenterError | None]:
        self._call("power")
        out: list[VCenterError | None] = []
        with self._lock:
            for m in morefs:
                if m not in self.vms:
                    out.append(VCenterFault(f"{m} not found", "ManagedObjectNotFound"))
                    continue
                if m in self.hidden:
                    out.append(VCenterFault(f"{m}: no permission", "NoPermission"))
                    continue
                self.vms[m].powered_on = action in ("on", "reset")
                out.append(None)
        return out

    def vm_tasks(self, morefs: Sequence[str], task: VmTask) -> list[VCenterError | None]:
        """Each VM's task, done: recorded in `tasks_done` (moref, task) for tests to read."""
        self._call("vm_tasks")
        out: list[VCenterError | None] = []
        with self._lock:
            for m in morefs:
                if m not in self.vms:
                    out.append(VCenterFault(f"{m} not found", "ManagedObjectNotFound"))
                elif m in self.hidden:
                    out.append(VCenterFault(f"{m}: no permission", "NoPermission"))
                else:
                    self.tasks_done.append((m, task))
                    out.append(None)
        return out

    def set_attributes(self, moref: str, values: Mapping[str, str]) -> None:
        self._call("set_attributes")
        with self._lock:
            if moref not in self.vms:
                raise VCenterFault(f"{moref} not found", "ManagedObjectNotFound")
            self.attribute_names.update(values)
            self.vms[moref].attributes.update(values)

    def shut_down(self, parent: str, timeout_s: float = 300.0) -> None:
        self._parent(parent).powered_on = False

    def customization_outcomes(
        self, morefs: Collection[str], since: datetime
    ) -> dict[str, CustomizationOutcome]:
        self._call("customization_outcomes")
        with self._lock:
            return {m: CustomizationOutcome(m, True) for m in morefs if self.vms[m].powered_on}

    def wait_for_customization(
        self, morefs: Sequence[str], since: datetime, timeout_s: float, poll_s: float = 2.0
    ) -> dict[str, CustomizationOutcome]:
        return {m: CustomizationOutcome(m, True) for m in morefs}

    def ensure_drs_confinement(
        self, cluster: Any, prefix: str, vm_morefs: Sequence[str], host_morefs: Sequence[str]
    ) -> None:
        pass


class FakePeople:
    """The `Directory` and `Messenger` ports in memory: members (with e-mail addresses, bots and
    deactivated accounts), channels, user groups; every direct message sent, and the members a
    message cannot reach (`unreachable`: member -> why)."""

    def __init__(self) -> None:
        self.members: dict[str, Person] = {}
        self.channels: dict[str, list[str]] = {}
        self.groups: dict[str, list[str]] = {}
        self.unreachable: dict[str, str] = {}
        self.sent: list[tuple[str, DirectMessage]] = []
        self.lookups: Counter[str] = Counter()

    def add(self, user: str, name: str = "", email: str = "", **flags: bool) -> Person:
        person = Person(user, name, email, **flags)
        self.members[user] = person
        return person

    def to(self, user: str) -> list[DirectMessage]:
        """The messages `user` got, oldest first."""
        return [m for u, m in self.sent if u == user]

    # ----------------------------------------------------------------- Directory
    def channel_members(self, channel: str) -> list[str]:
        self.lookups["channel_members"] += 1
        if channel not in self.channels:
            raise NotFoundError(f"the bot cannot see channel {channel}")
        return list(self.channels[channel])

    def person(self, user: str) -> Person:
        self.lookups["person"] += 1
        return self.members.get(user, Person(user))

    def persons(self, users: Sequence[str]) -> dict[str, Person]:
        self.lookups["persons"] += 1
        return {u: self.members.get(u, Person(u)) for u in users}

    def user_by_email(self, email: str) -> str | None:
        self.lookups["user_by_email"] += 1
        return next((p.id for p in self.members.values() if p.email == email), None)

    def group_members(self, group: str) -> list[str]:
        return list(self.groups.get(group, []))

    # ----------------------------------------------------------------- Messenger
    def send(self, user: str, message: DirectMessage, *, within_s: float | None = None) -> None:
        if within_s is not None and within_s <= 0:
            raise NotDelivered("Slack kept rate limiting the messages")
        if user in self.unreachable:
            raise NotDelivered(self.unreachable[user])
        self.sent.append((user, message))


def relabel(vm: FakeVM, **attributes: str) -> FakeVM:
    """Someone changed the VM's custom attributes behind the bot's back."""
    vm.attributes.update(attributes)
    return replace(vm)


if TYPE_CHECKING:  # mypy proves each fake implements its ports (docs/architecture.md)
    _vcenter: VCenter = FakeVCenter()
    _directory: Directory = FakePeople()
    _messenger: Messenger = FakePeople()
