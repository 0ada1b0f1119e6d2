"""A stateful, model-based test of the bot's trust promises against the lab vCenter.

Hypothesis drives random sequences of what happens to a real estate: deployments (into reused
environment names too), strip backs, refreshes, power changes, snapshots, trainees assigned
and one trainee's VM rebuilt (the refresh service for one clone) through the `clones` command;
any of them SIGKILLed at a random moment, stopped with Ctrl-C (once, or twice: at once) or SIGTERM,
hung (SIGSTOP) past its run's lease while `resume` takes the run over, or cut off by vCenter
going dark; sessions expired under them (with NotAuthenticated faults, or
the way VMware's simulator answers: HTTP 200 with every object in missingSet); `resume` and the
Slack bot's start-up recovery (its session expired before it starts, too); a long-lived bot's
status and strip back after its session ended; the bot's account losing its rights on some
clones (NoPermission per VM) and getting them back; and someone at the vSphere Client
destroying, renaming, powering or relabelling clones behind the bot's back.

After every step (once the lab has finished any work a killed process had asked for) it checks:
- nothing the bot did not make is touched (decoys, parents, their snapshots);
- a VM disappears only when the step may remove it: a strip back or refresh of its environment
  that recorded it when it started, the rebuild of that one VM (the one its assignment records),
  recovery of such a run that was cut short, or a destroy behind the bot's back. So no clone
  of a deployment that started after a strip back is ever destroyed by that strip back or its
  recovery;
- no duplicate VM names in the clones' folder, no duplicate instance UUIDs;
- an assignment holds one clone and a trainee one clone per environment, and none outlives its
  clone leaving `ready` for good (destroyed, missing, failed); a rebuild that finished left the VM
  under the same name, linked, new;
- a trainee's own action (reset, power on/off, rebuild; typed with or without a VM's name, or a
  button's value kept from any earlier `my`, stale or someone else's; a rebuild made to fail)
  reaches no VM but the ones assigned to them when they acted: no task vCenter started in that
  moment (failed ones too) names another VM, nothing else vanishes, and a refusal is audited as
  denied. Names freed by a
  VM gone missing or a failed rebuild come back in the other environment, for another trainee;
- every exit code is one of the documented ones, and no traceback reaches the terminal;
- nothing unseen is recorded gone: no record is destroyed or missing while its VM exists, and a
  long-lived bot's status never calls an existing clone missing;
- a command stopped by Ctrl-C or SIGTERM exits 130 and leaves no run `running` (interrupted:
  resumable, the environment not busy); stopped once, what vCenter was doing finished and is
  recorded (no clone of its run mid-way, every VM it made recorded ready, every VM it removed
  recorded destroyed); stopped during a transient fault's backoff, it exits without sleeping
  the backoff out, asking for nothing again;
- after a `resume` (or bot start) that says it finished: every record matches vCenter by instance
  UUID (ready rows exist, no VM of the bot's without a live row: no orphans), no run is left
  unfinished, no clone is left mid-way;
- no leak: every VM in vCenter carrying the bot's provenance in its Notes is recorded (a live
  row with its instance UUID, or a failed one that kept its moref), also when a step after the
  clone task failed (a label refused, the session lost and not regained, vCenter lost right
  after the clone task's reply) and after the database was lost and `orphans adopt` / `orphans
  remove` took the bot's clones back.

CI runs a bounded number of sequences (CLONES_MODEL_EXAMPLES, default 4, deterministic under
CI=true); docs/reliability.md reports a long run.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from bot.adapters.lab import DEFAULT_SPEC, LabProcess, deep_merge
from bot.bootstrap import App, build
from bot.domain import grammar
from bot.domain.errors import ClonesError, PermissionDenied
from bot.domain.models import CloneState, RunKind, RunState
from bot.domain.provenance import named_by, read_provenance
from bot.services.access import AccessPolicy
from bot.services.dispatch import Invocation, dispatch, resolve_target
from bot.settings import SlackSettings
from handlers.app import SlackTokens, create_bot
from handlers.blocks.ids import (
    ACTION_MY_POWER_OFF,
    ACTION_MY_POWER_ON,
    ACTION_MY_REBUILD,
    ACTION_MY_RESET,
)
from handlers.blocks.trainees import vm_buttons
from handlers.listeners.trainees import command_of
from handlers.webapi import make_client
from storage import Repository
from tests.faults import Clones, interrupt, record
from tests.helpers import LAB_TYPES, lab_settings
from tests.slack.fake_api import FakeSlack
from tests.vsphere import Admin, recent_tasks, tasks_since

pytestmark = pytest.mark.lab

ENVIRONMENTS = ("a", "b")
TYPES = ("capture", "packaging")
EXIT_CODES = {0, 1, 2, 3, 130}
# Stopping a command as a terminal does: (signal, a second one once it says it is stopping).
STOPS = {
    "ctrl-c": (signal.SIGINT, False),
    "ctrl-c twice": (signal.SIGINT, True),
    "sigterm": (signal.SIGTERM, False),
}
DELAYS = (0.0, 0.05, 0.12, 0.3)  # how long after its run started the fault strikes
# A transient fault's backoff (5 to 10 s): long enough for a stop to land in it (only the
# "backoff" faults below are transient).
BACKOFF_S = 5.0
LEASE_S = 1.0  # a hung command's run is another process's to resume this long after its beat
FOLDER = "Training"
UNFINISHED = (CloneState.PLANNED, CloneState.CLONING, CloneState.DESTROYING)
TRAINEES = ("U01", "U02", "U03", "U04")
# Faults in the steps after the clone task (the lab's faults.refuse / outage_after_clone_nth),
# armed for one deployment: a label refused, the session lost (NotAuthenticated even after
# logging in again), vCenter lost right after a clone task's reply.
STEP_FAULTS = ("refuse-label", "session-lost", "outage")
# A trainee's action, as the button that stands for it.
BUTTON_OF = {
    "reset": ACTION_MY_RESET,
    "on": ACTION_MY_POWER_ON,
    "off": ACTION_MY_POWER_OFF,
    "rebuild": ACTION_MY_REBUILD,
}
ACTIONS = ("reset", "on", "off", "rebuild")
FAILING = st.sampled_from([False, False, True])  # every clone call fails while it runs
TYPED = {"reset": "reset", "on": "power on", "off": "power off", "rebuild": "rebuild"}
GONE_FOR_GOOD = (CloneState.MISSING, CloneState.FAILED, CloneState.DESTROYED)
# UNSEEN_STATE: which rules may run never depends on what the lab or the database hold (a kill
# lands at a slightly different moment each time, so the same choices can leave a different
# estate): Hypothesis must see the same choices give the same rules, or it stops the run with
# FlakyStrategyDefinition. Preconditions use the model's own bookkeeping only; a rule with
# nothing to act on in the real estate returns at once.


class TrustModel(RuleBasedStateMachine):
    postgres: Any = None  # the session's PostgreSQL server when run on that backend

    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="clones-model-"))
        self.url = self.postgres.new_database() if self.postgres is not None else None
        spec = deep_merge(
            json.loads(DEFAULT_SPEC.read_text(encoding="utf-8")),
            {"clone_latency_ms": 60, "destroy_latency_ms": 60},
        )
        self.lab = LabProcess.start(spec)
        self.clones = Clones(
            self.tmp,
            self.lab,
            database=self.url,
            concurrency=3,
            retries=1,
            lease_s=LEASE_S,
            retry_backoff_s=BACKOFF_S,
        )
        self.admin = Admin(self.lab)
        # Decoys: a VM named like a clone in another folder, and one forging ManagedBy.
        self.lab.control.add_vm("TRN-CAP-002", folder="Parents", parent_like="Capture")
        self.lab.control.add_vm(
            "forged-01",
            folder=FOLDER,
            parent_like="Capture",
            custom={"ManagedBy": "clones", "Environment": "a"},
        )
        self.decoys = {vm["moref"]: vm for vm in self.lab.control.vms()}
        # What later steps may legitimately remove: env -> instance UUIDs a strip back or
        # refresh that did not finish had recorded (its recovery may still act on them).
        self.pending: dict[str, set[str]] = {}
        self.behind_destroyed: set[str] = set()
        self.relabelled: set[str] = set()
        # An admin's own attribute set on clones (clone record id -> value): a refresh or
        # rebuild, cut short or not, must hand it on to the successor VM.
        self.tags: dict[int, str] = {}
        self.renames = 0
        self.unreconciled = False  # VMs destroyed behind the bot's back since the last recovery
        self.stripped: set[str] = set()  # environments a strip back was started on
        # Power changed since a deployment began, by someone else or the bot's `power`: a
        # resumed "and power on" need not (and must not) undo it.
        self.behind_powered: set[str] = set()  # instance UUIDs
        self.bot_powered: set[str] = set()  # environments
        # Every button value a trainee was shown by `my` (the trainee, the value): clicked later
        # by anyone, stale or not.
        self.buttons: list[tuple[str, str]] = []
        self.steps: Counter[str] = Counter()
        self.nth = 1  # which call a step fault (STEP_FAULTS) strikes
        self.database_lost = False
        self.hidden: set[str] = set()  # names of VMs the bot's account may not see now
        self.long_lived: App | None = None  # a bot's services, kept between steps

    def teardown(self) -> None:
        try:
            record("model sequence", steps=sum(self.steps.values()), **self.steps)
        finally:
            if self.long_lived is not None:
                self.long_lived.close()
            self.admin.close()
            self.lab.stop()
            shutil.rmtree(self.tmp, ignore_errors=True)
            if self.url is not None:
                self.postgres.drop_database(self.url)

    # ----------------------------------------------------------------- what exists
    def vms(self) -> dict[str, dict[str, Any]]:
        """The bot's clones as vCenter holds them (decoys excepted), by instance UUID."""
        return {
            vm["instance_uuid"]: vm
            for vm in self.lab.control.vms()
            if vm["moref"] not in self.decoys
        }

    def rows(self) -> list[Any]:
        if not self.clones.has_database():
            return []
        with Repository(self.clones.database) as repo:
            return repo.clones()

    def owned_by(self, environment: str, *, failed: bool = False) -> set[str]:
        """Instance UUIDs of the environment's live records (and, with `failed`, its failed or
        missing ones, which a strip back clears): what a strip back or refresh of it starting
        now may act on (less what was relabelled behind the bot's back)."""
        states = (CloneState.FAILED, CloneState.MISSING) if failed else ()
        return {
            c.instance_uuid
            for c in self.rows()
            if c.environment == environment
            and (c.state.live or c.state in states)
            and c.instance_uuid
        } - self.relabelled

    def run_count(self) -> int:
        if not self.clones.has_database():
            return 0
        try:
            with Repository(self.clones.database) as repo:
                return len(repo.runs(limit=100_000))
        except Exception:  # the other process may be creating the schema right now
            return 0

    def ours(self) -> list[dict[str, Any]]:
        return [vm for vm in self.vms().values() if vm["folder"] == FOLDER]

    # ----------------------------------------------------------------- running commands
    def run(self, *words: str) -> int:
        done = self.clones.run(*words, timeout=180)
        self._check_output(done.returncode, done.stdout, done.stderr, words)
        self.lab.control.wait_idle()
        return done.returncode

    def run_with_fault(self, fault: str, delay: float, *words: str) -> int | None:
        """Start a command and strike it `delay` s in: SIGKILL it, stop it (Ctrl-C, twice, or
        SIGTERM), make vCenter unreachable for a while, or expire every session. Returns its
        exit code (None when killed)."""
        runs_before = self.run_count()
        vms_before = set(self.vms())
        proc = self.clones.start(*words)
        # Strike `delay` s after the command's run has started (or once it has ended).
        deadline = time.monotonic() + 30
        while proc.poll() is None and self.run_count() == runs_before:
            assert time.monotonic() < deadline, f"{words} did not start a run"
            time.sleep(0.01)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=delay)
        code: int | None
        if fault == "kill":
            proc.kill()
            proc.communicate(timeout=60)
            code = None
        elif fault == "hang":
            code = self.hang(proc, words)
        elif fault in STOPS:
            sig, twice = STOPS[fault]
            stopped = interrupt(proc, sig, twice=twice, timeout=180)
            code = stopped.code
            self._check_output(code, stopped.out, stopped.err, words)
            self.lab.control.wait_idle()
            self.assert_stopped_cleanly(code, runs_before, vms_before, once=not twice)
        else:
            if fault == "pause":
                self.lab.control.pause(0.8)
            else:
                self.expire(upstream=fault == "expire-upstream")
            out, err = proc.communicate(timeout=180)
            code = proc.returncode
            self._check_output(code, out, err, words)
        self.lab.control.pause(0)
        self.lab.control.wait_idle()
        return code

    def hang(self, proc: subprocess.Popen[str], words: tuple[str, ...]) -> int:
        """The command hangs (SIGSTOP) past its run's lease; `resume`, another process, takes
        the run over and finishes it; then the hung command is continued: every write it then
        attempts for the run is refused (fenced), so it makes and destroys nothing more."""
        if proc.poll() is not None:  # it finished first: nothing hangs
            out, err = proc.communicate(timeout=60)
            self._check_output(proc.returncode, out, err, words)
            return proc.returncode
        proc.send_signal(signal.SIGSTOP)
        time.sleep(LEASE_S * 1.5 + 0.2)  # its heartbeat is older than the lease now
        self.lab.control.wait_idle()  # the clone or destroy tasks it had asked for are done
        taken = self.clones.run("resume", timeout=180)
        self._check_output(taken.returncode, taken.stdout, taken.stderr, ("resume",))
        proc.send_signal(signal.SIGCONT)
        out, err = proc.communicate(timeout=180)
        self._check_output(proc.returncode, out, err, words)
        if "Resumed" in taken.stdout:
            self.steps["hung run taken over"] += 1
        return proc.returncode

    def run_with_step_fault(self, fault: str, *words: str) -> int:
        """Run a command while the lab fails a step after the clone task (see STEP_FAULTS):
        the `nth` SetField refused, or refused with NotAuthenticated three times running (the
        session lost; pyVmomi's logins again do not hold), or vCenter lost for 0.8 s right
        after the `nth` clone task's reply."""
        control = self.lab.control
        control.reset()  # the clone calls' ordinals count from here
        if fault == "refuse-label":
            rule = {"method": "SetField", "fault": "NoPermission", "nth": [self.nth]}
            control.configure(faults={"refuse": [rule]})
        elif fault == "session-lost":
            lost = [self.nth, self.nth + 1, self.nth + 2]
            rule = {"method": "SetField", "fault": "NotAuthenticated", "nth": lost}
            control.configure(faults={"refuse": [rule]})
        else:
            nth = [1 + self.nth % 4]
            control.configure(faults={"outage_after_clone_nth": nth, "outage_after_clone_s": 0.8})
        try:
            return self.run(*words)
        finally:
            control.configure(faults={"refuse": [], "outage_after_clone_nth": []})
            control.pause(0)
            control.wait_idle()

    def run_stopped_in_a_backoff(self, stop: str, kind: str, *words: str) -> int:
        """Run a command whose first clone call (a deployment) or first destroy (a strip back)
        fails with a transient fault, and stop it (`stop`, one of STOPS) once it says it is
        retrying: the stop lands in the backoff, which must end at once, asking for nothing
        again; stopped once, nothing is left mid-way (`assert_stopped_cleanly`)."""
        control = self.lab.control
        control.reset()  # the ordinals count from here
        if kind == "deploy":
            control.configure(faults={"fail_nth": [1], "fault": "FileLocked"})
        else:
            rule = {"method": "Destroy_Task", "fault": "TaskInProgress", "nth": [1]}
            control.configure(faults={"refuse": [rule]})
        runs_before, vms_before = self.run_count(), set(self.vms())
        try:
            proc = self.clones.start(*words)
            assert proc.stderr is not None
            said = [proc.stderr.readline()]
            while said[-1] and "retrying " not in said[-1]:
                said.append(proc.stderr.readline())
            if not said[-1]:  # nothing to retry (nothing to make or destroy): it ended
                out, err = proc.communicate(timeout=180)
                self._check_output(proc.returncode, out, "".join(said) + err, words)
                return proc.returncode
            sig, twice = STOPS[stop]
            stopped = interrupt(proc, sig, twice=twice, timeout=180)
            self._check_output(stopped.code, stopped.out, "".join(said) + stopped.err, words)
            assert stopped.exit_s < BACKOFF_S, f"{words}: the backoff was slept out"
            control.wait_idle()
            self.assert_stopped_cleanly(stopped.code, runs_before, vms_before, once=not twice)
            self.steps[f"stopped in a backoff ({stop})"] += 1
            return stopped.code
        finally:
            control.configure(faults={"fail_nth": [], "refuse": []})
            control.wait_idle()

    def expire(self, *, upstream: bool) -> None:
        """End every session: the next calls get NotAuthenticated faults, or (`upstream`) reads
        are answered as VMware's simulator answers them, HTTP 200 with every object faulted."""
        self.lab.control.configure(expired_session_reads="missing_set" if upstream else "fault")
        self.lab.control.expire_sessions()

    def assert_stopped_cleanly(
        self, code: int, runs_before: int, vms_before: set[str], *, once: bool
    ) -> None:
        """A command stopped by Ctrl-C or SIGTERM: no run left `running`; stopped once, its
        runs' clones are not mid-way and their records match vCenter (nothing unrecorded made
        or destroyed)."""
        if code != 130:
            return  # it had ended before the signal came
        with Repository(self.clones.database) as repo:
            runs = sorted(repo.runs(limit=100_000), key=lambda r: r.id)[runs_before:]
            assert not [r.id for r in runs if r.state is RunState.RUNNING], "left running"
            if not once:
                return
            vms = self.vms()
            for run in runs:
                for c in repo.clones(run_id=run.id):
                    mid_way = (CloneState.CLONING, CloneState.DESTROYING)
                    assert c.state not in mid_way, f"{c.name} left {c.state}"
                    if c.state is CloneState.READY and c.instance_uuid not in self.behind_destroyed:
                        assert c.instance_uuid in vms, f"{c.name} recorded ready, not in vCenter"
            recorded = {c.instance_uuid for c in repo.clones() if c.state.live}
        made = [vm for vm in self.ours() if vm["instance_uuid"] not in vms_before]
        unrecorded = [vm["name"] for vm in made if vm["instance_uuid"] not in recorded]
        assert not unrecorded, f"VMs made without a live record after Ctrl-C: {unrecorded}"

    def _check_output(self, code: int, out: str, err: str, words: tuple[str, ...]) -> None:
        assert code in EXIT_CODES, (words, code, out, err)
        assert "Traceback" not in out + err, (words, out, err)
        assert "internal error" not in out + err, (words, out, err)

    def removable(self, kind: str, environment: str) -> set[str]:
        if kind == "teardown":
            return self.owned_by(environment, failed=True)
        return self.owned_by(environment) if kind == "refresh" else set()

    def act(
        self,
        kind: str,
        environment: str,
        words: tuple[str, ...],
        fault: str,
        delay: float,
        may_remove: set[str] | None = None,
    ) -> int | None:
        """One command, perhaps struck by a fault; check that only what it owned vanished."""
        before = self.vms()
        if may_remove is None:
            may_remove = self.removable(kind, environment)
        if fault == "none":
            code: int | None = self.run(*words)
        elif fault in STEP_FAULTS:
            code = self.run_with_step_fault(fault, *words)
        elif fault.startswith("backoff "):
            code = self.run_stopped_in_a_backoff(fault.removeprefix("backoff "), kind, *words)
        else:
            code = self.run_with_fault(fault, delay, *words)
        self.steps[f"{kind}/{fault}"] += 1
        after = self.vms()
        self.assert_vanished_only(before, after, may_remove)
        if may_remove and code != 0:
            # Cut short (killed, vCenter lost, or partly done): its recovery may finish it.
            self.pending.setdefault(environment, set()).update(may_remove)
        return code

    def assert_vanished_only(
        self, before: dict[str, Any], after: dict[str, Any], allowed: set[str]
    ) -> None:
        vanished = set(before) - set(after)
        unexplained = vanished - allowed - self.behind_destroyed
        assert not unexplained, "VMs the step did not own were destroyed: " + ", ".join(
            before[u]["name"] for u in unexplained
        )

    # ----------------------------------------------------------------- rules: the bot
    @rule(
        environment=st.sampled_from(ENVIRONMENTS),
        kind=st.sampled_from(TYPES),
        count=st.integers(1, 4),
        fault=st.sampled_from(
            [
                "none",
                "none",
                "none",
                "kill",
                "pause",
                "expire",
                "expire-upstream",
                "hang",
                *STOPS,
            ]
        ),
        delay=st.sampled_from(DELAYS),
        power_on=st.sampled_from([False, False, True]),
    )
    def deploy(
        self, environment: str, kind: str, count: int, fault: str, delay: float, power_on: bool
    ) -> None:
        words = ("deploy", kind, str(count), "as", environment)
        self.deploy_words(environment, words, fault, delay, power_on)

    @rule(pick=st.integers(0, 10_000))
    def deploy_with_a_step_fault(self, pick: int) -> None:
        """A deployment whose step after the clone task fails (see STEP_FAULTS): a rule of its
        own, every choice drawn from one number, since Hypothesis draws a rule with many
        arguments seldom and the first of a few values mostly (among the deploy rule's faults:
        once in 886 steps; a rule of six arguments: in none of 44 sequences)."""
        fault = STEP_FAULTS[pick % len(STEP_FAULTS)]
        environment = ENVIRONMENTS[(pick // 3) % len(ENVIRONMENTS)]
        kind = TYPES[(pick // 6) % len(TYPES)]
        count = 1 + (pick // 12) % 4
        self.nth = 1 + (pick // 48) % 6  # which call a step fault strikes
        words = ("deploy", kind, str(count), "as", environment)
        self.deploy_words(environment, words, fault, 0.0, (pick // 288) % 3 == 0)

    @rule(pick=st.integers(0, 10_000))
    def stopped_in_a_backoff(self, pick: int) -> None:
        """A deployment or strip back stopped (Ctrl-C, twice, SIGTERM) while a transient
        fault's backoff runs (see run_stopped_in_a_backoff); every choice from one number."""
        environment = ENVIRONMENTS[pick % len(ENVIRONMENTS)]
        stop = list(STOPS)[(pick // 2) % len(STOPS)]
        if (pick // 6) % 2:
            self.act("teardown", environment, ("teardown", environment, "--yes"),
                     f"backoff {stop}", 0.0)  # fmt: skip
            self.stripped.add(environment)
            return
        kind = TYPES[(pick // 12) % len(TYPES)]
        count = 1 + (pick // 24) % 4
        words = ("deploy", kind, str(count), "as", environment)
        self.deploy_words(environment, words, f"backoff {stop}", 0.0, False)

    def deploy_words(
        self, environment: str, words: tuple[str, ...], fault: str, delay: float, power_on: bool
    ) -> None:
        """A deployment (perhaps "and power on"); one that ran powers on what it made."""
        words += ("and", "power", "on") if power_on else ()
        code = self.act("deploy", environment, words, fault, delay)
        if code in (0, None, 130):  # it ran (to the end, or until killed or stopped): new clones
            self.bot_powered.discard(environment)

    @rule(
        environment=st.sampled_from(ENVIRONMENTS),
        copies=st.sampled_from([[2], [2, 3]]),
        fault=st.sampled_from(["none", "kill", "kill"]),
        delay=st.sampled_from(DELAYS),
    )
    def deploy_with_stray_full_copies(
        self, environment: str, copies: list[int], fault: str, delay: float
    ) -> None:
        """A deployment whose second (and third) clone calls come out as full copies: the
        first is removed and made again as a linked clone, a second stops the type (perhaps
        killed mid-way, while one is being made again)."""
        made = self.lab.control.stats()["clone_calls"]  # counted, like the ordinals, since reset
        self.lab.control.configure(faults={"full_copy_nth": [made + n for n in copies]})
        try:
            self.deploy_words(environment, ("deploy", "capture", "4", "as", environment),
                              fault, delay, False)  # fmt: skip
        finally:
            self.lab.control.configure(faults={"full_copy_nth": []})
        self.steps[f"full copies {len(copies)}"] += 1

    @precondition(lambda self: bool(self.stripped))
    @rule(
        pick=st.integers(0, 10),
        kind=st.sampled_from(TYPES),
        count=st.integers(1, 4),
        fault=st.sampled_from(["none", "none", "kill"]),
        delay=st.sampled_from(DELAYS),
        power_on=st.sampled_from([False, False, True]),
    )
    def redeploy(
        self, pick: int, kind: str, count: int, fault: str, delay: float, power_on: bool
    ) -> None:
        """A new cohort in the name of one that was stripped back (perhaps not to the end)."""
        environment = sorted(self.stripped)[pick % len(self.stripped)]
        words = ("deploy", kind, str(count), "as", environment)
        self.deploy_words(environment, words, fault, delay, power_on)

    @rule(
        environment=st.sampled_from(ENVIRONMENTS),
        fault=st.sampled_from(["none", "kill", "kill", "pause", "expire-upstream", "hang", *STOPS]),
        delay=st.sampled_from(DELAYS),
    )
    def strip_back(self, environment: str, fault: str, delay: float) -> None:
        words = ("teardown", environment, "--yes")
        self.act("teardown", environment, words, fault, delay)
        self.stripped.add(environment)

    @rule(
        environment=st.sampled_from(ENVIRONMENTS),
        fault=st.sampled_from(["none", "kill", "ctrl-c", "ctrl-c twice"]),
        delay=st.sampled_from(DELAYS),
    )
    def refresh(self, environment: str, fault: str, delay: float) -> None:
        self.act("refresh", environment, ("refresh", environment, "--yes"), fault, delay)

    @rule(environment=st.sampled_from(ENVIRONMENTS), action=st.sampled_from(["on", "off"]))
    def power(self, environment: str, action: str) -> None:
        self.act("power", environment, ("power", action, environment), "none", 0.0)
        self.bot_powered.add(environment)

    @rule(environment=st.sampled_from(ENVIRONMENTS), name=st.sampled_from(["cp1", "cp2"]))
    def snapshot(self, environment: str, name: str) -> None:
        """Only the environment's ready clones that are provably the bot's gain a snapshot:
        never a VM the account cannot see (unseen), a replaced or relabelled one, a decoy
        (`forged-01` carries the environment's labels) or a parent."""

        def counts() -> dict[str, int]:
            return {vm["moref"]: int(vm.get("snapshots") or 0) for vm in self.lab.control.vms()}

        uuid = {vm["moref"]: vm["instance_uuid"] for vm in self.lab.control.vms()}
        hidden = {vm["instance_uuid"] for vm in self.lab.control.vms() if vm["name"] in self.hidden}
        ready = {
            c.instance_uuid
            for c in self.rows()
            if c.environment == environment and c.state is CloneState.READY and c.instance_uuid
        }
        before = counts()
        self.act("snapshot", environment, ("snapshot", environment, name), "none", 0.0)
        after = counts()
        grown = {uuid.get(m, m) for m in after if after[m] > before.get(m, 0)}
        wrong = grown - (ready - self.relabelled - hidden)
        assert not wrong, f"snapshotted VMs not provably ours: {sorted(wrong)}"

    # ----------------------------------------------------------------- rules: trainees
    def assignments(self) -> list[Any]:
        if not self.clones.has_database():
            return []
        with Repository(self.clones.database) as repo:
            return repo.assignments()

    @rule(
        environment=st.sampled_from(ENVIRONMENTS),
        trainees=st.lists(st.sampled_from(TRAINEES), min_size=1, max_size=3, unique=True),
    )
    def assign(self, environment: str, trainees: list[str]) -> None:
        """Trainees given VMs (refused when too few are ready): nothing vanishes."""
        self.act("assign", environment, ("assign", environment, *trainees), "none", 0.0, set())

    @rule(
        pick=st.integers(0, 100),
        fault=st.sampled_from(["none", "kill", "kill", "ctrl-c"]),
        delay=st.sampled_from(DELAYS),
    )
    def rebuild(self, pick: int, fault: str, delay: float) -> None:
        """One trainee's VM rebuilt (perhaps killed mid-way): only that VM may vanish."""
        held = self.assignments()
        if not held:  # nobody holds a VM now (see UNSEEN_STATE)
            return
        a = held[pick % len(held)]
        with Repository(self.clones.database) as repo:
            clone = repo.get_clone(a.clone_id)
        mine = {clone.instance_uuid} - self.relabelled if clone.instance_uuid else set()
        words = ("rebuild", a.clone_name, "--yes")
        code = self.act("rebuild", a.environment, words, fault, delay, mine)
        # Finished, refused or cut short, a rebuild never ends the assignment it acts for.
        assert a.id in {held.id for held in self.assignments()}, f"{a.clone_name} unassigned"
        if code == 0:
            rebuilt = [vm for vm in self.ours() if vm["name"] == a.clone_name]
            assert len(rebuilt) == 1 and rebuilt[0]["linked"], a.clone_name
            assert rebuilt[0]["instance_uuid"] != clone.instance_uuid

    # ----------------------------------------------------------------- rules: trainees themselves
    @contextlib.contextmanager
    def in_process(self) -> Any:
        """The services over the model's database and lab, as the Slack bot holds them."""
        services = build(lab_settings(self.lab, self.clones.database), start_lab=False)
        try:
            yield services
        finally:
            services.close()

    def look(self, who: str) -> None:
        """`who` opens `my` (or the Home tab): the buttons they see are kept for later."""
        with self.in_process() as services:
            mine = services.use_cases.trainees.mine(who)
        for vm in mine.vms:
            values = {e["value"] for e in vm_buttons(vm)["elements"]}
            self.buttons += [
                (who, value) for value in sorted(values) if (who, value) not in self.buttons
            ]

    # Three rules (not one with a `how` argument): each is then drawn as often as any other rule.
    @rule(action=st.sampled_from(ACTIONS), pick=st.integers(0, 1000), fail=FAILING)
    def trainee_acts_on_their_vm(self, action: str, pick: int, fail: bool) -> None:
        """`reset`, `power on|off` or `rebuild`, naming nothing: their own VM."""
        who = self.trainee(pick)
        self.trainee_acts(who, grammar.parse(TYPED[action]), f"{action}/own", fail)

    @rule(action=st.sampled_from(ACTIONS), pick=st.integers(0, 1000), fail=FAILING)
    def trainee_names_a_vm(self, action: str, pick: int, fail: bool) -> None:
        """`reset NAME` or `rebuild NAME` typed, `power on|off NAME` typed (an operator's form,
        which the policy refuses) or on a button of an older version (the name alone): any
        name the lab or the records know."""
        who = self.trainee(pick)
        names = sorted({vm["name"] for vm in self.ours()} | {c.name for c in self.rows()})
        if not names:  # see UNSEEN_STATE
            return
        name = names[pick % len(names)]
        if action in ("on", "off") and pick % 2:
            command = command_of(BUTTON_OF[action], name)
        else:
            command = grammar.parse(f"{TYPED[action]} {name}")
        self.trainee_acts(who, command, f"{action}/name", fail)

    @rule(action=st.sampled_from(ACTIONS), pick=st.integers(0, 1000), fail=FAILING)
    def trainee_clicks(self, action: str, pick: int, fail: bool) -> None:
        """A button kept from any earlier `my`: their own or someone else's, stale or not."""
        who = self.trainee(pick)
        if not self.buttons:  # see UNSEEN_STATE
            return
        value = self.buttons[(pick // 7) % len(self.buttons)][1]
        self.trainee_acts(who, command_of(BUTTON_OF[action], value), f"{action}/button", fail)

    def trainee(self, pick: int) -> str:
        """Who acts: mostly one who holds a VM (when nobody does, a trainer gives one first),
        sometimes anyone. They open `my` first: its buttons are kept with every earlier one."""
        who = TRAINEES[pick % len(TRAINEES)]
        if pick % 3:
            holders = sorted({a.trainee for a in self.assignments()})
            if not holders:
                environment = ENVIRONMENTS[pick % len(ENVIRONMENTS)]
                self.act("assign", environment, ("assign", environment, who), "none", 0.0, set())
                holders = sorted({a.trainee for a in self.assignments()})
            if holders:
                who = holders[pick % len(holders)]
        self.look(who)
        return who

    def trainee_acts(self, who: str, command: Any, what: str, fail: bool) -> None:
        """A trainee's command (every clone call failing, if `fail`) reaches only the VMs they
        held when they acted; a refusal is audited."""
        held = self.held_by(who)
        before, tasks = self.vms(), recent_tasks(self.admin)
        if fail:
            self.lab.control.configure(faults={"fail_fraction": 1.0, "fault": "InvalidArgument"})
        try:
            outcome = self.trainee_run(who, command)
        finally:
            if fail:
                self.lab.control.configure(faults={"fail_fraction": 0.0})
            self.lab.control.wait_idle()
        self.steps[f"trainee/{what}{'/fail' if fail else ''}/{outcome}"] += 1
        # The records the trainee held: their VMs then, and a rebuild's successor of the same
        # record, are all it may reach.
        rows = {c.id: c for c in self.rows()}
        mine = {uuid for uuid, _ in held.values()}
        morefs = {moref for _, moref in held.values()}
        morefs |= {rows[i].moref for i in held if rows[i].moref}
        strays = [
            (what, moref)
            for _, what, moref in tasks_since(self.admin, tasks)
            if moref not in morefs
        ]
        assert not strays, f"{who}'s {command} reached VMs not assigned to them: {strays}"
        self.assert_vanished_only(before, self.vms(), mine)

    def held_by(self, who: str) -> dict[int, tuple[str, str]]:
        """The clone records `who` holds now: id -> (instance UUID, moref)."""
        with Repository(self.clones.database) as repo:
            held = [repo.get_clone(a.clone_id) for a in repo.assignments(trainee=who)]
        return {c.id: (c.instance_uuid or "", c.moref or "") for c in held}

    def trainee_run(self, who: str, command: Any) -> str:
        """Run a trainee's command as the Slack bot does: the access policy, then settled (a
        rebuild names its VM, as its Confirm button binds it), then dispatched. Returns the
        outcome: "done", "policy", or the error's class; a refusal is audited as denied."""
        with self.in_process() as services:
            trainees = services.use_cases.trainees
            policy = AccessPolicy(SlackSettings(operators=("UOPS",)), is_trainee=trainees.holds_vm)
            if not policy.check(who, "CCOURSE", command.verb, command.access):
                return "policy"
            last = services.repo.audit_entries(limit=1)
            mark = (last[0].id or 0) if last else 0
            invocation = Invocation(who, "slack", "CCOURSE")
            try:
                dispatch(services, resolve_target(services, command, invocation), invocation)
            except PermissionDenied:
                audited = services.repo.audit_entries(actor=who, limit=5)
                results = [e.result for e in audited if (e.id or 0) > mark]
                assert results == ["denied"], f"{who}'s refused {command}: audited {results}"
                return "denied"
            except ClonesError as exc:
                return type(exc).__name__
        return "done"

    @rule(pick=st.integers(0, 100), who=st.sampled_from(TRAINEES))
    def reuse_a_freed_name(self, pick: int, who: str) -> None:
        """A name freed by a VM that went missing or whose rebuild failed comes back: one clone
        of its type deployed into the other environment, and a trainee given one there."""
        rows = self.rows()
        live = {c.name for c in rows if c.state.live}
        freed = [
            c
            for c in rows
            if c.state in (CloneState.MISSING, CloneState.FAILED) and c.name not in live
        ]
        if not freed:  # see UNSEEN_STATE
            return
        self.reuse(freed[pick % len(freed)], who)

    def reuse(self, c: Any, who: str) -> None:
        other = next(e for e in ENVIRONMENTS if e != c.environment)
        self.act("deploy", other, ("deploy", c.type, "1", "as", other), "none", 0.0)
        self.act("assign", other, ("assign", other, who), "none", 0.0, set())
        self.steps["reuse"] += 1

    @rule(pick=st.integers(0, 100), who=st.sampled_from(TRAINEES))
    def a_trainees_vm_vanishes(self, pick: int, who: str) -> None:
        """The issue's sequence in one step: an admin deletes a VM a trainee holds, `resume`
        records it missing, and its name comes back in the other environment, for `who`. The
        trainee rules then act with whatever that trainee kept (their buttons, the name)."""
        held = self.assignments()
        if not held:  # see UNSEEN_STATE
            return
        a = held[pick % len(held)]
        with Repository(self.clones.database) as repo:
            clone = repo.get_clone(a.clone_id)
        if clone.state is not CloneState.READY or clone.instance_uuid not in self.vms():
            return
        if clone.name in self.hidden:  # the lab refuses the admin's session on it too
            return
        self.look(a.trainee)  # what they were shown last
        self.admin.destroy(clone.moref or "")
        self.behind_destroyed.add(clone.instance_uuid or "")
        self.unreconciled = True
        self.tags.pop(clone.id, None)
        self.steps["behind/destroy held"] += 1
        self.resume()
        with Repository(self.clones.database) as repo:
            clone = repo.get_clone(a.clone_id)
        if clone.state is CloneState.MISSING:
            self.reuse(clone, who)

    @initialize(kind=st.sampled_from(TYPES), count=st.integers(1, 4))
    def first_lab(self, kind: str, count: int) -> None:
        self.act("deploy", "a", ("deploy", kind, str(count), "as", "a"), "none", 0.0)
        # The admin's asset tagging: every clone of the first lab gets a cost centre.
        for c in self.rows():
            if c.state is CloneState.READY and c.moref:
                self.admin.tag(c.moref, "CostCenter", f"CC-{c.name}")
                self.tags[c.id] = f"CC-{c.name}"

    def needs_recovery(self) -> bool:
        """Something for recovery to do: an unfinished run, or VMs gone behind the bot's back
        since the last recovery. (A recovery with nothing to do is a no-op; skipping it leaves
        more of each sequence for the steps that matter.)"""
        if self.unreconciled:
            return True
        if not self.clones.has_database():
            return False
        with Repository(self.clones.database) as repo:
            return bool(repo.runs(states=[RunState.RUNNING, RunState.INTERRUPTED]))

    @rule()
    def resume(self) -> None:
        if not self.needs_recovery():  # see UNSEEN_STATE
            return
        before = self.vms()
        allowed = set().union(*self.pending.values()) if self.pending else set()
        runs_before = self.run_count()
        code = self.run("resume")
        self.steps["resume"] += 1
        self.assert_vanished_only(before, self.vms(), allowed)
        self.assert_resumed_deploys_powered_on(runs_before)
        if code in (0, 3) and not self.hidden:  # with VMs it cannot see, it cannot finish
            self.pending.clear()
            self.unreconciled = False
            self.assert_records_match_vcenter()

    @rule(expired=st.sampled_from([False, False, True]))
    def start_the_bot(self, expired: bool) -> None:
        """The Slack bot starting on the same database: start-up recovery, run to the end
        (`expired`: its session, opened first, ended the simulator's way before it starts)."""
        if not self.needs_recovery():  # see UNSEEN_STATE
            return
        before = self.vms()
        allowed = set().union(*self.pending.values()) if self.pending else set()
        runs_before = self.run_count()
        fake = FakeSlack().start()
        core = build(lab_settings(self.lab, self.clones.database), start_lab=False)
        if expired:
            core.vcenter.connect()
            self.expire(upstream=True)
        try:
            # The bot's own paced client (a plain WebClient is refused by its progress messages).
            client = make_client(replace(core.settings.slack, api_url=fake.api_url), "xoxb-test")
            bot = create_bot(core, SlackTokens("xoxb-test", "s" * 32, "", 0), client=client)
            bot.start(paused=True)
            bot.close(wait=True)  # waits until its job pool (the recovery) is idle
        finally:
            core.close()
            fake.stop()
        self.lab.control.wait_idle()
        self.steps["bot start"] += 1
        self.assert_vanished_only(before, self.vms(), allowed)
        self.assert_resumed_deploys_powered_on(runs_before)
        with Repository(self.clones.database) as repo:
            unfinished = repo.runs(states=[RunState.RUNNING, RunState.INTERRUPTED])
        if not unfinished and not self.hidden:
            self.pending.clear()
            self.unreconciled = False
            self.assert_records_match_vcenter()

    @precondition(lambda self: not self.database_lost)  # once a sequence: it resets the rest
    @rule()
    def lose_the_database(self) -> None:
        """The database is lost (the SQLite file deleted, the PostgreSQL schema dropped; a
        backup from before any deployment restored). `orphans` knows the bot's clones by their
        Notes; `orphans adopt` records those a type still names again, `orphans remove` removes
        the rest (renamed ones); nothing else. A clone the bot may not see is neither listed
        nor touched until its rights come back."""
        if not self.clones.has_database():  # see UNSEEN_STATE
            return
        if self.long_lived is not None:  # its connection is to the database that is lost
            self.long_lived.close()
            self.long_lived = None
        if self.url is None:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.clones.database}{suffix}").unlink(missing_ok=True)
        else:
            self.postgres.empty_database(self.url)
        before = self.vms()
        ours = {u: vm for u, vm in before.items() if self.provenance_ours(vm)}
        self.take_orphans_back(ours, before)
        if self.hidden:  # its rights back: what it could not see is taken back now
            unseen = {u: vm for u, vm in ours.items() if vm["name"] in self.hidden}
            self.lab.control.configure(no_permission_vms=None)
            self.hidden = set()
            self.take_orphans_back(unseen, self.vms())
        # The records are new: the model's bookkeeping by record starts again.
        self.tags.clear()
        self.pending.clear()
        self.unreconciled = False
        self.database_lost = True
        self.steps["database lost"] += 1

    def take_orphans_back(self, ours: dict[str, Any], before: dict[str, Any]) -> None:
        """`orphans` lists the bot's clones it can see as its own (and not those it cannot);
        `orphans adopt`, then `orphans remove` those no type names (renamed)."""
        listed = self.clones.run("orphans", timeout=180)
        self._check_output(listed.returncode, listed.stdout, listed.stderr, ("orphans",))
        lines = listed.stdout.splitlines()
        seen = {u: vm for u, vm in ours.items() if vm["name"] not in self.hidden}
        for u, vm in ours.items():
            line = next((x for x in lines if f"({vm['moref']})" in x), None)
            if u in seen:
                assert line is not None and ": made by this bot" in line, (vm["name"], line)
            else:
                assert line is None, f"{vm['name']} is listed, yet the bot may not see it"
        self.act("orphans", "", ("orphans", "adopt", "--yes"), "none", 0.0, set())
        unnamed = {u for u, vm in seen.items() if not self.named_by_a_type(vm["name"])}
        self.act("orphans", "", ("orphans", "remove", "--yes"), "none", 0.0, unnamed)
        assert set(before) - set(self.vms()) == unnamed

    def provenance_ours(self, vm: dict[str, Any]) -> bool:
        return read_provenance(vm.get("notes") or "").get("ManagedBy") == "clones"

    def named_by_a_type(self, name: str) -> bool:
        return any(named_by(t["name_pattern"], name) for t in LAB_TYPES.values())

    # ----------------------------------------------------------------- rules: behind its back
    @rule(
        pick=st.integers(0, 1000),
        what=st.sampled_from(["destroy", "rename", "power", "label", "tag"]),
    )
    def behind_the_bots_back(self, pick: int, what: str) -> None:
        # The admin's session is refused on VMs the bot's account may not see, too (the lab
        # refuses them to every session): they are left to the bot.
        vms = sorted(
            (vm for vm in self.ours() if vm["name"] not in self.hidden), key=lambda vm: vm["name"]
        )
        if not vms:  # see UNSEEN_STATE
            return
        vm = vms[pick % len(vms)]
        ready = {c.instance_uuid: c.id for c in self.rows() if c.state is CloneState.READY}
        if what == "destroy":
            self.admin.destroy(vm["moref"])
            self.behind_destroyed.add(vm["instance_uuid"])
            self.unreconciled = True
            self.tags.pop(ready.get(vm["instance_uuid"], -1), None)  # gone with its VM
        elif what == "tag":
            if vm["instance_uuid"] not in ready:  # a VM no finished record claims
                return
            value = f"CC-{pick:04}"
            self.admin.tag(vm["moref"], "CostCenter", value)
            self.tags[ready[vm["instance_uuid"]]] = value
        elif what == "rename":
            self.renames += 1
            self.admin.rename(vm["moref"], f"renamed-{self.renames:03}")
        elif what == "power":
            self.admin.power(vm["moref"], vm["power_state"] != "poweredOn")
            self.behind_powered.add(vm["instance_uuid"])
        else:
            self.admin.relabel(vm["moref"], "Environment", "elsewhere")
            self.relabelled.add(vm["instance_uuid"])
        self.steps[f"behind/{what}"] += 1

    # ----------------------------------------------------------------- rules: what it cannot see
    @rule(pick=st.integers(0, 1000), count=st.integers(0, 2))
    def permissions(self, pick: int, count: int) -> None:
        """The bot's account loses its rights on `count` of its clones (0: gets them back)."""
        names = sorted({vm["name"] for vm in self.ours()})
        chosen = {names[(pick + i) % len(names)] for i in range(count)} if names else set()
        self.lab.control.configure(no_permission_vms=sorted(chosen) or None)
        self.hidden = chosen
        self.steps[f"permissions/{len(chosen)}"] += 1

    def bot(self, *, expired: bool) -> App:
        """The long-lived bot's services (built once, kept between steps), its session ended
        the simulator's way first when `expired`."""
        if self.long_lived is None:
            self.long_lived = build(lab_settings(self.lab, self.clones.database), start_lab=False)
            self.long_lived.vcenter.connect()
        if expired:
            self.expire(upstream=True)
        return self.long_lived

    @rule(environment=st.sampled_from(ENVIRONMENTS), expired=st.booleans())
    def status_in_a_long_lived_bot(self, environment: str, expired: bool) -> None:
        """A long-lived bot's status (its session perhaps ended meanwhile): an existing clone is
        never "missing"; one it may not see is "cannot see"."""
        app = self.bot(expired=expired)
        try:
            (status,) = app.use_cases.queries.status(environment)
        except ClonesError:  # no such environment yet
            return
        self.steps[f"status/{'expired' if expired else 'live'}"] += 1
        if not status.checked:
            return
        by_moref = {vm["moref"]: vm for vm in self.lab.control.vms()}
        for c in status.clones:
            drift = status.drift.get(c.id)
            vm = by_moref.get(c.moref or "")
            if vm is None or vm["instance_uuid"] != c.instance_uuid or drift is None:
                continue
            assert not drift.missing, f"{c.name} exists but status calls it missing"
            if vm["name"] in self.hidden:
                assert drift.unseen.startswith(f"cannot see VM {c.name}: NoPermission"), drift

    @rule(environment=st.sampled_from(ENVIRONMENTS), expired=st.booleans())
    def strip_back_in_a_long_lived_bot(self, environment: str, expired: bool) -> None:
        """A strip back by a long-lived bot (its session perhaps ended meanwhile)."""
        before = self.vms()
        may_remove = self.removable("teardown", environment)
        app = self.bot(expired=expired)
        try:
            result = app.use_cases.strip_back.teardown(environment, actor="model")
        except ClonesError:  # nothing to strip back, or busy
            result = None
        self.lab.control.wait_idle()
        self.steps[f"long-lived teardown/{'expired' if expired else 'live'}"] += 1
        self.assert_vanished_only(before, self.vms(), may_remove)
        self.stripped.add(environment)
        if result is None:
            return
        # Unseen for want of rights only where the rule took them away; a read that failed for
        # another reason (the lab slow to answer on a loaded machine: a socket timeout) is
        # unseen too, rightly, and left as it was recorded (checked by the invariants).
        refused = [
            f
            for f in result.unseen
            if f.name not in self.hidden and ("NoPermission" in f.error or "privilege" in f.error)
        ]
        assert not refused, f"cannot see {refused}, yet may see them"
        if result.unseen or result.failed or result.skipped:
            assert result.state is not RunState.SUCCEEDED, result
            self.pending.setdefault(environment, set()).update(may_remove)

    # ----------------------------------------------------------------- invariants
    @invariant()
    def nothing_unseen_is_recorded_gone(self) -> None:
        """A record says destroyed or missing only when its VM is gone (by instance UUID)."""
        vms = self.vms()
        latest: dict[str, Any] = {}
        for c in self.rows():
            if c.instance_uuid and (
                c.instance_uuid not in latest or c.id > latest[c.instance_uuid].id
            ):
                latest[c.instance_uuid] = c
        wrong = [
            f"{c.name} ({c.state.value})"
            for uuid, c in latest.items()
            if c.state in (CloneState.DESTROYED, CloneState.MISSING) and uuid in vms
        ]
        assert not wrong, "recorded gone, yet in vCenter: " + ", ".join(wrong)

    @invariant()
    def decoys_parents_and_snapshots_untouched(self) -> None:
        now = {vm["moref"]: vm for vm in self.lab.control.vms()}
        for moref, vm in self.decoys.items():
            assert moref in now, f"{vm['name']} was destroyed"
            seen = now[moref]
            keep = ("name", "folder", "custom", "power_state", "instance_uuid", "notes")
            assert {k: seen.get(k) for k in keep} == {k: vm.get(k) for k in keep}, vm["name"]
            # A parent gains its base snapshot once (the first deployment); never loses one.
            assert int(seen.get("snapshots") or 0) >= int(vm.get("snapshots") or 0)

    @invariant()
    def no_leak(self) -> None:
        """Every VM carrying the bot's provenance is recorded by its instance UUID: a live
        row, or a failed one that kept its moref (a VM whose destroy was refused)."""
        rows = self.rows()
        live = {c.instance_uuid for c in rows if c.state.live}
        kept = {(c.instance_uuid, c.moref) for c in rows if c.state is CloneState.FAILED}
        leaked = [
            vm["name"]
            for u, vm in self.vms().items()
            if self.provenance_ours(vm) and u not in live and (u, vm["moref"]) not in kept
        ]
        assert not leaked, f"VMs of the bot's that no record knows: {sorted(leaked)}"

    @invariant()
    def no_duplicates(self) -> None:
        vms = self.lab.control.vms()
        uuids = [vm["instance_uuid"] for vm in vms]
        assert len(uuids) == len(set(uuids)), "duplicate instance UUIDs"
        names = [vm["name"] for vm in vms if vm["folder"] == FOLDER]
        assert len(names) == len(set(names)), f"duplicate names: {sorted(names)}"
        live = [c.name for c in self.rows() if c.state.live]
        assert len(live) == len(set(live)), "two live records with one name"

    @invariant()
    def assignments_follow_their_clones(self) -> None:
        if not self.clones.has_database():
            return
        with Repository(self.clones.database) as repo:
            active = repo.assignments()
            states = {c.id: c.state for c in repo.clones()}
        assert len({a.clone_id for a in active}) == len(active), "a clone held twice"
        assert len({(a.environment, a.trainee) for a in active}) == len(active)
        gone = [a.clone_name for a in active if states[a.clone_id] in GONE_FOR_GOOD]
        assert not gone, f"assignments outlived their clones (destroyed, missing, failed): {gone}"

    @invariant()
    def admins_attributes_follow_their_clones(self) -> None:
        """Whatever VM a tagged record is ready on now (the first one, or a successor a refresh
        or rebuild made, after a crash too) carries the admin's attribute."""
        if not self.tags:
            return
        vms = self.vms()
        rows = {c.id: c for c in self.rows()}
        for clone_id, value in self.tags.items():
            c = rows[clone_id]
            vm = vms.get(c.instance_uuid or "")
            if c.state is CloneState.READY and vm is not None:
                assert (vm.get("custom") or {}).get("CostCenter") == value, (
                    f"{c.name} lost its CostCenter"
                )

    def assert_resumed_deploys_powered_on(self, runs_before: int) -> None:
        """A deployment "and power on" that recovery finished (a run started by this step) left
        every clone it made on, those made before the crash included (unless someone powered
        them since)."""
        if not self.clones.has_database():
            return
        vms = self.vms()
        with Repository(self.clones.database) as repo:
            runs = sorted(repo.runs(limit=100_000), key=lambda r: r.id)[runs_before:]
            for run in runs:
                if run.kind is not RunKind.DEPLOY or not run.power_on:
                    continue
                if run.state is not RunState.SUCCEEDED or run.environment in self.bot_powered:
                    continue
                for c in repo.clones(run_id=run.id, states=[CloneState.READY]):
                    vm = vms.get(c.instance_uuid or "")
                    if vm is None or c.instance_uuid in self.behind_powered:
                        continue
                    assert vm["power_state"] == "poweredOn", (
                        f"{c.name} of resumed run {run.id} (and power on) is {vm['power_state']}"
                    )

    def assert_records_match_vcenter(self) -> None:
        """After a recovery that finished: records and vCenter agree by instance UUID."""
        vms = self.vms()
        rows = self.rows()
        for c in rows:
            assert c.state not in UNFINISHED, f"{c.name} left {c.state}"
            if c.state is CloneState.READY:
                assert c.instance_uuid in vms, f"{c.name} is recorded ready but gone"
        latest: dict[str, Any] = {}
        for c in rows:  # rows come ordered by name; keep the newest row per UUID
            if c.instance_uuid and (
                c.instance_uuid not in latest or c.id > latest[c.instance_uuid].id
            ):
                latest[c.instance_uuid] = c
        for uuid, vm in vms.items():
            row = latest.get(uuid)
            if row is not None:
                assert row.state.live, f"{vm['name']} exists but its record is {row.state}"
        with Repository(self.clones.database) as repo:
            assert not repo.runs(states=[RunState.RUNNING, RunState.INTERRUPTED])


TrustModel.TestCase.settings = settings(
    max_examples=int(os.environ.get("CLONES_MODEL_EXAMPLES", "4")),
    stateful_step_count=int(os.environ.get("CLONES_MODEL_STEPS", "12")),
)


@pytest.mark.backends("sqlite", "postgresql")
def test_trust_model(lab_binary: Path, backend: str, request: pytest.FixtureRequest) -> None:
    if backend == "postgresql":
        TrustModel.postgres = request.getfixturevalue("postgres_server")
    try:
        TrustModel.TestCase("runTest").runTest()
    finally:
        TrustModel.postgres = None
