"""`VCenter`: the vCenter adapter as the services see it (`bot.ports.VCenter`), one facade over
the parts of this package, each of which owns one concern:

- `session`: the shared SOAP session, TLS (`tls`), login and re-login, `call`;
- `faults`: transient faults, plain-words texts, pyVmomi faults as `bot.domain.errors`;
- `lookup`: datacenter, folders, pools, datastores and parents by path or name (cached), and the
  PropertyCollector reads (by object, or over a container view);
- `tasks`: starting tasks and the one waiter thread that watches every thread's tasks;
- `attributes`: VM custom attribute definitions and values;
- `inventory`: VMs, parents, datastores and clusters read as the service's facts;
- `operations`: snapshots, clones, disk modes, customization, power, destroy, DRS;
- `preflight`: entities, networks and privileges read for the checks.

It speaks the vSphere API in the service layer's words: parents, base snapshots, linked clones,
custom attributes, power and storage figures. Faults come out as `bot.domain.errors`
exceptions; pyVmomi objects never leave the package except as opaque morefs (strings such as
``vm-42``) or inside `Entity` and the cluster handle that the services pass back unread.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from bot.adapters.vcenter.attributes import Attributes
from bot.adapters.vcenter.inventory import InventoryReads
from bot.adapters.vcenter.lookup import Lookup
from bot.adapters.vcenter.operations import Cloning, Confinement, Customization, Power
from bot.adapters.vcenter.preflight import Preflight
from bot.adapters.vcenter.session import Session
from bot.adapters.vcenter.tasks import Tasks
from bot.domain.errors import VCenterError
from bot.domain.models import ParentFacts
from bot.domain.vsphere import (
    CLONE_ATTRIBUTES,
    CloneRequest,
    CustomizationOutcome,
    Destroyed,
    Endpoint,
    Entity,
    HostInfo,
    NetworkInfo,
    ParentReport,
    VmFacts,
    VmReading,
    VmSighting,
    VmTask,
)
from bot.settings import VCenterSettings


class VCenter:
    """A shared, thread-safe connection to one vCenter (`bot.ports.VCenter`).

    Every method delegates to the part that owns its concern (see the module's docstring);
    the parts are wired here and share one session.
    """

    def __init__(self, settings: VCenterSettings) -> None:
        session = Session(settings)
        lookup = Lookup(session)
        tasks = Tasks(
            call=session.call,
            new_collector=session.new_collector,
            read=lambda groups: lookup.retrieve_groups(groups, report_missing=True),
            timeout_s=settings.task_timeout_s,
        )
        attributes = Attributes(session, lookup)
        inventory = InventoryReads(lookup, attributes)
        power = Power(session, lookup, inventory, tasks)
        customization = Customization(session)
        self._session = session
        self._lookup = lookup
        self._tasks = tasks
        self._attributes = attributes
        self._inventory = inventory
        self._power = power
        self._customization = customization
        self._cloning = Cloning(session, lookup, inventory, attributes, tasks, power, customization)
        self._confinement = Confinement(session, inventory, tasks)
        self._preflight = Preflight(session, lookup, inventory)

    # ----------------------------------------------------------------- connection
    def connect(self) -> None:
        self._session.connect()

    def endpoint(self) -> Endpoint:
        return self._session.endpoint()

    def close(self) -> None:
        """Forget cached look-ups, fail tasks still waited for, and log out."""
        self._cloning.forget_snapshots()
        self._lookup.forget()
        self._tasks.stop()
        self._session.close()

    def __enter__(self) -> VCenter:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- Inventory
    def datacenter_name(self) -> str:
        return self._lookup.datacenter_name()

    def parent_facts(self, parent: str, snapshot: str) -> ParentFacts:
        return self._inventory.parent_facts(parent, snapshot)

    def parent_report(self, parent: str, snapshot: str) -> ParentReport:
        return self._inventory.parent_report(parent, snapshot)

    def parent_entity(self, parent: str) -> Entity:
        return self._preflight.parent_entity(parent)

    def parent_networks(self, parent: str) -> tuple[list[NetworkInfo], list[str]]:
        return self._preflight.parent_networks(parent)

    def networks_of(self, parents: Sequence[str]) -> dict[str, list[Entity]]:
        return self._preflight.networks_of(parents)

    def find_vms(self, folder: str | None = None) -> VmReading[VmFacts]:
        return self._inventory.find_vms(folder)

    def vm_facts(self, morefs: Sequence[str]) -> VmReading[VmFacts]:
        return self._inventory.vm_facts(morefs)

    def vm_by_instance_uuid(self, instance_uuid: str) -> VmFacts | None:
        return self._inventory.vm_by_instance_uuid(instance_uuid)

    def sightings(
        self, morefs: Sequence[str] | None = None, *, also: Collection[str] = ()
    ) -> VmReading[VmSighting]:
        return self._inventory.sightings(morefs, also=also)

    def instance_uuids(self, morefs: Sequence[str]) -> VmReading[str]:
        return self._inventory.instance_uuids(morefs)

    def datastore_free_bytes(self, datastore: str) -> int:
        return self._inventory.datastore_free_bytes(datastore)

    def customization_spec_exists(self, spec_name: str) -> bool:
        return self._customization.spec_exists(spec_name)

    def cluster_hosts(self, resource_pool: str) -> tuple[Any, list[HostInfo]]:
        return self._inventory.cluster_hosts(resource_pool)

    def cluster_entity(self, resource_pool: str) -> Entity | None:
        return self._preflight.cluster_entity(resource_pool)

    def drs_confinement(self, cluster: Any, prefix: str) -> tuple[list[str], list[str], bool]:
        return self._inventory.drs_confinement(cluster, prefix)

    def entity(self, kind: str, path: str) -> Entity:
        return self._preflight.entity(kind, path)

    def root_entity(self) -> Entity:
        return self._preflight.root_entity()

    def placement_entities(
        self, folder: str, resource_pool: str, datastore: str
    ) -> dict[str, Entity]:
        return self._preflight.placement_entities(folder, resource_pool, datastore)

    def privileges(self, entities: Sequence[Entity]) -> dict[str, frozenset[str]]:
        return self._preflight.privileges(entities)

    def missing_attribute_definitions(self, names: Iterable[str]) -> list[str]:
        return self._attributes.missing_definitions(names)

    # ----------------------------------------------------------------- Provisioning
    def ensure_base_snapshot(self, parent: str, snapshot: str, *, create: bool = True) -> str:
        return self._cloning.ensure_base_snapshot(parent, snapshot, create=create)

    def forget_snapshots(self) -> None:
        self._cloning.forget_snapshots()

    def ensure_attribute_definitions(self, names: Iterable[str] = CLONE_ATTRIBUTES) -> None:
        self._attributes.ensure_definitions(names)

    def clone(self, req: CloneRequest, *, finish: bool = True) -> VmFacts:
        return self._cloning.clone(req, finish=finish)

    def finish_clone(self, facts: VmFacts, req: CloneRequest) -> VmFacts:
        return self._cloning.finish_clone(facts, req)

    def destroy(
        self, moref: str, *, expected_uuid: str, facts: VmFacts | VmSighting | None = None
    ) -> Destroyed:
        return self._power.destroy(moref, expected_uuid=expected_uuid, facts=facts)

    def power(self, morefs: Sequence[str], action: str) -> list[VCenterError | None]:
        return self._power.power(morefs, action)

    def vm_tasks(self, morefs: Sequence[str], task: VmTask) -> list[VCenterError | None]:
        return self._power.vm_tasks(morefs, task)

    def set_attributes(self, moref: str, values: Mapping[str, str]) -> None:
        """Set custom attributes on one VM (defining any vCenter lacks): one SetField each."""
        self._attributes.set(moref, values)

    def shut_down(self, parent: str, timeout_s: float = 300.0) -> None:
        self._power.shut_down(parent, timeout_s)

    def customization_outcomes(
        self, morefs: Collection[str], since: datetime
    ) -> dict[str, CustomizationOutcome]:
        return self._customization.outcomes(morefs, since)

    def wait_for_customization(
        self, morefs: Sequence[str], since: datetime, timeout_s: float, poll_s: float = 2.0
    ) -> dict[str, CustomizationOutcome]:
        return self._customization.wait(morefs, since, timeout_s, poll_s)

    def ensure_drs_confinement(
        self, cluster: Any, prefix: str, vm_morefs: Sequence[str], host_morefs: Sequence[str]
    ) -> None:
        self._confinement.ensure(cluster, prefix, vm_morefs, host_morefs)
