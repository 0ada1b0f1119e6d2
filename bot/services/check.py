"""`clones check`: a pre-flight of the whole configuration against vCenter that changes nothing.

It checks, in order, and reports one finding per line with its fix:
- the connection: TLS (with the real reason when it fails), the login, vCenter's version;
- the datacenter;
- for each type: its parent, the parent's disks and base snapshot, folder, resource pool,
  datastore, network, customization spec, the host limit for a shared base disk, and the
  datastore's room for the type's clones;
- the service account's privileges on every object the types use (one query, see
  `bot.services.preflight.PRIVILEGES`).
The report is `ok` (exit 0 in the terminal) only when nothing is a problem. A deployment runs
the cheap part of it first (`Preflight.before_deploy`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from bot.domain.errors import ClonesError, VCenterUnreachable
from bot.domain.savings import GIB
from bot.domain.vsphere import CLONE_ATTRIBUTES, PROVENANCE_ATTRIBUTES, Entity, ParentReport
from bot.services.placements import Groups
from bot.services.preflight import Finding, Needs, Preflight, TypeEntities
from bot.services.usecases import UseCases
from bot.settings import TypeSettings


@dataclass(frozen=True)
class CheckReport:
    findings: list[Finding]

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "problem"]

    @property
    def ok(self) -> bool:
        return not self.problems


class Checker:
    def __init__(self, service: UseCases) -> None:
        self.use_cases = service
        self.settings = service.settings
        self.vcenter = service.vcenter
        self.preflight = Preflight(service.settings, service.vcenter)
        self._groups = Groups()

    def run(self) -> CheckReport:
        findings: list[Finding] = []
        self._groups = Groups()  # each type's host group counts the groups of those before it
        try:
            self._run(findings)
        except VCenterUnreachable as exc:  # lost mid-check: what is known so far is the report
            findings.append(Finding("problem", "connection", str(exc)))
        return CheckReport(findings)

    def _run(self, findings: list[Finding]) -> None:
        try:
            endpoint = self.vcenter.endpoint()
        except ClonesError as exc:  # TLS (with its reason), login, unreachable, config
            findings.append(Finding("problem", "connection", str(exc)))
            return
        findings.append(
            Finding(
                "ok",
                "connection",
                f"{endpoint.product or 'vCenter'} (API {endpoint.api_version or '?'}) at "
                f"{endpoint.url}, logged in as {endpoint.user}; TLS {endpoint.trust}.",
            )
        )
        if endpoint.url.startswith("http:") or self.settings.vcenter.insecure:
            findings.append(
                Finding(
                    "note",
                    "tls",
                    "vCenter's certificate is not verified (fine for the lab vCenter only).",
                    "Set [vcenter] ca_file to vCenter's CA, or pin the certificate with "
                    'thumbprint = "SHA256:..." (`clones thumbprint`), and drop insecure.',
                )
            )
        findings.append(self._guard("datacenter", self._datacenter))
        if findings[-1].level == "problem":
            return
        typed = [self._check_type(t, findings) for t in self.settings.types.values()]
        attributes = list(CLONE_ATTRIBUTES)
        if self.settings.provenance_attributes:
            attributes += PROVENANCE_ATTRIBUTES
        for t in self.settings.types.values():
            attributes += [k for k in t.attributes if k not in attributes]
        try:
            findings += self.preflight.privilege_findings(typed, attributes=attributes)
        except VCenterUnreachable:
            raise
        except ClonesError as exc:
            findings.append(
                Finding(
                    "problem",
                    "privileges",
                    f"vCenter did not say which privileges the service account holds ({exc}).",
                    "Give the account System.View at the vCenter root (the Read-only role) so "
                    "the bot can check the others (vCenter 6.5 or later answers this query).",
                )
            )

    # ----------------------------------------------------------------- steps
    def _guard(self, subject: str, step: Callable[[], Finding]) -> Finding:
        """Run one step; a failure becomes its problem (a lost vCenter ends the check)."""
        try:
            result = step()
        except VCenterUnreachable:
            raise
        except ClonesError as exc:
            return Finding("problem", subject, str(exc))
        return result

    def _datacenter(self) -> Finding:
        name = self.vcenter.datacenter_name()
        return Finding("ok", "datacenter", f"Datacenter {name}.")

    def _check_type(self, t: TypeSettings, findings: list[Finding]) -> tuple[TypeEntities, Needs]:
        """Parent, disks, snapshot, network, folder, pool, datastore, customization spec, hosts
        and capacity of one type; what it uses and needs, for the privilege check."""
        found = TypeEntities(t)
        report = self._parent(t, found, findings)
        findings += self.preflight.places(t, found)
        if t.customization_spec:
            findings.append(self._guard(f"{t.name} customization", partial(self._spec, t)))
        confine = self._hosts(t, found, findings)
        findings.append(self._guard(f"{t.name} capacity", partial(self._capacity, t)))
        snapshot = report is not None and not report.snapshots_named
        return found, Needs(snapshot=snapshot, confine=confine)

    def _spec(self, t: TypeSettings) -> Finding:
        spec = t.customization_spec
        if self.vcenter.customization_spec_exists(spec or ""):
            return Finding("ok", f"{t.name} customization", f'Customization spec "{spec}" found.')
        return Finding(
            "problem",
            f"{t.name} customization",
            f'Customization spec "{spec}" does not exist in vCenter.',
            "Create it (Policies and Profiles, VM Customization Specifications) or fix "
            f"[types.{t.name}] customization_spec.",
        )

    def _parent(
        self, t: TypeSettings, found: TypeEntities, findings: list[Finding]
    ) -> ParentReport | None:
        subject = f"{t.name} parent"
        try:
            report = self.vcenter.parent_report(t.parent, t.snapshot)
            found.parent = self.vcenter.parent_entity(t.parent)
        except VCenterUnreachable:
            raise
        except ClonesError as exc:
            findings.append(Finding("problem", subject, str(exc)))
            return None
        used = report.used_bytes / GIB
        size = sum(d.capacity_bytes for d in report.disks) / GIB
        state = "powered on" if report.powered_on else "powered off"
        findings.append(
            Finding(
                "ok",
                subject,
                f"Parent {t.parent} ({report.moref}), {state}, {len(report.disks)} disk(s), "
                f"{used:.2f} GB used of {size:.2f} GB.",
            )
        )
        findings += _disk_findings(t, report)
        findings.append(_snapshot_finding(t, report))
        try:
            findings += self.preflight.networks(t, found)
        except VCenterUnreachable:
            raise
        except ClonesError as exc:
            findings.append(Finding("problem", f"{t.name} network", str(exc)))
        return report

    def _hosts(self, t: TypeSettings, found: TypeEntities, findings: list[Finding]) -> bool:
        """The host limit for one shared base disk; True when clones are confined by DRS."""
        subject = f"{t.name} hosts"
        limit = self.settings.max_hosts_per_base_disk
        try:
            placement = self.use_cases.placements.placement_for(t, groups=self._groups)
        except VCenterUnreachable:
            raise
        except ClonesError as exc:
            fix = "" if "max_hosts_per_base_disk" in str(exc) else f"Check [types.{t.name}]."
            findings.append(Finding("problem", subject, str(exc), fix))
            return False
        hosts = placement.hosts
        usable = [h for h in hosts if h.usable]
        if not hosts:
            findings.append(Finding("ok", subject, "Standalone host: no host limit applies."))
            return False
        if not usable:
            findings.append(
                Finding(
                    "problem",
                    subject,
                    f"None of the {len(hosts)} hosts of the cluster is usable (connected and "
                    "not in maintenance mode).",
                    "Bring a host out of maintenance mode or reconnect it.",
                )
            )
            return False
        if placement.group:
            found.cluster = self._cluster(t)
            names = {h.moref: h.name for h in hosts}
            group = ", ".join(sorted(names.get(m, m) for m in placement.group))
            findings.append(
                Finding(
                    "ok",
                    subject,
                    f"{len(hosts)} hosts, more than the {limit} that may share a base disk: "
                    f"clones of {t.parent} go to a DRS host group of {len(placement.group)}: "
                    f"{group}.",
                )
            )
            return True
        findings.append(
            Finding(
                "ok",
                subject,
                f"{len(usable)} usable of {len(hosts)} hosts, within the limit of {limit} per "
                "base disk.",
            )
        )
        return False

    def _cluster(self, t: TypeSettings) -> Entity | None:
        try:
            return self.vcenter.cluster_entity(t.resource_pool)
        except VCenterUnreachable:
            raise
        except ClonesError:
            return None

    def _capacity(self, t: TypeSettings) -> Finding:
        subject = f"{t.name} capacity"
        free = self.vcenter.datastore_free_bytes(t.datastore)
        headroom = int(self.settings.capacity_headroom_gb * GIB)
        delta = self.use_cases.deployer.delta_basis(t)
        per_clone = max(delta.bytes, 1)
        room = max(0, (free - headroom) // per_clone)
        text = (
            f"Datastore {t.datastore} has {free / GIB:.2f} GB free: room for about {room} "
            f"clones of {per_clone / GIB:.2f} GB ({delta.source}) after {headroom / GIB:.2f} GB "
            f"headroom (max_count {t.max_count})."
        )
        if room < 1:
            return Finding(
                "problem",
                subject,
                text,
                "Free space on the datastore, choose another one, or lower capacity_headroom_gb.",
            )
        if room < t.max_count:
            return Finding(
                "note", subject, text, "Deployments larger than that will be refused up front."
            )
        return Finding("ok", subject, text)


def _disk_findings(t: TypeSettings, report: ParentReport) -> list[Finding]:
    subject = f"{t.name} parent disks"
    if not report.disks:
        return [
            Finding("problem", subject, f"Parent {t.parent} has no virtual disk.", "Give it one.")
        ]
    out = []
    for d in report.disks:
        if d.mode.startswith("independent"):
            out.append(
                Finding(
                    "problem",
                    subject,
                    f"{d.label} of {t.parent} is {d.mode}: independent disks cannot be "
                    "snapshotted, so they block linked clones.",
                    "Make the parent's disk dependent (persistent); set disk_mode on the type "
                    "for the clones instead.",
                )
            )
    return out


def _snapshot_finding(t: TypeSettings, report: ParentReport) -> Finding:
    subject = f"{t.name} snapshot"
    if report.snapshots_named:
        return Finding("ok", subject, f'Base snapshot "{t.snapshot}" is in place.')
    if report.powered_on:
        return Finding(
            "problem",
            subject,
            f'Parent {t.parent} is powered on and has no base snapshot "{t.snapshot}".',
            f'Shut it down cleanly, or run "prepare {t.name} power-off"; the bot snapshots a '
            "parent only while it is powered off.",
        )
    return Finding(
        "note",
        subject,
        f'Parent {t.parent} has no base snapshot "{t.snapshot}" yet.',
        f'The first deployment creates it; "prepare {t.name}" creates it now.',
    )
