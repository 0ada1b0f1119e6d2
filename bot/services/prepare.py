"""`prepare TYPE`: check a type's parent (power, disks, base snapshot) and make the base snapshot
once, while the parent is powered off; never a second one, never removed or reverted."""

from __future__ import annotations

from dataclasses import dataclass

from bot.domain import grammar
from bot.domain.savings import GIB
from bot.domain.vsphere import ParentReport
from bot.services.core import Core


@dataclass(frozen=True)
class Finding:
    level: str  # "ok", "advice", "problem", "done"
    text: str


@dataclass(frozen=True)
class PrepareReport:
    type: str
    parent: str
    ready: bool
    findings: list[Finding]
    used_bytes: int
    provisioned_bytes: int


class Preparer:
    """Prepares parents for cloning."""

    def __init__(self, core: Core) -> None:
        self.settings, self.repo, self.vcenter = core.settings, core.repo, core.vcenter

    def prepare(
        self, command: grammar.Prepare, *, actor: str, source: str = "cli"
    ) -> PrepareReport:
        t = self.settings.type(command.type)
        report = self.vcenter.parent_report(t.parent, t.snapshot)
        findings: list[Finding] = []
        if report.powered_on and command.power_off:
            self.vcenter.shut_down(t.parent)
            findings.append(Finding("done", f"{t.parent} was shut down."))
            report = self.vcenter.parent_report(t.parent, t.snapshot)
        findings += _disk_findings(report)
        blocked = any(f.level == "problem" for f in findings)
        if report.snapshots_named > 1:
            findings.append(
                Finding(
                    "advice",
                    f'{t.parent} has {report.snapshots_named} snapshots named "{t.snapshot}"; '
                    "clones use the newest. Remove an older one only when no clones depend on it.",
                )
            )
        if report.snapshots_named:
            findings.append(Finding("ok", f'Base snapshot "{t.snapshot}" is in place.'))
        elif report.powered_on:
            blocked = True
            findings.append(
                Finding(
                    "problem",
                    f'{t.parent} is powered on and has no base snapshot "{t.snapshot}". Shut it '
                    f'down cleanly, or run "prepare {t.name} power-off".',
                )
            )
        elif not blocked:
            self.vcenter.ensure_base_snapshot(t.parent, t.snapshot)
            findings.append(Finding("done", f'Created base snapshot "{t.snapshot}" of {t.parent}.'))
            report = self.vcenter.parent_report(t.parent, t.snapshot)
        provisioned = sum(d.capacity_bytes for d in report.disks)
        self.repo.audit(
            actor=actor,
            source=source,
            command=f"prepare {t.name}" + (" power-off" if command.power_off else ""),
            result="ok" if not blocked else "blocked",
            detail="; ".join(f.text for f in findings)[:2000],
        )
        return PrepareReport(
            type=t.name,
            parent=t.parent,
            ready=not blocked and report.snapshots_named > 0,
            findings=findings,
            used_bytes=report.used_bytes,
            provisioned_bytes=provisioned,
        )


def _disk_findings(report: ParentReport) -> list[Finding]:
    findings: list[Finding] = []
    if not report.disks:
        findings.append(Finding("problem", f"{report.name} has no virtual disk to clone."))
    for d in report.disks:
        size = d.capacity_bytes / GIB
        if d.mode.startswith("independent"):
            findings.append(
                Finding(
                    "problem",
                    f"{d.label} of {report.name} is {d.mode}: independent disks cannot be "
                    "snapshotted, so they block linked clones. Set the parent's disk to "
                    "dependent (persistent); the bot sets the clones' disk mode after cloning.",
                )
            )
        if not d.thin:
            findings.append(
                Finding(
                    "advice",
                    f"{d.label} of {report.name} is thick ({size:.2f} GB provisioned). Converting "
                    "the parent to thin (Storage vMotion) after zeroing free space (SDelete) "
                    "shrinks the base disk every clone shares.",
                )
            )
    if report.disks and not any(f.level == "problem" for f in findings):
        findings.insert(
            0,
            Finding(
                "ok",
                f"{report.name}: {len(report.disks)} disk(s), "
                f"{report.used_bytes / GIB:.2f} GB used of "
                f"{sum(d.capacity_bytes for d in report.disks) / GIB:.2f} GB provisioned.",
            ),
        )
    return findings
