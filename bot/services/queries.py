"""Reading the estate: an environment, its status compared with vCenter (drift), savings and
the types' readiness."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from bot.domain import grammar
from bot.domain.errors import (
    ClonesError,
    NotFoundError,
    VCenterError,
)
from bot.domain.models import Clone, CloneState, Environment, ParentFacts, Run, RunState
from bot.domain.results import (
    DeployResult,
    Drift,
    EnvironmentStatus,
    FailedClone,
)
from bot.domain.savings import Savings, compute_savings
from bot.domain.vsphere import (
    ATTR_ENVIRONMENT,
    ATTR_MANAGED_BY,
)
from bot.services.core import OnCore
from bot.services.runbook import LIVE_STATES
from bot.services.sizes import record_seen
from bot.settings import TypeSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TypeStatus:
    type: TypeSettings
    readiness: str  # ready / needs snapshot / powered on / parent missing
    parent: ParentFacts | None = None


class Queries(OnCore):
    """Environments, status with drift, savings and types: reads only."""

    def environment(self, name: str) -> Environment:
        env = self.repo.get_environment(name)
        if env is None:
            known = [e.name for e in self.repo.list_environments()]
            hint = grammar.suggest(name, known)
            did = f' Did you mean "{hint}"?' if hint else ""
            listing = ", ".join(known[:10]) if known else "none yet"
            raise NotFoundError(
                f'No environment named "{name}".{did} Environments: {listing}. '
                'Type "status" to see them.'
            )
        return env

    def find_environment(self, name: str) -> Environment | None:
        """The environment named `name`, None when there is none (`environment` raises)."""
        return self.repo.get_environment(name)

    def clones_of(self, environment: str) -> list[Clone]:
        """An environment's clones not destroyed (live, failed, missing): destroyed ones are
        its history (`history ENV`)."""
        return self.repo.clones(environment=environment, current=True)

    def live_by_type(self, environment: str) -> dict[str, int]:
        """How many live clones of each type the environment has (none: {})."""
        return dict(
            Counter(c.type for c in self.repo.clones(environment=environment, states=LIVE_STATES))
        )

    # ------------------------------------------------------------------ runs, for the front ends
    def running_runs(self) -> list[Run]:
        """Runs in progress right now (in any process)."""
        return self.repo.runs(states=[RunState.RUNNING])

    def run(self, run_id: int) -> Run:
        return self.repo.get_run(run_id)

    def run_clones(self, run_id: int, states: Sequence[CloneState] | None = None) -> list[Clone]:
        """The clones a run owns (in `states`, when given)."""
        return self.repo.clones(run_id=run_id, states=states)

    def recorded_deploy(self, run_id: int) -> DeployResult:
        """A deployment as recorded (all of it, not only what a resumed run did), with the
        environment's savings when they can be read: for the usual summary."""
        run = self.repo.get_run(run_id)
        clones = self.repo.clones(run_id=run.id)
        elapsed = 0.0
        if run.started_at is not None and run.finished_at is not None:
            elapsed = (run.finished_at - run.started_at).total_seconds()
        return DeployResult(
            run_id=run.id,
            environment=run.environment,
            requested=run.requested,
            ready=[c.name for c in clones if c.state is CloneState.READY],
            failed=[
                FailedClone(c.name, c.type, c.error or c.state.value)
                for c in clones
                if c.state is not CloneState.READY
            ],
            elapsed_s=elapsed,
            state=run.state,
            savings=self.savings_or_none(run.environment),
            message=run.message,
        )

    def status(
        self, environment: str | None = None, *, everything: bool = False
    ) -> list[EnvironmentStatus]:
        """The live environments (clones that may be in vCenter, a start or end to keep, a run
        that may still act), or every one recorded (`everything`), or one: counts and clones
        not destroyed. Each read goes through an index that holds only such rows, so a year of
        finished environments and destroyed clones costs it nothing."""
        if environment is not None:
            env = self.environment(environment)
            clones = self.repo.clones(environment=env.name, current=True)
            by_type = {
                t: {s.value: n for s, n in states.items()}
                for t, states in self.repo.clone_counts([env.name]).get(env.name, {}).items()
            }
            try:
                drift, unchecked = self.drift(env.name, clones), ""
            except VCenterError as exc:
                drift, unchecked = {}, str(exc)
            return [
                EnvironmentStatus(
                    env,
                    by_type,
                    clones,
                    hosts_by_parent=self._hosts_by_parent(clones, names=not unchecked),
                    drift=drift,
                    checked=not unchecked,
                    unchecked=unchecked,
                    assigned={
                        a.clone_id: a.trainee for a in self.repo.assignments(environment=env.name)
                    },
                )
            ]
        envs = self.repo.list_environments() if everything else self.repo.live_environments()
        counts = self.repo.clone_counts(None if everything else [e.name for e in envs])
        failures = self.repo.failed_clones(None if everything else [e.name for e in envs])
        return [
            EnvironmentStatus(
                env,
                {
                    t: {s.value: n for s, n in st.items()}
                    for t, st in counts.get(env.name, {}).items()
                },
                failures=tuple(failures.get(env.name, ())),
            )
            for env in envs
        ]

    def _hosts_by_parent(
        self, clones: Sequence[Clone], *, names: bool
    ) -> dict[str, tuple[str, ...]]:
        """Each parent's hosts, those its live clones run on (host names, read from vCenter
        for the clones' resource pools when `names`, else as recorded: morefs)."""
        hosts: dict[str, set[str]] = {}
        pools: set[str] = set()
        for c in clones:
            if c.state.live and c.host:
                hosts.setdefault(c.parent, set()).add(c.host)
                if c.type in self.settings.types:
                    pools.add(self.settings.types[c.type].resource_pool)
        named: dict[str, str] = {}
        for pool in sorted(pools) if names and hosts else ():
            try:
                named.update({h.moref: h.name for h in self.vcenter.cluster_hosts(pool)[1]})
            except ClonesError as exc:
                log.warning("host names of %s unavailable: %s", pool, exc)
        return {
            parent: tuple(sorted(named.get(m, m) for m in morefs))
            for parent, morefs in sorted(hosts.items())
        }

    def drift(self, environment: str, clones: Sequence[Clone]) -> dict[int, Drift]:
        """Compare recorded clones that should exist with what vCenter holds, in one read (which
        also reads their sizes: recorded, for the capacity estimate)."""
        settled = [
            c for c in clones if c.state in (CloneState.READY, CloneState.DESTROYING) and c.moref
        ]
        reading = self.vcenter.sightings([c.moref for c in settled if c.moref], also=("storage",))
        seen = reading.seen
        record_seen(self.repo, ((c, seen[c.moref]) for c in settled if c.moref and c.moref in seen))
        out: dict[int, Drift] = {}
        for c in settled:
            unseen = reading.unseen.get(c.moref or "")
            if unseen is not None:  # never "missing": vCenter would not show it
                out[c.id] = Drift(unseen=unseen.cannot_see(c.name))
                continue
            vm = reading.seen.get(c.moref or "")
            if vm is None or vm.instance_uuid != c.instance_uuid:
                out[c.id] = Drift(missing=True)
                continue
            power = ""
            if c.power_state in ("poweredOn", "poweredOff"):
                recorded_on = c.power_state == "poweredOn"
                if vm.powered_on != recorded_on:
                    power = "on" if vm.powered_on else "off"
            labels = []
            for name, expected in (
                (ATTR_MANAGED_BY, self.settings.managed_by),
                (ATTR_ENVIRONMENT, environment),
            ):
                actual = vm.attributes.get(name)
                if actual != expected:
                    labels.append(f"{name} is {actual!r}" if actual else f"{name} removed")
            drift = Drift(
                renamed_to=vm.name if vm.name != c.name else "",
                power=power,
                relabelled=tuple(labels),
            )
            if drift.text:
                out[c.id] = drift
        return out

    def savings(self, environment: str | None = None) -> Savings:
        if environment is not None:
            self.environment(environment)
        deltas = self.repo.clone_deltas(environment=environment)
        parents = self.repo.parent_facts()
        missing = {parent for parent, _ in deltas} - set(parents)
        for name in missing:  # recorded before parent facts were kept: ask vCenter once
            t = next(t for t in self.settings.types.values() if t.parent == name)
            facts = self.vcenter.parent_facts(t.parent, t.snapshot)
            self.repo.save_parent_facts(facts)
            parents[name] = facts
        return compute_savings(deltas, parents)

    def savings_or_none(self, environment: str) -> Savings | None:
        try:
            return self.savings(environment)
        except ClonesError as exc:
            log.warning("savings for %s unavailable: %s", environment, exc)
            return None

    def types(self) -> list[TypeStatus]:
        # A connection that fails (TLS, login, network) is one error with its reason, not a
        # readiness of each type.
        self.vcenter.connect()
        out = []
        for t in self.settings.types.values():
            try:
                facts = self.vcenter.parent_facts(t.parent, t.snapshot)
            except NotFoundError:
                out.append(TypeStatus(t, "parent missing"))
                continue
            if facts.snapshot is not None:
                readiness = "ready"
            elif facts.powered_on:
                readiness = "powered on"
            else:
                readiness = "needs snapshot"
            out.append(TypeStatus(t, readiness, facts))
        return out
