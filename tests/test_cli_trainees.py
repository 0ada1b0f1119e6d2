"""Trainees from the terminal: `clones assign ENV from roster.csv` (e-mail addresses looked up
in Slack with the bot's token, the hand-out sent; without a token, member IDs only and a clear
note), the assignment in `status` and the inventory's CSV, self-service for an operator, the
course's end."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.adapters.lab import LabProcess
from bot.cli import options
from tests.helpers import clones_of, lab_config, write_config
from tests.slack.fake_api import FakeSlack
from tests.terminal import Result, Terminal, assert_clean_failure
from tests.vsphere import Admin

pytestmark = pytest.mark.lab

ROSTER = "name,e-mail\nAnn Example,ann@example.com\nBob Example,U0BOB\n"


def ok(result: Result) -> Result:
    assert result.code == 0, result
    return result


@pytest.fixture
def slack_term(
    lab: LabProcess, term: Terminal, fake_slack: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> Terminal:
    """The terminal with the bot's token set and [slack] api_url at the fake Slack."""
    term.configure(lab)
    write_config(
        term.config,
        {
            **lab_config(lab, term.database),
            "slack": {"api_url": fake_slack.api_url, "operators": ["UOLGA"]},
            "trainees": {"assigned_to_attribute": True},
        },
    )
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test")
    fake_slack.add_user("UANN", "Ann Example", "ann@example.com")
    fake_slack.add_user("U0BOB", "Bob Example", "bob@example.com")
    return term


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    fake = FakeSlack(tiers=True).start()
    yield fake
    fake.stop()


def test_assign_from_a_roster_with_the_bots_token(
    lab: LabProcess, slack_term: Terminal, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    term = slack_term
    ok(term("deploy", "capture", "3", "as", "nov"))
    (tmp_path / "roster.csv").write_text(ROSTER, encoding="utf-8")

    done = ok(term("assign", "nov", "from", "roster.csv"))
    assert "nov: 2 trainees hold a VM (2 new, 0 kept)." in done.out
    assert "  UANN -> TRN-CAP-001\n  U0BOB -> TRN-CAP-002" in done.out
    assert "2/2 handed out to U0BOB" in done.out
    assert "Hand-out: 2 trainees reached." in done.out
    assert [c.params["email"] for c in fake_slack.ok_calls("users.lookupByEmail")] == [
        "ann@example.com"
    ]
    for user, vm in (("UANN", "TRN-CAP-001"), ("U0BOB", "TRN-CAP-002")):
        [dm] = [
            c for c in fake_slack.ok_calls("chat.postMessage") if c.params["channel"] == user
        ]  # posted to the member ID: Slack opens the app's DM
        assert dm.params["text"] == f"Your training VM: {vm} in nov"
    lab_vms = clones_of(lab)
    assert lab_vms["TRN-CAP-001"]["custom"]["AssignedTo"] == "Ann Example (UANN)"
    assert "AssignedTo" not in lab_vms["TRN-CAP-003"]["custom"]

    # Status and the inventory's CSV say who holds which VM.
    assert "TRN-CAP-001" in ok(term("status", "nov")).out
    assert "-> UANN" in ok(term("status", "nov")).out
    [env] = ok(term("status", "nov", "--json")).json["environments"]
    assert {c["name"]: c["assigned_to"] for c in env["clones"]} == {
        "TRN-CAP-001": "UANN",
        "TRN-CAP-002": "U0BOB",
        "TRN-CAP-003": "",
    }
    rows = list(csv.DictReader(io.StringIO(ok(term("inventory", "nov", "--csv")).out)))
    assert {r["name"]: r["assigned_to"] for r in rows} == {
        "TRN-CAP-001": "UANN",
        "TRN-CAP-002": "U0BOB",
        "TRN-CAP-003": "",
    }
    assert rows[0]["AssignedTo"] == "Ann Example (UANN)"

    # Again, with one more: the pairs stay; only the newcomer gets a message.
    (tmp_path / "roster.csv").write_text(ROSTER + "Cat,UCAT\n", encoding="utf-8")
    fake_slack.add_user("UCAT", "Cat")
    again = ok(term("assign", "nov", "from", "roster.csv", "--json")).json
    assert again["new"] == [{"trainee": "UCAT", "vm": "TRN-CAP-003"}]
    assert len(again["kept"]) == 2 and again["handout"]["sent"] == ["UCAT"]

    # The terminal is trusted like an operator: it may reset any trainee's VM.
    lab.control.reset()
    ok(term("power", "on", "nov"))
    assert "Reset TRN-CAP-002" in ok(term("reset", "TRN-CAP-002")).out
    assert lab.control.stats()["requests"]["ResetVM_Task"] == 1

    # The course's end: each trainee is told, once.
    ok(term("teardown", "nov", "--yes"))
    told = [c for c in fake_slack.ok_calls("chat.postMessage") if "is over" in c.params["text"]]
    assert sorted(c.params["channel"] for c in told) == ["U0BOB", "UANN", "UCAT"]


def test_assigned_to_is_written_and_cleared_in_vcenter(
    lab: LabProcess, slack_term: Terminal, fake_slack: FakeSlack
) -> None:
    """With [trainees] assigned_to_attribute: AssignedTo as vCenter holds it, read back over SOAP
    by a session of its own: written on assign, cleared on unassign, written again on a new
    assign; the other clone never carries it."""
    term = slack_term
    ok(term("deploy", "capture", "2", "as", "nov"))
    admin = Admin(lab)
    try:
        ok(term("assign", "nov", "UANN"))
        assert admin.custom_values("TRN-CAP-001")["AssignedTo"] == "Ann Example (UANN)"
        assert "AssignedTo" not in admin.custom_values("TRN-CAP-002")

        ok(term("unassign", "nov", "UANN"))
        assert admin.custom_values("TRN-CAP-001").get("AssignedTo", "") == ""
        assert "-> " not in ok(term("status", "nov")).out

        ok(term("assign", "nov", "bob@example.com"))
        assert admin.custom_values("TRN-CAP-001")["AssignedTo"] == "Bob Example (U0BOB)"
        # The other attributes the deployment wrote are untouched.
        assert admin.custom_values("TRN-CAP-001")["Environment"] == "nov"
    finally:
        admin.close()


def test_without_a_token_member_ids_are_assigned_and_nobody_is_messaged(
    lab: LabProcess, term: Terminal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SLACK_BOT_TOKEN", raising=False)
    term.configure(lab)
    ok(term("deploy", "capture", "2", "as", "nov"))
    roster = tmp_path / "roster.csv"
    roster.write_text(ROSTER, encoding="utf-8")
    refused = term("assign", "nov", "from", "roster.csv")
    assert_clean_failure(refused, "ann@example.com", "SLACK_BOT_TOKEN is not set")
    assert refused.code == options.EXIT_USAGE

    roster.write_text("U0ANN\nU0BOB\n", encoding="utf-8")
    done = ok(term("assign", "nov", "from", str(roster)))
    assert "nov: 2 trainees hold a VM" in done.out
    assert "Hand-out: trainees were not messaged: SLACK_BOT_TOKEN is not set" in done.out


def test_a_bad_roster_changes_nothing(lab: LabProcess, term: Terminal, tmp_path: Path) -> None:
    term.configure(lab)
    ok(term("deploy", "capture", "2", "as", "nov"))
    missing = term("assign", "nov", "from", "nowhere.csv")
    assert_clean_failure(missing, "no roster file nowhere.csv")
    assert missing.code == options.EXIT_USAGE
    (tmp_path / "bad.csv").write_text("email\nann@example.com\nnot a person\n", encoding="utf-8")
    assert_clean_failure(term("assign", "nov", "from", "bad.csv"), "bad.csv, line 3")
    (tmp_path / "many.csv").write_text("U01\nU02\nU03\n", encoding="utf-8")
    short = term("assign", "nov", "from", "many.csv")
    assert_clean_failure(short, '"deploy capture 1 as nov"', "Nothing was assigned")
    assert "-> " not in ok(term("status", "nov")).out


def test_an_operator_powers_one_trainees_vm_by_its_name(
    lab: LabProcess, term: Terminal, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`power off TRN-CAP-002` (a VM name where an environment goes) powers that trainee's VM
    alone; a name that is neither an environment nor a held VM is the usual error."""
    monkeypatch.delenv("SLACK_BOT_TOKEN", raising=False)
    term.configure(lab)
    ok(term("deploy", "capture", "3", "as", "nov", "and", "power", "on"))
    ok(term("assign", "nov", "U0ANN", "U0BOB"))
    held = {n: vm for n, vm in clones_of(lab).items()}
    assert {vm["power_state"] for vm in held.values()} == {"poweredOn"}

    done = ok(term("power", "off", "TRN-CAP-002"))
    assert "TRN-CAP-002" in done.out
    states = {n: vm["power_state"] for n, vm in clones_of(lab).items()}
    assert states == {
        "TRN-CAP-001": "poweredOn",
        "TRN-CAP-002": "poweredOff",
        "TRN-CAP-003": "poweredOn",
    }
    # TRN-CAP-003 is nobody's: not an environment either, so nothing changes.
    assert_clean_failure(term("power", "off", "TRN-CAP-003"), 'No environment named "trn-cap-003"')
    assert clones_of(lab)["TRN-CAP-003"]["power_state"] == "poweredOn"
