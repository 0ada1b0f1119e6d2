"""The ports: what the services need from the world, as interfaces (typing.Protocol).

The services are written against these and nothing else; `bot.bootstrap` hands them the
adapters that implement them (pyVmomi's vCenter, SQLite, APScheduler, matplotlib, Slack or the
terminal), and the unit tests hand them in-memory fakes (tests/fakes.py). Only the domain is
imported here.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from bot.domain.capacity import ClonePeak
from bot.domain.errors import VCenterError
from bot.domain.history import EnvironmentHistory, Pruned
from bot.domain.lab import LabEndpoint
from bot.domain.models import (
    KEEP,
    Assignment,
    AuditEntry,
    Clone,
    CloneState,
    Confirmation,
    Environment,
    Fence,
    Keep,
    Lease,
    ParentFacts,
    Run,
    RunKind,
    RunMessage,
    RunState,
    ScheduleRecord,
)
from bot.domain.results import DatabaseCopied, FailedClone, ProgressEvent
from bot.domain.savings import Savings
from bot.domain.trainees import DirectMessage, Person
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

if TYPE_CHECKING:
    from bot.certificates import Inspection  # ssl: imported by the commands that inspect

# ------------------------------------------------------------------------------------ time


class Clock(Protocol):
    """Now, as an aware datetime (tests move it by hand)."""

    def __call__(self) -> datetime: ...


ProgressCallback = Callable[[ProgressEvent], None]


# ------------------------------------------------------------------------------------ vCenter


class Inventory(Protocol):
    """Reading vCenter: parents, VMs, placement entities, privileges (no change is made)."""

    def connect(self) -> None: ...
    def endpoint(self) -> Endpoint: ...
    def datacenter_name(self) -> str: ...
    def parent_facts(self, parent: str, snapshot: str) -> ParentFacts: ...
    def parent_report(self, parent: str, snapshot: str) -> ParentReport: ...
    def parent_entity(self, parent: str) -> Entity: ...
    def parent_networks(self, parent: str) -> tuple[list[NetworkInfo], list[str]]: ...
    def networks_of(self, parents: Sequence[str]) -> dict[str, list[Entity]]: ...
    # Reads of VMs answer each VM seen, gone or unseen (`VmReading.visibility`): a VM vCenter
    # would not show (NoPermission, an ended session) is unseen, never gone.
    def find_vms(self, folder: str | None = None) -> VmReading[VmFacts]: ...
    def vm_facts(self, morefs: Sequence[str]) -> VmReading[VmFacts]: ...
    def vm_by_instance_uuid(self, instance_uuid: str) -> VmFacts | None: ...
    def sightings(
        self, morefs: Sequence[str] | None = None, *, also: Collection[str] = ()
    ) -> VmReading[VmSighting]: ...
    def instance_uuids(self, morefs: Sequence[str]) -> VmReading[str]: ...
    def datastore_free_bytes(self, datastore: str) -> int: ...
    def customization_spec_exists(self, spec_name: str) -> bool: ...
    def cluster_hosts(self, resource_pool: str) -> tuple[Any, list[HostInfo]]: ...
    def cluster_entity(self, resource_pool: str) -> Entity | None: ...
    def drs_confinement(self, cluster: Any, prefix: str) -> tuple[list[str], list[str], bool]: ...
    def entity(self, kind: str, path: str) -> Entity: ...
    def root_entity(self) -> Entity: ...
    def placement_entities(
        self, folder: str, resource_pool: str, datastore: str
    ) -> dict[str, Entity]: ...
    def privileges(self, entities: Sequence[Entity]) -> dict[str, frozenset[str]]: ...
    def missing_attribute_definitions(self, names: Iterable[str]) -> list[str]: ...


class Provisioning(Protocol):
    """Changing vCenter: snapshots, clones, attributes, power, DRS rules, destroy."""

    def ensure_base_snapshot(self, parent: str, snapshot: str, *, create: bool = True) -> str: ...
    def forget_snapshots(self) -> None: ...
    def ensure_attribute_definitions(self, names: Iterable[str] = CLONE_ATTRIBUTES) -> None: ...
    def clone(self, req: CloneRequest, *, finish: bool = True) -> VmFacts: ...
    def finish_clone(self, facts: VmFacts, req: CloneRequest) -> VmFacts: ...
    def destroy(
        self, moref: str, *, expected_uuid: str, facts: VmFacts | VmSighting | None = None
    ) -> Destroyed: ...
    def power(self, morefs: Sequence[str], action: str) -> list[VCenterError | None]: ...
    # A task on each VM (a bulk verb's: a snapshot, ...): per-VM errors, None where done.
    def vm_tasks(self, morefs: Sequence[str], task: VmTask) -> list[VCenterError | None]: ...
    def set_attributes(self, moref: str, values: Mapping[str, str]) -> None: ...
    def shut_down(self, parent: str, timeout_s: float = 300.0) -> None: ...
    def customization_outcomes(
        self, morefs: Collection[str], since: datetime
    ) -> dict[str, CustomizationOutcome]:
        """The outcomes so far of these VMs' guest customization (only those that have one),
        from vCenter's events since `since`: one query."""
        ...

    def wait_for_customization(
        self, morefs: Sequence[str], since: datetime, timeout_s: float, poll_s: float = 2.0
    ) -> dict[str, CustomizationOutcome]: ...
    def ensure_drs_confinement(
        self, cluster: Any, prefix: str, vm_morefs: Sequence[str], host_morefs: Sequence[str]
    ) -> None: ...


class VCenter(Inventory, Provisioning, Protocol):
    """One vCenter, shared by every thread of the process."""

    def close(self) -> None: ...


# ------------------------------------------------------------------------------------ SQLite


class Environments(Protocol):
    def ensure_environment(self, name: str, owner: str, channel: str = "") -> Environment: ...
    def get_environment(self, name: str) -> Environment | None: ...
    def list_environments(self) -> list[Environment]: ...
    def live_environments(self) -> list[Environment]: ...  # live clones, pending, resumable
    def update_environment(
        self,
        name: str,
        *,
        channel: str | None = None,
        owner: str | None = None,
        starts_at: datetime | Keep | None = KEEP,
        ends_at: datetime | Keep | None = KEEP,
    ) -> Environment: ...
    def delete_environment(self, name: str) -> None: ...


class Clones(Protocol):
    def reserve_clones(
        self,
        *,
        environment: str,
        type: str,
        parent: str,
        pattern: str,
        count: int,
        run_id: int | None,
    ) -> list[Clone]: ...
    def update_clone(
        self, clone_id: int, *, fence: Fence | None = None, **changes: Any
    ) -> Clone: ...
    def get_clone(self, clone_id: int) -> Clone: ...
    def clones(
        self,
        *,
        environment: str | None = None,
        states: Iterable[CloneState] | None = None,
        type: str | None = None,
        run_id: int | None = None,
        current: bool = False,  # only clones not destroyed
    ) -> list[Clone]: ...
    def clones_by_instance_uuid(self, uuids: Iterable[str]) -> dict[str, Clone]: ...
    def record_found_clone(
        self,
        *,
        environment: str,
        type: str,
        parent: str,
        name: str,
        moref: str,
        instance_uuid: str,
        host: str | None = None,
        delta_bytes: int | None = None,
        power_state: str | None = None,
    ) -> Clone: ...
    def clone_counts(
        self, environments: Iterable[str] | None = None
    ) -> dict[str, dict[str, dict[CloneState, int]]]: ...  # clones not destroyed
    def failed_clones(
        self, environments: Iterable[str] | None = None
    ) -> dict[str, list[FailedClone]]: ...  # failed and missing, by environment
    def clone_deltas(
        self, *, environment: str | None = None, states: Iterable[CloneState] = ...
    ) -> list[tuple[str, int | None]]: ...
    def mark_missing(
        self, clone_ids: Iterable[int], *, unchanged_since: datetime
    ) -> list[Clone]: ...
    def record_sizes(self, sizes: Iterable[tuple[int, int]]) -> None: ...
    def clone_peaks(self, *, type: str, parent: str) -> list[ClonePeak]: ...
    def save_parent_facts(self, facts: ParentFacts) -> None: ...
    def parent_facts(self) -> dict[str, ParentFacts]: ...


class Runs(Protocol):
    def start_run(
        self,
        *,
        environment: str,
        kind: RunKind,
        requested_by: str,
        requested: int,
        owner: str = "",
        clone_ids: Iterable[int] = (),
        power_on: bool = False,
    ) -> Run: ...
    def supersede_run(
        self,
        run_id: int,
        *,
        owner: str,
        expected_owner: str,
        stale_before: datetime | None = None,  # the run's lease must have expired by then
        fence: Fence | None = None,  # the leader's lease, checked in the same transaction
    ) -> Run | None: ...
    def finish_run(
        self, run_id: int, *, state: RunState, succeeded: int, failed: int, message: str = ""
    ) -> Run: ...
    def update_run(self, run_id: int, **changes: Any) -> Run: ...
    def get_run(self, run_id: int) -> Run: ...
    def runs(
        self,
        *,
        environment: str | None = None,
        states: Iterable[RunState] | None = None,
        limit: int = 100,
    ) -> list[Run]: ...
    def heartbeat(self, run_id: int, owner: str | None = None) -> bool: ...  # False: not ours
    def run_counts(self) -> list[tuple[str, str, int]]: ...  # (kind, state, runs)
    def save_run_message(self, run_id: int, *, channel: str, ts: str) -> RunMessage: ...
    def run_message(self, run_id: int) -> RunMessage | None: ...


class Schedules(Protocol):
    def get_schedule(self, name: str) -> ScheduleRecord | None: ...
    def save_schedule(
        self,
        name: str,
        *,
        deploy_command: str | Keep | None = KEEP,
        requested_by: str | Keep = KEEP,
        lease_from: datetime | Keep | None = KEEP,
        reminded_for_end: datetime | Keep | None = KEEP,
        stripping_for_end: datetime | Keep | None = KEEP,
    ) -> ScheduleRecord: ...
    def delete_schedule(self, name: str) -> None: ...
    def scheduled_environments(self) -> list[tuple[Environment, ScheduleRecord | None]]: ...
    # Claims: compare-and-set; with a `fence`, refused (Fenced) once this process no longer
    # holds the lease it decided under.
    def claim_start(self, name: str, expected: datetime, *, fence: Fence | None = None) -> bool: ...
    def claim_end(self, name: str, expected: datetime, *, fence: Fence | None = None) -> bool: ...
    def mark_reminded(self, name: str, end: datetime, *, fence: Fence | None = None) -> bool: ...


class Leases(Protocol):
    """Lease rows and the bots up (storage/leases.py); times are Unix seconds."""

    def get_lease(self, name: str) -> Lease | None: ...
    def acquire_lease(
        self, name: str, holder: str, ttl_s: float, now: float, *, dead: str = ""
    ) -> Lease | None: ...
    def renew_lease(self, name: str, holder: str, epoch: int, ttl_s: float, now: float) -> bool: ...
    def release_lease(self, name: str, holder: str, epoch: int) -> None: ...
    def mark_bot(self, owner: str, now: float) -> None: ...
    def bots_seen(self, since: float) -> list[str]: ...
    def forget_bot(self, owner: str) -> None: ...


class Audit(Protocol):
    def audit(
        self,
        *,
        actor: str,
        source: str,
        command: str,
        result: str,
        channel: str = "",
        detail: str = "",
    ) -> AuditEntry: ...
    def audit_entries(self, *, limit: int = 100, actor: str | None = None) -> list[AuditEntry]: ...
    def audit_since(
        self, since: datetime, *, limit: int | None = None, newest: bool = False
    ) -> list[AuditEntry]: ...
    def count_audit_since(self, since: datetime) -> int: ...


class History(Protocol):
    """The past, read on request (`history [ENV]`), and pruned once older than its window."""

    def recent_environments(self, limit: int) -> tuple[list[str], int]: ...
    def environment_history(
        self, names: Sequence[str]
    ) -> list[tuple[EnvironmentHistory, list[tuple[str, int | None]]]]: ...
    def run_history(
        self, environment: str, limit: int
    ) -> tuple[list[Run], int, dict[int, list[tuple[str, int | None]]]]: ...
    def prune_history(
        self, *, before: datetime | None, audit_before: datetime | None, batch: int = 50
    ) -> Pruned: ...


class Assignments(Protocol):
    """Which trainee holds which clone (active until unassigned, replaced or removed)."""

    def assign(
        self,
        *,
        environment: str,
        pairs: Sequence[tuple[str, int]],
        assigned_by: str,
        replacing: Iterable[int] = (),
    ) -> list[Assignment]: ...
    def assignments(
        self,
        *,
        environment: str | None = None,
        trainee: str | None = None,
        clone_ids: Iterable[int] | None = None,
        active: bool | None = True,
    ) -> list[Assignment]: ...
    def holds_assignment(self, trainee: str) -> bool: ...
    def end_assignments(self, ids: Iterable[int], *, reason: str) -> list[Assignment]: ...
    def mark_handed_out(self, assignment_id: int) -> None: ...
    def untold_removals(self) -> list[Assignment]: ...
    def claim_told(self, assignment_id: int) -> bool: ...


class ConfirmationTokens(Protocol):
    """Confirm buttons' one-time tokens, shared by the bots on one database."""

    def save_confirmation(self, c: Confirmation) -> None: ...
    def confirmation(self, token: str) -> Confirmation | None: ...
    def take_confirmation(self, token: str) -> Confirmation | None: ...  # exactly one caller
    def expire_confirmations(self, before: float) -> None: ...


class Repository(
    Environments,
    Clones,
    Runs,
    Schedules,
    Audit,
    Assignments,
    History,
    Leases,
    ConfirmationTokens,
    Protocol,
):
    """The bot's records: what it intended and did (SQLite in production)."""

    def transaction(self) -> AbstractContextManager[None]: ...
    def first_sighting(
        self, keys: Sequence[str], window_s: float, now: float | None = None
    ) -> bool: ...
    def close(self) -> None: ...


# ------------------------------------------------------------------------------------ scheduler


JobArgs = tuple[str | bool, ...]  # a job's plain arguments (no objects: nothing to pickle or pin)
JobHandler = Callable[[str, JobArgs], None]  # called with a due job's id and arguments


class ScheduledJob(NamedTuple):
    """A one-shot job in the scheduler's table."""

    id: str
    run_at: datetime  # aware
    args: JobArgs


class Leadership(Protocol):
    """One leader per database (schedules and start-up recovery): a lease row renewed by its
    holder, taken over once expired under a new epoch (bot/services/leadership.py), plus the
    bots that say they are up, so that a process without a scheduler (the terminal) can tell
    "a bot stands by" from "no bot at all"."""

    @property
    def where(self) -> str: ...  # for the log, never for a channel
    @property
    def held(self) -> bool: ...  # by this object, renewed less than lease_s ago
    @property
    def lease_s(self) -> float: ...
    def acquire(self) -> bool: ...  # never waits: False while someone else holds it
    def holder(self) -> str: ...  # who holds it now ("" when nobody does)
    def is_held_elsewhere(self) -> bool: ...
    def fence(self) -> Fence: ...  # what a leader's write is checked against
    def lease_age(self) -> float | None: ...  # seconds since the last renewal (None: not held)
    def mark_bot(self) -> None: ...  # this process is a bot (holding or standing by)
    def bots_elsewhere(self) -> bool: ...
    def release(self) -> None: ...  # the lease and the bot mark

    # Set by the keeper: told when the lease is lost, and asked to try it while standing by.
    on_lost: Callable[[str], None] | None
    on_vacant: Callable[[], None] | None


class Scheduler(Protocol):
    """One-shot jobs at set times, run in a pool of threads, plus one periodic tick (APScheduler
    in production). Jobs are handed to `JobHandler` with their id and plain arguments; a job
    counts as in flight from the moment the pool takes it until the handler returns."""

    @property
    def lock(self) -> Leadership: ...
    @property
    def running(self) -> bool: ...  # started and not shut down (paused counts as running)
    def start(self, handler: JobHandler) -> None: ...  # paused: nothing runs before resume()
    def every(self, seconds: float, tick: Callable[[], object]) -> None: ...  # 1 at a time
    def resume(self) -> None: ...
    def shutdown(self, wait: bool = True) -> None: ...  # a running job goes on unless waited for
    def put(self, job_id: str, run_at: datetime, args: JobArgs) -> None: ...  # add or replace
    def remove(self, job_id: str) -> None: ...  # absent: nothing to do
    def get(self, job_id: str) -> ScheduledJob | None: ...
    def jobs(self) -> list[ScheduledJob]: ...  # the one-shot jobs waiting, not the tick
    def run_now(self, job_id: str) -> bool: ...  # take it out and run it in this thread
    def in_flight(self) -> set[str]: ...  # taken by the pool (or run_now), not finished
    def idle(self) -> bool: ...  # nothing in flight and nothing due by the wall clock


# ------------------------------------------------------------------------------------ notifier


class RunReport(Protocol):
    """One scheduled run as a notifier shows it: progress events, then exactly one outcome."""

    on_event: ProgressCallback | None

    def finished(self, result: object, text: str) -> None:
        """The run ended with a result (a DeployResult or TeardownResult); `text` says it."""

    def stopped(self, text: str) -> None:
        """The run ended without a result (refused, nothing to do, interrupted)."""


class Notifier(Protocol):
    """Where scheduled work reports. Slack posts to the environment's channel; the default logs.

    A notifier may also offer `progress(environment, action) -> ProgressCallback | None` to
    render scheduled deploys and strip backs with the same live progress as manual ones, or
    `run_report(environment, action, requester, text, late) -> RunReport | None` to show each run
    from its start to its outcome as one message of its own (Slack edits one message in place).
    """

    def notify(self, environment: Environment, text: str) -> None: ...

    def remind(self, environment: Environment, owner: str, ends_at: datetime) -> None: ...


# ------------------------------------------------------------------------------------ people


class Directory(Protocol):
    """The chat workspace's people (Slack in production): a channel's members, who a member
    is, who has an e-mail address, a user group's members. Errors are `ClonesError`s whose
    text says what to fix (a missing scope names it)."""

    def channel_members(self, channel: str) -> list[str]: ...
    def person(self, user: str) -> Person: ...
    # Many at once (a channel's members): one paged listing, not a look-up per member.
    def persons(self, users: Sequence[str]) -> dict[str, Person]: ...
    def user_by_email(self, email: str) -> str | None: ...  # None: nobody has it
    def group_members(self, group: str) -> list[str]: ...


class Messenger(Protocol):
    """Direct messages to people (Slack DMs in production), paced to the workspace's limits
    and waiting out rate limiting for at most `within_s` seconds (None: the messenger's own
    bound). `send` raises `NotDelivered` saying why it could not."""

    def send(self, user: str, message: DirectMessage, *, within_s: float | None = None) -> None: ...


# ------------------------------------------------------------------------------------ others


class Chart(Protocol):
    """The savings bar chart (matplotlib in production)."""

    def render(self, savings: Savings, title: str) -> bytes: ...
    def write(self, savings: Savings, path: Path) -> None: ...


__all__ = [
    "Assignments",
    "Audit",
    "Chart",
    "Clock",
    "Clones",
    "ConfirmationTokens",
    "Directory",
    "Environments",
    "Inventory",
    "Iterator",
    "JobArgs",
    "JobHandler",
    "Leadership",
    "Leases",
    "Messenger",
    "Notifier",
    "ProgressCallback",
    "Provisioning",
    "Repository",
    "RunReport",
    "Runs",
    "ScheduledJob",
    "Scheduler",
    "Schedules",
    "VCenter",
]


# ------------------------------------------------------------------------------------ tools


class Lab(Protocol):
    """The bundled lab vCenter (a Go build of VMware's simulator): build, start, stop."""

    def build(self, log: Callable[[str], None]) -> Path: ...
    def up(self, spec: Path | None, port: int | None, *, restart: bool) -> LabEndpoint: ...
    def down(self) -> bool: ...
    def running(self) -> LabEndpoint | None: ...


class Trust(Protocol):
    """What certificate an endpoint presents, and whether given trust settings accept it."""

    def inspect(
        self,
        host: str,
        port: int,
        *,
        insecure: bool = False,
        ca_file: str | None = None,
        thumbprint: str | None = None,
        timeout: float = 10.0,
    ) -> Inspection:
        """VCenterUnreachable (with the real reason) when it cannot be read at all."""
        ...


class DatabaseCopier(Protocol):
    """Copies a SQLite database into an empty PostgreSQL one (`clones db copy`)."""

    def copy(self, source: Path, target: str) -> DatabaseCopied:
        """StorageError, and nothing written, when `source` is not a clones database or
        `target` cannot be reached or holds rows already."""
        ...
