"""Unseen is never gone (issue 21, point 1), against the lab vCenter.

A long-lived bot (one `bootstrap` app kept between commands, as the Slack bot keeps it) whose
vCenter session ended between two commands meets reads answered as VMware's simulator answers
them then: HTTP 200, every object's properties in missingSet with NotAuthenticated (the lab's
`expired_session_reads = "missing_set"`). It must log in again and read again, never take the
clones for gone. A VM the account may no longer see (`no_permission_vms`: NoPermission per
object) is "cannot see VM X: NoPermission, privilege System.Read": left recorded as it was, and
the command that met it says so and does not exit 0.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest

from bot.adapters.lab import LabProcess
from bot.bootstrap import App, build
from bot.domain.models import CloneState, RunState
from tests.helpers import MakeApp, clones_of, deploy, lab_settings
from tests.terminal import Terminal

pytestmark = pytest.mark.lab

UNSEEN = "NoPermission, privilege System.Read"


def expire_the_upstream_way(lab: LabProcess) -> None:
    """End every session; reads without one are answered as VMware's simulator does."""
    lab.control.configure(expired_session_reads="missing_set")
    lab.control.expire_sessions()


def test_a_long_lived_bot_whose_session_ended_sees_its_clones(
    lab: LabProcess, make_app: MakeApp
) -> None:
    # The issue's repro: a strip back after the session expired reported "0 clones destroyed
    # ... 24 already gone from vCenter", recorded all 24 destroyed, left them all running.
    app = make_app(lab)
    assert len(deploy(app, "deploy capture 24 as cohort").ready) == 24
    reads_before = lab.control.stats()["reads_without_session"]

    expire_the_upstream_way(lab)
    (status,) = app.use_cases.queries.status("cohort")
    assert status.checked and status.drift == {}, status.drift

    expire_the_upstream_way(lab)
    report = app.recovery.recover(actor="trainer")
    assert report.missing == [] and report.unseen == [], report.text
    assert all(c.state is CloneState.READY for c in app.repo.clones(environment="cohort"))

    expire_the_upstream_way(lab)
    result = app.use_cases.strip_back.teardown("cohort", actor="trainer")
    assert (len(result.destroyed), result.already_gone, result.unseen) == (24, [], [])
    assert result.state is RunState.SUCCEEDED
    assert clones_of(lab) == {}
    # Status and the strip back (their first calls read VMs by moref) each met the simulator's
    # answer to an ended session, and read again; resume's first call (a container view) got
    # the NotAuthenticated fault instead.
    assert lab.control.stats()["reads_without_session"] == reads_before + 2


def test_the_session_is_checked_before_the_first_read_after_idle_time(
    lab: LabProcess, tmp_path: Path
) -> None:
    settings = lab_settings(lab, tmp_path / "clones.db")
    settings = replace(settings, vcenter=replace(settings.vcenter, session_check_s=0.2))
    app: App = build(settings, start_lab=False)
    try:
        deploy(app, "deploy capture 2 as cohort")
        expire_the_upstream_way(lab)
        lab.control.reset()
        time.sleep(0.3)  # idle longer than session_check_s
        (status,) = app.use_cases.queries.status("cohort")
        assert status.checked and status.drift == {}
        stats = lab.control.stats()
        # The check found the session gone and logged in before the first read: no read was
        # answered without a session.
        assert stats["reads_without_session"] == 0
        assert stats["requests"].get("Login") == 1
    finally:
        app.close()


def test_a_strip_back_that_cannot_see_some_clones_leaves_them_and_exits_non_zero(
    lab: LabProcess, term: Terminal
) -> None:
    term.configure(lab)
    assert term("deploy", "capture", "5", "as", "cohort").code == 0
    hidden = ("TRN-CAP-002", "TRN-CAP-004")
    lab.control.configure(no_permission_vms=list(hidden))

    status = term("status", "cohort")
    assert status.code == 0
    for name in hidden:
        line = next(line for line in status.out.splitlines() if line.strip().startswith(name))
        assert f"cannot see VM {name}: {UNSEEN}" in line and "missing" not in line
    assert "2 clone(s) cannot be seen" in status.out

    strip = term("teardown", "cohort", "--yes")
    assert strip.code == 3, strip.out + strip.err  # partly done: never 0
    assert "3 clones destroyed" in strip.out and "already gone" not in strip.out
    for name in hidden:
        assert f"cannot see VM {name}: {UNSEEN}" in strip.out
    records = term.clones("cohort")
    assert {n for n, c in records.items() if c.state is CloneState.READY} == set(hidden)
    assert set(clones_of(lab)) == set(hidden)  # left running, as recorded

    resume = term("resume")  # nothing is recorded missing either
    assert resume.code == 3 and f"cannot see VM {hidden[0]}: {UNSEEN}" in resume.out
    assert {c.state for n, c in term.clones("cohort").items() if n in hidden} == {CloneState.READY}

    lab.control.configure(no_permission_vms=None)  # the privilege granted again
    again = term("teardown", "cohort", "--yes")
    assert again.code == 0 and "2 clones destroyed" in again.out
    assert clones_of(lab) == {}
