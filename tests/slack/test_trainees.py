"""Trainees end to end: the real Bolt app, the lab vCenter and the fake Slack (its workspace:
users, channel members, direct messages, 429s). A cohort handed out through rate limiting, a
trainee resetting and rebuilding their own VM (seen in the lab), another's VM refused and
audited, assignments across a restart of the bot, and the end of the course."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bot import bootstrap
from bot.settings import TraineeSettings
from handlers.blocks.ids import (
    ACTION_CONFIRM,
    ACTION_MY_POWER_OFF,
    ACTION_MY_REBUILD,
    ACTION_MY_RESET,
    ACTION_REBUILD_CONFIRM,
)
from tests.helpers import Clock, vms

from .conftest import CHANNEL, OPERATOR, STRANGER, SlackHarness
from .fake_api import FakeSlack, Message
from .signing import action_body, action_payload, sign

pytestmark = pytest.mark.lab

ANN, BOB = "UANN", "UBOB"


def _workspace(fake: FakeSlack, *users: str) -> None:
    fake.add_user(OPERATOR, "Olga Operator", "olga@example.com")
    for user in users:
        fake.add_user(user, f"Trainee {user}", f"{user.lower()}@example.com")


def _dms(fake: FakeSlack, user: str) -> list[Any]:
    """The bot's messages that reached `user`'s direct messages."""
    return [
        c
        for c in fake.ok_calls("chat.postMessage")
        if c.params["channel"] in (user, fake.dm(user))  # posted to the member ID: their DM
    ]


def _assign(h: SlackHarness, text: str) -> Message:
    """`/clones assign ...` as the operator; the trainer's message once the hand-out ended."""
    reply = h.command(text)
    assert reply.status == 200 and reply.elapsed_s < 3
    assert "the hand-out's progress follows" in reply.json["text"]
    h.idle(120)
    [shown] = [m for m in h.fake.in_channel(CHANNEL) if "hold a VM" in m.text]
    return shown


def _ann_and_bob(h: SlackHarness, deployment: str) -> dict[str, str]:
    """`deployment` made into environment "lab", Ann and Bob assigned to it: trainee -> VM."""
    h.deploy(deployment)
    _workspace(h.fake, ANN, BOB)
    _assign(h, f"assign lab <@{ANN}|ann> <@{BOB}|bob>")
    return {a.trainee: a.clone_name for a in h.core.repo.assignments()}


def _said(h: SlackHarness, user: str) -> list[str]:
    """What `user` was told privately (slash command answers) and in their DMs."""
    texts = [json.dumps(c.params) for c in h.fake.of("response_url")]
    return texts + [json.dumps(m.blocks) + m.text for m in h.fake.messages.values()
                    if m.channel in (user, h.fake.dm(user))]  # fmt: skip


def test_a_cohort_of_25_is_handed_out_through_rate_limits_each_reached_once(
    harness: SlackHarness,
) -> None:
    h = harness
    h.deploy("deploy capture 25 as nov")
    cohort = [f"UT{n:03}" for n in range(1, 26)]
    _workspace(h.fake, *cohort)
    h.fake.add_user("UHELPER", "Helper bot", bot=True)
    h.fake.channel_members["CCOHORT"] = [OPERATOR, "UHELPER", *cohort, "USLACKBOT"]
    h.fake.page_size = 10  # conversations.members answers in pages
    h.fake.rate_limit("chat.postMessage", times=4, retry_after=1)

    shown = _assign(h, "assign nov from <#CCOHORT|cohort>")

    assert shown.text.startswith("nov: 25 trainees hold a VM (25 new, 0 kept)")
    assert "Hand-out: 25 trainees reached" in shown.text
    assert "3 channel members left out" in json.dumps(shown.blocks)
    limited = [c for c in h.fake.calls if c.status == 429]
    assert len(limited) == 4, "the rate limits were met, and waited out"
    assert not h.fake.of("conversations.open")  # each DM posted to the member's ID
    lab = vms(h.lab)
    held = {a.trainee: a.clone_name for a in h.core.repo.assignments(environment="nov")}
    assert sorted(held) == cohort and len(set(held.values())) == 25
    for user in cohort:
        [message] = _dms(h.fake, user)  # reached once, whatever the retries
        vm = held[user]
        assert message.params["text"] == f"Your training VM: {vm} in nov"
        blocks = json.dumps(message.params["blocks"])
        assert f"vmrc://127.0.0.1:{h.lab.info.port}/?moid={lab[vm]['moref']}" in blocks
        assert f"urn:vmomi:VirtualMachine:{lab[vm]['moref']}:" in blocks
        assert "/clones rebuild" in blocks
    assert all(a.handed_out_at for a in h.core.repo.assignments())
    entry = next(e for e in h.core.repo.audit_entries() if e.command == "assign nov")
    assert entry.actor == OPERATOR and entry.detail.startswith("25 new, 0 kept")

    # Run again with one more trainee: the pairs stay, only the newcomer is messaged.
    h.fake.add_user("UT026", "Late comer", "late@example.com")
    h.fake.channel_members["CCOHORT"].append("UT026")
    reply = h.command("assign nov from <#CCOHORT|cohort>")
    assert reply.status == 200
    h.idle(120)
    final = h.fake.in_channel(CHANNEL)[-1].text
    assert "26 trainees hold a VM" not in final  # only 25 clones: refused, naming the deploy
    assert '"deploy capture 1 as nov"' in " ".join(h.ephemeral_texts())
    assert len(h.core.repo.assignments(environment="nov")) == 25
    assert all(len(_dms(h.fake, u)) == 1 for u in cohort)


def test_a_trainee_resets_and_rebuilds_their_own_vm(harness: SlackHarness) -> None:
    h = harness
    held = _ann_and_bob(h, "deploy capture 3 as lab and power on")
    mine, theirs = held[ANN], held[BOB]

    # /clones my: the VM, its state and links, with the self-service buttons.
    assert h.command("my", user=ANN).status == 200
    h.idle()
    answer = h.fake.of("response_url")[-1].params
    assert answer["response_type"] == "ephemeral" and mine in answer["text"]
    assert theirs not in json.dumps(answer)
    assert ACTION_MY_REBUILD in json.dumps(answer["blocks"])

    # Reset: one ResetVM_Task, on Ann's VM only.
    h.lab.control.reset()
    assert h.command("reset", user=ANN).status == 200
    h.idle()
    assert h.lab.control.stats()["requests"].get("ResetVM_Task") == 1
    assert f"Reset {mine}" in h.ephemeral_texts()

    # Rebuild: Confirm / Cancel in Ann's direct messages, then the VM re-created, same name.
    before = vms(h.lab)
    reply = h.command("rebuild", user=ANN)
    assert reply.status == 200 and "rebuild" in reply.json["text"]
    h.idle()
    [ask] = [m for m in h.fake.messages.values() if m.text.startswith(f"Rebuild {mine}?")]
    assert ask.channel == h.fake.dm(ANN)  # not in the course channel: the app's DM
    value = ask.button(ACTION_REBUILD_CONFIRM)
    assert h.click(ACTION_REBUILD_CONFIRM, value, ANN, ask.ts, channel=h.fake.dm(ANN)).status == 200
    h.fake.wait_for(lambda: ask.text.startswith("Rebuilt"), timeout=60)
    h.idle()
    after = vms(h.lab)
    old, new = before[mine], after[mine]
    assert new["moref"] != old["moref"] and new["instance_uuid"] != old["instance_uuid"]
    assert new["linked"] and new["parent"] == "Capture" and new["folder"] == old["folder"]
    assert new["power_state"] == "poweredOn"  # as it was
    assert after[theirs] == before[theirs]  # Bob's VM: untouched
    [assignment] = h.core.repo.assignments(trainee=ANN)
    assert assignment.clone_name == mine
    assert h.core.repo.get_clone(assignment.clone_id).moref == new["moref"]
    assert any(
        e.command == f"rebuild {mine}" and e.actor == ANN and e.result == "started"
        for e in h.core.repo.audit_entries()
    )


def test_a_trainee_trying_anothers_vm_is_refused_and_audited(harness: SlackHarness) -> None:
    h = harness
    theirs = _ann_and_bob(h, "deploy capture 2 as lab and power on")[BOB]
    h.lab.control.reset()

    assert h.command(f"reset {theirs}", user=ANN).status == 200
    assert h.command(f"rebuild {theirs}", user=ANN).status == 200
    assert h.command(f"power off <@{BOB}|bob>", user=ANN).status == 200
    # A forged button: Bob's VM in the value of Ann's Reset button.
    h.click(ACTION_MY_RESET, theirs, ANN, ts="1.0", channel=h.fake.dm(ANN))
    h.idle()
    assert sum("That is not your VM" in t for t in h.ephemeral_texts()) == 4
    requests = h.lab.control.stats()["requests"]
    assert not requests.get("ResetVM_Task") and not requests.get("PowerOffVM_Task")
    assert not [m for m in h.fake.messages.values() if m.text.startswith("Rebuild")]
    denied = [e for e in h.core.repo.audit_entries(actor=ANN) if e.result == "denied"]
    assert sorted(e.command for e in denied) == sorted(
        [f"reset {theirs}", f"rebuild {theirs}", f"power off {BOB}", f"reset {theirs}"]
    )

    # Someone holding no VM is refused by the access policy, audited too.
    reply = h.command("reset", user=STRANGER)
    assert reply.json["text"].startswith(":no_entry: `reset` is for trainees")
    assert h.core.repo.audit_entries(actor=STRANGER)[0].result == "denied"

    # A trainee typing an operator's command is pointed at their own VM's commands.
    reply = h.command("power off lab", user=ANN)
    assert "On the VM you were given, type `power on`, `power off`" in reply.json["text"]
    assert not h.lab.control.stats()["requests"].get("PowerOffVM_Task")

    # An operator naming Bob's VM where an environment goes powers that VM alone.
    assert h.command(f"power off {theirs}", user=OPERATOR).status == 200
    h.idle()
    power = {n: vm["power_state"] for n, vm in vms(h.lab).items() if n.startswith("TRN-")}
    assert power[theirs] == "poweredOff"
    assert [n for n, state in power.items() if state == "poweredOff"] == [theirs]
    assert theirs in h.fake.of("response_url")[-1].params.get("text", "") + json.dumps(
        h.fake.of("response_url")[-1].params.get("blocks", [])
    )

    # Operators see who holds which VM; a trainee does not.
    h.command("status lab", user=OPERATOR)
    h.idle()
    assert f"<@{BOB}>" in json.dumps(h.fake.of("response_url")[-1].params["blocks"])
    h.command("status lab", user=ANN)
    h.idle()
    assert f"<@{BOB}>" not in json.dumps(h.fake.of("response_url")[-1].params)


def test_assignments_survive_a_restart_and_the_home_tab_shows_the_vm(
    make_harness: Any,
) -> None:
    first: SlackHarness = make_harness()
    first.deploy("deploy capture 2 as lab and power on")
    _workspace(first.fake, ANN, BOB)
    _assign(first, f"assign lab <@{ANN}|ann> <@{BOB}|bob>")
    held = next(a for a in first.core.repo.assignments(trainee=ANN))
    mine, clone = held.clone_name, first.core.repo.get_clone(held.clone_id)
    first.bot.close(wait=True)
    first.core.close()

    h: SlackHarness = make_harness()  # a new bot on the same database
    assert h.event({"type": "app_home_opened", "user": ANN, "tab": "home"}).status == 200
    view = h.fake.wait_for(
        lambda: [c for c in h.fake.ok_calls("views.publish") if c.params["user_id"] == ANN]
    )[-1].params["view"]
    shown = json.dumps(view)
    assert "Your training VMs" in shown and mine in shown
    buttons = {
        (e["action_id"], e["value"])
        for b in view["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
    }
    # Each names the VM by identity: its record and instance UUID, the name for the reader.
    value = f"{mine} {clone.id} {clone.instance_uuid}"
    assert (ACTION_MY_POWER_OFF, value) in buttons and (ACTION_MY_REBUILD, value) in buttons

    # Its Power off button, clicked on the Home tab (no response_url: the answer is a DM).
    payload = action_payload(ACTION_MY_POWER_OFF, value, ANN, "", "", "")
    for key in ("response_url", "channel", "message"):
        payload.pop(key)
    payload["container"] = {"type": "view", "view_id": "V1"}
    body = action_body(payload)
    assert h.post(body, sign(body, h.secret)).status == 200
    h.idle()
    assert vms(h.lab)[mine]["power_state"] == "poweredOff"
    # In the app's DM with Ann, after her hand-out.
    said = [m.text for m in h.fake.in_channel(h.fake.dm(ANN))]
    assert said == [f"Your training VM: {mine} in lab", f"Powered off {mine}"]


def test_a_strip_back_tells_each_trainee_once(harness: SlackHarness) -> None:
    h = harness
    held = _ann_and_bob(h, "deploy capture 3 as lab")

    h.command("teardown lab")
    h.idle()
    plan = next(m for m in h.fake.in_channel(CHANNEL) if m.text.startswith("Strip back lab?"))
    value = next(e["value"] for b in plan.blocks if b["type"] == "actions" for e in b["elements"])
    h.click(ACTION_CONFIRM, value, OPERATOR, plan.ts)
    h.fake.wait_for(lambda: plan.text.startswith("Stripped back lab"), timeout=60)
    h.idle()
    for user in (ANN, BOB):
        hand_out, removed = (c.params for c in _dms(h.fake, user))
        assert hand_out["text"].startswith("Your training VM")
        assert removed["text"] == (
            f"The course lab is over: your training VM {held[user]} was removed. "
            "Thank you for taking part!"
        )
    assert h.core.repo.assignments() == []
    ended = h.core.repo.assignments(active=False)
    assert {a.ended_reason for a in ended} == {"removed"} and all(a.told_at for a in ended)


def test_the_reminder_before_a_scheduled_strip_back_reaches_the_trainees_when_configured(
    make_harness: Any,
) -> None:
    clock = Clock()
    h: SlackHarness = make_harness(clock=clock, trainees=TraineeSettings(remind=True))
    held = _ann_and_bob(h, "deploy capture 2 as lab until in 3h")

    clock.advance(hours=2, minutes=1)
    assert h.bot.schedules.run_due() == ["remind:lab"]
    h.idle()
    for user in (ANN, BOB):
        hand_out, reminder = (c.params for c in _dms(h.fake, user))
        assert hand_out["text"].startswith("Your training VM")
        assert reminder["text"].startswith("lab ends ")
        assert reminder["text"].endswith(f": your VM {held[user]} is removed then")
    # The owner's reminder, with its buttons, is in the channel as before.
    assert any(m.text.startswith("Reminder: lab") for m in h.fake.in_channel(CHANNEL))


def test_without_the_setting_the_reminder_is_the_owners_only(make_harness: Any) -> None:
    clock = Clock()
    h: SlackHarness = make_harness(clock=clock)
    h.deploy("deploy capture 1 as lab until in 3h")
    _workspace(h.fake, ANN)
    _assign(h, f"assign lab <@{ANN}|ann>")
    clock.advance(hours=2, minutes=1)
    assert h.bot.schedules.run_due() == ["remind:lab"]
    h.idle()
    assert len(_dms(h.fake, ANN)) == 1  # the hand-out only
    assert any(m.text.startswith("Reminder: lab") for m in h.fake.in_channel(CHANNEL))


def test_a_strip_back_from_a_terminal_without_a_token_is_told_by_the_running_bot(
    harness: SlackHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = harness
    h.deploy("deploy capture 1 as lab")
    _workspace(h.fake, ANN)
    _assign(h, f"assign lab <@{ANN}|ann>")
    monkeypatch.delenv("SLACK_BOT_TOKEN", raising=False)
    terminal = bootstrap.build(h.core.settings, start_lab=False)  # no Slack here
    try:
        terminal.use_cases.strip_back.teardown("lab", actor="trainer", source="cli")
    finally:
        terminal.close()
    assert len(_dms(h.fake, ANN)) == 1  # the hand-out only, so far

    h.bot.schedules.keeper.resync()  # the bot's periodic re-sync
    h.fake.wait_for(lambda: len(_dms(h.fake, ANN)) == 2)
    assert _dms(h.fake, ANN)[1].params["text"].startswith("The course lab is over")
    h.bot.schedules.keeper.resync()
    assert len(_dms(h.fake, ANN)) == 2  # once
