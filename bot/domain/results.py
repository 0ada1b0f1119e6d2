"""What the services hand back to the front ends: progress events and the results of a
deployment, a strip back and a status read. Plain records of domain types."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from bot.domain.models import Clone, CloneState, Environment, RunState
from bot.domain.savings import GIB, Savings

# Records of clones that did not come to be, or vanished: shown with their errors until a strip
# back clears them (destroying a VM left of one, when provably the bot's).
FAILURE_STATES = (CloneState.FAILED, CloneState.MISSING)

EventKind = Literal[
    "started",
    "clone_ready",
    "clone_failed",
    "clone_retry",
    "clone_powered_on",  # a deployment that powers on: this clone is on
    "clone_customized",  # ...and its guest customization ended (`message`: why it failed)
    "waiting",  # queued behind other runs for vCenter capacity, or no longer (`waiting`)
    "finished",
]


@dataclass(frozen=True)
class ProgressLabel:
    """What a run's progress events say it does, in the words the front ends show: "Deploying"
    (`doing`), the "deployment" (`run`) "into" (`where`) an environment, a clone "ready" when
    done (`done`). A new bulk operation reports progress with a label of its own: no new kind of
    run, no new renderer."""

    doing: str
    run: str
    where: str
    done: str

    @property
    def what(self) -> str:
        """The run before its environment's name: "deployment into", "strip back of"."""
        return f"{self.run} {self.where}"


DEPLOYING = ProgressLabel("Deploying", "deployment", "into", "ready")
STRIPPING_BACK = ProgressLabel("Stripping back", "strip back", "of", "destroyed")
REFRESHING = ProgressLabel("Refreshing", "refresh", "of", "refreshed")
SNAPSHOTTING = ProgressLabel("Snapshotting", "snapshot", "of", "snapshotted")


@dataclass(frozen=True)
class ProgressEvent:
    """One step of a deployment or strip back, for a front end to render.

    `done` and `failed` count clones made (or destroyed); a deployment that powers its clones on
    also counts them powered on (`powered_on`) and, when its types customize, customized
    (`customized`, `customization_failed`); those are None for a run without that stage. A
    resumed deployment counts the clones made before the crash in `made_before` (its stages
    count the whole lab; `done` and `total` only what this run makes). `waiting` says, while
    the run is queued behind other runs for vCenter capacity, that it is and why.
    """

    kind: EventKind
    run_id: int
    environment: str
    label: ProgressLabel
    total: int
    done: int
    failed: int
    elapsed_s: float
    eta_s: float | None = None
    clone: str | None = None
    message: str = ""
    powered_on: int | None = None
    customized: int | None = None
    customization_failed: int = 0
    made_before: int = 0
    waiting: str = ""

    @property
    def remaining(self) -> int:
        return self.total - self.done - self.failed

    @property
    def stages_text(self) -> str:
        """ "cloned 40 · powered on 32 · customized 10" for a deployment that powers its clones
        on (and customizes them), as both front ends show it; "" for any other run."""
        if self.powered_on is None:
            return ""
        parts = [f"cloned {self.made_before + self.done}", f"powered on {self.powered_on}"]
        if self.customized is not None:
            customized = f"customized {self.customized}"
            if self.customization_failed:
                customized += f" ({self.customization_failed} failed)"
            parts.append(customized)
        return " · ".join(parts)


@dataclass(frozen=True)
class FailedClone:
    name: str
    type: str
    error: str


@dataclass(frozen=True)
class DeployResult:
    run_id: int
    environment: str
    requested: int
    ready: list[str]
    failed: list[FailedClone]
    elapsed_s: float
    state: RunState
    savings: Savings | None = None
    message: str = ""
    # not finished when vCenter went away (planned, or mid-clone): "resume" finishes them
    interrupted: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class TeardownPlan:
    """What a strip back would destroy, shown before the user confirms."""

    environment: str
    by_type: dict[str, int]
    clones: int
    reclaim_bytes: int
    failed_records: int = 0  # failed or missing records it clears (or destroys a VM left of)

    @property
    def reclaim_gb(self) -> float:
        return round(self.reclaim_bytes / GIB, 2)


@dataclass(frozen=True)
class TeardownResult:
    run_id: int
    environment: str
    destroyed: list[str]
    already_gone: list[str]
    skipped: list[FailedClone]  # recorded but not verifiably ours in vCenter: left untouched
    failed: list[FailedClone]
    reclaimed_bytes: int
    elapsed_s: float
    state: RunState
    renamed: dict[str, str] = field(default_factory=dict)  # recorded name -> name in vCenter
    message: str = ""
    # Failed or missing records with no VM in vCenter: cleared (recorded destroyed). One whose
    # VM was there, provably the bot's, was destroyed and is in `destroyed`.
    cleared: list[str] = field(default_factory=list)
    # vCenter would not show them (NoPermission, ...): left recorded as they were, not gone
    unseen: list[FailedClone] = field(default_factory=list)

    @property
    def reclaimed_gb(self) -> float:
        return round(self.reclaimed_bytes / GIB, 2)


@dataclass(frozen=True)
class Drift:
    """How vCenter differs from one clone's record (found by its recorded moref)."""

    missing: bool = False  # vCenter has no such VM
    renamed_to: str = ""  # its name in vCenter, when someone renamed it
    power: str = ""  # "on" / "off": its power state in vCenter, when the record says otherwise
    relabelled: tuple[str, ...] = ()  # e.g. "Environment is 'other'"
    # vCenter would not show it: "cannot see VM X: NoPermission, privilege System.Read"
    unseen: str = ""

    @property
    def text(self) -> str:
        if self.unseen:
            return self.unseen
        if self.missing:
            return "missing from vCenter"
        parts = []
        if self.renamed_to:
            parts.append(f"renamed to {self.renamed_to}")
        if self.power:
            parts.append(f"powered {self.power} outside the bot")
        parts += [f"relabelled: {label}" for label in self.relabelled]
        return "; ".join(parts)


@dataclass(frozen=True)
class EnvironmentStatus:
    environment: Environment
    by_type: dict[str, dict[str, int]]  # type -> state -> count
    clones: list[Clone] = field(default_factory=list)
    # parent -> the hosts its live clones in this environment run on (names where known)
    hosts_by_parent: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # One environment's status is compared with vCenter: clone id -> how it differs there.
    drift: dict[int, Drift] = field(default_factory=dict)
    checked: bool = False  # compared with vCenter just now
    unchecked: str = ""  # why it could not be compared (vCenter unreachable, ...)
    # One environment's status: clone id -> the trainee (Slack user ID) who holds it.
    assigned: dict[int, str] = field(default_factory=dict)

    # The environments list: its clones that failed or went missing, with why (not cleared
    # yet: a strip back clears the records of those with no VM left).
    failures: tuple[FailedClone, ...] = ()

    @property
    def live(self) -> int:
        return sum(
            n for states in self.by_type.values() for s, n in states.items() if CloneState(s).live
        )

    @property
    def failed(self) -> int:
        """Its clones recorded as failed or missing (records a strip back clears)."""
        return sum(
            n
            for states in self.by_type.values()
            for s, n in states.items()
            if CloneState(s) in FAILURE_STATES
        )


@dataclass(frozen=True)
class CapacityNeed:
    datastore: str
    free_bytes: int
    needed_bytes: int  # deltas plus swap
    swap_bytes: int
    headroom_bytes: int

    @property
    def fits(self) -> bool:
        return self.free_bytes >= self.needed_bytes + self.headroom_bytes


@dataclass(frozen=True)
class DatabaseCopied:
    """`db copy`: what was copied from a SQLite file into a PostgreSQL database, table by
    table (name, rows), in the order written."""

    source: str
    target: str  # the URL, without a password
    tables: tuple[tuple[str, int], ...]

    @property
    def rows(self) -> int:
        return sum(n for _, n in self.tables)
