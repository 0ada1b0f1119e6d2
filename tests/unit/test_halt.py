"""Issue 21 in the unit tier: the user stopping the process (`Halt`, set by the terminal's
Ctrl-C). Work already started finishes; nothing more starts; no run starts. The real signals are
in tests/test_faults_interrupt.py."""

from __future__ import annotations

import threading

import pytest

from bot.domain import grammar
from bot.domain.errors import Interrupted
from bot.domain.models import RunKind, RunState
from bot.services.container import Services
from bot.services.pipeline import Stop, run_per_clone
from bot.services.runbook import Halt

WAIT_S = 10.0  # only ever reached when the code under test is wrong


def test_a_halt_lets_started_work_finish_and_starts_nothing_more() -> None:
    halt = Halt()
    started: list[int] = []
    both_started = threading.Barrier(3)
    go_on = threading.Event()

    def work(item: int, stop: Stop) -> int:
        started.append(item)
        if item < 2:  # the two in flight when the user stops
            both_started.wait(WAIT_S)
            assert go_on.wait(WAIT_S)
        return item * 10

    def stop_when_two_run() -> None:
        both_started.wait(WAIT_S)
        halt.set("Ctrl-C")
        go_on.set()

    stopper = threading.Thread(target=stop_when_two_run)
    stopper.start()
    per = run_per_clone(list(range(10)), work, workers=2, name="test", halt=halt)
    stopper.join(WAIT_S)

    assert per.results == [(0, 0), (1, 10)]  # finished, and handed back
    assert per.not_started == list(range(2, 10)) and sorted(started) == [0, 1]
    assert per.halted == "Ctrl-C" and per.lost is None


def test_a_halt_after_everything_started_is_no_interruption() -> None:
    halt = Halt()

    def work(item: int, stop: Stop) -> int:
        if item == 2:
            halt.set("SIGTERM")  # the last one is already running
        return item

    per = run_per_clone([0, 1, 2], work, workers=1, name="test", halt=halt)
    assert [r for _, r in per.results] == [0, 1, 2] and per.not_started == []
    assert per.halted == ""


def test_no_run_starts_once_the_process_is_halted(services: Services) -> None:
    services.use_cases.halt("Ctrl-C")
    command = grammar.parse("deploy capture 2 as late")
    assert isinstance(command, grammar.Deploy)
    with pytest.raises(Interrupted, match="Stopped by Ctrl-C before the deploy of late started"):
        services.use_cases.deployer.deploy(command, actor="trainer")
    assert services.repo.runs(environment="late") == []
    assert services.repo.clones(environment="late") == []


def test_a_second_signal_marks_the_processs_running_runs_interrupted(services: Services) -> None:
    env = services.repo.ensure_environment("busy", owner="trainer")
    runs = services.use_cases.runs
    run = runs.start_run(
        environment=env.name,
        kind=RunKind.DEPLOY,
        requested_by="trainer",
        requested=1,
        command="deploy capture 1 as busy",
        source="cli",
    )
    assert runs.interrupt_all("stopped at once") == [run.id]
    after = services.repo.get_run(run.id)
    assert after.state is RunState.INTERRUPTED and after.message == "stopped at once"
    assert runs.interrupt_all("again") == []  # nothing running any more
