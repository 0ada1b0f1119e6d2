"""Finding things in vCenter: the datacenter, folders, resource pools, datastores and parents by
name or inventory path (cached: their morefs do not change), and the PropertyCollector reads
every other module of this package uses (by object, or over a container view, paged)."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from pyVmomi import vim as _vim
from pyVmomi import vmodl as _vmodl

from bot.adapters.vcenter.faults import quiet
from bot.adapters.vcenter.session import Session
from bot.domain.errors import ConfigError, NotFoundError

# pyVmomi's dynamic vSphere types, as Any (see faults.py).
vim: Any = _vim
vmodl: Any = _vmodl

Row = tuple[Any, dict[str, Any]]  # a managed object and the properties read from it


@dataclass
class Placement:
    """Where a type's clones go, as managed objects."""

    folder: Any
    pool: Any
    datastore: Any


class Lookup:
    """Look-ups by name and path (cached until `forget`) and PropertyCollector reads."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._lock = threading.RLock()
        self._parents: dict[str, Any] = {}
        self._placements: dict[tuple[str, str, str], Placement] = {}
        self._owners: dict[str, Any] = {}  # resource pool path -> its cluster (or host)
        self._datacenter: Any | None = None
        self._datacenter_name = ""

    def forget(self) -> None:
        """Drop every cached look-up (the connection closed)."""
        with self._lock:
            self._parents.clear()
            self._placements.clear()
            self._owners.clear()
            self._datacenter = None

    # ----------------------------------------------------------------- inventory paths
    def datacenter(self) -> Any:
        with self._lock:
            if self._datacenter is not None:
                return self._datacenter
        wanted = self.session.settings.datacenter
        session = self.session
        dcs = [
            e
            for e in session.call(
                "listing datacenters", lambda: session.content.rootFolder.childEntity
            )
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
        name = self.session.call("reading the datacenter", lambda: dc.name)
        with self._lock:
            self._datacenter = dc
            self._datacenter_name = name
        return dc

    def datacenter_name(self) -> str:
        self.datacenter()
        return self._datacenter_name

    def find_path(self, kind: str, root: str, path: str) -> Any:
        """The object at `path` under the datacenter's `root` folder ("vm", "host",
        "datastore"); NotFoundError naming `kind` when there is none."""
        self.datacenter()
        dc_name = self._datacenter_name
        full = f"{dc_name}/{root}/{path.strip('/')}"
        index = self.session.content.searchIndex
        obj = self.session.call(
            f"looking up {kind} {path}", lambda: index.FindByInventoryPath(full)
        )
        if obj is None:
            raise NotFoundError(
                f'{kind.capitalize()} "{path}" not found in datacenter {dc_name}; check the '
                "type's configuration."
            )
        return obj

    def placement(self, folder: str, resource_pool: str, datastore: str) -> Placement:
        key = (folder, resource_pool, datastore)
        with self._lock:
            cached = self._placements.get(key)
        if cached is not None:
            return cached
        folder_obj = self.find_path("folder", "vm", folder)
        if not isinstance(folder_obj, vim.Folder):
            raise NotFoundError(f'"{folder}" is not a VM folder; check the type\'s folder.')
        pool_obj = self.find_path("resource pool", "host", resource_pool)
        if isinstance(pool_obj, vim.ComputeResource):
            pool_obj = pool_obj.resourcePool
        if not isinstance(pool_obj, vim.ResourcePool):
            raise NotFoundError(
                f'"{resource_pool}" is not a cluster or resource pool; check the type\'s '
                "resource_pool."
            )
        ds_obj = self.find_path("datastore", "datastore", datastore)
        result = Placement(folder_obj, pool_obj, ds_obj)
        with self._lock:
            self._placements[key] = result
        return result

    def pool_owner(self, resource_pool: str) -> Any:
        """The cluster (or standalone host's compute resource) a type's resource pool belongs
        to, looked up once per connection (a pool does not move between clusters)."""
        with self._lock:
            cached = self._owners.get(resource_pool)
        if cached is not None:
            return cached
        found = self.find_path("resource pool", "host", resource_pool)
        owner = (
            found
            if isinstance(found, vim.ComputeResource)
            else self.retrieve_one(found, ["owner"]).get("owner")
        )
        with self._lock:
            self._owners[resource_pool] = owner
        return owner

    def placement_pool(self, resource_pool: str) -> Any:
        pool_obj = self.find_path("resource pool", "host", resource_pool)
        if isinstance(pool_obj, vim.ComputeResource):
            pool_obj = self.retrieve_one(pool_obj, ["resourcePool"]).get("resourcePool")
        return pool_obj

    def find_parent(self, parent: str) -> Any:
        """Find a parent by inventory path ("Parents/Capture") or by a name that is unique."""
        with self._lock:
            cached = self._parents.get(parent)
        if cached is not None:
            return cached
        if "/" in parent:
            vm = self.find_path("parent VM", "vm", parent)
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

    def forget_parent(self, parent: str) -> None:
        """Look this parent up afresh next time (it went away, or was replaced)."""
        with self._lock:
            self._parents.pop(parent, None)

    def _vms_named(self, name: str) -> list[Any]:
        rows = self.retrieve_container(vim.VirtualMachine, ["name"], root=self.datacenter())
        return [obj for obj, props in rows if props.get("name") == name]

    def vm(self, moref: str) -> Any:
        """A VM by moref (no call: a moref is never reused for another VM)."""
        return vim.VirtualMachine(moref, self.session.stub())

    # ----------------------------------------------------------------- PropertyCollector reads
    def retrieve_one(self, obj: Any, paths: list[str]) -> dict[str, Any]:
        rows = self.retrieve([obj], paths)
        if not rows:
            raise NotFoundError(f"{obj._moId} no longer exists in vCenter.")
        return rows[0][1]

    def retrieve(
        self, objs: Sequence[Any], paths: list[str], *, report_missing: bool = False
    ) -> list[Row]:
        """These properties of these objects (all of one type), in one call (paged)."""
        return self.retrieve_groups([(objs, paths)], report_missing=report_missing)

    def retrieve_groups(
        self, groups: Sequence[tuple[Sequence[Any], list[str]]], *, report_missing: bool = False
    ) -> list[Row]:
        """Several groups of (objects of one type, their properties) in one call (paged): the
        task waiter reads new tasks and the VMs finished ones made together."""
        paths_by_type: dict[type, list[str]] = {}
        objs: list[Any] = []
        for group, paths in groups:
            if not group:
                continue
            objs += group
            known = paths_by_type.setdefault(type(group[0]), [])
            known += [p for p in paths if p not in known]
        if not objs:
            return []
        pc = self.session.content.propertyCollector
        spec = vmodl.query.PropertyCollector.FilterSpec(
            objectSet=[vmodl.query.PropertyCollector.ObjectSpec(obj=o) for o in objs],
            propSet=[
                vmodl.query.PropertyCollector.PropertySpec(type=kind, pathSet=paths)
                for kind, paths in paths_by_type.items()
            ],
            reportMissingObjectsInResults=report_missing or None,
        )
        return list(self._retrieve_all(pc, spec))

    def retrieve_related(self, obj: Any, path: str, kind: type, paths: list[str]) -> list[Row]:
        """These properties of the objects `obj` refers to through its property `path` (a
        cluster's "host"), in one call."""
        traversal = vmodl.query.PropertyCollector.TraversalSpec(
            name="related", path=path, skip=False, type=type(obj)
        )
        spec = vmodl.query.PropertyCollector.FilterSpec(
            objectSet=[
                vmodl.query.PropertyCollector.ObjectSpec(obj=obj, skip=True, selectSet=[traversal])
            ],
            propSet=[vmodl.query.PropertyCollector.PropertySpec(type=kind, pathSet=paths)],
        )
        return list(self._retrieve_all(self.session.content.propertyCollector, spec))

    def retrieve_container(self, kind: type, paths: list[str], *, root: Any) -> list[Row]:
        """These properties of every object of a kind under `root`, through a container view."""
        views = self.session.content.viewManager
        view = self.session.call(
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
            return list(self._retrieve_all(self.session.content.propertyCollector, spec))
        finally:
            with quiet():
                view.Destroy()

    def _retrieve_all(self, pc: Any, spec: Any) -> Iterator[Row]:
        options = vmodl.query.PropertyCollector.RetrieveOptions(maxObjects=1000)
        call = self.session.call
        result = call("reading properties", lambda: pc.RetrievePropertiesEx([spec], options))
        while result is not None:
            for oc in result.objects or []:
                if getattr(oc, "missingSet", None) and not oc.propSet:
                    continue
                yield oc.obj, {p.name: p.val for p in oc.propSet or []}
            token = result.token
            if not token:
                break
            result = call(
                "reading properties",
                lambda t=token: pc.ContinueRetrievePropertiesEx(t),  # type: ignore[misc]
            )
