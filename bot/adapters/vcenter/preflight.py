"""Pre-flight reads for `clones check` and the deploy checks: the entities a type names (folder,
pool, datastore, parent, cluster, root), the networks parents use, and the privileges the
service account holds on them. Nothing is created or changed."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from pyVmomi import vim as _vim

from bot.adapters.vcenter.inventory import InventoryReads
from bot.adapters.vcenter.lookup import Lookup
from bot.adapters.vcenter.session import Session
from bot.domain.errors import NotFoundError
from bot.domain.vsphere import Entity, NetworkInfo

# pyVmomi's dynamic vSphere types, as Any (see faults.py).
vim: Any = _vim


class Preflight:
    """Entities, networks and privileges, read for the checks before anything is changed."""

    def __init__(self, session: Session, lookup: Lookup, inventory: InventoryReads) -> None:
        self.session = session
        self.lookup = lookup
        self.inventory = inventory
        self._lock = threading.Lock()
        self._session_user = ""  # as vCenter names the logged-in user (privilege queries)

    # ----------------------------------------------------------------- entities
    def entity(self, kind: str, path: str) -> Entity:
        """Look up a type's folder ("folder"), resource pool ("pool": a cluster or
        cluster/Resources/pool) or datastore ("datastore"); NotFoundError if missing."""
        if kind == "folder":
            obj = self.lookup.find_path("folder", "vm", path)
            if not isinstance(obj, vim.Folder):
                raise NotFoundError(f'"{path}" is not a VM folder.')
        elif kind == "pool":
            obj = self.lookup.placement_pool(path)
            if not isinstance(obj, vim.ResourcePool):
                raise NotFoundError(f'"{path}" is not a cluster or resource pool.')
        elif kind == "datastore":
            obj = self.lookup.find_path("datastore", "datastore", path)
        else:  # pragma: no cover - callers pass one of the three
            raise ValueError(f"unknown entity kind {kind!r}")
        return Entity(kind, path, str(obj._moId), obj)

    def placement_entities(
        self, folder: str, resource_pool: str, datastore: str
    ) -> dict[str, Entity]:
        """A type's folder, pool and datastore as cloning will use them (cached lookups, shared
        with `clone`); NotFoundError when one is missing."""
        place = self.lookup.placement(folder, resource_pool, datastore)
        return {
            "folder": Entity("folder", folder, str(place.folder._moId), place.folder),
            "pool": Entity("pool", resource_pool, str(place.pool._moId), place.pool),
            "datastore": Entity(
                "datastore", datastore, str(place.datastore._moId), place.datastore
            ),
        }

    def parent_entity(self, parent: str) -> Entity:
        vm = self.lookup.find_parent(parent)
        return Entity("vm", parent, str(vm._moId), vm)

    def root_entity(self) -> Entity:
        root = self.session.content.rootFolder
        return Entity("root", "vCenter", str(root._moId), root)

    def cluster_entity(self, resource_pool: str) -> Entity | None:
        """The cluster that owns a type's resource pool (None for a standalone host)."""
        owner = self.lookup.pool_owner(resource_pool)
        if not isinstance(owner, vim.ClusterComputeResource):
            return None
        name = self.lookup.retrieve_one(owner, ["name"]).get("name", "")
        return Entity("cluster", str(name), str(owner._moId), owner)

    # ----------------------------------------------------------------- networks
    def parent_networks(self, parent: str) -> tuple[list[NetworkInfo], list[str]]:
        """The networks a parent's NICs use (clones inherit them), and the labels of NICs
        whose network vCenter does not know (a backing that names no existing network)."""
        vm = self.lookup.find_parent(parent)
        props = self.lookup.retrieve_one(vm, ["network", "config.hardware.device"])
        networks = list(props.get("network") or [])
        infos: list[NetworkInfo] = []
        if networks:
            rows = self.lookup.retrieve(
                networks, ["name", "summary.accessible"], report_missing=True
            )
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
        vms = {p: self.lookup.find_parent(p) for p in parents}
        if not vms:
            return {}
        rows = self.lookup.retrieve(list(vms.values()), ["network"], report_missing=True)
        by_vm = {str(obj._moId): list(props.get("network") or []) for obj, props in rows}
        networks = {str(n._moId): n for nets in by_vm.values() for n in nets}
        names: dict[str, str] = {}
        if networks:
            for obj, props in self.lookup.retrieve(list(networks.values()), ["name"]):
                names[str(obj._moId)] = str(props.get("name", ""))
        return {
            p: [
                Entity("network", names.get(str(n._moId), str(n._moId)), str(n._moId), n)
                for n in by_vm.get(str(vm._moId), [])
            ]
            for p, vm in vms.items()
        }

    # ----------------------------------------------------------------- privileges
    def privileges(self, entities: Sequence[Entity]) -> dict[str, frozenset[str]]:
        """The privileges this session's user holds on each entity, by moref (one call:
        AuthorizationManager.FetchUserPrivilegeOnEntities, which needs System.View only).

        The user is named as vCenter names it (currentSession.userName, e.g.
        "VSPHERE.LOCAL\\svc"), whatever form the configuration used to log in.
        """
        if not entities:
            return {}
        content = self.session.content
        with self._lock:
            user = self._session_user
        if not user:
            session = self.session.call(
                "reading the session", lambda: content.sessionManager.currentSession
            )
            user = str(getattr(session, "userName", "") or self.session.settings.user)
            with self._lock:
                self._session_user = user
        unique = list({e.moref: e.obj for e in entities}.values())
        manager = content.authorizationManager
        results = self.session.call(
            "reading the service account's privileges",
            lambda: manager.FetchUserPrivilegeOnEntities(entities=unique, userName=user),
        )
        return {
            str(r.entity._moId): frozenset(str(p) for p in r.privileges or [])
            for r in results or []
        }
