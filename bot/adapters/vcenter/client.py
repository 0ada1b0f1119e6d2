"""The vCenter adapter: the only module that imports pyVmomi.

It speaks the vSphere API for the service layer in the service layer's words: parents, base
snapshots, linked clones, custom attributes, power and storage figures. Faults come out as
`bot.domain.errors` exceptions; pyVmomi objects never leave this module except as opaque
morefs (strings such as ``vm-42``).
"""

from __future__ import annotations

import copy
import http.client
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial
from typing import Any, TypeVar
from urllib.parse import urlparse

from pyVim import connect as pyvim_connect
from pyVim.connect import SmartStubAdapter, VimSessionOrientedStub
from pyVmomi import SoapStubAdapter
from pyVmomi import vim as _vim
from pyVmomi import vmodl as _vmodl
from pyVmomi.VmomiSupport import GetServiceVersions

from bot.adapters.vcenter import tls
from bot.domain.errors import (
    ConfigError,
    LinkedCloneCheckFailed,
    NotFoundError,
    VCenterError,
    VCenterFault,
    VCenterUnreachable,
)
from bot.domain.models import ParentFacts
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
    VmFacts,
    VmSighting,
)
from bot.settings import VCenterSettings

log = logging.getLogger(__name__)
T = TypeVar("T")

# pyVmomi's generated stubs type every optional property as `X | None`; this module is the only
# importer and checks what it reads, so it treats the dynamic vSphere types as Any.
vim: Any = _vim
vmodl: Any = _vmodl


# Faults after which the same clone may succeed if tried again a little later.
TRANSIENT_FAULTS = frozenset(
    {
        "FileLocked",
        "TaskInProgress",
        "HostCommunication",
        "HostNotConnected",
        "HostNotReachable",
        "Timedout",
        "ResourceInUse",
        "ConcurrentAccess",
        "RequestCanceled",
        "SystemError",
        "TooManyConcurrentNfcs",
    }
)

# vSphere faults in plain words, for the people who read them in Slack or a terminal.
FAULT_WORDS = {
    "InsufficientStorageSpace": "not enough free space on the datastore",
    "NoDiskSpace": "the datastore is full",
    "FileLocked": "a disk file is locked by another operation",
    "DuplicateName": "a VM with that name already exists",
    "TaskInProgress": "vCenter is busy with another task on the same VM",
    "HostCommunication": "vCenter lost contact with the host",
    "HostNotConnected": "the host is not connected to vCenter",
    "HostNotReachable": "the host cannot be reached",
    "Timedout": "the operation timed out",
    "InvalidArgument": "vCenter refused a setting of the request",
    "InvalidState": "the VM is not in a state that allows this",
    "ResourceInUse": "something it needs is in use",
    "SystemError": "vCenter reported an internal error",
    "ManagedObjectNotFound": "the object no longer exists in vCenter",
    "NoPermission": "the vCenter user lacks a permission for this",
    "NotAuthenticated": "the vCenter session is no longer valid",
    "InvalidLogin": "vCenter refused the user name or password",
    "ConcurrentAccess": "another client changed the same object at the same time",
    "RequestCanceled": "the request was cancelled",
    "TooManyConcurrentNfcs": "the host has too many disk copies in progress",
    "CustomizationFault": "vCenter refused the guest customization",
}

CUSTOMIZATION_EVENTS = [
    "CustomizationSucceeded",
    "CustomizationFailed",
    "CustomizationSysprepFailed",
    "CustomizationLinuxIdentityFailed",
    "CustomizationNetworkSetupFailed",
    "CustomizationUnknownFailure",
]

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


@dataclass
class _Placement:
    folder: Any
    pool: Any
    datastore: Any


class VCenter:
    """A shared, thread-safe connection to one vCenter.

    One SOAP session is shared by all threads; each thread gets its own PropertyCollector for
    waiting on tasks (a collector's WaitForUpdatesEx is not meant to be shared between waiters).
    An expired session is renewed by pyVmomi's session-oriented stub (it logs in again on
    NotAuthenticated and repeats the call).
    """

    def __init__(self, settings: VCenterSettings) -> None:
        self.settings = settings
        self._lock = threading.RLock()
        self._si: Any | None = None
        self._content: Any | None = None
        self._snapshots: dict[tuple[str, str], str] = {}
        self._custom_specs: dict[str, Any] = {}
        self._task_waiter: _TaskWaiter | None = None
        self._starting = 0  # task-starting calls (CloneVM_Task, Destroy_Task, ...) in flight
        self._field_keys: dict[str, int] = {}
        self._foreign_keys: set[int] = set()  # custom field keys that are not VM attributes
        self._parents: dict[str, vim.VirtualMachine] = {}
        self._placements: dict[tuple[str, str, str], _Placement] = {}
        self._datacenter: Any | None = None
        self._datacenter_name = ""
        self._trust = ""  # how the TLS certificate is trusted, for `clones check`
        self._session_user = ""  # as vCenter names the logged-in user (privilege queries)

    # ----------------------------------------------------------------- connection
    def connect(self) -> None:
        """Open the shared session: TLS as configured (bot.adapters.vcenter.tls), then
        SessionManager.Login.

        Login is called directly (pyVmomi's own login helper first reads currentSession, which
        a vCenter, or VMware's simulator, answers with NotAuthenticated before a login). The
        session-oriented stub logs in again the same way whenever a call gets NotAuthenticated
        (an expired session) and repeats the call.
        """
        with self._lock:
            if self._si is not None:
                return
            s = self.settings
            if not s.user or not s.password:
                raise ConfigError(
                    f"vCenter credentials are missing: set CLONES_VCENTER_USER (or [vcenter] user) "
                    f"and {s.password_env} in the environment."
                )
            url = urlparse(s.url)
            host = url.hostname or ""
            secure = url.scheme == "https"
            port = url.port or (443 if secure else 80)
            where = f"{host}:{port}"
            try:
                context = self._tls_context(host, port) if secure else None
                stub = _stub_adapter(host, port, url.path or "/sdk", secure, context, s.timeout_s)
                login = _login_method(s.user, s.password)
                session = VimSessionOrientedStub(stub, login, retryDelay=0.5, retryCount=3)
                si = vim.ServiceInstance("ServiceInstance", session)
                # The first call logs in: bad credentials fail here, clearly.
                content = si.RetrieveContent()
            except (VCenterError, ConfigError):
                raise
            except vim.fault.InvalidLogin:
                raise VCenterError(
                    f"vCenter at {where} refused the login for user {s.user!r}: check "
                    f"CLONES_VCENTER_USER (or [vcenter] user, e.g. svc@vsphere.local) and "
                    f"{s.password_env}."
                ) from None
            except ssl.SSLError as exc:
                raise VCenterUnreachable(self._tls_reason(exc, where)) from None
            except (OSError, http.client.HTTPException) as exc:
                raise VCenterUnreachable(
                    f"vCenter at {s.url} is unreachable ({_short(exc)}). Check [vcenter] url and "
                    "the network; for the lab, run `clones lab up`."
                ) from None
            except Exception as exc:  # SmartStubAdapter raises bare Exception for non-vSphere
                if isinstance(exc, vmodl.MethodFault):
                    raise _fault_error(exc, f"logging in to {where}") from None
                raise VCenterUnreachable(
                    f"{s.url} does not answer as a vCenter ({_short(exc)}). Check [vcenter] url "
                    "(https://host:port/sdk)."
                ) from None
            self._si = si
            # Every read of si.content is a round trip; the content's morefs never change.
            self._content = content

    def _tls_context(self, host: str, port: int) -> ssl.SSLContext:
        s = self.settings
        try:
            context = tls.context_for(
                host=host,
                port=port,
                insecure=s.insecure,
                ca_file=s.ca_file,
                thumbprint=s.thumbprint,
                timeout=s.timeout_s,
            )
        except ValueError as exc:  # a ca_file that is not (or no longer) PEM
            raise ConfigError(f"[vcenter] {exc}.") from None
        if s.insecure:
            self._trust = "not verified (insecure = true)"
        elif s.thumbprint:
            self._trust = f"pinned certificate {s.thumbprint}"
        elif s.ca_file:
            self._trust = f"verified against ca_file {s.ca_file}"
        else:
            self._trust = "verified against the system's CA certificates"
        return context

    def _tls_reason(self, exc: ssl.SSLError, where: str) -> str:
        return tls.explain(
            exc, where=where, pinned=bool(self.settings.thumbprint), ca_file=self.settings.ca_file
        )

    def endpoint(self) -> Endpoint:
        """Who and what this connection talks to (connects first)."""
        content = self.content
        about = self.call("reading vCenter's version", lambda: content.about)
        session = self.call("reading the session", lambda: content.sessionManager.currentSession)
        url = urlparse(self.settings.url)
        return Endpoint(
            url=self.settings.url,
            product=str(getattr(about, "fullName", "") or ""),
            api_version=str(getattr(about, "apiVersion", "") or ""),
            user=str(getattr(session, "userName", "") or self.settings.user),
            trust=self._trust if url.scheme == "https" else "plain http (not encrypted)",
        )

    def close(self) -> None:
        with self._lock:
            si, self._si = self._si, None
            waiter, self._task_waiter = self._task_waiter, None
            self._content = None
            self._snapshots.clear()
            self._parents.clear()
            self._placements.clear()
            self._datacenter = None
        if waiter is not None:
            waiter.stop()
        if si is None:
            return
        with _quiet():
            si.content.sessionManager.Logout()

    def __enter__(self) -> VCenter:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def content(self) -> Any:
        self.connect()
        assert self._content is not None
        return self._content

    def call(self, what: str, fn: Callable[[], T]) -> T:
        """Run one vSphere call, turning pyVmomi and socket errors into `bot.domain.errors`."""
        try:
            return fn()
        except vmodl.MethodFault as exc:
            raise _fault_error(exc, what) from None
        except ssl.SSLError as exc:  # the certificate changed under a running connection
            url = urlparse(self.settings.url)
            where = f"{url.hostname}:{url.port or 443}"
            raise VCenterUnreachable(self._tls_reason(exc, where)) from None
        except (OSError, http.client.HTTPException) as exc:
            raise VCenterUnreachable(
                f"Lost contact with vCenter while {what} ({_short(exc)}). The work done so far "
                "is recorded; run the command again to resume once vCenter answers."
            ) from None

    # ----------------------------------------------------------------- inventory
    def datacenter(self) -> Any:
        with self._lock:
            if self._datacenter is not None:
                return self._datacenter
        wanted = self.settings.datacenter
        dcs = [
            e for e in self.call("listing datacenters", lambda: self.content.rootFolder.childEntity)
        ]
        dcs = [d for d in dcs if isinstance(d, vim.Datacenter)]
        if wanted:
            found = [d for d in dcs if d.name == wanted]
            if not found:
                names = ", ".join(d.name for d in dcs) or "none"
                raise NotFoundError(
                    f'Datacenter "{wanted}" not found in vCenter (found: {names}); '
                    "fix [vcenter] datacenter."
                )
            dc = found[0]
        elif len(dcs) == 1:
            dc = dcs[0]
        else:
            names = ", ".join(d.name for d in dcs) or "none"
            raise ConfigError(
                f"vCenter has {len(dcs)} datacenters ({names}); name one in [vcenter] datacenter."
            )
        name = self.call("reading the datacenter", lambda: dc.name)
        with self._lock:
            self._datacenter = dc
            self._datacenter_name = name
        return dc

    def datacenter_name(self) -> str:
        self.datacenter()
        return self._datacenter_name

    def _find_path(self, kind: str, root: str, path: str) -> Any:
        self.datacenter()
        dc_name = self._datacenter_name
        full = f"{dc_name}/{root}/{path.strip('/')}"
        index = self.content.searchIndex
        obj = self.call(f"looking up {kind} {path}", lambda: index.FindByInventoryPath(full))
        if obj is None:
            raise NotFoundError(
                f'{kind.capitalize()} "{path}" not found in datacenter {dc_name}; check the '
                "type's configuration."
            )
        return obj

    def placement(self, folder: str, resource_pool: str, datastore: str) -> _Placement:
        key = (folder, resource_pool, datastore)
        with self._lock:
            cached = self._placements.get(key)
        if cached is not None:
            return cached
        folder_obj = self._find_path("folder", "vm", folder)
        if not isinstance(folder_obj, vim.Folder):
            raise NotFoundError(f'"{folder}" is not a VM folder; check the type\'s folder.')
        pool_obj = self._find_path("resource pool", "host", resource_pool)
        if isinstance(pool_obj, vim.ComputeResource):
            pool_obj = pool_obj.resourcePool
        if not isinstance(pool_obj, vim.ResourcePool):
            raise NotFoundError(
                f'"{resource_pool}" is not a cluster or resource pool; check the type\'s '
                "resource_pool."
            )
        ds_obj = self._find_path("datastore", "datastore", datastore)
        result = _Placement(folder_obj, pool_obj, ds_obj)
        with self._lock:
            self._placements[key] = result
        return result

    def find_parent(self, parent: str) -> Any:
        """Find a parent by inventory path ("Parents/Capture") or by a name that is unique."""
        with self._lock:
            cached = self._parents.get(parent)
        if cached is not None:
            return cached
        if "/" in parent:
            vm = self._find_path("parent VM", "vm", parent)
            if not isinstance(vm, vim.VirtualMachine):
                raise NotFoundError(f'"{parent}" is not a VM; check the type\'s parent.')
        else:
            matches = [v for v in self._vms_named(parent)]
            if not matches:
                raise NotFoundError(
                    f'Parent VM "{parent}" not found in vCenter; check the type\'s parent '
                    "(a VM name or a path such as Parents/Capture)."
                )
            if len(matches) > 1:
                raise ConfigError(
                    f'{len(matches)} VMs are named "{parent}"; give the type\'s parent as a path '
                    "(e.g. Parents/Capture) so the bot clones the right one."
                )
            vm = matches[0]
        with self._lock:
            self._parents[parent] = vm
        return vm

    def _vms_named(self, name: str) -> list[Any]:
        rows = self._retrieve_container(vim.VirtualMachine, ["name"], root=self.datacenter())
        return [obj for obj, props in rows if props.get("name") == name]

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

    def datastore_free_bytes(self, datastore: str) -> int:
        ds = self._find_path("datastore", "datastore", datastore)
        summary = self._retrieve_one(ds, ["summary"]).get("summary")
        return int(summary.freeSpace) if summary is not None else 0

    # ----------------------------------------------------------------- snapshots
    def ensure_base_snapshot(self, parent: str, snapshot: str, *, create: bool = True) -> str:
        """Return the base snapshot's moref, creating it once while the parent is powered off.

        The bot never removes or reverts a base snapshot: clones depend on it.
        """
        vm = self.find_parent(parent)
        props = self._retrieve_one(vm, ["snapshot", "runtime.powerState"])
        snap = _find_snapshot(props.get("snapshot"), snapshot)
        if snap is not None:
            return str(snap._moId)
        if props.get("runtime.powerState") != vim.VirtualMachinePowerState.poweredOff:
            raise VCenterError(
                f'Parent "{parent}" is powered on and has no base snapshot "{snapshot}". Shut it '
                "down cleanly, then deploy again: the bot snapshots parents only while powered off."
            )
        if not create:
            raise NotFoundError(f'Parent "{parent}" has no base snapshot "{snapshot}".')
        task = self.call(
            f"snapshotting {parent}",
            lambda: vm.CreateSnapshot_Task(
                name=snapshot,
                description="Base disk for linked clones, made by clones. Do not remove or revert "
                "while clones exist.",
                memory=False,
                quiesce=False,
            ),
        )
        result = self.wait_for_tasks([task])[0]
        if isinstance(result, BaseException):
            raise result
        return str(result._moId)

    def forget_snapshots(self) -> None:
        """Look base snapshots up afresh (a parent may have been re-snapshotted)."""
        with self._lock:
            self._snapshots.clear()

    # ----------------------------------------------------------------- custom attributes
    def ensure_attribute_definitions(self, names: Iterable[str] = CLONE_ATTRIBUTES) -> None:
        cfm = self.content.customFieldsManager
        with self._lock:
            missing = [n for n in names if n not in self._field_keys]
            if not missing:
                return
            existing = {
                f.name: f.key
                for f in self.call("reading custom attributes", lambda: cfm.field or [])
                if f.managedObjectType in (None, vim.VirtualMachine)
            }
            for name in missing:
                if name not in existing:
                    try:
                        fd = self.call(
                            f"defining custom attribute {name}",
                            lambda n=name: cfm.AddCustomFieldDef(  # type: ignore[misc]
                                name=n, moType=vim.VirtualMachine
                            ),
                        )
                        existing[name] = fd.key
                    except VCenterFault as exc:
                        if exc.fault != "DuplicateName":
                            raise
                        refreshed = {f.name: f.key for f in cfm.field or []}
                        existing[name] = refreshed[name]
            self._field_keys.update({n: existing[n] for n in names})

    def _load_attribute_definitions(self) -> None:
        """Learn the keys of every VM custom attribute defined in vCenter (none are created)."""
        cfm = self.content.customFieldsManager
        fields = self.call("reading custom attributes", lambda: cfm.field or [])
        with self._lock:
            for f in fields:
                if f.managedObjectType in (None, vim.VirtualMachine):
                    self._field_keys.setdefault(f.name, f.key)

    def set_attributes(self, moref: str, values: Mapping[str, str]) -> None:
        self.ensure_attribute_definitions(values.keys())
        cfm = self.content.customFieldsManager
        vm = self._vm(moref)
        for name, value in values.items():
            key = self._field_keys[name]
            self.call(
                f"setting {name} on {moref}",
                lambda k=key, v=value: cfm.SetField(entity=vm, key=k, value=v),  # type: ignore[misc]
            )

    # ----------------------------------------------------------------- cloning
    def clone(self, req: CloneRequest, *, finish: bool = True) -> VmFacts:
        """Create one linked clone from the base snapshot, verify it, label it, return its facts.

        With `finish=False` the clone is verified but not labelled: the caller runs
        `finish_clone` itself (the service does so after freeing its clone slot).
        Raises VCenterFault (with `.transient`) when the clone task fails; nothing is left
        behind by a failed task. Raises LinkedCloneCheckFailed (after destroying the copy) when
        vCenter produced a full copy instead of a linked clone.
        """
        vm = self.find_parent(req.parent)
        key = (req.parent, req.snapshot)
        with self._lock:
            snap_moref = self._snapshots.get(key)
        if snap_moref is None:
            snap_moref = self.ensure_base_snapshot(req.parent, req.snapshot, create=False)
            with self._lock:
                self._snapshots[key] = snap_moref
        snap = vim.vm.Snapshot(snap_moref, self._stub())
        place = self.placement(req.folder, req.resource_pool, req.datastore)
        relocate = vim.vm.RelocateSpec(
            pool=place.pool,
            datastore=place.datastore,
            diskMoveType="createNewChildDiskBacking",
        )
        if req.host:
            relocate.host = vim.HostSystem(req.host, self._stub())
        spec = vim.vm.CloneSpec(
            location=relocate,
            snapshot=snap,
            powerOn=False,
            template=False,
            config=vim.vm.ConfigSpec(instanceUuid=req.instance_uuid, annotation=req.notes or None),
        )
        if req.customization_spec:
            spec.customization = self._customization(req.customization_spec, req.name)
        task = self._task(
            f"cloning {req.name}",
            lambda: vm.CloneVM_Task(folder=place.folder, name=req.name, spec=spec),
        )
        result = self.wait_for_tasks([task], read=VM_PROPERTIES)[0]
        if isinstance(result, VCenterFault) and result.fault == "ManagedObjectNotFound":
            with self._lock:  # the snapshot (or parent) went away: look it up afresh next time
                self._snapshots.pop(key, None)
                self._parents.pop(req.parent, None)
        if isinstance(result, VCenterFault):
            # The task's fault names the task ("task-590"); say which clone, in plain words.
            raise VCenterFault(
                f"{req.name} could not be cloned: {result.reason}",
                result.fault,
                result.transient,
                reason=result.reason,
            ) from None
        if isinstance(result, BaseException):
            raise result
        moref, props = result
        facts = self._facts(moref, props) if props is not None else None
        if facts is None:
            raise VCenterFault(f"{req.name} vanished right after cloning.", "NotFound", True)
        if not facts.linked:
            raise self._full_copy(req, facts)
        return self.finish_clone(facts, req) if finish else facts

    def _full_copy(self, req: CloneRequest, facts: VmFacts) -> LinkedCloneCheckFailed:
        """A silent full copy wastes the space linked clones exist to save: remove it, and
        say why it may have happened."""
        size = facts.committed_bytes / 2**30
        try:
            self.destroy(facts.moref, expected_uuid=facts.instance_uuid, facts=facts)
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
            self.set_attributes(facts.moref, todo)
        return replace(facts, attributes={**facts.attributes, **req.attributes})

    def _customization(self, spec_name: str, computer_name: str) -> Any:
        """The named customization spec, with the clone's name as its computer name."""
        with self._lock:
            cached = self._custom_specs.get(spec_name)
        if cached is None:
            manager = self.content.customizationSpecManager
            try:
                item = self.call(
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
                self._custom_specs[spec_name] = cached
        spec = copy.deepcopy(cached)
        fixed = vim.vm.customization.FixedName(name=computer_name)
        identity = spec.identity
        if isinstance(identity, vim.vm.customization.Sysprep):
            identity.userData.computerName = fixed
        elif isinstance(identity, vim.vm.customization.LinuxPrep):
            identity.hostName = fixed
        return spec

    def customization_spec_exists(self, spec_name: str) -> bool:
        manager = self.content.customizationSpecManager
        return bool(
            self.call(
                f"looking up customization spec {spec_name}",
                lambda: manager.DoesCustomizationSpecExist(name=spec_name),
            )
        )

    def set_disk_mode(self, moref: str, mode: str) -> None:
        """Set every disk of a clone to `mode` and check vCenter reports it back."""
        vm = self._vm(moref)
        props = self._retrieve_one(vm, ["config.hardware.device"])
        changes = []
        for disk in props.get("config.hardware.device", []):
            if not _is_disk(disk) or disk.backing.diskMode == mode:
                continue
            disk.backing.diskMode = mode
            changes.append(
                vim.vm.device.VirtualDeviceSpec(
                    operation=vim.vm.device.VirtualDeviceSpec.Operation.edit, device=disk
                )
            )
        if changes:
            task = self.call(
                f"setting disk mode on {moref}",
                lambda: vm.ReconfigVM_Task(spec=vim.vm.ConfigSpec(deviceChange=changes)),
            )
            result = self.wait_for_tasks([task])[0]
            if isinstance(result, BaseException):
                raise result
        after = self._retrieve_one(vm, ["config.hardware.device"])
        modes = {d.backing.diskMode for d in after.get("config.hardware.device", []) if _is_disk(d)}
        if modes != {mode}:
            raise VCenterFault(
                f"{moref}: disk mode is {', '.join(sorted(modes))} after asking for {mode}.",
                "InvalidState",
            )

    # ----------------------------------------------------------------- parents and placement
    def parent_report(self, parent: str, snapshot: str) -> ParentReport:
        vm = self.find_parent(parent)
        props = self._retrieve_one(
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
            if _is_disk(d)
        )
        storage = props.get("summary.storage")
        return ParentReport(
            name=parent,
            moref=str(vm._moId),
            powered_on=props.get("runtime.powerState") != "poweredOff",
            disks=disks,
            snapshots_named=_count_snapshots(props.get("snapshot"), snapshot),
            used_bytes=int(storage.committed) if storage is not None else 0,
            memory_mb=int(props.get("config.hardware.memoryMB") or 0),
        )

    def shut_down(self, parent: str, timeout_s: float = 300.0) -> None:
        """Shut a parent down: a clean guest shutdown when VMware Tools runs, else power off."""
        vm = self.find_parent(parent)
        props = self._retrieve_one(vm, ["runtime.powerState", "guest.toolsRunningStatus"])
        if props.get("runtime.powerState") == "poweredOff":
            return
        if props.get("guest.toolsRunningStatus") == "guestToolsRunning":
            self.call(f"shutting down {parent}", vm.ShutdownGuest)
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                state = self._retrieve_one(vm, ["runtime.powerState"]).get("runtime.powerState")
                if state == "poweredOff":
                    return
                time.sleep(2)
            raise VCenterFault(
                f"{parent} did not shut down within {timeout_s:.0f} s; shut it down yourself.",
                "Timedout",
            )
        result = self.wait_for_tasks([self.call(f"powering off {parent}", vm.PowerOffVM_Task)])[0]
        if isinstance(result, BaseException):
            raise result

    def cluster_hosts(self, resource_pool: str) -> tuple[Any, list[HostInfo]]:
        """The cluster behind a type's resource pool, and its hosts (morefs, names, usable)."""
        pool = self.placement_pool(resource_pool)
        owner = self._retrieve_one(pool, ["owner"]).get("owner")
        if not isinstance(owner, vim.ClusterComputeResource):
            return owner, []
        rows = self._retrieve_container(
            vim.HostSystem,
            ["name", "runtime.connectionState", "runtime.inMaintenanceMode"],
            root=owner,
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

    def placement_pool(self, resource_pool: str) -> Any:
        pool_obj = self._find_path("resource pool", "host", resource_pool)
        if isinstance(pool_obj, vim.ComputeResource):
            pool_obj = self._retrieve_one(pool_obj, ["resourcePool"]).get("resourcePool")
        return pool_obj

    def drs_confinement(self, cluster: Any, prefix: str) -> tuple[list[str], list[str], bool]:
        """Read the bot's DRS groups and rule for one parent: (vm morefs, host morefs, rule?)."""
        config = self._retrieve_one(cluster, ["configurationEx"]).get("configurationEx")
        vms: list[str] = []
        hosts: list[str] = []
        for group in getattr(config, "group", None) or []:
            if group.name == f"{prefix}-vms":
                vms = [str(v._moId) for v in group.vm or []]
            elif group.name == f"{prefix}-hosts":
                hosts = [str(h._moId) for h in group.host or []]
        rule = any(r.name == f"{prefix}-must-run" for r in getattr(config, "rule", None) or [])
        return vms, hosts, rule

    def ensure_drs_confinement(
        self, cluster: Any, prefix: str, vm_morefs: Sequence[str], host_morefs: Sequence[str]
    ) -> None:
        """Keep one parent's clones on its host group: a VM group, a host group and a
        mandatory "must run on" rule, created or updated in one cluster reconfiguration."""
        vms, hosts, has_rule = self.drs_confinement(cluster, prefix)
        want_vms = sorted(set(vm_morefs))
        want_hosts = sorted(set(host_morefs))
        if sorted(vms) == want_vms and sorted(hosts) == want_hosts and has_rule:
            return
        # A group emptied by destroyed VMs still exists: edit it (adding it again is refused).
        config = self._retrieve_one(cluster, ["configurationEx"]).get("configurationEx")
        groups = {g.name for g in getattr(config, "group", None) or []}
        stub = self._stub()
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
        task = self.call(
            f"confining {prefix} to its hosts",
            lambda: cluster.ReconfigureComputeResource_Task(spec=spec, modify=True),
        )
        result = self.wait_for_tasks([task])[0]
        if isinstance(result, BaseException):
            raise result

    # ----------------------------------------------------------------- power and customization
    def power(self, morefs: Sequence[str], action: str) -> list[VCenterError | None]:
        """Power on, off or reset VMs as one batch of tasks; per-VM errors, None where done."""
        method = {"on": "PowerOnVM_Task", "off": "PowerOffVM_Task", "reset": "ResetVM_Task"}[action]
        tasks = []
        for moref in morefs:
            vm = self._vm(moref)
            tasks.append(self._task(f"power {action} {moref}", getattr(vm, method)))
        out: list[VCenterError | None] = []
        for result in self.wait_for_tasks(tasks):
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

    def wait_for_customization(
        self, morefs: Sequence[str], since: datetime, timeout_s: float, poll_s: float = 2.0
    ) -> dict[str, CustomizationOutcome]:
        """Wait for CustomizationSucceeded/Failed events of these VMs (one query per poll)."""
        pending = set(morefs)
        out: dict[str, CustomizationOutcome] = {}
        events = self.content.eventManager
        # vCenter matches exact event type names, so every failure subtype is listed; at most
        # 1000 events per query (vCenter's cap), newest first, order not relied on.
        spec = vim.event.EventFilterSpec(
            eventTypeId=CUSTOMIZATION_EVENTS,
            time=vim.event.EventFilterSpec.ByTime(beginTime=since),
            maxCount=1000,
        )
        deadline = time.monotonic() + timeout_s
        while pending:
            found = self.call("reading customization events", lambda: events.QueryEvents(spec))
            for event in found or []:
                vm = getattr(getattr(event, "vm", None), "vm", None)
                moref = str(vm._moId) if vm is not None else ""
                if moref not in pending:
                    continue
                ok = fault_name(event) == "CustomizationSucceeded"
                reason = getattr(event, "reason", None) or getattr(
                    event, "fullFormattedMessage", ""
                )
                out[moref] = CustomizationOutcome(moref, ok, "" if ok else str(reason or ""))
                pending.discard(moref)
            if not pending or time.monotonic() >= deadline:
                break
            time.sleep(poll_s)
        for moref in pending:
            out[moref] = CustomizationOutcome(
                moref, None, f"no customization result within {timeout_s:.0f} s"
            )
        return out

    # ----------------------------------------------------------------- reading VMs
    def vm_facts(self, morefs: Sequence[str]) -> list[VmFacts | None]:
        """Facts for each moref (None where the VM no longer exists), in one round trip."""
        if not morefs:
            return []
        objs = [self._vm(m) for m in morefs]
        rows = self._retrieve(objs, VM_PROPERTIES, report_missing=True)
        by_moref = {str(obj._moId): props for obj, props in rows}
        return [self._facts(m, by_moref[m]) if m in by_moref else None for m in morefs]

    def find_vms(self, folder: str | None = None) -> list[VmFacts]:
        """Every VM (templates excluded) under a folder path, or in the whole datacenter."""
        root = self._find_path("folder", "vm", folder) if folder else self.datacenter()
        rows = self._retrieve_container(
            vim.VirtualMachine, [*VM_PROPERTIES, "config.template"], root=root
        )
        return [
            self._facts(str(obj._moId), props)
            for obj, props in rows
            if not props.get("config.template")
        ]

    def sightings(self, morefs: Sequence[str] | None = None) -> list[VmSighting]:
        """VMs, narrowly: moref, instance UUID, name, power state and custom attributes, in
        one PropertyCollector read (paged). With `morefs`, those VMs (absent ones are simply
        not in the result; what status compares records with); without, every VM in the
        datacenter, templates excluded (what resume reconciles against: a VM moved to another
        folder or renamed is still found by its instance UUID).
        """
        paths = ["name", "config.instanceUuid", "runtime.powerState", "customValue"]
        if morefs is not None:
            if not morefs:
                return []
            rows = self._retrieve([self._vm(m) for m in morefs], paths, report_missing=True)
        else:
            rows = self._retrieve_container(
                vim.VirtualMachine, [*paths, "config.template"], root=self.datacenter()
            )
        out = []
        for obj, props in rows:
            if props.get("config.template"):
                continue
            out.append(
                VmSighting(
                    moref=str(obj._moId),
                    instance_uuid=str(props.get("config.instanceUuid") or ""),
                    name=str(props.get("name", "")),
                    powered_on=props.get("runtime.powerState")
                    == vim.VirtualMachinePowerState.poweredOn,
                    attributes=self._attribute_values(props.get("customValue", [])),
                )
            )
        return out

    def _attribute_values(self, values: Sequence[Any]) -> dict[str, str]:
        names = {v: k for k, v in self._field_keys.items()}
        keys = {cv.key for cv in values}
        if keys - set(names) - self._foreign_keys:
            # An attribute this process has not defined itself (e.g. a type's extra asset
            # attributes, set by an earlier run): learn every definition once.
            self._load_attribute_definitions()
            names = {v: k for k, v in self._field_keys.items()}
            with self._lock:
                self._foreign_keys |= keys - set(names)
        return {names[cv.key]: str(cv.value) for cv in values if cv.key in names}

    def _facts(self, moref: str, props: Mapping[str, Any]) -> VmFacts:
        disks = [d for d in props.get("config.hardware.device", []) if _is_disk(d)]
        linked = bool(disks) and all(getattr(d.backing, "parent", None) for d in disks)
        storage = props.get("summary.storage")
        attributes = self._attribute_values(props.get("customValue", []))
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
        )

    # ----------------------------------------------------------------- power and destroy
    def power_off(self, morefs: Sequence[str]) -> list[VCenterError | None]:
        """Power off VMs that are on (hard power-off: training clones are non-persistent)."""
        tasks = []
        index: list[int] = []
        for i, moref in enumerate(morefs):
            vm = self._vm(moref)
            tasks.append(self._task(f"powering off {moref}", vm.PowerOffVM_Task))
            index.append(i)
        out: list[VCenterError | None] = [None] * len(morefs)
        for i, result in zip(index, self.wait_for_tasks(tasks), strict=True):
            if isinstance(result, VCenterFault) and result.fault == "InvalidPowerState":
                continue  # already off
            if isinstance(result, VCenterError):
                out[i] = result
        return out

    def destroy(self, moref: str, *, expected_uuid: str, facts: VmFacts | None = None) -> Destroyed:
        """Destroy one VM after checking it is the one recorded.

        `facts` read moments ago in a batch (strip back verifies every clone in one call) spare
        a read; a moref is never reused for another VM, so the check still holds. Destroy_Task
        on a linked clone removes only the clone's own delta disk; the parent's base disk stays
        (vCenter never deletes a disk another VM's chain still uses).

        A VM that is gone is one outcome however vCenter says so: absent from the read, a
        ManagedObjectNotFound fault of a call (the VM vanished between the read and the call,
        e.g. another process's Destroy_Task finished) or of a task: `Destroyed(gone=True)`.
        """
        if facts is None:
            facts = self.vm_facts([moref])[0]
        if facts is None:
            return Destroyed(0, gone=True)
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

    def _power_off_and_destroy(self, moref: str, facts: VmFacts) -> None:
        """Raises a `VCenterFault` (call or task fault alike) when anything fails."""
        if facts.powered_on:
            err = self.power_off([moref])[0]
            if err is not None:
                raise err
        vm = self._vm(moref)
        result = self.wait_for_tasks([self._task(f"destroying {facts.name}", vm.Destroy_Task)])[0]
        if isinstance(result, VCenterFault) and result.fault == "InvalidPowerState":
            # Powered on since it was read: power it off, then destroy.
            err = self.power_off([moref])[0]
            if err is not None:
                raise err
            result = self.wait_for_tasks([self._task(f"destroying {facts.name}", vm.Destroy_Task)])[
                0
            ]
        if isinstance(result, BaseException):
            raise result

    def instance_uuids(self, morefs: Sequence[str]) -> list[str | None]:
        """Each VM's instance UUID (None where it no longer exists): a narrow read, in one call."""
        if not morefs:
            return []
        rows = self._retrieve(
            [self._vm(m) for m in morefs], ["config.instanceUuid"], report_missing=True
        )
        found = {str(obj._moId): p.get("config.instanceUuid") for obj, p in rows}
        return [found.get(m) for m in morefs]

    def _task(self, what: str, fn: Callable[[], Any]) -> Any:
        """Start a vSphere task; while it is being started the waiter holds its next batch open,
        so tasks started together are watched together."""
        with self._lock:
            self._starting += 1
        try:
            return self.call(what, fn)
        finally:
            with self._lock:
                self._starting -= 1

    # ----------------------------------------------------------------- pre-flight reads
    def entity(self, kind: str, path: str) -> Entity:
        """Look up a type's folder ("folder"), resource pool ("pool": a cluster or
        cluster/Resources/pool) or datastore ("datastore"); NotFoundError if missing."""
        if kind == "folder":
            obj = self._find_path("folder", "vm", path)
            if not isinstance(obj, vim.Folder):
                raise NotFoundError(f'"{path}" is not a VM folder.')
        elif kind == "pool":
            obj = self.placement_pool(path)
            if not isinstance(obj, vim.ResourcePool):
                raise NotFoundError(f'"{path}" is not a cluster or resource pool.')
        elif kind == "datastore":
            obj = self._find_path("datastore", "datastore", path)
        else:  # pragma: no cover - callers pass one of the three
            raise ValueError(f"unknown entity kind {kind!r}")
        return Entity(kind, path, str(obj._moId), obj)

    def placement_entities(
        self, folder: str, resource_pool: str, datastore: str
    ) -> dict[str, Entity]:
        """A type's folder, pool and datastore as cloning will use them (cached lookups, shared
        with `clone`); NotFoundError when one is missing."""
        place = self.placement(folder, resource_pool, datastore)
        return {
            "folder": Entity("folder", folder, str(place.folder._moId), place.folder),
            "pool": Entity("pool", resource_pool, str(place.pool._moId), place.pool),
            "datastore": Entity(
                "datastore", datastore, str(place.datastore._moId), place.datastore
            ),
        }

    def parent_entity(self, parent: str) -> Entity:
        vm = self.find_parent(parent)
        return Entity("vm", parent, str(vm._moId), vm)

    def root_entity(self) -> Entity:
        root = self.content.rootFolder
        return Entity("root", "vCenter", str(root._moId), root)

    def cluster_entity(self, resource_pool: str) -> Entity | None:
        """The cluster that owns a type's resource pool (None for a standalone host)."""
        owner, _ = self.cluster_hosts(resource_pool)
        if not isinstance(owner, vim.ClusterComputeResource):
            return None
        name = self._retrieve_one(owner, ["name"]).get("name", "")
        return Entity("cluster", str(name), str(owner._moId), owner)

    def parent_networks(self, parent: str) -> tuple[list[NetworkInfo], list[str]]:
        """The networks a parent's NICs use (clones inherit them), and the labels of NICs
        whose network vCenter does not know (a backing that names no existing network)."""
        vm = self.find_parent(parent)
        props = self._retrieve_one(vm, ["network", "config.hardware.device"])
        networks = list(props.get("network") or [])
        infos: list[NetworkInfo] = []
        if networks:
            rows = self._retrieve(networks, ["name", "summary.accessible"], report_missing=True)
            for obj, p in rows:
                infos.append(
                    NetworkInfo(
                        name=str(p.get("name", "")),
                        moref=str(obj._moId),
                        accessible=bool(p.get("summary.accessible", True)),
                        obj=obj,
                    )
                )
        known = {i.name for i in infos} | {i.moref for i in infos}
        dangling = []
        for device in props.get("config.hardware.device", []):
            if not isinstance(device, vim.vm.device.VirtualEthernetCard):
                continue
            backing = device.backing
            name = getattr(backing, "deviceName", None)
            port = getattr(backing, "port", None)
            group = getattr(port, "portgroupKey", None) if port is not None else None
            if (name and name not in known) or (group and group not in known):
                label = device.deviceInfo.label if device.deviceInfo else str(device.key)
                dangling.append(f"{label} ({name or group})")
        return infos, dangling

    def networks_of(self, parents: Sequence[str]) -> dict[str, list[Entity]]:
        """The networks each parent's NICs use, for many parents in one read."""
        vms = {p: self.find_parent(p) for p in parents}
        if not vms:
            return {}
        rows = self._retrieve(list(vms.values()), ["network"], report_missing=True)
        by_vm = {str(obj._moId): list(props.get("network") or []) for obj, props in rows}
        networks = {str(n._moId): n for nets in by_vm.values() for n in nets}
        names: dict[str, str] = {}
        if networks:
            for obj, props in self._retrieve(list(networks.values()), ["name"]):
                names[str(obj._moId)] = str(props.get("name", ""))
        return {
            p: [
                Entity("network", names.get(str(n._moId), str(n._moId)), str(n._moId), n)
                for n in by_vm.get(str(vm._moId), [])
            ]
            for p, vm in vms.items()
        }

    def missing_attribute_definitions(self, names: Iterable[str]) -> list[str]:
        """Which of these VM custom attributes vCenter does not define yet (none are created)."""
        wanted = list(names)
        with self._lock:
            known = all(n in self._field_keys for n in wanted)
        if not known:
            self._load_attribute_definitions()
        with self._lock:
            return [n for n in wanted if n not in self._field_keys]

    def privileges(self, entities: Sequence[Entity]) -> dict[str, frozenset[str]]:
        """The privileges this session's user holds on each entity, by moref (one call:
        AuthorizationManager.FetchUserPrivilegeOnEntities, which needs System.View only).

        The user is named as vCenter names it (currentSession.userName, e.g.
        "VSPHERE.LOCAL\\svc"), whatever form the configuration used to log in.
        """
        if not entities:
            return {}
        content = self.content
        with self._lock:
            user = self._session_user
        if not user:
            session = self.call(
                "reading the session", lambda: content.sessionManager.currentSession
            )
            user = str(getattr(session, "userName", "") or self.settings.user)
            with self._lock:
                self._session_user = user
        unique = list({e.moref: e.obj for e in entities}.values())
        manager = content.authorizationManager
        results = self.call(
            "reading the service account's privileges",
            lambda: manager.FetchUserPrivilegeOnEntities(entities=unique, userName=user),
        )
        return {
            str(r.entity._moId): frozenset(str(p) for p in r.privileges or [])
            for r in results or []
        }

    # ----------------------------------------------------------------- tasks
    def wait_for_tasks(
        self, tasks: Sequence[Any], *, read: Sequence[str] | None = None
    ) -> list[Any]:
        """Wait for tasks; return each one's result, or a `VCenterError` for a failed one.

        All threads' tasks are watched by one waiter thread through one PropertyCollector:
        tasks that arrive together share one filter and one WaitForUpdatesEx (or, while tasks
        tend to be over by the time they are seen, one direct read), so waiting costs a few
        calls per batch of tasks, never a poll per task. With `read`, a successful task's
        result (a VM) is returned as `(moref, properties)` read in one call for the batch.
        """
        if not tasks:
            return []
        return self._waiter().wait(tasks, read)

    def _waiter(self) -> _TaskWaiter:
        with self._lock:
            if self._task_waiter is None:
                self._task_waiter = _TaskWaiter(self)
            return self._task_waiter

    # ----------------------------------------------------------------- helpers
    def _stub(self) -> Any:
        self.connect()
        assert self._si is not None
        return self._si._stub

    def _vm(self, moref: str) -> Any:
        return vim.VirtualMachine(moref, self._stub())

    def _retrieve_one(self, obj: Any, paths: list[str]) -> dict[str, Any]:
        rows = self._retrieve([obj], paths)
        if not rows:
            raise NotFoundError(f"{obj._moId} no longer exists in vCenter.")
        return rows[0][1]

    def _retrieve(
        self, objs: Sequence[Any], paths: list[str], *, report_missing: bool = False
    ) -> list[tuple[Any, dict[str, Any]]]:
        pc = self.content.propertyCollector
        spec = vmodl.query.PropertyCollector.FilterSpec(
            objectSet=[vmodl.query.PropertyCollector.ObjectSpec(obj=o) for o in objs],
            propSet=[vmodl.query.PropertyCollector.PropertySpec(type=type(objs[0]), pathSet=paths)],
            reportMissingObjectsInResults=report_missing or None,
        )
        return list(self._retrieve_all(pc, spec))

    def _retrieve_container(
        self, kind: type, paths: list[str], *, root: Any
    ) -> list[tuple[Any, dict[str, Any]]]:
        views = self.content.viewManager
        view = self.call(
            "listing inventory",
            lambda: views.CreateContainerView(container=root, type=[kind], recursive=True),
        )
        try:
            traversal = vmodl.query.PropertyCollector.TraversalSpec(
                name="view", path="view", skip=False, type=vim.view.ContainerView
            )
            spec = vmodl.query.PropertyCollector.FilterSpec(
                objectSet=[
                    vmodl.query.PropertyCollector.ObjectSpec(
                        obj=view, skip=True, selectSet=[traversal]
                    )
                ],
                propSet=[vmodl.query.PropertyCollector.PropertySpec(type=kind, pathSet=paths)],
            )
            return list(self._retrieve_all(self.content.propertyCollector, spec))
        finally:
            with _quiet():
                view.Destroy()

    def _retrieve_all(self, pc: Any, spec: Any) -> Iterator[tuple[Any, dict[str, Any]]]:
        options = vmodl.query.PropertyCollector.RetrieveOptions(maxObjects=1000)
        result = self.call("reading properties", lambda: pc.RetrievePropertiesEx([spec], options))
        while result is not None:
            for oc in result.objects or []:
                if getattr(oc, "missingSet", None) and not oc.propSet:
                    continue
                yield oc.obj, {p.name: p.val for p in oc.propSet or []}
            token = result.token
            if not token:
                break
            result = self.call(
                "reading properties",
                lambda t=token: pc.ContinueRetrievePropertiesEx(t),  # type: ignore[misc]
            )


# --------------------------------------------------------------------- task waiting
TASK_PROPS = ["info.state", "info.result", "info.error"]
WAIT_S = 30  # longest single WaitForUpdatesEx; new tasks interrupt it (CancelWaitForUpdates)
GATHER_S = 0.05  # while tasks are being started, wait up to this long to batch them up
# The same when tasks are read directly (they tend to be over once started): the caller is
# waiting for a result that is already there, so hold a batch open only briefly.
QUICK_GATHER_S = 0.01


@dataclass
class _Waiting:
    task: Any
    read: Sequence[str] | None
    deadline: float
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None

    @property
    def moref(self) -> str:
        return str(self.task._moId)


class _TaskWaiter:
    """One thread and one PropertyCollector that wait for every thread's tasks.

    Each batch of tasks that arrive together gets one filter; one WaitForUpdatesEx serves all
    filters; a batch's filter is destroyed when its last task ends. When new tasks arrive while
    the thread is blocked in WaitForUpdatesEx, CancelWaitForUpdates wakes it (one call). The
    wait starts again from version "" after each new filter: that returns the current state of
    every filter, which is what a new filter needs and is harmless for the others.

    Tasks that are already over when the waiter first sees them (fast tasks, or a vCenter that
    answers a task-starting call only when the work is done) need no filter at all: while that
    keeps happening, a batch is first read directly (one RetrievePropertiesEx for the batch)
    and only its unfinished tasks get a filter. The first direct read that finds nothing over
    switches this off; a new filter whose first update shows its tasks over switches it on.
    """

    def __init__(self, vc: VCenter) -> None:
        self.vc = vc
        self._cond = threading.Condition()
        self._queue: list[_Waiting] = []
        self._blocked = False
        self._cancelled = False
        self._stopped = False
        self._thread: threading.Thread | None = None
        self._pc: Any = None
        self._quick = True  # read a new batch directly before watching it (see above)

    def wait(self, tasks: Sequence[Any], read: Sequence[str] | None) -> list[Any]:
        deadline = time.monotonic() + self.vc.settings.task_timeout_s
        items = [_Waiting(t, read, deadline) for t in tasks]
        cancel = False
        with self._cond:
            self._queue.extend(items)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="task-waiter", daemon=True)
                self._thread.start()
            if self._blocked and not self._cancelled:
                self._cancelled = cancel = True
            self._cond.notify_all()
        if cancel and self._pc is not None:
            with _quiet():  # wake the waiter so it adds these tasks now
                self._pc.CancelWaitForUpdates()
        for item in items:
            item.done.wait()
        return [item.result for item in items]

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        pc, self._pc = self._pc, None
        if pc is not None:
            with _quiet():
                pc.Destroy()

    # ------------------------------------------------------------------ the waiter thread
    def _run(self) -> None:
        outstanding: dict[str, _Waiting] = {}
        filters: dict[Any, set[str]] = {}
        state: dict[str, dict[str, Any]] = {}
        version = ""
        renewals = 0  # session renewals in a row without progress
        while True:
            with self._cond:
                while not self._queue and not outstanding and not self._stopped:
                    if not self._cond.wait(timeout=60):
                        self._thread = None  # idle: let the thread go; a new one starts on demand
                        return
                if self._stopped:
                    self._fail_all([*outstanding.values(), *self._queue], "the connection closed")
                    return
                gather_until = time.monotonic() + (QUICK_GATHER_S if self._quick else GATHER_S)
                while self._queue and self.vc._starting and time.monotonic() < gather_until:
                    self._cond.wait(gather_until - time.monotonic())
                new, self._queue = self._queue, []
                self._cancelled = False
            try:
                if new and self._quick:
                    new = self._collect_finished(new, outstanding, state)
                    if not new and not outstanding:
                        continue
                if new:
                    pc = self._collector()
                    spec = vmodl.query.PropertyCollector.FilterSpec(
                        objectSet=[
                            vmodl.query.PropertyCollector.ObjectSpec(obj=w.task) for w in new
                        ],
                        propSet=[
                            vmodl.query.PropertyCollector.PropertySpec(
                                type=vim.Task, pathSet=TASK_PROPS
                            )
                        ],
                    )
                    for w in new:  # tracked before the call, so a failure cannot lose them
                        outstanding[w.moref] = w
                        state.setdefault(w.moref, {})
                    flt = self.vc.call("watching tasks", partial(pc.CreateFilter, spec, True))
                    filters[flt] = {w.moref for w in new}
                    version = ""
                finished = self._wait_once(version, outstanding, state)
                if finished is None:
                    continue  # cancelled to add new tasks; keep the version
                if not version and new and not self._quick:
                    # Tasks that were already over when first watched: read them directly next time.
                    self._quick = any(w.moref in finished[1] for w in new)
                version, ended = finished
                renewals = 0
                self._deliver(ended, outstanding, state)
                for flt, morefs in list(filters.items()):
                    if not morefs & outstanding.keys():
                        del filters[flt]
                        with _quiet():
                            self.vc.call("dropping a task filter", flt.Destroy)
            except VCenterFault as exc:
                if exc.fault in ("ManagedObjectNotFound", "NotAuthenticated"):
                    # The session was renewed: collectors and filters died with the old one.
                    # Tasks live on, so watch them again from a fresh collector.
                    self._pc = None
                    filters.clear()
                    with self._cond:
                        self._queue[:0] = list(outstanding.values())
                    outstanding.clear()
                    state.clear()
                    version = ""
                    renewals += 1
                    if renewals <= 3:
                        continue
                    with self._cond:  # the session keeps failing: give up on these tasks
                        stuck, self._queue = self._queue, []
                    self._fail_all(stuck, str(exc), exc)
                    continue
                self._fail_all([*outstanding.values()], str(exc), exc)
                outstanding.clear()
                filters.clear()
                self._pc = None
            except VCenterError as exc:
                self._fail_all([*outstanding.values()], str(exc), exc)
                outstanding.clear()
                filters.clear()
                self._pc = None
                version = ""
            except Exception as exc:  # a bug here must not leave callers waiting forever
                log.exception("task waiter failed")
                error = VCenterError(f"internal error while waiting for tasks: {exc}")
                with self._cond:
                    queued, self._queue = self._queue, []
                self._fail_all([*outstanding.values(), *queued], str(error), error)
                outstanding.clear()
                filters.clear()
                self._pc = None
                version = ""

    def _collect_finished(
        self,
        new: list[_Waiting],
        outstanding: dict[str, _Waiting],
        state: dict[str, dict[str, Any]],
    ) -> list[_Waiting]:
        """Read a new batch's tasks once; deliver the finished ones; return the others."""
        for w in new:  # tracked before the call, so a failure cannot lose them
            outstanding[w.moref] = w
            state.setdefault(w.moref, {})
        rows = self.vc._retrieve([w.task for w in new], TASK_PROPS, report_missing=True)
        props = {str(obj._moId): p for obj, p in rows}
        ended: list[str] = []
        rest: list[_Waiting] = []
        for w in new:
            p = props.get(w.moref) or {}
            if p.get("info.state") in ("success", "error"):
                state[w.moref].update(p)
                ended.append(w.moref)
            else:
                rest.append(w)
        if not ended:
            self._quick = False
        self._deliver(ended, outstanding, state)
        return rest

    def _collector(self) -> Any:
        if self._pc is None:
            content = self.vc.content
            self._pc = self.vc.call(
                "creating a property collector",
                content.propertyCollector.CreatePropertyCollector,
            )
        return self._pc

    def _wait_once(
        self,
        version: str,
        outstanding: dict[str, _Waiting],
        state: dict[str, dict[str, Any]],
    ) -> tuple[str, list[str]] | None:
        pc = self._collector()
        now = time.monotonic()
        expired = [m for m, w in outstanding.items() if w.deadline <= now]
        if expired:
            return version, expired
        remaining = min(w.deadline for w in outstanding.values()) - now if outstanding else 1
        options = vmodl.query.PropertyCollector.WaitOptions(
            maxWaitSeconds=max(1, min(WAIT_S, int(remaining)))
        )
        with self._cond:
            if self._queue and version:
                return None  # new tasks arrived meanwhile: add them first
            self._blocked = True
        try:
            update = self.vc.call(
                "waiting for tasks", lambda: pc.WaitForUpdatesEx(version, options)
            )
        except VCenterFault as exc:
            if exc.fault == "RequestCanceled":
                return None
            raise
        finally:
            with self._cond:
                self._blocked = False
        if update is None:
            return version, []
        ended: list[str] = []
        for fs in update.filterSet or []:
            for obj in fs.objectSet or []:
                moref = str(obj.obj._moId)
                if moref not in outstanding:
                    continue
                for change in obj.changeSet or []:
                    state[moref][change.name] = change.val
                if state[moref].get("info.state") in ("success", "error"):
                    ended.append(moref)
        return update.version, ended

    def _deliver(
        self,
        ended: list[str],
        outstanding: dict[str, _Waiting],
        state: dict[str, dict[str, Any]],
    ) -> None:
        if not ended:
            return
        results: dict[str, Any] = {}
        reads: dict[tuple[str, ...], list[str]] = {}
        for moref in ended:
            st = state.get(moref, {})
            w = outstanding[moref]
            if st.get("info.state") == "success":
                result = st.get("info.result")
                results[moref] = result
                if w.read is not None and result is not None:
                    reads.setdefault(tuple(w.read), []).append(moref)
            elif st.get("info.state") == "error":
                results[moref] = _fault_error(st.get("info.error"), f"task {moref}")
            else:
                results[moref] = VCenterFault(
                    f"Task {moref} did not finish within {self.vc.settings.task_timeout_s:.0f} s.",
                    "Timedout",
                    transient=True,
                )
        # One read for all the VMs this batch produced (a clone's verification).
        for paths, morefs in reads.items():
            vms = [results[m] for m in morefs]
            try:
                rows = self.vc._retrieve(vms, list(paths), report_missing=True)
                props = {str(obj._moId): p for obj, p in rows}
            except VCenterError as exc:
                for m in morefs:
                    results[m] = exc
                continue
            for m in morefs:
                vm_moref = str(results[m]._moId)
                results[m] = (vm_moref, props.get(vm_moref))
        for moref in ended:
            w = outstanding.pop(moref)
            state.pop(moref, None)
            w.result = results[moref]
            w.done.set()

    def _fail_all(
        self, items: Sequence[_Waiting], why: str, exc: VCenterError | None = None
    ) -> None:
        for w in items:
            w.result = exc or VCenterUnreachable(why)
            w.done.set()


# --------------------------------------------------------------------- module helpers
def _login_method(user: str, password: str) -> Callable[[Any], None]:
    """Log in with SessionManager.Login: the session-oriented stub calls this for the first
    login and again after a call gets NotAuthenticated.

    The first login goes straight to Login (RetrieveServiceContent needs no session anywhere;
    pyVmomi's own helper reads currentSession first, which vCenter and VMware's simulator
    refuse before a login). A re-login first asks whether the session is alive: several
    threads hit by one expiry each ask for a re-login, and once one thread has logged in again
    the others find a live session (a second Login on a live session is refused, and would
    leave a spare session on vCenter).
    """
    logged_in = False

    def login(soap_stub: Any) -> None:
        nonlocal logged_in
        content = vim.ServiceInstance("ServiceInstance", soap_stub).RetrieveContent()
        manager = content.sessionManager
        if logged_in:
            try:
                if manager.currentSession is not None:
                    return  # another thread logged in again meanwhile
            except vim.fault.NotAuthenticated:
                pass
        manager.Login(userName=user, password=password)
        logged_in = True

    return login


def _stub_adapter(
    host: str,
    port: int,
    path: str,
    secure: bool,
    context: ssl.SSLContext | None,
    timeout_s: float,
) -> Any:
    if secure:
        return SmartStubAdapter(
            host=host,
            port=port,
            path=path,
            sslContext=context,
            httpConnectionTimeout=timeout_s,
            poolSize=32,
        )
    # Plain http (lab endpoints only): SmartStubAdapter cannot negotiate the API version over
    # http (it passes pyVmomi's negative-port convention to the version probe), so negotiate
    # with the same probe SmartConnect uses, then build the stub; a negative port means http.
    find_version = getattr(pyvim_connect, "__FindSupportedVersion")
    version = find_version(
        "http", host, port, path, GetServiceVersions("vim25"), None, None, 80, None
    )
    if version is None:
        raise VCenterUnreachable(f"http://{host}:{port}{path} does not answer as a vCenter.")
    return SoapStubAdapter(
        host=host,
        port=-port,
        path=path,
        version=version,
        httpConnectionTimeout=timeout_s,
        poolSize=32,
    )


def fault_name(fault: Any) -> str:
    return str(getattr(fault, "_wsdlName", None) or type(fault).__name__)


def describe_fault(name: str, message: str = "") -> str:
    """A vSphere fault in plain words, then its name and vCenter's own message:
    "not enough free space on the datastore (InsufficientStorageSpace: Insufficient disk space
    on datastore 'TrainingDS'.)"."""
    detail = message.strip()
    if detail.removeprefix("*types.") == name:  # a type name, not a message (old simulators)
        detail = ""
    words = FAULT_WORDS.get(name)
    if words is None:
        return f"{name}: {detail}" if detail else name
    return f"{words} ({name}: {detail})" if detail else f"{words} ({name})"


def _fault_error(fault: Any, what: str) -> VCenterError:
    if fault is None:
        return VCenterFault(f"vCenter reported a failure while {what}.", "Unknown")
    name = fault_name(fault)
    if isinstance(fault, vmodl.fault.ManagedObjectNotFound):
        name = "ManagedObjectNotFound"
    message = getattr(fault, "msg", None) or ""
    if not message:
        messages = [m.message for m in getattr(fault, "faultMessage", None) or [] if m.message]
        message = "; ".join(messages)
    reason = describe_fault(name, message)
    return VCenterFault(
        f"vCenter could not finish {what}: {reason}",
        name,
        name in TRANSIENT_FAULTS,
        reason=reason,
    )


def _snapshot_trees(info: Any) -> Iterator[Any]:
    def walk(trees: Iterable[Any]) -> Iterator[Any]:
        for tree in trees or []:
            yield tree
            yield from walk(tree.childSnapshotList)

    if info is not None:
        yield from walk(info.rootSnapshotList)


def _find_snapshot(info: Any, name: str) -> Any:
    """The newest snapshot with this name (a re-snapshotted parent's current base)."""
    named = [t for t in _snapshot_trees(info) if t.name == name]
    if not named:
        return None
    return max(named, key=lambda t: t.createTime).snapshot


def _count_snapshots(info: Any, name: str) -> int:
    return sum(1 for tree in _snapshot_trees(info) if tree.name == name)


def _is_disk(device: Any) -> bool:
    return isinstance(device, vim.vm.device.VirtualDisk)


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, socket.timeout):
        text = "timed out"
    return text.splitlines()[0][:200]


@contextmanager
def _quiet() -> Iterator[None]:
    """Best-effort clean-up calls (destroying a view or filter) must never mask the real error."""
    try:
        yield
    except Exception as exc:  # clean-up only; the primary outcome is already decided
        log.debug("ignored clean-up failure: %s", exc)
