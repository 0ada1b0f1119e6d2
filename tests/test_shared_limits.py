"""`concurrency`, `max_ops_per_host` and `max_ops_per_datastore` hold for the whole process
(issue 22, point 7): every run of one process (deploys, strip backs, power-ons) takes its room
from one limiter, as vCenter's provisioning limits are per host whoever asks. Counted by the lab
vCenter itself (`clone_calls_in_flight_max`, `host_ops_in_flight_max_any` of /lab/stats).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from bot.adapters.lab import LabProcess
from bot.domain import grammar
from bot.domain.models import RunState
from bot.domain.results import ProgressEvent
from tests.faults import record
from tests.helpers import MakeApp

pytestmark = pytest.mark.lab

MakeLab = Callable[[dict[str, Any]], LabProcess]


class Watched:
    """One run started on its own thread, with the progress events it emitted."""

    def __init__(self, work: Callable[[Callable[[ProgressEvent], None]], Any]) -> None:
        self.events: list[tuple[float, ProgressEvent]] = []
        self.result: Any = None
        self.error: BaseException | None = None
        self.ended = 0.0
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, args=(work,))

    def on_event(self, e: ProgressEvent) -> None:
        with self._lock:
            self.events.append((time.monotonic(), e))

    def _run(self, work: Callable[[Callable[[ProgressEvent], None]], Any]) -> None:
        try:
            self.result = work(self.on_event)
        except BaseException as exc:  # reported by join()
            self.error = exc
        self.ended = time.monotonic()

    def start(self) -> Watched:
        self._thread.start()
        return self

    def join(self) -> Any:
        self._thread.join(timeout=300)
        assert not self._thread.is_alive(), "the run did not end"
        if self.error is not None:
            raise self.error
        return self.result

    def ready(self) -> int:
        with self._lock:
            return sum(e.kind == "clone_ready" for _, e in self.events)


def _deploy(app: Any, text: str) -> Callable[[Callable[[ProgressEvent], None]], Any]:
    command = grammar.parse(text)
    assert isinstance(command, grammar.Deploy)
    return lambda on_event: app.use_cases.deployer.deploy(
        command, actor="trainer", on_event=on_event
    )


def test_four_concurrent_runs_keep_to_the_process_wide_limits(
    make_lab: MakeLab, make_app: MakeApp
) -> None:
    """Three deployments (one powering on) and a strip back at once in one process: the lab
    never sees more than `concurrency` clone tasks, nor more than `max_ops_per_host`
    operations on a host. (Before: each run had limits of its own, so four runs had up to
    four times as many.)"""
    lab = make_lab(
        {
            "clusters": [{"name": "Training", "hosts": 3}],
            "clone_latency_ms": 150,
            "destroy_latency_ms": 100,
            "power_on_latency_ms": 60,
        }
    )
    app = make_app(lab, concurrency=4, max_ops_per_host=2)
    _deploy(app, "deploy capture 8 as old")(lambda e: None)
    lab.control.reset()

    runs = [
        Watched(_deploy(app, "deploy capture 12 as r1")).start(),
        Watched(_deploy(app, "deploy packaging 12 as r2 and power on")).start(),
        Watched(_deploy(app, "deploy verification 6 as r3")).start(),
        Watched(
            lambda on_event: app.use_cases.strip_back.teardown(
                "old", actor="trainer", on_event=on_event
            )
        ).start(),
    ]
    results = [w.join() for w in runs]
    stats = lab.control.stats()

    assert [r.state for r in results] == [RunState.SUCCEEDED] * 4
    assert [len(r.ready) for r in results[:3]] == [12, 12, 6]
    assert len(results[3].destroyed) == 8
    assert stats["clone_calls_in_flight_max"] <= 4, stats["clone_calls_in_flight_max"]
    assert stats["host_ops_in_flight_max_any"] <= 2, stats["host_ops_in_flight_max"]
    assert stats["clone_calls_in_flight_max"] == 4  # reached: the limit is shared, not lowered
    record(
        "four concurrent runs, one process",
        clone_calls_in_flight_max=stats["clone_calls_in_flight_max"],
        host_ops_in_flight_max_any=stats["host_ops_in_flight_max_any"],
        concurrency=4,
        max_ops_per_host=2,
    )


def test_a_small_run_is_queued_visibly_and_not_starved_by_a_big_one(
    make_lab: MakeLab, make_app: MakeApp
) -> None:
    """A 4-clone deployment started while a 40-clone one holds every slot says it waits for
    vCenter capacity (it does not look stuck), then gets its share of the slots: it finishes
    long before the big one."""
    lab = make_lab({"clone_latency_ms": 200})
    app = make_app(lab, concurrency=4)
    _deploy(app, "deploy capture 1 as warm")(lambda e: None)
    big = Watched(_deploy(app, "deploy capture 40 as big")).start()
    deadline = time.monotonic() + 60
    while big.ready() < 4:  # the big run holds every slot now
        assert time.monotonic() < deadline, "the big run did not start"
        time.sleep(0.02)
    small = Watched(_deploy(app, "deploy packaging 4 as small")).start()
    small_result = small.join()
    big_ready_when_small_ended = big.ready()
    big_result = big.join()

    assert small_result.state is RunState.SUCCEEDED and len(small_result.ready) == 4
    assert big_result.state is RunState.SUCCEEDED and len(big_result.ready) == 40
    waiting = [e for _, e in small.events if e.waiting]
    assert waiting, "the small run never said it was queued"
    assert "waiting for vCenter capacity" in waiting[0].waiting
    assert not small.events[-1][1].waiting  # no longer queued once it ran
    # Fair shares: the small run ended while the big one had most of its clones still to make.
    assert big_ready_when_small_ended <= 24, big_ready_when_small_ended
    record(
        "a 4-clone run beside a 40-clone run",
        big_ready_when_small_ended=big_ready_when_small_ended,
        small_s=round(small.ended - small.events[0][0], 2),
        big_s=round(big.ended - big.events[0][0], 2),
    )
