"""`snapshot ENV NAME` end to end: from the terminal against the lab vCenter over SOAP (each
ready clone that is provably the bot's gets a snapshot; a relabelled clone is left alone, a
destroyed one recorded missing; bad input changes nothing), and from Slack through the real
Bolt app (operators get the result in the channel; a trainee is refused and audited)."""

from __future__ import annotations

import pytest

from bot.adapters.lab import LabProcess
from bot.cli import options
from bot.domain import grammar
from bot.domain.errors import UsageError
from bot.domain.models import CloneState
from storage import Repository
from tests.helpers import clones_of, vms
from tests.terminal import Terminal, assert_clean_failure
from tests.vsphere import Admin

from .conftest import OPERATOR, SlackHarness

pytestmark = pytest.mark.lab

ANN = "UANN"


def _snapshots(lab: LabProcess) -> dict[str, int]:
    return {name: int(vm.get("snapshots") or 0) for name, vm in vms(lab).items()}


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("snapshot", "say which environment and a name"),
        (
            "snapshot nov-cohort",
            'say a name for the snapshot after the environment, e.g. "snapshot',
        ),
        ('snapshot nov-cohort "before lab"', '"before lab" is not a snapshot name'),
        ("snapshot nov-cohort a b", '"a b" is not a snapshot name'),
        ("snapshot Nov_Cohort x", "is not a valid environment name"),
    ],
)
def test_bad_input_gets_a_specific_error(text: str, said: str) -> None:
    with pytest.raises(UsageError) as caught:
        grammar.parse(text)
    assert (
        said in str(caught.value) and "snapshot nov-cohort before-lab-2" in str(caught.value)
    ) or said in str(caught.value)
    assert "e.g." in str(caught.value)


def test_the_help_says_what_a_strip_back_does_to_a_snapshot() -> None:
    assert grammar.parse("snapshot nov-cohort before-lab-2") == grammar.Snapshot(
        "nov-cohort", "before-lab-2"
    )
    text = grammar.usage("snapshot")
    assert "destroys the clone and every snapshot it has" in text
    assert "`concurrency`" in text


def test_snapshot_from_the_terminal(lab: LabProcess, term: Terminal) -> None:
    term.configure(lab, concurrency=2)
    assert term("deploy", "capture", "4", "as", "sn").code == 0
    before = _snapshots(lab)
    names = sorted(clones_of(lab))
    moref = {n: vm["moref"] for n, vm in clones_of(lab).items()}
    admin = Admin(lab)
    try:
        # Behind the bot's back: one clone relabelled into another environment, one destroyed.
        admin.relabel(moref[names[0]], "Environment", "elsewhere")
        admin.destroy(moref[names[1]])
    finally:
        admin.close()
    lab.control.reset()

    done = term("snapshot", "sn", "before-lab-2")
    assert done.code == options.EXIT_PARTIAL, done
    assert "Traceback" not in done.out + done.err
    assert 'Snapshot "before-lab-2" of sn: 2 done, 1 failed, 1 left alone' in done.out
    assert f"{names[1]}: missing from vCenter" in done.out
    assert f"{names[0]}: not touched: Environment is not 'sn'" in done.out
    after = _snapshots(lab)
    grown = {n for n in after if after[n] > before.get(n, 0)}
    assert grown == set(names[2:])  # the parents and the relabelled clone: untouched
    assert lab.control.stats()["requests"]["CreateSnapshot_Task"] == 2
    with Repository(term.database) as repo:
        states = {c.name: c.state for c in repo.clones(environment="sn")}
        [entry] = [e for e in repo.audit_entries() if e.command.startswith("snapshot sn")]
    assert states[names[1]] is CloneState.MISSING
    assert states[names[0]] is CloneState.READY  # left alone, not recorded gone
    assert (entry.command, entry.result, entry.source) == (
        "snapshot sn before-lab-2",
        "partial",
        "cli",
    )

    data = term("snapshot", "sn", "second", "--json")
    assert sorted(data.json["done"]) == names[2:] and data.json["action"] == "second"

    # Bad input and unknown environments change nothing.
    lab.control.reset()
    assert_clean_failure(term("snapshot", "sn"), "say a name for the snapshot")
    assert_clean_failure(term("snapshot", "nope", "x"), 'No environment named "nope"')
    assert not lab.control.stats()["requests"].get("CreateSnapshot_Task")


def test_snapshot_from_slack_and_refused_for_a_trainee(harness: SlackHarness) -> None:
    h = harness
    h.deploy("deploy capture 2 as lab")
    h.fake.add_user(OPERATOR, "Olga Operator", "olga@example.com")
    h.fake.add_user(ANN, "Trainee Ann", "ann@example.com")
    assert h.command(f"assign lab <@{ANN}|ann>").status == 200
    h.idle(120)
    assert h.core.repo.assignments(trainee=ANN)
    h.lab.control.reset()

    # A trainee holds a VM of the lab, yet may not snapshot it: refused in the ack, audited.
    reply = h.command("snapshot lab cp1", user=ANN)
    assert reply.status == 200 and reply.elapsed_s < 3
    assert reply.json["text"].startswith(":no_entry:"), reply.json
    h.idle()
    assert not h.lab.control.stats()["requests"].get("CreateSnapshot_Task")
    [denied] = [e for e in h.core.repo.audit_entries(actor=ANN) if e.result == "denied"]
    assert denied.command == "/clones snapshot lab cp1"

    # An operator: acked at once, the result in the channel, each clone snapshotted.
    reply = h.command("snapshot lab cp1")
    assert reply.status == 200 and reply.elapsed_s < 3
    assert reply.json["text"] == "Snapshotting the clones of lab..."
    h.idle()
    [shown] = [c.params for c in h.fake.of("response_url") if "cp1" in c.params.get("text", "")]
    assert shown["text"] == 'Snapshot "cp1" of lab: 2 done, 0 failed', shown
    assert shown["response_type"] == "in_channel"  # for the channel to see
    assert h.lab.control.stats()["requests"]["CreateSnapshot_Task"] == 2
    assert all(int(vm.get("snapshots") or 0) == 1 for vm in clones_of(h.lab).values())

    # Bad input: a specific answer in the ack, nothing done.
    reply = h.command("snapshot lab")
    assert "say a name for the snapshot after the environment" in reply.json["text"]
    h.idle()
    assert h.lab.control.stats()["requests"]["CreateSnapshot_Task"] == 2
