"""A deployment that powers on brings each clone up as it is made (issue 16), and the pool keeps
to `max_ops_per_host`: both against the lab vCenter, which reports the most operations it saw at
once on each host."""

from __future__ import annotations

from typing import Any

from bot.domain import grammar
from bot.domain.models import RunState
from bot.domain.results import ProgressEvent
from tests.helpers import MakeApp, types_with

WIN_SPEC = {"name": "win-training", "kind": "sysprep"}
CUSTOMIZED = types_with(
    capture={"customization_spec": "win-training"},
    packaging={"customization_spec": "win-training"},
)


def _deploy(app: Any, text: str) -> tuple[Any, list[ProgressEvent]]:
    events: list[ProgressEvent] = []  # list.append is atomic: clone threads share it
    command = grammar.parse(text)
    assert isinstance(command, grammar.Deploy)
    return app.use_cases.deployer.deploy(command, actor="trainer", on_event=events.append), events


def test_each_clone_is_powered_on_as_it_is_made_and_the_run_ends_when_the_last_is_usable(
    make_lab: Any, make_app: MakeApp
) -> None:
    # Three hosts of two operations each; two clone tasks and two power-ons may be in flight.
    lab = make_lab(
        {
            "clusters": [{"name": "Training", "hosts": 3}],
            "customization_specs": [WIN_SPEC],
            "clone_latency_ms": 400,
            "power_on_latency_ms": 20,
            "customization_latency_ms": 100,
        }
    )
    app = make_app(
        lab, types=CUSTOMIZED, concurrency=2, max_ops_per_host=2, customization_timeout_s=30
    )
    result, events = _deploy(app, "deploy capture 4 packaging 2 as cohort and power on")

    assert result.state is RunState.SUCCEEDED and len(result.ready) == 6
    kinds = [(e.kind, e.clone) for e in events]
    made = [i for i, (k, _) in enumerate(kinds) if k == "clone_ready"]
    on = [i for i, (k, _) in enumerate(kinds) if k == "clone_powered_on"]
    usable = [i for i, (k, _) in enumerate(kinds) if k == "clone_customized"]
    assert len(made) == len(on) == len(usable) == 6
    # Pipelined: clones are powered on, and customized, while later clones are being made.
    assert on[0] < made[-1] and usable[0] < made[-1]
    for name in result.ready:  # each clone: made, then on, then customized
        made_at = kinds.index(("clone_ready", name))
        on_at = kinds.index(("clone_powered_on", name))
        assert made_at < on_at < kinds.index(("clone_customized", name))
    # The run ends when the last clone is usable, and its progress said so stage by stage.
    last = events[-1]
    assert last.kind == "finished" and kinds.index(("finished", None)) > max(usable)
    assert (last.done, last.powered_on, last.customized) == (6, 6, 6)
    assert last.stages_text == "cloned 6 · powered on 6 · customized 6"
    records = app.repo.clones(environment="cohort")
    assert all(c.power_state == "poweredOn" and c.customization == "succeeded" for c in records)
    assert lab.control.stats()["host_ops_in_flight_max_any"] <= 2  # the lab's own count


def test_a_type_without_customization_is_only_powered_on(make_lab: Any, make_app: MakeApp) -> None:
    lab = make_lab({"customization_specs": [WIN_SPEC]})
    app = make_app(lab, types=CUSTOMIZED)
    result, events = _deploy(app, "deploy capture 1 verification 2 as mixed and power on")
    assert len(result.ready) == 3 and not result.failed
    last = events[-1]
    assert (last.powered_on, last.customized) == (3, 1)
    records = {c.name: c for c in app.repo.clones(environment="mixed")}
    assert records["TRN-CAP-001"].customization == "succeeded"
    assert all(c.power_state == "poweredOn" for c in records.values())
    assert {c.customization for n, c in records.items() if n.startswith("TRN-VER")} == {""}


def test_a_deployment_without_power_on_shows_no_stages(make_lab: Any, make_app: MakeApp) -> None:
    app = make_app(make_lab({}))
    _, events = _deploy(app, "deploy capture 2 as plain")
    assert all(e.powered_on is None and e.customized is None for e in events)
    assert events[-1].stages_text == ""


def test_the_per_host_limit_is_never_exceeded(make_lab: Any, make_app: MakeApp) -> None:
    # Two hosts, two operations at once on each: the pool runs four clones at once (not its
    # concurrency of 8), spreads them over both hosts, and power-ons count on their host too.
    lab = make_lab({"clusters": [{"name": "Training", "hosts": 2}], "clone_latency_ms": 120})
    app = make_app(lab, concurrency=8, max_ops_per_host=2)
    _deploy(app, "deploy capture 1 as warm")
    lab.control.configure(power_on_latency_ms=60)
    lab.control.reset()
    result, _ = _deploy(app, "deploy capture 7 packaging 5 as wide and power on")

    assert len(result.ready) == 12 and not result.failed
    stats = lab.control.stats()
    assert stats["host_ops_in_flight_max_any"] == 2  # reached, never passed
    assert set(stats["host_ops_in_flight_max"]) == {"esx-training-01", "esx-training-02"}
    assert stats["clone_calls_in_flight_max"] <= 4
    hosts = [c.host for c in app.repo.clones(environment="wide")]
    assert sorted(hosts.count(h) for h in set(hosts)) == [6, 6]  # the bot placed them evenly
