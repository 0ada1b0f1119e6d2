"""The terminal and Slack say the same outcome in the same words (bot.services.sentences): the
terminal plainly, Slack in mrkdwn with what vCenter or a user wrote escaped. No lab needed."""

from __future__ import annotations

import io
from typing import Any

import pytest

from bot.cli.dialogue import confirmed
from bot.cli.options import Options
from bot.cli.render import View, show_deploy_result, show_orphans, show_teardown
from bot.domain import grammar
from bot.domain.errors import UsageError
from bot.domain.models import Clone, CloneState, Environment, RunState
from bot.domain.results import (
    DeployResult,
    EnvironmentStatus,
    FailedClone,
    TeardownPlan,
    TeardownResult,
)
from bot.domain.vsphere import VmFacts
from bot.services import sentences as say
from bot.services.orphans import Orphan, OrphansOutcome
from handlers.blocks import admin, plans, reads
from handlers.blocks import runs as shown
from handlers.blocks.kit import MRKDWN, Rendered


def _terminal(render: Any, result: object, command: object) -> str:
    out = io.StringIO()
    opts = Options(
        json=False, yes=True, chart=None, csv=False, config=None, verbose=False, words=[]
    )
    render(result, View(command, opts, out, services=None))  # type: ignore[arg-type]
    return out.getvalue()


def _slack(r: Rendered) -> str:
    parts = [r.text]
    for b in r.blocks:
        if b["type"] == "section":
            parts.append(b["text"]["text"])
        parts += [e.get("text", "") for e in b.get("elements", []) if isinstance(e, dict)]
    return "\n".join(str(p) for p in parts)


DEPLOYED = DeployResult(
    run_id=7,
    environment="nov-cohort",
    requested=3,
    ready=["TRN-CAP-001", "TRN-CAP-002"],
    failed=[FailedClone("TRN-CAP-003", "capture", "no room")],
    elapsed_s=12.0,
    state=RunState.PARTIAL,
)
STRIPPED = TeardownResult(
    run_id=8,
    environment="nov-cohort",
    destroyed=["TRN-CAP-001"],
    already_gone=["TRN-CAP-002"],
    skipped=[],
    failed=[],
    reclaimed_bytes=2**30,
    elapsed_s=3.0,
    state=RunState.SUCCEEDED,
    renamed={"TRN-CAP-001": "someone-else"},
)


def test_a_deployment_and_a_strip_back_are_summed_up_alike() -> None:
    line = say.deployed(DEPLOYED)
    assert line == "2 of 3 linked clones ready in nov-cohort"
    assert line in _terminal(show_deploy_result, DEPLOYED, grammar.parse("deploy capture 3"))
    assert shown.deploy_summary(DEPLOYED, "U1").text == f"{line}, 1 failed"

    line = say.stripped_back(STRIPPED)
    assert line == "Stripped back nov-cohort: 1 clone destroyed, 1.00 GB reclaimed"
    terminal = _terminal(show_teardown, STRIPPED, grammar.Teardown("nov-cohort"))
    slack = _slack(shown.teardown_result(STRIPPED, "U1"))
    assert line in terminal and line in slack
    for said in (say.already_gone(1), "TRN-CAP-001, now named someone-else"):
        assert said in terminal
    assert say.already_gone(1) in slack and "`TRN-CAP-001`, now named `someone-else`" in slack


def test_the_plan_before_a_strip_back_is_the_same_sentence() -> None:
    plan = TeardownPlan("nov-cohort", {"capture": 2, "packaging": 1}, 3, 3 * 2**30)
    out = io.StringIO()
    opts = Options(
        json=False, yes=False, chart=None, csv=False, config=None, verbose=False, words=[]
    )
    with pytest.raises(UsageError, match="needs confirmation"):  # off a terminal, after the plan
        confirmed(grammar.Teardown("nov-cohort"), plan, opts, out)
    assert say.teardown_plan(plan) in out.getvalue()
    slack = _slack(plans.teardown_plan(plan, "U1", "token"))
    assert say.teardown_plan(plan, MRKDWN) in slack
    assert "destroys *3 clones* (2 capture, 1 packaging) and reclaims about *3.00 GB*" in slack


def test_failed_records_are_listed_planned_and_cleared_in_the_same_words() -> None:
    env = Environment("broken", "U1")
    failures = tuple(FailedClone(f"TRN-CAP-00{n}", "capture", "<InvalidArgument>") for n in "12345")
    st = EnvironmentStatus(env, {"capture": {"failed": 5}}, failures=failures)
    assert say.environment_head(st, "U1") == "broken: 0 live clones, 5 failed, owner U1"
    lines = say.failure_lines(st)
    assert lines[0] == "failed: TRN-CAP-001: <InvalidArgument>" and len(lines) == 4
    assert lines[-1] == (
        "(2 more in clones status broken; clones teardown broken clears failed records that "
        "have no VM in vCenter)"
    )
    slack = _slack(reads.status([st], None))
    assert "`TRN-CAP-001`: &lt;InvalidArgument&gt;" in slack  # escaped: vCenter wrote it
    assert "/clones teardown broken clears failed records" in slack

    plan = TeardownPlan("broken", {}, 0, 0, failed_records=5)
    assert say.teardown_plan(plan) == (
        "This clears 5 failed records (a VM left of one is destroyed too, only when provably "
        "the bot's). Nothing else is touched."
    )
    both = TeardownPlan("nov", {"capture": 2}, 2, 2**30, failed_records=1)
    assert "It also clears 1 failed record (" in say.teardown_plan(both)

    done = TeardownResult(
        run_id=9, environment="broken", destroyed=[], already_gone=[], skipped=[], failed=[],
        reclaimed_bytes=0, elapsed_s=1.0, state=RunState.SUCCEEDED, cleared=["TRN-CAP-001"],
    )  # fmt: skip
    said = say.cleared(done.cleared)
    assert said == "1 failed record cleared, no VM in vCenter: TRN-CAP-001"
    assert said in _terminal(show_teardown, done, grammar.Teardown("broken"))
    assert "no VM in vCenter: `TRN-CAP-001`" in _slack(shown.teardown_result(done, "U1"))


def test_orphans_are_listed_in_the_same_words() -> None:
    vm = VmFacts("vm-9", "TRN-CAP-900", "u-9", False, True, {"Environment": "<elsewhere>"})
    ours = Orphan(vm, Clone(9, "TRN-CAP-900", "old", "capture", "Capture", CloneState.FAILED))
    # Its record lost: known by its Notes (what vCenter holds, written by the clone call).
    noted = Orphan(
        VmFacts("vm-11", "TRN-CAP-901", "u-11", False, True),
        None,
        {"ManagedBy": "clones", "Environment": "<old>", "DeployedFrom": "Capture"},
        type="capture",
    )
    foreign = Orphan(VmFacts("vm-10", "decoy", "u-10", False, True), None)
    outcome = OrphansOutcome([ours, noted, foreign])
    terminal = _terminal(show_orphans, outcome, grammar.Orphans())
    slack = _slack(admin.orphans_list(outcome))
    for o in (ours, noted, foreign):
        assert say.orphan(o) in terminal
    # A recorded one is named by its record's environment, a lost one by its Notes'.
    assert "TRN-CAP-900 (vm-9): made by this bot, environment old" in terminal
    assert (
        "TRN-CAP-901 (vm-11): made by this bot, environment <old>, its record lost (its Notes "
        "say so): adopt takes it back as capture" in terminal
    )
    # Slack escapes what vCenter holds (Notes anyone can edit) and quotes the VM name.
    assert "`TRN-CAP-901` (vm-11): made by this bot, environment &lt;old&gt;" in slack
    assert "carries ManagedBy but was not made by this bot: never touched" in slack
    assert say.deal_with_orphans() in terminal and say.deal_with_orphans(MRKDWN) in slack


def test_a_deployment_that_powers_on_shows_its_stages_in_both_front_ends(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from bot.cli.progress import Progress
    from bot.domain.results import DEPLOYING, ProgressEvent

    def event(kind: Any, done: int, on: int, custom: int, failed: int = 0) -> ProgressEvent:
        return ProgressEvent(
            kind, 7, "nov", DEPLOYING, 20, done, 0, 3.0, None, powered_on=on,
            customized=custom, customization_failed=failed,
        )  # fmt: skip

    midway = event("clone_powered_on", 20, 10, 4)
    assert midway.stages_text == "cloned 20 · powered on 10 · customized 4"
    slack = _slack(shown.deploy_progress(midway, "U1"))
    assert "cloned 20 · powered on 10 · customized 4" in slack
    assert "ETA unknown" in slack  # every clone made, its customization awaited
    with Progress(io.StringIO(), enabled=True) as on_event:
        on_event(midway)  # every tenth power-on is a line off a terminal
        on_event(event("finished", 20, 20, 19, failed=1))
    lines = capsys.readouterr().err
    assert "cloned 20 · powered on 10 · customized 4" in lines
    assert "cloned 20 · powered on 20 · customized 19 (1 failed)" in lines
    plain = event("clone_ready", 20, 0, 0)
    assert ProgressEvent(**{**plain.__dict__, "powered_on": None}).stages_text == ""
