"""`suspend ENV` end to end: from the terminal against the lab vCenter over SOAP (each ready
clone that is provably the bot's is suspended; a relabelled clone is left alone; bad input
changes nothing), and from Slack through the real Bolt app (the result in the channel; a trainee
is refused and audited)."""

from __future__ import annotations

import pytest

from bot.adapters.lab import LabProcess
from bot.cli import options
from bot.domain import grammar
from bot.domain.errors import UsageError
from storage import Repository
from tests.helpers import clones_of
from tests.terminal import Terminal, assert_clean_failure
from tests.vsphere import Admin

from .conftest import STRANGER, SlackHarness

pytestmark = pytest.mark.lab


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("suspend", "say which environment to suspend"),
        ("suspend a b", "say which environment to suspend"),
        ("suspend Nov_Cohort", "is not a valid environment name"),
    ],
)
def test_bad_input_gets_a_specific_error(text: str, said: str) -> None:
    with pytest.raises(UsageError) as caught:
        grammar.parse(text)
    assert said in str(caught.value) and "e.g." in str(caught.value)


def test_suspend_from_the_terminal(lab: LabProcess, term: Terminal) -> None:
    term.configure(lab, concurrency=2)
    assert term("deploy", "capture", "3", "as", "su").code == 0
    assert term("power", "on", "su").code == 0
    names = sorted(clones_of(lab))
    admin = Admin(lab)
    try:  # behind the bot's back: one clone relabelled into another environment
        admin.relabel(clones_of(lab)[names[0]]["moref"], "Environment", "elsewhere")
    finally:
        admin.close()
    lab.control.reset()

    done = term("suspend", "su")
    assert done.code == options.EXIT_PARTIAL, done
    assert "Suspend su: 2 done, 0 failed, 1 left alone" in done.out
    states = {n: vm["power_state"] for n, vm in clones_of(lab).items()}
    assert states == {names[0]: "poweredOn", names[1]: "suspended", names[2]: "suspended"}
    assert lab.control.stats()["requests"]["SuspendVM_Task"] == 2
    with Repository(term.database) as repo:
        [entry] = [e for e in repo.audit_entries() if e.command == "suspend su"]
    assert (entry.result, entry.source) == ("ok", "cli")

    lab.control.reset()
    assert_clean_failure(term("suspend"), "say which environment to suspend")
    assert_clean_failure(term("suspend", "nope"), 'No environment named "nope"')
    assert not lab.control.stats()["requests"].get("SuspendVM_Task")


def test_suspend_from_slack_and_refused_for_a_stranger(harness: SlackHarness) -> None:
    h = harness
    assert h.command("deploy capture 2 as lab").status == 200
    h.fake.wait_for(lambda: h.fake.ok_calls("files.completeUploadExternal"), timeout=120)
    h.command("power on lab")
    h.idle(120)
    h.lab.control.reset()

    reply = h.command("suspend lab", user=STRANGER)
    assert reply.json["text"].startswith(":no_entry:"), reply.json
    h.idle()
    assert not h.lab.control.stats()["requests"].get("SuspendVM_Task")

    reply = h.command("suspend lab")
    assert reply.status == 200 and reply.elapsed_s < 3
    assert reply.json["text"] == "Suspending the clones of lab..."
    h.idle()
    [shown] = [c.params for c in h.fake.of("response_url") if "Suspend lab" in c.params["text"]]
    assert shown["text"] == "Suspend lab: 2 done, 0 failed"
    assert shown["response_type"] == "in_channel"
    assert all(vm["power_state"] == "suspended" for vm in clones_of(h.lab).values())
