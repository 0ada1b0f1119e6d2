"""Changing vCenter: base snapshots, linked clones (verified, then labelled), disk modes, guest
customization, power, destroy and DRS confinement. Every task is started and waited for
through `bot.adapters.vcenter.tasks`."""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial
from typing import Any

from pyVmomi import vim as _vim

from bot.adapters.vcenter.attributes import Attributes
from bot.adapters.vcenter.faults import fault_name
from bot.adapters.vcenter.inventory import VM_PROPERTIES, InventoryReads, find_snapshot, is_disk
from bot.adapters.vcenter.lookup import Lookup
from bot.adapters.vcenter.session import Session
from bot.adapters.vcenter.tasks import Tasks
from bot.domain.errors import (
    CannotSee,
    CloneUnread,
    LinkedCloneCheckFailed,
    NotFoundError,
    VCenterError,
    VCenterFault,
    VCenterUnreachable,
)
from bot.domain.vsphere import (
    CloneRequest,
    CustomizationOutcome,
    Destroyed,
    Visibility,
    VmFacts,
    VmSighting,
    VmTask,
)

# pyVmomi's dynamic vSphere types, as Any (see faults.py).
vim: Any = _vim

CUSTOMIZATION_EVENTS = [
    "CustomizationSucceeded",
    "CustomizationFailed",
    "CustomizationSysprepFailed",
    "CustomizationLinuxIdentityFailed",
    "CustomizationNetworkSetupFailed",
    "CustomizationUnknownFailure",
]


def _raise_failed(result: Any) -> Any:
    """A task's result, or its error raised."""
    if isinstance(result, BaseException):
        raise result
    return result


class Power:
    """Power on, off and reset; shut a parent down; destroy a recorded VM."""

    def __init__(self, session: Session, lookup: Lookup, inventory: InventoryReads, tasks: Tasks):
        self.session = session
        self.lookup = lookup
        self.inventory = inventory
        self.tasks = tasks

    def power(self, morefs: Sequence[str], action: str) -> list[VCenterError | None]:
        """Power on, off or reset VMs as one batch of tasks; per-VM errors, None where done."""
        method = {"on": "PowerOnVM_Task", "off": "PowerOffVM_Task", "reset": "ResetVM_Task"}[action]
        tasks = []
        for moref in morefs:
            vm = self.lookup.vm(moref)
            tasks.append(self.tasks.start(f"power {action} {moref}", getattr(vm, method)))
        out: list[VCenterError | None] = []
        for result in self.tasks.wait(tasks):
            if isinstance(result, VCenterFault) and result.fault == "InvalidPowerState":
                if action == "reset":  # only a running VM can be reset: nothing was done
                    out.append(
                        VCenterFault(
                            "it is powered off, so it was not reset; use power on.",
                            "InvalidPowerState",
                        )
                    )
                else:
                    out.append(None)  # already in the asked-for state
            elif isinstance(result, VCenterError):
                out.append(result)
            else:
                out.append(None)
        return out

    def vm_tasks(self, morefs: Sequence[str], task: VmTask) -> list[VCenterError | None]:
        """Start `task` on each VM as one batch of tasks; per-VM errors, None where done."""
        arguments = dict(task.arguments)
        started = []
        for moref in morefs:
            method = getattr(self.lookup.vm(moref), task.method)
            started.append(self.tasks.start(f"{task.method} {moref}", partial(method, **arguments)))
        return [r if isinstance(r, VCenterError) else None for r in self.tasks.wait(started)]

    def power_off(self, morefs: Sequence[str]) -> list[VCenterError | None]:
        """Power off VMs that are on (hard power-off: training clones are non-persistent)."""
        tasks = []
        index: list[int] = []
        for i, moref in enumerate(morefs):
            vm = self.lookup.vm(moref)
            tasks.append(self.tasks.start(f"powering off {moref}", vm.PowerOffVM_Task))
            index.append(i)
        out: list[VCenterError | None] = [None] * len(morefs)
        for i, result in zip(index, self.tasks.wait(tasks), strict=True):
            if isinstance(result, VCenterFault) and result.fault == "InvalidPowerState":
                continue  # already off
            if isinstance(result, VCenterError):
                out[i] = result
        return out

    def shut_down(self, parent: str, timeout_s: float = 300.0) -> None:
        """Shut a parent down: a clean guest shutdown when VMware Tools runs, else power off."""
        vm = self.lookup.find_parent(parent)
        props = self.lookup.retrieve_one(vm, ["runtime.powerState", "guest.toolsRunningStatus"])
        if props.get("runtime.powerState") == "poweredOff":
            return
        if props.get("guest.toolsRunningStatus") == "guestToolsRunning":
            self.session.call(f"shutting down {parent}", vm.ShutdownGuest)
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                state = self.lookup.retrieve_one(vm, ["runtime.powerState"]).get(
                    "runtime.powerState"
                )
                if state == "poweredOff":
                    return
                time.sleep(2)
            raise VCenterFault(
                f"{parent} did not shut down within {timeout_s:.0f} s; shut it down yourself.",
                "Timedout",
            )
        task = self.session.call(f"powering off {parent}", vm.PowerOffVM_Task)
        _raise_failed(self.tasks.wait([task])[0])

    def destroy(
        self, moref: str, *, expected_uuid: str, facts: VmFacts | VmSighting | None = None
    ) -> Destroyed:
        """Destroy one VM after checking it is the one recorded.

        `facts` read moments ago in a batch (strip back verifies every clone in one call, a
        sighting with its storage) spare a read; a moref is never reused for another VM, so the
        check still holds. Destroy_Task on a linked clone removes only the clone's own delta
        disk; the parent's base disk stays (vCenter never deletes a disk another VM's chain
        still uses).

        A VM vCenter would not show (a fault in the read) is not touched: CannotSee. A VM that
        is gone is one outcome however vCenter says so: left out of the read, a
        ManagedObjectNotFound fault of a call (the VM vanished between the read and the call,
        e.g. another process's Destroy_Task finished) or of a task: `Destroyed(gone=True)`.
        """
        if facts is None:
            reading = self.inventory.vm_facts([moref])
            seen = reading.visibility(moref)
            if seen is Visibility.GONE:
                return Destroyed(0, gone=True)
            if seen is Visibility.UNSEEN:
                raise CannotSee(reading.unseen[moref].cannot_see(moref) + "; not touched.")
            facts = reading.seen[moref]
        if facts.moref != moref or facts.instance_uuid != expected_uuid:
            raise VCenterError(
                f"{moref} is no longer the recorded VM (instance UUID changed); not touched."
            )
        try:
            self._power_off_and_destroy(moref, facts)
        except VCenterFault as exc:
            if exc.fault == "ManagedObjectNotFound":
                return Destroyed(0, gone=True)
            raise
        return Destroyed(facts.committed_bytes, gone=False)

    def _power_off_and_destroy(self, moref: str, facts: VmFacts | VmSighting) -> None:
        """Raises a `VCenterFault` (call or task fault alike) when anything fails."""
        if facts.powered_on:
            err = self.power_off([moref])[0]
            if err is not None:
                raise err
        vm = self.lookup.vm(moref)
        result = self.tasks.wait([self.tasks.start(f"destroying {facts.name}", vm.Destroy_Task)])[0]
        if isinstance(result, VCenterFault) and result.fault == "InvalidPowerState":
            # Powered on since it was read: power it off, then destroy.
            err = self.power_off([moref])[0]
            if err is not None:
                raise err
            task = self.tasks.start(f"destroying {facts.name}", vm.Destroy_Task)
            result = self.tasks.wait([task])[0]
        _raise_failed(result)


class Customization:
    """Guest customization: the named specs (cached), and waiting for the outcome events."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._lock = threading.Lock()
        self._specs: dict[str, Any] = {}

    def spec_for(self, spec_name: str, computer_name: str) -> Any:
        """The named customization spec, with the clone's name as its computer name."""
        with self._lock:
            cached = self._specs.get(spec_name)
        if cached is None:
            manager = self.session.content.customizationSpecManager
            try:
                item = self.session.call(
                    f"reading customization spec {spec_name}",
                    lambda: manager.GetCustomizationSpec(name=spec_name),
                )
            except VCenterFault as exc:
                if exc.fault != "NotFound":
                    raise
                raise NotFoundError(
                    f'Customization spec "{spec_name}" does not exist in vCenter; create it under '
                    "Policies and Profiles, or fix the type's customization_spec."
                ) from None
            cached = item.spec
            with self._lock:
                self._specs[spec_name] = cached
        spec = copy.deepcopy(cached)
        fixed = vim.vm.customization.FixedName(name=computer_name)
        identity = spec.identity
        if isinstance(identity, vim.vm.customization.Sysprep):
            identity.userData.computerName = fixed
        elif isinstance(identity, vim.vm.customization.LinuxPrep):
            identity.hostName = fixed
        return spec

    def spec_exists(self, spec_name: str) -> bool:
        manager = self.session.content.customizationSpecManager
        return bool(
            self.session.call(
                f"looking up customization spec {spec_name}",
                lambda: manager.DoesCustomizationSpecExist(name=spec_name),
            )
        )

    def outcomes(self, morefs: Collection[str], since: datetime) -> dict[str, CustomizationOutcome]:
        """The customization outcomes (CustomizationSucceeded/Failed events since `since`) of
        those of these VMs that have one by now: one QueryEvents call."""
        events = self.session.content.eventManager
        # vCenter matches exact event type names, so every failure subtype is listed; at most
        # 1000 events per query (vCenter's cap), newest first, order not relied on.
        spec = vim.event.EventFilterSpec(
            eventTypeId=CUSTOMIZATION_EVENTS,
            time=vim.event.EventFilterSpec.ByTime(beginTime=since),
            maxCount=1000,
        )
        found = self.session.call("reading customization events", lambda: events.QueryEvents(spec))
        wanted = set(morefs)
        out: dict[str, CustomizationOutcome] = {}
        for event in found or []:
            vm = getattr(getattr(event, "vm", None), "vm", None)
            moref = str(vm._moId) if vm is not None else ""
            if moref not in wanted or moref in out:
                continue
            ok = fault_name(event) == "CustomizationSucceeded"
            reason = getattr(event, "reason", None) or getattr(event, "fullFormattedMessage", "")
            out[moref] = CustomizationOutcome(moref, ok, "" if ok else str(reason or ""))
        return out

    def wait(
        self, morefs: Sequence[str], since: datetime, timeout_s: float, poll_s: float = 2.0
    ) -> dict[str, CustomizationOutcome]:
        """Wait for CustomizationSucceeded/Failed events of these VMs (one query per poll)."""
        pending = set(morefs)
        out: dict[str, CustomizationOutcome] = {}
        deadline = time.monotonic() + timeout_s
        while pending:
            found = self.outcomes(pending, since)
            out.update(found)
            pending -= found.keys()
            if not pending or time.monotonic() >= deadline:
                break
            time.sleep(poll_s)
        for moref in pending:
            out[moref] = CustomizationOutcome(
                moref, None, f"no customization result within {timeout_s:.0f} s"
            )
        return out


@dataclass(eq=False)
class Cloning:
    """Base snapshots, linked clones from them, and the steps that finish a clone."""

    session: Session
    lookup: Lookup
    inventory: InventoryReads
    attributes: Attributes
    tasks: Tasks
    power: Power
    customization: Customization
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _snapshots: dict[tuple[str, str], str] = field(default_factory=dict, init=False, repr=False)

    def ensure_base_snapshot(self, parent: str, snapshot: str, *, create: bool = True) -> str:
        """Return the base snapshot's moref, creating it once while the parent is powered off.

        The bot never removes or reverts a base snapshot: clones depend on it.
        """
        vm = self.lookup.find_parent(parent)
        props = self.lookup.retrieve_one(vm, ["snapshot", "runtime.powerState"])
        snap = find_snapshot(props.get("snapshot"), snapshot)
        if snap is not None:
            return str(snap._moId)
        if props.get("runtime.powerState") != vim.VirtualMachinePowerState.poweredOff:
            raise VCenterError(
                f'Parent "{parent}" is powered on and has no base snapshot "{snapshot}". Shut it '
                "down cleanly, then deploy again: the bot snapshots parents only while powered off."
            )
        if not create:
            raise NotFoundError(f'Parent "{parent}" has no base snapshot "{snapshot}".')
        task = self.session.call(
            f"snapshotting {parent}",
            lambda: vm.CreateSnapshot_Task(
                name=snapshot,
                description="Base disk for linked clones, made by clones. Do not remove or revert "
                "while clones exist.",
                memory=False,
                quiesce=False,
            ),
        )
        result = _raise_failed(self.tasks.wait([task])[0])
        return str(result._moId)

    def forget_snapshots(self) -> None:
        """Look base snapshots up afresh (a parent may have been re-snapshotted)."""
        with self._lock:
            self._snapshots.clear()

    def clone(self, req: CloneRequest, *, finish: bool = True) -> VmFacts:
        """Create one linked clone from the base snapshot, verify it, label it, return its facts.

        With `finish=False` the clone is verified but not labelled: the caller runs
        `finish_clone` itself (the service does so after freeing its clone slot).
        Raises VCenterFault (with `.transient`) when the clone task fails; nothing is left
        behind by a failed task. Raises CloneUnread (with the VM's moref) when the task made
        the VM but reading it back failed. Raises LinkedCloneCheckFailed (after destroying the
        copy) when vCenter produced a full copy instead of a linked clone.
        """
        vm = self.lookup.find_parent(req.parent)
        spec, folder = self._clone_spec(req)
        task = self.tasks.start(
            f"cloning {req.name}",
            lambda: vm.CloneVM_Task(folder=folder, name=req.name, spec=spec),
        )
        result = self.tasks.wait([task], read=VM_PROPERTIES)[0]
        if isinstance(result, VCenterFault) and result.fault == "ManagedObjectNotFound":
            # The snapshot (or parent) went away: look it up afresh next time.
            with self._lock:
                self._snapshots.pop((req.parent, req.snapshot), None)
            self.lookup.forget_parent(req.parent)
        if isinstance(result, VCenterFault):
            # The task's fault names the task ("task-590"); say which clone, in plain words.
            raise VCenterFault(
                f"{req.name} could not be cloned: {result.reason}",
                result.fault,
                result.transient,
                reason=result.reason,
            ) from None
        moref, props = _raise_failed(result)
        if isinstance(props, VCenterUnreachable):
            raise props  # the caller recorded the instance UUID it asked for: resume finds it
        if isinstance(props, VCenterError):
            raise CloneUnread(
                f"{req.name} was cloned ({moref}) but could not be read back: {props}",
                moref=moref,
            )
        facts = self.inventory.facts(moref, props) if props is not None else None
        if facts is None:
            raise VCenterFault(f"{req.name} vanished right after cloning.", "NotFound", True)
        if not facts.linked:
            raise self._full_copy(req, facts)
        return self.finish_clone(facts, req) if finish else facts

    def _clone_spec(self, req: CloneRequest) -> tuple[Any, Any]:
        """The CloneSpec of a linked clone from the base snapshot, and its folder."""
        key = (req.parent, req.snapshot)
        with self._lock:
            snap_moref = self._snapshots.get(key)
        if snap_moref is None:
            snap_moref = self.ensure_base_snapshot(req.parent, req.snapshot, create=False)
            with self._lock:
                self._snapshots[key] = snap_moref
        stub = self.session.stub()
        snap = vim.vm.Snapshot(snap_moref, stub)
        place = self.lookup.placement(req.folder, req.resource_pool, req.datastore)
        relocate = vim.vm.RelocateSpec(
            pool=place.pool,
            datastore=place.datastore,
            diskMoveType="createNewChildDiskBacking",
        )
        if req.host:
            relocate.host = vim.HostSystem(req.host, stub)
        spec = vim.vm.CloneSpec(
            location=relocate,
            snapshot=snap,
            powerOn=False,
            template=False,
            config=vim.vm.ConfigSpec(instanceUuid=req.instance_uuid, annotation=req.notes or None),
        )
        if req.customization_spec:
            spec.customization = self.customization.spec_for(req.customization_spec, req.name)
        return spec, place.folder

    def _full_copy(self, req: CloneRequest, facts: VmFacts) -> LinkedCloneCheckFailed:
        """A silent full copy wastes the space linked clones exist to save: remove it, and
        say why it may have happened."""
        size = facts.committed_bytes / 2**30
        try:
            self.power.destroy(facts.moref, expected_uuid=facts.instance_uuid, facts=facts)
            fate, removed = "It was removed.", True
        except VCenterError as exc:
            fate, removed = (
                f"It could not be removed ({exc}): delete VM {req.name} ({facts.moref}) by hand.",
                False,
            )
        return LinkedCloneCheckFailed(
            f"{req.name} came out as a full copy ({size:.2f} GB; its disk has no parent "
            f"backing) although linked cloning was asked for. {fate} Possible causes: parent "
            f'"{req.parent}" has no base snapshot "{req.snapshot}" (or it was replaced); a '
            "per-disk placement override in the clone spec; or an endpoint that ignores linked "
            "cloning and copies whatever diskMoveType says (VMware's vcsim simulator does).",
            moref=facts.moref,
            removed=removed,
        )

    def finish_clone(self, facts: VmFacts, req: CloneRequest) -> VmFacts:
        """The steps after CloneVM_Task, idempotent so an adopted clone can be finished too."""
        if req.disk_mode and any(m != req.disk_mode for m in facts.disk_modes):
            self.set_disk_mode(facts.moref, req.disk_mode)
            facts = replace(facts, disk_modes=tuple(req.disk_mode for _ in facts.disk_modes))
        # Only values the VM does not carry yet (an adopted clone may have some already).
        todo = {k: v for k, v in req.attributes.items() if facts.attributes.get(k) != v}
        if todo:
            self.attributes.set(facts.moref, todo)
        return replace(facts, attributes={**facts.attributes, **req.attributes})

    def set_disk_mode(self, moref: str, mode: str) -> None:
        """Set every disk of a clone to `mode` and check vCenter reports it back."""
        vm = self.lookup.vm(moref)
        props = self.lookup.retrieve_one(vm, ["config.hardware.device"])
        changes = []
        for disk in props.get("config.hardware.device", []):
            if not is_disk(disk) or disk.backing.diskMode == mode:
                continue
            disk.backing.diskMode = mode
            changes.append(
                vim.vm.device.VirtualDeviceSpec(
                    operation=vim.vm.device.VirtualDeviceSpec.Operation.edit, device=disk
                )
            )
        if changes:
            task = self.session.call(
                f"setting disk mode on {moref}",
                lambda: vm.ReconfigVM_Task(spec=vim.vm.ConfigSpec(deviceChange=changes)),
            )
            _raise_failed(self.tasks.wait([task])[0])
        after = self.lookup.retrieve_one(vm, ["config.hardware.device"])
        modes = {d.backing.diskMode for d in after.get("config.hardware.device", []) if is_disk(d)}
        if modes != {mode}:
            raise VCenterFault(
                f"{moref}: disk mode is {', '.join(sorted(modes))} after asking for {mode}.",
                "InvalidState",
            )


class Confinement:
    """DRS: keep one parent's clones on its host group."""

    def __init__(self, session: Session, inventory: InventoryReads, tasks: Tasks) -> None:
        self.session = session
        self.inventory = inventory
        self.tasks = tasks

    def ensure(
        self, cluster: Any, prefix: str, vm_morefs: Sequence[str], host_morefs: Sequence[str]
    ) -> None:
        """Keep one parent's clones on its host group: a VM group, a host group and a
        mandatory "must run on" rule, created or updated in one cluster reconfiguration."""
        vms, hosts, has_rule = self.inventory.drs_confinement(cluster, prefix)
        want_vms = sorted(set(vm_morefs))
        want_hosts = sorted(set(host_morefs))
        if sorted(vms) == want_vms and sorted(hosts) == want_hosts and has_rule:
            return
        # A group emptied by destroyed VMs still exists: edit it (adding it again is refused).
        lookup = self.inventory.lookup
        config = lookup.retrieve_one(cluster, ["configurationEx"]).get("configurationEx")
        groups = {g.name for g in getattr(config, "group", None) or []}
        stub = self.session.stub()
        spec = vim.cluster.ConfigSpecEx(
            groupSpec=[
                vim.cluster.GroupSpec(
                    operation="edit" if f"{prefix}-vms" in groups else "add",
                    info=vim.cluster.VmGroup(
                        name=f"{prefix}-vms",
                        vm=[vim.VirtualMachine(m, stub) for m in want_vms],
                    ),
                ),
                vim.cluster.GroupSpec(
                    operation="edit" if f"{prefix}-hosts" in groups else "add",
                    info=vim.cluster.HostGroup(
                        name=f"{prefix}-hosts",
                        host=[vim.HostSystem(h, stub) for h in want_hosts],
                    ),
                ),
            ],
        )
        if not has_rule:
            spec.rulesSpec = [
                vim.cluster.RuleSpec(
                    operation="add",
                    info=vim.cluster.VmHostRuleInfo(
                        name=f"{prefix}-must-run",
                        enabled=True,
                        mandatory=True,
                        vmGroupName=f"{prefix}-vms",
                        affineHostGroupName=f"{prefix}-hosts",
                    ),
                )
            ]
        task = self.session.call(
            f"confining {prefix} to its hosts",
            lambda: cluster.ReconfigureComputeResource_Task(spec=spec, modify=True),
        )
        _raise_failed(self.tasks.wait([task])[0])
