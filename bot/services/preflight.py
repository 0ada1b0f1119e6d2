"""What the service account needs in vCenter, and the checks that find what is missing.

`PRIVILEGES` lists, by feature, the vSphere privileges the bot uses and the entity each one is
checked on (docs/vcenter.md shows the same table, and a test keeps the two in step). `Preflight`
looks up a type's folder, resource pool and datastore and asks vCenter which privileges the
session's user holds on them (one FetchUserPrivilegeOnEntities call); `clones check` reports
everything it finds, and a deployment runs the same checks first and stops before it changes
anything when one fails (a missing VM folder used to fail every clone, one after another).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from bot.domain.errors import ClonesError, NotFoundError, VCenterError, VCenterUnreachable
from bot.domain.vsphere import Entity
from bot.ports import VCenter
from bot.settings import Settings, TypeSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Privilege:
    feature: str  # what the bot does with it
    entity: str  # where it is checked: parent, folder, pool, datastore, network, cluster, root
    id: str  # the vSphere privilege id
    when: str = ""  # empty: always needed; else the condition, in words


PRIVILEGES: tuple[Privilege, ...] = (
    Privilege("read", "every entity below", "System.Read"),
    Privilege("clone", "parent", "VirtualMachine.Provisioning.Clone"),
    Privilege("clone", "folder", "VirtualMachine.Inventory.CreateFromExisting"),
    Privilege("clone", "pool", "Resource.AssignVMToPool"),
    Privilege("clone", "datastore", "Datastore.AllocateSpace"),
    Privilege("clone", "network", "Network.Assign"),
    Privilege(
        "snapshot", "parent", "VirtualMachine.State.CreateSnapshot", "the base snapshot is missing"
    ),
    Privilege(
        "custom attributes",
        "root",
        "Global.ManageCustomFields",
        "an attribute is not defined yet",
    ),
    Privilege("custom attributes", "folder", "Global.SetCustomField"),
    Privilege("notes", "folder", "VirtualMachine.Config.Annotation"),
    Privilege("disk mode", "folder", "VirtualMachine.Config.EditDevice", "the type sets disk_mode"),
    Privilege("power", "folder", "VirtualMachine.Interact.PowerOn"),
    Privilege("power", "folder", "VirtualMachine.Interact.PowerOff"),
    Privilege("power", "folder", "VirtualMachine.Interact.Reset"),
    Privilege(
        "customization",
        "parent",
        "VirtualMachine.Provisioning.Customize",
        "the type names a customization_spec",
    ),
    Privilege(
        "customization",
        "root",
        "VirtualMachine.Provisioning.ReadCustSpecs",
        "the type names a customization_spec",
    ),
    Privilege(
        "DRS groups and rules",
        "cluster",
        "Host.Inventory.EditCluster",
        "the cluster has more hosts than max_hosts_per_base_disk and confine_hosts is on",
    ),
    Privilege("destroy", "folder", "VirtualMachine.Inventory.Delete"),
)


def _applies(p: Privilege, t: TypeSettings, needs: Needs) -> bool:
    """Whether a conditional privilege applies to this type now."""
    return {
        "snapshot": needs.snapshot,
        "disk mode": bool(t.disk_mode),
        "customization": bool(t.customization_spec),
        "DRS groups and rules": needs.confine,
    }.get(p.feature, True)


def _deploy_uses(p: Privilege, needs: Needs) -> bool:
    """What a deployment uses: all but the power features it does not need. Power off and
    destroy are in: its clones must be removable (a full copy is removed at once)."""
    if p.feature != "power":
        return True
    return p.id.endswith(".PowerOff") or (needs.power_on and p.id.endswith(".PowerOn"))


@dataclass(frozen=True)
class Finding:
    """One line of `clones check`: what was found, and for anything wrong, the fix."""

    level: str  # "ok", "note" (works, but worth knowing) or "problem"
    subject: str  # "connection", "capture folder", ...
    text: str
    fix: str = ""


@dataclass
class TypeEntities:
    """The inventory objects one type uses, as far as they were found."""

    type: TypeSettings
    parent: Entity | None = None
    places: dict[str, Entity] = field(default_factory=dict)  # folder, pool, datastore
    networks: list[Entity] = field(default_factory=list)
    cluster: Entity | None = None


@dataclass(frozen=True)
class Needs:
    """Which conditional features apply to one type right now."""

    snapshot: bool = False  # its base snapshot must be created
    confine: bool = False  # its clones are kept on a DRS host group
    power_on: bool = False


PLACE_KINDS = (("folder", "folder"), ("pool", "resource_pool"), ("datastore", "datastore"))
PLACE_FIX = {
    "folder": "Create the VM folder (VMs and Templates view, New Folder) or fix {key}",
    "pool": "Name an existing cluster (or cluster/Resources/pool) in {key}",
    "datastore": "Name an existing datastore in {key}",
}
PLACE_WORDS = {"folder": "VM folder", "pool": "Resource pool", "datastore": "Datastore"}


class Preflight:
    def __init__(self, settings: Settings, vcenter: VCenter) -> None:
        self.settings = settings
        self.vcenter = vcenter

    # ----------------------------------------------------------------- lookups
    def places(self, t: TypeSettings, found: TypeEntities) -> list[Finding]:
        """Look up the type's folder, resource pool and datastore; a finding for each."""
        findings = []
        for kind, key in PLACE_KINDS:
            path = str(getattr(t, key))
            where = f"[types.{t.name}] {key}"
            try:
                entity = self.vcenter.entity(kind, path)
            except NotFoundError:
                dc = self._datacenter_name()
                findings.append(
                    Finding(
                        "problem",
                        f"{t.name} {kind}",
                        f'{PLACE_WORDS[kind]} "{path}" not found in datacenter {dc}.',
                        PLACE_FIX[kind].format(key=where) + ".",
                    )
                )
                continue
            found.places[kind] = entity
            findings.append(
                Finding("ok", f"{t.name} {kind}", f'{PLACE_WORDS[kind]} "{path}" found.')
            )
        return findings

    def networks(self, t: TypeSettings, found: TypeEntities) -> list[Finding]:
        infos, dangling = self.vcenter.parent_networks(t.parent)
        findings = []
        found.networks = [i.entity() for i in infos]
        for n in infos:
            if not n.accessible:
                findings.append(
                    Finding(
                        "problem",
                        f"{t.name} network",
                        f'Network "{n.name}" of parent {t.parent} is not accessible.',
                        "Check the port group on the cluster's hosts (or the distributed switch), "
                        "or move the parent's NIC to a network that is.",
                    )
                )
        for label in dangling:
            findings.append(
                Finding(
                    "problem",
                    f"{t.name} network",
                    f"{label} of parent {t.parent} is on a network vCenter does not know.",
                    "Connect the parent's NIC to an existing port group, then snapshot it again.",
                )
            )
        if not findings:
            names = ", ".join(f'"{n.name}"' for n in infos) or "no network"
            findings.append(Finding("ok", f"{t.name} network", f"Parent {t.parent} uses {names}."))
        return findings

    def _datacenter_name(self) -> str:
        try:
            return self.vcenter.datacenter_name()
        except ClonesError:
            return "(none)"

    # ----------------------------------------------------------------- privileges
    def required(self, t: TypeSettings, needs: Needs, *, deploy: bool = False) -> list[Privilege]:
        """The privileges one type needs on its own objects now (conditions applied); with
        `deploy`, only those a deployment itself uses."""
        return [
            p
            for p in PRIVILEGES
            if p.entity not in ("every entity below", "root")  # added per entity / globally
            and _applies(p, t, needs)
            and (not deploy or _deploy_uses(p, needs))
        ]

    # Kept whole: one pass over the privileges, type by type, each finding with its fix.
    def privilege_findings(
        self,
        types: Sequence[tuple[TypeEntities, Needs]],
        *,
        deploy: bool = False,
        attributes: Sequence[str] = (),
    ) -> list[Finding]:
        """Ask vCenter once which privileges the user holds on every entity the types use;
        one problem per entity that lacks some, naming them and their features."""
        wanted: dict[str, tuple[Entity, dict[str, str]]] = {}  # moref -> entity, priv -> feature

        def need(entity: Entity | None, privilege: str, feature: str) -> None:
            if entity is None:
                return
            slot = wanted.setdefault(entity.moref, (entity, {}))
            slot[1].setdefault("System.Read", "read")
            slot[1].setdefault(privilege, feature)

        uses_specs = False
        for found, needs in types:
            t = found.type
            uses_specs = uses_specs or bool(t.customization_spec)
            for p in self.required(t, needs, deploy=deploy):
                if p.entity == "parent":
                    need(found.parent, p.id, p.feature)
                elif p.entity in found.places:
                    need(found.places[p.entity], p.id, p.feature)
                elif p.entity == "network":
                    for n in found.networks:
                        need(n, p.id, p.feature)
                elif p.entity == "cluster":
                    need(found.cluster, p.id, p.feature)
        root = self.vcenter.root_entity()
        if attributes and self.vcenter.missing_attribute_definitions(attributes):
            need(root, "Global.ManageCustomFields", "custom attributes")
        if uses_specs:
            need(root, "VirtualMachine.Provisioning.ReadCustSpecs", "customization")
        if not wanted:
            return []
        held = self.vcenter.privileges([e for e, _ in wanted.values()])
        findings = []
        for moref, (entity, privileges) in wanted.items():
            have = held.get(moref, frozenset())
            missing = sorted(p for p in privileges if p not in have)
            if not missing:
                continue
            features_missing = sorted({privileges[p] for p in missing})
            findings.append(
                Finding(
                    "problem",
                    f"privileges on {entity.kind} {entity.name}",
                    f"The service account lacks {', '.join(missing)} on {_entity_words(entity)} "
                    f"(needed for {', '.join(features_missing)}).",
                    "Add them to the account's role, assigned on this object or above it with "
                    "Propagate to children (docs/vcenter.md has the role recipe).",
                )
            )
        if not findings:
            findings.append(
                Finding(
                    "ok",
                    "privileges",
                    f"The service account holds every privilege needed on {len(wanted)} objects.",
                )
            )
        return findings

    # ----------------------------------------------------------------- deploy
    def before_deploy(
        self,
        types: Sequence[tuple[TypeSettings, Needs]],
        attributes: Sequence[str],
    ) -> None:
        """The cheap part of `clones check`, run before a deployment changes anything: the
        types' folders, pools and datastores exist, and the account may do what the deployment
        does. Raises NotFoundError or VCenterError listing every problem found."""
        problems: list[Finding] = []
        found_all: list[tuple[TypeEntities, Needs]] = []
        networks = self.vcenter.networks_of(sorted({t.parent for t, _ in types}))
        for t, needs in types:
            found = TypeEntities(t, parent=self.vcenter.parent_entity(t.parent))
            try:  # the lookups cloning uses (cached): one set for types that share them
                found.places = self.vcenter.placement_entities(
                    t.folder, t.resource_pool, t.datastore
                )
            except NotFoundError:  # say which one is missing
                problems += [f for f in self.places(t, found) if f.level == "problem"]
            found.networks = networks.get(t.parent, [])
            if needs.confine:
                found.cluster = self.vcenter.cluster_entity(t.resource_pool)
            found_all.append((found, needs))
        if problems:
            raise NotFoundError(_sentences(problems))
        try:
            problems = [
                f
                for f in self.privilege_findings(found_all, deploy=True, attributes=attributes)
                if f.level == "problem"
            ]
        except VCenterUnreachable:
            raise
        except VCenterError as exc:  # the query itself was refused: do not block on it
            log.warning("could not check the service account's privileges: %s", exc)
            return
        if problems:
            raise VCenterError(_sentences(problems) + " Nothing was created.")


def _entity_words(entity: Entity) -> str:
    words = {
        "vm": "VM",
        "folder": "VM folder",
        "pool": "resource pool",
        "datastore": "datastore",
        "cluster": "cluster",
        "network": "network",
        "root": "the vCenter root",
    }
    if entity.kind == "root":
        return "the vCenter root folder"
    return f'{words.get(entity.kind, entity.kind)} "{entity.name}"'


def _sentences(findings: Sequence[Finding]) -> str:
    return " ".join(f"{f.text} Fix: {f.fix}" for f in findings)
