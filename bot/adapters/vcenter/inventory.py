"""Reading VMs, parents, datastores and clusters, in the service's words (`VmFacts`,
`VmSighting`, `VmReading`, `ParentReport`, `HostInfo`): batched PropertyCollector reads, nothing
changed."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from typing import Any

from pyVmomi import vim as _vim

from bot.adapters.vcenter.attributes import Attributes
from bot.adapters.vcenter.lookup import Lookup
from bot.domain.errors import CannotSee
from bot.domain.models import ParentFacts
from bot.domain.vsphere import (
    SIGHTING_EXTRAS,
    DiskInfo,
    HostInfo,
    ParentReport,
    VmFacts,
    VmReading,
    VmSighting,
)

# pyVmomi's dynamic vSphere types, as Any (see faults.py).
vim: Any = _vim

# The extras a sighting may read (bot.domain.vsphere.SIGHTING_EXTRAS), by their property path.
_EXTRA_PATHS = {
    "storage": "summary.storage.committed",
    "host": "runtime.host",
    "notes": "config.annotation",
}

# What a VM's facts are made of (read in one call, for one VM or a batch).
VM_PROPERTIES = [
    "name",
    "config.instanceUuid",
    "config.hardware.device",
    "customValue",
    "config.annotation",
    "runtime.powerState",
    "runtime.host",
    "summary.storage",
    "parent",
]


class InventoryReads:
    """VMs and parents as facts, datastores' free space, clusters' hosts."""

    def __init__(self, lookup: Lookup, attributes: Attributes) -> None:
        self.lookup = lookup
        self.attributes = attributes

    # ----------------------------------------------------------------- VMs
    # Each read answers every VM it covers as seen, gone or unseen (`VmReading`): a VM vCenter
    # answered with a fault for is unseen, never left out as if it were gone.
    def vm_facts(self, morefs: Sequence[str]) -> VmReading[VmFacts]:
        """Facts for each moref, in one round trip."""
        if not morefs:
            return VmReading()
        read = self.lookup.read([self.lookup.vm(m) for m in morefs], VM_PROPERTIES)
        return VmReading(
            {str(obj._moId): self.facts(str(obj._moId), props) for obj, props in read.rows},
            read.unseen,
        )

    def vm_by_instance_uuid(self, instance_uuid: str) -> VmFacts | None:
        """The facts of the VM carrying this instance UUID in the datacenter (None: none does;
        CannotSee when vCenter names one but would not show it): SearchIndex.FindByUuid, then
        one read of the VM."""
        lookup = self.lookup
        index = lookup.session.content.searchIndex
        datacenter = lookup.datacenter()
        vm = lookup.session.call(
            f"looking for the VM with instance UUID {instance_uuid}",
            lambda: index.FindByUuid(
                datacenter=datacenter, uuid=instance_uuid, vmSearch=True, instanceUuid=True
            ),
        )
        if vm is None:
            return None
        moref = str(vm._moId)
        read = self.vm_facts([moref])
        if moref in read.unseen:  # it may be that VM: never answered as none
            raise CannotSee(read.unseen[moref].cannot_see(moref))
        facts = read.seen.get(moref)
        return facts if facts is not None and facts.instance_uuid == instance_uuid else None

    def find_vms(self, folder: str | None = None) -> VmReading[VmFacts]:
        """Every VM (templates excluded) under a folder path, or in the whole datacenter."""
        lookup = self.lookup
        root = lookup.find_path("folder", "vm", folder) if folder else lookup.datacenter()
        read = lookup.read_container(
            vim.VirtualMachine, [*VM_PROPERTIES, "config.template"], root=root
        )
        return VmReading(
            {
                str(obj._moId): self.facts(str(obj._moId), props)
                for obj, props in read.rows
                if not props.get("config.template")
            },
            read.unseen,
        )

    def sightings(
        self, morefs: Sequence[str] | None = None, *, also: Collection[str] = ()
    ) -> VmReading[VmSighting]:
        """VMs, narrowly: moref, instance UUID, name, power state and custom attributes, in
        one PropertyCollector read (paged), plus only the extras asked for (`also`: "storage",
        "host", "notes"; never the device list). With `morefs`, those VMs (what status compares
        records with); without, every VM in the datacenter, templates excluded (what resume
        reconciles against: a VM moved to another folder or renamed is still found by its
        instance UUID).
        """
        unknown = set(also) - set(SIGHTING_EXTRAS)
        if unknown:
            raise ValueError(f"sightings cannot also read {sorted(unknown)}")
        paths = ["name", "config.instanceUuid", "runtime.powerState", "customValue"]
        paths += [_EXTRA_PATHS[k] for k in SIGHTING_EXTRAS if k in also]
        lookup = self.lookup
        if morefs is not None:
            if not morefs:
                return VmReading()
            read = lookup.read([lookup.vm(m) for m in morefs], paths)
        else:
            read = lookup.read_container(
                vim.VirtualMachine, [*paths, "config.template"], root=lookup.datacenter()
            )
        seen = {}
        for obj, props in read.rows:
            if props.get("config.template"):
                continue
            host = props.get("runtime.host")
            seen[str(obj._moId)] = VmSighting(
                moref=str(obj._moId),
                instance_uuid=str(props.get("config.instanceUuid") or ""),
                name=str(props.get("name", "")),
                powered_on=props.get("runtime.powerState")
                == vim.VirtualMachinePowerState.poweredOn,
                attributes=self.attributes.values(props.get("customValue", [])),
                committed_bytes=int(props.get("summary.storage.committed") or 0),
                host=str(host._moId) if host is not None else "",
                notes=str(props.get("config.annotation") or ""),
            )
        return VmReading(seen, read.unseen)

    def instance_uuids(self, morefs: Sequence[str]) -> VmReading[str]:
        """Each VM's instance UUID: a narrow read, in one call."""
        if not morefs:
            return VmReading()
        read = self.lookup.read([self.lookup.vm(m) for m in morefs], ["config.instanceUuid"])
        return VmReading(
            {str(obj._moId): str(p.get("config.instanceUuid") or "") for obj, p in read.rows},
            read.unseen,
        )

    def facts(self, moref: str, props: Mapping[str, Any]) -> VmFacts:
        """A VM's facts from its `VM_PROPERTIES`."""
        disks = [d for d in props.get("config.hardware.device", []) if is_disk(d)]
        linked = bool(disks) and all(getattr(d.backing, "parent", None) for d in disks)
        storage = props.get("summary.storage")
        attributes = self.attributes.values(props.get("customValue", []))
        host = props.get("runtime.host")
        return VmFacts(
            moref=moref,
            name=str(props.get("name", "")),
            instance_uuid=str(props.get("config.instanceUuid") or ""),
            powered_on=props.get("runtime.powerState") == vim.VirtualMachinePowerState.poweredOn,
            linked=linked,
            attributes=attributes,
            committed_bytes=int(storage.committed) if storage is not None else 0,
            unshared_bytes=int(storage.unshared or 0) if storage is not None else 0,
            host=str(host._moId) if host is not None else "",
            disk_modes=tuple(str(getattr(d.backing, "diskMode", "")) for d in disks),
            parent_moref=str(parent._moId) if (parent := props.get("parent")) is not None else "",
            notes=str(props.get("config.annotation") or ""),
            base_disks=tuple(
                str(getattr(d.backing.parent, "fileName", "") or "")
                for d in disks
                if getattr(d.backing, "parent", None)
            ),
            disk_files=tuple(f for d in disks for f in _chain_files(d.backing)),
        )

    # ----------------------------------------------------------------- parents
    def parent_report(self, parent: str, snapshot: str) -> ParentReport:
        vm = self.lookup.find_parent(parent)
        props = self.lookup.retrieve_one(
            vm,
            [
                "config.hardware.device",
                "summary.storage",
                "runtime.powerState",
                "snapshot",
                "config.hardware.memoryMB",
            ],
        )
        disks = tuple(
            DiskInfo(
                label=str(d.deviceInfo.label if d.deviceInfo else d.key),
                capacity_bytes=int(d.capacityInBytes or d.capacityInKB * 1024),
                thin=bool(getattr(d.backing, "thinProvisioned", False)),
                mode=str(getattr(d.backing, "diskMode", "persistent")),
                has_parent=getattr(d.backing, "parent", None) is not None,
            )
            for d in props.get("config.hardware.device", [])
            if is_disk(d)
        )
        storage = props.get("summary.storage")
        return ParentReport(
            name=parent,
            moref=str(vm._moId),
            powered_on=props.get("runtime.powerState") != "poweredOff",
            disks=disks,
            snapshots_named=count_snapshots(props.get("snapshot"), snapshot),
            used_bytes=int(storage.committed) if storage is not None else 0,
            memory_mb=int(props.get("config.hardware.memoryMB") or 0),
        )

    def parent_facts(self, parent: str, snapshot: str) -> ParentFacts:
        """A parent's sizes and state (one read; see parent_report for the details)."""
        report = self.parent_report(parent, snapshot)
        return ParentFacts(
            name=parent,
            provisioned_bytes=sum(d.capacity_bytes for d in report.disks),
            used_bytes=report.used_bytes,
            # Anything but powered off (on, suspended) counts as on: no snapshot then.
            powered_on=report.powered_on,
            snapshot=snapshot if report.snapshots_named else None,
            memory_mb=report.memory_mb,
        )

    # ----------------------------------------------------------------- storage and clusters
    def datastore_free_bytes(self, datastore: str) -> int:
        ds = self.lookup.find_path("datastore", "datastore", datastore)
        summary = self.lookup.retrieve_one(ds, ["summary"]).get("summary")
        return int(summary.freeSpace) if summary is not None else 0

    def cluster_hosts(self, resource_pool: str) -> tuple[Any, list[HostInfo]]:
        """The cluster behind a type's resource pool, and its hosts (morefs, names, usable):
        one read of the hosts' state (the pool's cluster is looked up once per connection)."""
        owner = self.lookup.pool_owner(resource_pool)
        if not isinstance(owner, vim.ClusterComputeResource):
            return owner, []
        rows = self.lookup.retrieve_related(
            owner,
            "host",
            vim.HostSystem,
            ["name", "runtime.connectionState", "runtime.inMaintenanceMode"],
        )
        hosts = [
            HostInfo(
                moref=str(obj._moId),
                name=str(props.get("name", "")),
                usable=props.get("runtime.connectionState") == "connected"
                and not props.get("runtime.inMaintenanceMode"),
            )
            for obj, props in rows
        ]
        return owner, sorted(hosts, key=lambda h: h.name)

    def drs_confinement(self, cluster: Any, prefix: str) -> tuple[list[str], list[str], bool]:
        """Read the bot's DRS groups and rule for one parent: (vm morefs, host morefs, rule?)."""
        config = self.lookup.retrieve_one(cluster, ["configurationEx"]).get("configurationEx")
        vms: list[str] = []
        hosts: list[str] = []
        for group in getattr(config, "group", None) or []:
            if group.name == f"{prefix}-vms":
                vms = [str(v._moId) for v in group.vm or []]
            elif group.name == f"{prefix}-hosts":
                hosts = [str(h._moId) for h in group.host or []]
        rule = any(r.name == f"{prefix}-must-run" for r in getattr(config, "rule", None) or [])
        return vms, hosts, rule


# --------------------------------------------------------------------- disks and snapshots
def _chain_files(backing: Any) -> Iterator[str]:
    """The files of a disk's backing chain: its own, then each parent's."""
    seen = 0
    while backing is not None and seen < 64:  # a chain is never that long; a loop never ends
        name = getattr(backing, "fileName", None)
        if name:
            yield str(name)
        backing = getattr(backing, "parent", None)
        seen += 1


def is_disk(device: Any) -> bool:
    return isinstance(device, vim.vm.device.VirtualDisk)


def _snapshot_trees(info: Any) -> Iterator[Any]:
    def walk(trees: Iterable[Any]) -> Iterator[Any]:
        for tree in trees or []:
            yield tree
            yield from walk(tree.childSnapshotList)

    if info is not None:
        yield from walk(info.rootSnapshotList)


def find_snapshot(info: Any, name: str) -> Any:
    """The newest snapshot with this name (a re-snapshotted parent's current base)."""
    named = [t for t in _snapshot_trees(info) if t.name == name]
    if not named:
        return None
    return max(named, key=lambda t: t.createTime).snapshot


def count_snapshots(info: Any, name: str) -> int:
    return sum(1 for tree in _snapshot_trees(info) if tree.name == name)
