"""`clones status --all`, `clones history [ENV]` and `clones audit --since DATE --csv` against the
lab vCenter, as an operator types them (issue 26)."""

from __future__ import annotations

import csv
import io

import pytest

from bot.adapters.lab import LabProcess
from tests.terminal import Terminal, assert_clean_failure

pytestmark = pytest.mark.lab


def test_a_finished_environment_leaves_status_for_history(lab: LabProcess, term: Terminal) -> None:
    term.configure(lab)
    assert term("deploy", "capture", "2", "as", "done-cohort").code == 0
    assert term("deploy", "packaging", "1", "as", "live-cohort").code == 0
    assert term("teardown", "done-cohort", "--yes").code == 0

    status = term("status", "--json")
    assert [e["name"] for e in status.json["environments"]] == ["live-cohort"]
    everything = term("status", "--all", "--json")
    assert [e["name"] for e in everything.json["environments"]] == ["done-cohort", "live-cohort"]
    finished = term("status", "done-cohort")
    assert finished.code == 0 and "0 live clones" in finished.out
    assert 'clones history done-cohort" shows its past' in finished.out

    history = term("history")
    assert history.code == 0, history.err
    lines = history.out.splitlines()
    assert lines[0].startswith("done-cohort: stripped back; 2 clones made by trainer, ")
    assert "saved " in lines[0] and "against thin full clones" in lines[0]
    assert lines[1].startswith("live-cohort: live; 1 clone made by trainer (1 live), ")
    runs = term("history", "done-cohort", "--json").json
    assert [r["run"]["kind"] for r in runs["runs"]] == ["teardown", "deploy"]
    assert runs["environments"][0]["outcome"] == "stripped back"
    assert runs["runs"][1]["made"] == 2 and runs["runs"][1]["savings"]["clones"] == 2


def test_the_audit_log_exports_as_csv(lab: LabProcess, term: Terminal) -> None:
    term.configure(lab)
    assert term("deploy", "capture", "1", "as", "audited").code == 0
    exported = term("audit", "--since", "1d", "--csv")
    assert exported.code == 0, exported.err
    rows = list(csv.DictReader(io.StringIO(exported.out)))
    assert list(rows[0]) == ["at", "actor", "source", "channel", "command", "result", "detail"]
    assert any(r["actor"] == "trainer" and "audited" in r["command"] for r in rows)
    assert [r["at"] for r in rows] == sorted(r["at"] for r in rows)
    text = term("audit")
    assert text.code == 0 and "trainer (cli" in text.out


@pytest.mark.parametrize(
    ("words", "fragment"),
    [
        (("audit", "--since", "someday"), 'e.g. "audit --since 2026-01-31"'),
        (("status", "x", "--all"), "not both"),
        (("history", "nowhere"), 'No environment named "nowhere"'),
    ],
)
def test_bad_history_commands_say_what_to_type(
    lab: LabProcess, term: Terminal, words: tuple[str, ...], fragment: str
) -> None:
    term.configure(lab)
    assert_clean_failure(term(*words), fragment)
