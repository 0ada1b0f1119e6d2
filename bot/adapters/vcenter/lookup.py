"""Finding things in vCenter: the datacenter, folders, resource pools, datastores and parents by
name or inventory path (cached: their morefs do not change), and the PropertyCollector reads
every other module of this package uses (by object, or over a container view, paged), each
answering seen, unseen or gone by one rule (`Lookup._collect`)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pyVmomi import vim as _vim
from pyVmomi import vmodl as _vmodl

from bot.adapters.vcenter.faults import fault_name, quiet
from bot.adapters.vcenter.session import Session
from bot.domain.errors import CannotSee, ConfigError, NotFoundError
from bot.domain.vsphere import Unseen

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
        """The VMs with this name (VMs vCenter would not show are not asked about unless none
        is found: then they may be it, and CannotSee says so)."""
        read = self.read_container(vim.VirtualMachine, ["name"], root=self.datacenter())
        found = [obj for obj, props in read.rows if props.get("name") == name]
        if not found:
            read.rows_or_raise()  # a VM vCenter would not show may be the one
        return found

    def vm(self, moref: str) -> Any:
        """A VM by moref (no call: a moref is never reused for another VM)."""
        return vim.VirtualMachine(moref, self.session.stub())

    # ----------------------------------------------------------------- PropertyCollector reads
    # Every read goes through `_collect`, which applies one rule: an object the answer carries a
    # fault for (in its missingSet) is *unseen*, never absent. NotAuthenticated there (the
    # session ended, and vCenter still answered the call) logs in again and repeats the read
    # once; whatever is faulted after that stays unseen. Only an object vCenter leaves out
    # (ManagedObjectNotFound) or a listing that succeeds without it is gone.
    def retrieve_one(self, obj: Any, paths: list[str]) -> dict[str, Any]:
        rows = self.retrieve([obj], paths)
        if not rows:
            raise NotFoundError(f"{obj._moId} no longer exists in vCenter.")
        return rows[0][1]

    def retrieve(
        self, objs: Sequence[Any], paths: list[str], *, report_missing: bool = False
    ) -> list[Row]:
        """These properties of these objects (all of one type), in one call (paged);
        CannotSee if vCenter would not show one of them."""
        return self.retrieve_groups([(objs, paths)], report_missing=report_missing)

    def retrieve_groups(
        self, groups: Sequence[tuple[Sequence[Any], list[str]]], *, report_missing: bool = False
    ) -> list[Row]:
        """Several groups of (objects of one type, their properties) in one call (paged): the
        task waiter reads new tasks and the VMs finished ones made together. CannotSee if
        vCenter would not show one of them."""
        return self._collect(lambda: self._by_object(groups, report_missing)).rows_or_raise()

    def read(self, objs: Sequence[Any], paths: list[str]) -> Read:
        """These properties of these objects (all of one type), each seen, unseen (a fault) or
        left out by vCenter (gone), in one call (paged)."""
        return self._collect(lambda: self._by_object([(objs, paths)], True))

    def retrieve_related(self, obj: Any, path: str, kind: type, paths: list[str]) -> list[Row]:
        """These properties of the objects `obj` refers to through its property `path` (a
        cluster's "host"), in one call."""

        spec = _through(obj, path, type(obj), kind, paths)
        return self._collect(lambda: self._read_spec(spec)).rows_or_raise()

    def read_container(self, kind: type, paths: list[str], *, root: Any) -> Read:
        """These properties of every object of a kind under `root`, through a container view:
        what it lists is seen or unseen (a fault); what it does not list is gone."""
        return self._collect(lambda: self._in_view(kind, paths, root))

    def _in_view(self, kind: type, paths: list[str], root: Any) -> Read:
        views = self.session.content.viewManager
        view = self.session.call(
            "listing inventory",
            lambda: views.CreateContainerView(container=root, type=[kind], recursive=True),
        )
        try:
            return self._read_spec(_through(view, "view", vim.view.ContainerView, kind, paths))
        finally:
            with quiet():
                view.Destroy()

    def _by_object(
        self, groups: Sequence[tuple[Sequence[Any], list[str]]], report_missing: bool
    ) -> Read:
        spec = _object_spec(groups, report_missing)
        return self._read_spec(spec) if spec is not None else Read([], {})

    def _collect(self, once: Callable[[], Read]) -> Read:
        """A read, repeated once after a new login when vCenter answered it with
        NotAuthenticated for some object (the session had ended: upstream's simulator, and
        vCenter at times, still answer the call, with a fault per object)."""
        read = once()
        if read.session_ended:
            self.session.relogin()
            read = once()
        return read

    def _read_spec(self, spec: Any) -> Read:
        return _read_pages(self.session, spec)


def _through(obj: Any, path: str, obj_type: type, kind: type, paths: list[str]) -> Any:
    """A FilterSpec for these properties of the objects of `kind` that `obj` refers to through
    its property `path` (a container view's "view", a cluster's "host"), not of `obj` itself."""
    traversal = vmodl.query.PropertyCollector.TraversalSpec(
        name="through", path=path, skip=False, type=obj_type
    )
    return vmodl.query.PropertyCollector.FilterSpec(
        objectSet=[
            vmodl.query.PropertyCollector.ObjectSpec(obj=obj, skip=True, selectSet=[traversal])
        ],
        propSet=[vmodl.query.PropertyCollector.PropertySpec(type=kind, pathSet=paths)],
    )


def _object_spec(
    groups: Sequence[tuple[Sequence[Any], list[str]]], report_missing: bool
) -> Any | None:
    """A FilterSpec for several groups of (objects of one type, their properties); None when
    there is no object."""
    paths_by_type: dict[type, list[str]] = {}
    objs: list[Any] = []
    for group, paths in groups:
        if not group:
            continue
        objs += group
        known = paths_by_type.setdefault(type(group[0]), [])
        known += [p for p in paths if p not in known]
    if not objs:
        return None
    return vmodl.query.PropertyCollector.FilterSpec(
        objectSet=[vmodl.query.PropertyCollector.ObjectSpec(obj=o) for o in objs],
        propSet=[
            vmodl.query.PropertyCollector.PropertySpec(type=kind, pathSet=paths)
            for kind, paths in paths_by_type.items()
        ],
        reportMissingObjectsInResults=report_missing or None,
    )


def _read_pages(session: Session, spec: Any) -> Read:
    """One RetrievePropertiesEx and its pages: the objects read, and those faulted."""
    pc = session.content.propertyCollector
    options = vmodl.query.PropertyCollector.RetrieveOptions(maxObjects=1000)
    rows: list[Row] = []
    faults: dict[str, tuple[Any, Unseen]] = {}
    result = session.call("reading properties", lambda: pc.RetrievePropertiesEx([spec], options))
    while result is not None:
        for oc in result.objects or []:
            unseen = _unseen(oc)
            if unseen is not None:
                faults[unseen.moref] = (oc.obj, unseen)
            else:
                rows.append((oc.obj, {p.name: p.val for p in oc.propSet or []}))
        token = result.token
        if not token:
            break
        result = session.call(
            "reading properties",
            lambda t=token: pc.ContinueRetrievePropertiesEx(t),  # type: ignore[misc]
        )
    return Read(rows, faults)


@dataclass(frozen=True)
class Read:
    """What one PropertyCollector read answered: the objects read (every property asked for)
    and, by moref, those it carried a fault for instead (with the object, for its kind)."""

    rows: list[Row]
    faults: dict[str, tuple[Any, Unseen]]

    @property
    def unseen(self) -> dict[str, Unseen]:
        return {moref: unseen for moref, (_, unseen) in self.faults.items()}

    @property
    def session_ended(self) -> bool:
        return any(u.fault == "NotAuthenticated" for _, u in self.faults.values())

    def rows_or_raise(self) -> list[Row]:
        """The rows, or CannotSee naming what vCenter would not show."""
        if self.faults:
            obj, unseen = next(iter(self.faults.values()))
            more = f" (and {len(self.faults) - 1} more)" if len(self.faults) > 1 else ""
            kind = type(obj).__name__.rsplit(".", 1)[-1]
            raise CannotSee(
                f"vCenter would not show {kind} {unseen.moref}{more}: {unseen.reason}. Grant "
                'the bot\'s account that privilege on it (docs/vcenter.md, "Privileges").'
            )
        return self.rows


def _unseen(oc: Any) -> Unseen | None:
    """The first fault vCenter answered for this object instead of a property (None: none)."""
    for missing in getattr(oc, "missingSet", None) or []:
        fault = getattr(missing, "fault", None)
        # pyVmomi hands the fault itself; the WSDL wraps it in a LocalizedMethodFault.
        inner = fault.fault if isinstance(fault, vmodl.LocalizedMethodFault) else fault
        if inner is None:
            continue
        return Unseen(
            moref=str(oc.obj._moId),
            fault=fault_name(inner),
            privilege=str(getattr(inner, "privilegeId", "") or ""),
        )
    return None
