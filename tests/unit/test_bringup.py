"""Issue 16 in the unit tier: the operation limiter (bot/services/limits.py), the batches and the
host spread that keep to it, and the pipelined bring-up of `deploy ... and power on` against the
in-memory vCenter. Nothing here is timed (speed is in benchmarks/usable.py and limits.py)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pytest

from bot.domain import grammar
from bot.domain.errors import Interrupted, VCenterError
from bot.domain.models import Clone, CloneState, RunKind
from bot.domain.placement import Host, spread
from bot.domain.results import ProgressEvent
from bot.domain.vsphere import CloneRequest, VmFacts
from bot.ports import VCenter
from bot.services.container import Services
from bot.services.dispatch import Deployed, Invocation, dispatch
from bot.services.limits import OpLimits, clone_host
from tests.fakes import FakeVCenter
from tests.helpers import types_with

WAIT_S = 10.0  # only ever reached when the code under test is wrong
CUSTOMIZED = types_with(capture={"customization_spec": "win-training"})


# ----------------------------------------------------------------- the limiter
def test_a_full_host_holds_the_next_operation_until_one_ends() -> None:
    limits = OpLimits(total=8, per_host=2, per_datastore=100)
    first, second = limits.host_op("h1"), limits.host_op("h1")
    first.acquire()
    second.acquire()
    limits.host_op("h2").acquire()  # another host has room
    got = threading.Event()

    def third() -> None:
        with limits.host_op("h1"):
            got.set()

    worker = threading.Thread(target=third)
    worker.start()
    assert limits.wait_for_waiting(1, WAIT_S)  # it waits for room on h1...
    assert not got.is_set()
    first.release()  # ...and goes once an operation there ends
    worker.join(WAIT_S)
    assert got.is_set() and limits.most_on_a_host == 2 and limits.waiting == 0


def test_clone_tickets_count_against_the_total_and_the_datastore() -> None:
    limits = OpLimits(total=2, per_host=8, per_datastore=3)
    a, b = limits.clone("h1", "ds1"), limits.clone("h2", "ds1")
    a.acquire()
    b.acquire()
    limits.host_op("h1").acquire()  # a power-on takes no clone slot and no datastore room
    assert not limits._room(limits.clone("h4", "ds2"))  # two clones: the total is reached
    b.release()
    assert limits._room(limits.clone("h4", "ds2"))
    limits.host_op("h3", "ds1").acquire()  # a destroy counts on its datastore...
    limits.clone("h4", "ds1").acquire()  # ...so ds1 is now full (3)
    assert not limits._room(limits.host_op("h5", "ds1"))
    assert limits._room(limits.host_op("h5"))
    a.release()
    assert limits._room(limits.host_op("h5", "ds1"))


@pytest.mark.parametrize("per_host", [1, 2, 3])
def test_many_threads_never_pass_the_per_host_limit(per_host: int) -> None:
    limits = OpLimits(total=16, per_host=per_host, per_datastore=1000)
    lock = threading.Lock()
    now: Counter[str] = Counter()
    most: Counter[str] = Counter()
    hosts = [f"h{i % 3}" for i in range(60)]
    start = threading.Barrier(12)

    def work(mine: Sequence[str]) -> None:
        start.wait(WAIT_S)
        for host in mine:
            with limits.clone(host, "ds"):
                with lock:
                    now[host] += 1
                    most[host] = max(most[host], now[host])
                with lock:
                    now[host] -= 1

    threads = [threading.Thread(target=work, args=(hosts[i::12],)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT_S)
    assert max(most.values()) <= per_host and limits.most_on_a_host <= per_host
    assert sum(now.values()) == 0


def _acquire_in_thread(ticket: Any, got: list[Any], errors: list[Exception]) -> threading.Thread:
    def take() -> None:
        try:
            ticket.acquire()
        except Interrupted as exc:
            errors.append(exc)
            return
        got.append(ticket.owner)

    worker = threading.Thread(target=take)
    worker.start()
    return worker


def test_room_that_frees_goes_to_the_run_with_the_fewest_operations_in_flight() -> None:
    """Fair shares: run A holds both slots and queued three more before run B asked for one;
    the next free slot goes to B (none in flight), not to A's older tickets."""
    limits = OpLimits(total=2, per_host=8, per_datastore=8)
    held = [limits.clone("h1", "ds", owner="A"), limits.clone("h2", "ds", owner="A")]
    for t in held:
        t.acquire()
    got: list[Any] = []
    workers = []
    for n in range(3):
        workers.append(_acquire_in_thread(limits.clone("h1", "ds", owner="A"), got, []))
        assert limits.wait_for_waiting(n + 1, WAIT_S)
    workers.append(_acquire_in_thread(limits.clone("h1", "ds", owner="B"), got, []))
    assert limits.wait_for_waiting(4, WAIT_S)
    held[0].release()
    workers[3].join(WAIT_S)
    assert got == ["B"]  # B first, although A's three waited longer
    held[1].release()  # now A has none in flight and B one: A's oldest goes
    workers[0].join(WAIT_S)
    assert got == ["B", "A"] and limits.waiting == 2
    limits.halt("test over")  # the two still waiting give up
    for worker in workers:
        worker.join(WAIT_S)
        assert not worker.is_alive()


def test_a_run_with_nothing_in_flight_is_told_it_is_queued_and_when_it_goes_on() -> None:
    limits = OpLimits(total=1, per_host=8, per_datastore=8)
    first = limits.clone("h1", "ds", owner="big")
    first.acquire()
    heard: list[tuple[bool, str, int]] = []
    ticket = limits.clone("h2", "ds", owner="small", on_queued=lambda *a: heard.append(a))
    got: list[Any] = []
    worker = _acquire_in_thread(ticket, got, [])
    assert limits.wait_for_waiting(1, WAIT_S)
    first.release()
    worker.join(WAIT_S)
    assert got == ["small"]
    assert [(q, why) for q, why, _ in heard] == [
        (True, "all 1 clone tasks (concurrency) are in use"),
        (False, ""),
    ]
    assert heard[0][2] < heard[1][2]  # ordered, so a late report is known as stale


def test_a_halt_stops_waiting_tickets_and_refuses_new_ones() -> None:
    limits = OpLimits(total=1, per_host=8, per_datastore=8)
    held = limits.clone("h1", "ds", owner="A")
    held.acquire()
    errors: list[Exception] = []
    worker = _acquire_in_thread(limits.clone("h1", "ds", owner="B"), [], errors)
    assert limits.wait_for_waiting(1, WAIT_S)
    limits.halt("Ctrl-C")
    worker.join(WAIT_S)
    assert [str(e) for e in errors] == ["Ctrl-C"] and limits.waiting == 0
    with pytest.raises(Interrupted):
        limits.host_op("h1").acquire()
    held.release()  # what was in flight gives its room back as usual
    assert limits.in_flight() == 0


def test_a_clone_counts_on_where_it_runs_else_its_recorded_host_else_its_pool(
    services: Services,
) -> None:
    settings = services.settings
    pool = settings.type("capture").resource_pool

    def clone(n: int, kind: str = "capture", host: str | None = None) -> Clone:
        return Clone(n, f"TRN-{n:03}", "e", kind, "Capture", CloneState.READY, host=host)

    placed = clone(1, host="host-2")
    assert clone_host(settings, placed, "host-3") == "host-3"
    assert clone_host(settings, placed) == "host-2"
    assert clone_host(settings, clone(2)) == f"pool:{pool}"
    assert clone_host(settings, clone(3, "retired")) == "pool:type:retired"


def test_spread_puts_each_clone_on_the_least_loaded_usable_host() -> None:
    hosts = [Host("h1", "esx-01", True), Host("h2", "esx-02", True), Host("h3", "esx-03", False)]
    load: Counter[str] = Counter({"h1": 2})
    placed = spread(["c1", "c2", "c3", "c4"], hosts, load)
    assert placed == {"c1": "h2", "c2": "h2", "c3": "h1", "c4": "h2"}
    assert load == Counter({"h1": 3, "h2": 3})  # shared with the deployment's next type
    assert spread(["x"], [Host("h3", "esx-03", False)], Counter()) == {"x": None}


# ----------------------------------------------------------------- pipelined bring-up


def _deploy(s: Services, text: str) -> tuple[Any, list[ProgressEvent]]:
    events: list[ProgressEvent] = []  # list.append is atomic: clone threads share it
    done = dispatch(s, grammar.parse(text), Invocation("trainer", "cli", on_event=events.append))
    assert isinstance(done, Deployed)
    return done.result, events


class GatedVCenter(FakeVCenter):
    """The last clone is made only once the first one is on: a deployment that powered on
    after cloning everything (a batch barrier) would never get there."""

    def __init__(self, last: str) -> None:
        super().__init__()
        self.last = last
        self.first_on = threading.Event()
        self.on_before_last: list[str] = []  # clones on when the last one was asked for

    def clone(self, req: CloneRequest, *, finish: bool = True) -> VmFacts:
        if req.name == self.last:
            if not self.first_on.wait(WAIT_S):
                raise AssertionError("the last clone was asked for before any clone was on")
            self.on_before_last = [vm.name for vm in self.clones() if vm.powered_on]
        return super().clone(req, finish=finish)

    def power(self, morefs: Sequence[str], action: str) -> list[VCenterError | None]:
        out = super().power(morefs, action)
        self.first_on.set()
        return out


if TYPE_CHECKING:  # mypy proves the double implements its port (docs/architecture.md)
    _gated: VCenter = GatedVCenter(last="")


def test_each_clone_is_on_and_customized_before_the_last_is_made(
    make_services: Any, vcenter: FakeVCenter
) -> None:
    fake = GatedVCenter(last="TRN-CAP-006")
    fake.customization_spec_exists = lambda spec_name: True  # type: ignore[method-assign]
    s = _services_over(make_services, fake, types=CUSTOMIZED, concurrency=2)
    result, events = _deploy(s, "deploy capture 6 as cohort and power on")

    assert len(result.ready) == 6 and not result.failed
    kinds = [(e.kind, e.clone) for e in events]
    for name in result.ready:  # each clone: made, then on, then customized
        made_at = kinds.index(("clone_ready", name))
        assert made_at < kinds.index(("clone_powered_on", name))
        assert kinds.index(("clone_powered_on", name)) < kinds.index(("clone_customized", name))
    assert fake.on_before_last  # powered on while later clones were still being made
    last = events[-1]
    assert last.kind == "finished"
    assert last.stages_text == "cloned 6 · powered on 6 · customized 6"
    records = s.repo.clones(environment="cohort")
    assert {(c.power_state, c.customization) for c in records} == {("poweredOn", "succeeded")}
    assert all(vm.powered_on for vm in fake.clones())


def test_a_failed_customization_is_counted_and_recorded(
    make_services: Any, vcenter: FakeVCenter
) -> None:
    vcenter.customization_spec_exists = lambda spec_name: True  # type: ignore[method-assign]
    broken: set[str] = set()
    real = vcenter.customization_outcomes

    def outcomes(morefs: Any, since: Any) -> Any:
        found = real(morefs, since)
        bad = next((m for m, vm in vcenter.vms.items() if vm.name == "TRN-CAP-002"), "")
        if bad in found:
            broken.add(bad)
            found[bad] = type(found[bad])(bad, False, "sysprep failed")
        return found

    vcenter.customization_outcomes = outcomes  # type: ignore[method-assign]
    s = make_services(types=CUSTOMIZED)
    _, events = _deploy(s, "deploy capture 3 verification 1 as cohort and power on")
    last = events[-1]
    assert last.stages_text == "cloned 4 · powered on 4 · customized 2 (1 failed)"
    record = {c.name: c for c in s.repo.clones(environment="cohort")}["TRN-CAP-002"]
    assert record.customization == "failed" and "sysprep failed" in (record.error or "")
    assert record.power_state == "poweredOn" and broken


def test_a_deployment_that_does_not_power_on_leaves_clones_off(services: Services) -> None:
    result, events = _deploy(services, "deploy capture 2 as plain")
    assert len(result.ready) == 2
    assert all(e.powered_on is None for e in events) and events[-1].stages_text == ""
    assert {c.power_state for c in services.repo.clones(environment="plain")} != {"poweredOn"}


def test_power_ons_and_clones_are_placed_so_no_host_is_crowded(
    make_services: Any, vcenter: FakeVCenter
) -> None:
    # 8 clone tasks and 8 power-ons could be in flight; 4 hosts of 4 operations each: the bot
    # places the clones on hosts itself, evenly.
    s = make_services(concurrency=8, max_ops_per_host=4)
    result, _ = _deploy(s, "deploy capture 6 packaging 6 as wide and power on")
    assert len(result.ready) == 12
    hosts = Counter(vm.host for vm in vcenter.clones())
    assert sorted(hosts.values()) == [3, 3, 3, 3]
    assert all(vm.powered_on for vm in vcenter.clones())


def _services_over(make_services: Any, fake: FakeVCenter, **overrides: Any) -> Services:
    """`Services` over another fake vCenter than the fixture's."""
    from bot.services.admin import Admin
    from bot.services.container import Services as Made
    from bot.services.recovery import Recovery
    from bot.services.usecases import UseCases

    base: Services = make_services(**overrides)
    service = UseCases(base.settings, base.repo, fake)
    return Made(base.settings, base.repo, fake, service, Admin(service), Recovery.over(service))


def test_a_resumed_deployment_that_powers_on_finishes_the_bring_up_of_earlier_clones(
    make_services: Any, vcenter: FakeVCenter
) -> None:
    """After a crash, the run recovery starts in its place (power_on inherited) powers on the
    clones made before that were still off, watches again a customization still awaited (that
    clone is not powered on again), and counts the ones already done."""
    vcenter.customization_spec_exists = lambda spec_name: True  # type: ignore[method-assign]
    s = make_services(types=CUSTOMIZED)
    _deploy(s, "deploy capture 3 as cohort")  # made, left off: the state at the crash, below
    awaited, done, off = s.repo.clones(environment="cohort")
    vcenter.power([awaited.moref or "", done.moref or ""], "on")
    s.repo.update_clone(awaited.id, power_state="poweredOn", customization="pending")
    s.repo.update_clone(done.id, power_state="poweredOn", customization="succeeded")
    powered: list[str] = []
    real = vcenter.power

    def power(morefs: Sequence[str], action: str) -> list[VCenterError | None]:
        powered.extend(morefs)
        return real(morefs, action)

    vcenter.power = power  # type: ignore[method-assign]
    ids = [awaited.id, done.id, off.id]
    run = s.repo.start_run(
        environment="cohort", kind=RunKind.DEPLOY, requested_by="t", requested=3,
        clone_ids=ids, power_on=True, owner=s.use_cases.runs.owner,  # this process's, as resumed
    )  # fmt: skip
    events: list[ProgressEvent] = []
    result = s.use_cases.deploy_runs.run_clones(
        run.id,
        s.use_cases.queries.environment("cohort"),
        s.repo.clones(run_id=run.id),
        "t",
        events.append,
        power_on=run.power_on,
        todo=[],
    )

    assert powered == [off.moref]  # only the clone still off; the awaited one is not asked again
    assert len(result.ready) == 3
    assert events[-1].stages_text == "cloned 3 · powered on 3 · customized 3"
    records = s.repo.clones(environment="cohort")
    assert {(c.power_state, c.customization) for c in records} == {("poweredOn", "succeeded")}
