"""Every verb of the grammar works from Slack: answered in time, checked, audited, rendered."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import pytest

from bot.cli.render import renderer_for, show_each_done
from bot.domain import grammar
from bot.domain.models import Clone, CloneState, Environment
from bot.domain.results import EnvironmentStatus
from bot.domain.verbs import spec
from bot.services.access import ADMIN_VERBS, READ_ONLY_VERBS, TERMINAL_VERBS, AccessPolicy
from bot.services.admin import InventoryRow
from bot.services.bulk import BulkResult
from bot.services.dispatch import ON_EACH_CLONE, ROUTES, route_for
from bot.settings import SlackSettings
from handlers.blocks import reads
from handlers.blocks.ids import ACTION_CONFIRM, ACTION_REFRESH_CANCEL, ACTION_REFRESH_CONFIRM
from handlers.blocks.kit import SECTION_MAX
from handlers.verbs import SLACK, in_slack, reply, step_for

from .conftest import ADMIN, CHANNEL, OPERATOR, STRANGER, SlackHarness
from .fake_api import Message

# One sample per verb, the first example of its help; an environment that does not exist still
# gets a specific answer, and a deployment makes one clone (not the example's 25).
SAMPLES = {
    verb: grammar.grammar_of(verb).examples[0].replace(" 25", " 1")
    if grammar.grammar_of(verb).examples
    else grammar.grammar_of(verb).example
    for verb in grammar.VERBS
}
# Every verb that changes something (its spec's access), refused to a stranger.
CHANGING = sorted(grammar.verbs_with(grammar.Access.CHANGE))


# ===================================================================== without the lab
def test_every_grammar_command_has_a_slack_step() -> None:
    """Each command is dispatched (a route) and shown in Slack: answered with its result, in a
    run's own message, or confirmed first; never "not available". A terminal-only command
    (`db copy`) is refused before any of that, with what to run instead."""
    commands = set(grammar.COMMAND_CLASSES)
    bulk = {cls for cls, spec in grammar.SPECS.items() if spec.each_clone is not None}
    assert commands == set(ROUTES) | bulk, "every command class needs a route (or is bulk)"
    assert commands == set(SLACK) | bulk, "and an entry in Slack's registry (handlers/verbs.py)"
    assert not (set(ROUTES) | set(SLACK)) & bulk, "a bulk verb's entries are derived, not written"
    for cls in commands:
        entry = in_slack(cls)
        assert entry is not None, cls
        if cls.access is grammar.Access.TERMINAL:
            assert (entry.reply, entry.step, entry.flow) == (None, None, None), cls
        elif entry.flow is None:  # exactly one way to follow the ack (`orphans`: two)
            assert (entry.reply is None) != (entry.step is None), cls
        assert (entry.flow is not None) == grammar.SPECS[cls].destroys, cls
    assert {c.verb for c in commands} == set(grammar.VERBS)
    for verb, text in SAMPLES.items():
        assert grammar.parse(text).verb == verb


def test_a_bulk_verb_gets_its_route_rendering_and_slack_entry_from_its_spec() -> None:
    """A bulk verb registers once (`@command(..., each_clone=OnEachClone(...))`): the services
    give it the one route every bulk verb shares, the terminal `show_each_done`, Slack its
    spec's ack and the result in the channel; its texts fill in from its fields."""
    bulk = {cls: s.each_clone for cls, s in grammar.SPECS.items() if s.each_clone is not None}
    assert grammar.Snapshot in bulk
    for cls, each in bulk.items():
        assert cls.verb in SAMPLES, cls  # a verb of its own, with an example
        sample: Any = grammar.parse(SAMPLES[cls.verb])
        assert type(sample) is cls and grammar.SPECS[cls].progress
        assert route_for(cls) is ON_EACH_CLONE and route_for(cls).plan is None  # type: ignore[union-attr]
        assert renderer_for(cls) is show_each_done
        entry = in_slack(cls)
        assert entry is not None and entry.shows == each.shows
        assert entry.flow is None and entry.step is None and step_for(sample) is reply
        assert entry.ack is not None and entry.reply is not None
        said = entry.ack(SimpleNamespace(command=sample))  # type: ignore[arg-type]
        assert said == each.said(each.ack, sample) and "{" not in said, said
        result = BulkResult(sample.environment, each.said(each.action, sample), ["A"], [], [])
        answer = entry.reply(result, SimpleNamespace(user="U1"))  # type: ignore[arg-type]
        assert answer.public and sample.environment in answer.rendered.text
        for text in (each.doing, each.label, each.action):
            assert "{" not in each.said(text, sample), text
        assert each.audited(sample) == SAMPLES[cls.verb]
        assert each.task(sample, "olga", "slack").method.endswith("_Task")
    assert bulk[grammar.Snapshot].audited(grammar.parse("snapshot lab cp1")) == "snapshot lab cp1"


def test_a_bulk_verb_acts_on_an_environment_and_confirms_nothing() -> None:
    """The derived route has no plan and the derived Slack entry no Confirm / Cancel: a bulk
    verb without an environment, or one that destroys, is refused when it is declared, before
    it is registered anywhere."""
    each = grammar.SPECS[grammar.Snapshot].each_clone
    assert each is not None
    before = (dict(spec.CLASSES), dict(spec.GRAMMARS))
    with pytest.raises(TypeError, match="needs an `environment` field"):

        @spec.command("nowhere", grammar.Access.CHANGE, parse=lambda a: None, each_clone=each)
        class Nowhere(spec.Verb):
            name: str

    with pytest.raises(TypeError, match="needs its own route, plan and Slack flow"):

        @spec.command(
            "wipe", grammar.Access.CHANGE, parse=lambda a: None, each_clone=each, destroys=True
        )
        class Wipe(spec.Verb):
            environment: str

    assert before == (spec.CLASSES, spec.GRAMMARS)


def test_read_only_verbs() -> None:
    assert {"plan", "inventory"} <= READ_ONLY_VERBS
    assert not READ_ONLY_VERBS & set(CHANGING)


def test_terminal_only_verbs_are_refused_to_everyone_in_slack() -> None:
    assert {"db"} == TERMINAL_VERBS
    policy = AccessPolicy(SlackSettings(admins=(ADMIN,), operators=(OPERATOR,)))
    for user in (ADMIN, OPERATOR, STRANGER):
        decision = policy.check(user, CHANNEL, "db", grammar.Access.TERMINAL)
        assert not decision
        assert decision.reason.startswith("`db` runs only in a terminal on the bot's machine")
        assert "`clones db ...`" in decision.reason


def test_long_lists_are_cut_with_and_n_more() -> None:
    rows = [
        InventoryRow(
            f"TRN-CAP-{n:03}",
            "capture",
            "big",
            "Capture",
            "ready",
            "UOP",
            "",
            "poweredOn",
            0.13,
            f"host{n % 8}",
        )
        for n in range(300)
    ]
    r = reads.inventory(rows, "big")
    texts = [b["text"]["text"] for b in r.blocks if b["type"] == "section"]
    assert all(len(t) <= SECTION_MAX for t in texts)
    assert texts[0].count("```") == 2 and "TRN-CAP-000" in texts[0]
    tail = r.blocks[-1]["elements"][0]["text"]
    assert tail.startswith("…and ") and "more" in tail and "--csv" in tail

    env = Environment("big", "UOP")
    clones = [
        Clone(n, f"TRN-CAP-{n:03}", "big", "capture", "Capture", CloneState.FAILED, error="x" * 80)
        for n in range(500)
    ]
    st = EnvironmentStatus(env, {"capture": {"failed": 500}}, clones)
    r = reads.status([st], "big", {"big": "strip back Fri 27 Nov 17:00 GMT (in 1 d 7 h)"})
    texts = [b["text"]["text"] for b in r.blocks]
    assert all(len(t) <= SECTION_MAX for t in texts)
    assert ":calendar: Next: strip back Fri 27 Nov 17:00 GMT (in 1 d 7 h)" in texts[0]
    assert "more (`inventory ENV` lists all)" in texts[1]
    assert len(r.blocks) <= 50


# ===================================================================== against the lab
def _answers(h: SlackHarness) -> list[str]:
    return h.ephemeral_texts() + [
        str(c.params.get("text", "")) for c in h.fake.of("chat.postMessage")
    ]


@pytest.mark.lab
@pytest.mark.parametrize("verb", grammar.VERBS)
def test_every_verb_answers(
    harness: SlackHarness, verb: str, caplog: pytest.LogCaptureFixture
) -> None:
    h = harness
    caplog.set_level(logging.INFO)
    reply = h.command(SAMPLES[verb], user=ADMIN if verb in ADMIN_VERBS else OPERATOR)
    assert reply.status == 200
    assert reply.elapsed_s < 3
    acked = reply.json.get("text", "")
    if verb == "deploy":
        h.fake.wait_for(lambda: h.fake.ok_calls("files.completeUploadExternal"), timeout=60)
    elif verb == "help":
        assert acked == grammar.usage(), acked  # answered in the ack
    elif verb in TERMINAL_VERBS:  # refused in the ack: nothing runs, nothing follows
        assert "runs only in a terminal" in acked, acked
    else:
        # Every other verb answers after its work: privately, or in the channel.
        h.fake.wait_for(lambda: h.fake.of("response_url") or h.fake.of("chat.postMessage"))
    if verb in READ_ONLY_VERBS and verb != "help":
        (answer,) = h.fake.of("response_url")
        assert answer.params["text"] and answer.params["response_type"] == "ephemeral"
        assert "warning" not in answer.params["text"], answer.params["text"]
    h.idle()
    said = [acked, *_answers(h)]
    assert not any("Internal error" in t for t in said), said
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not any(verb in t and "not available from Slack" in t for t in said)


@pytest.mark.lab
@pytest.mark.parametrize("verb", CHANGING)
def test_changing_verbs_are_for_operators_and_denials_are_audited(
    harness: SlackHarness, verb: str
) -> None:
    h = harness
    text = {"prepare": "prepare capture power-off"}.get(verb, SAMPLES[verb])
    vcenter_before = h.lab.control.stats()["total"]
    reply = h.command(text, user=STRANGER)
    assert reply.status == 200 and reply.elapsed_s < 3
    assert reply.json["response_type"] == "ephemeral"
    assert reply.json["text"].startswith(f":no_entry: You are not allowed to `{verb}`")
    (entry,) = h.core.repo.audit_entries()
    assert (entry.actor, entry.result, entry.channel) == (STRANGER, "denied", CHANNEL)
    assert entry.command == f"/clones {text}" and entry.source == "slack"
    # Nothing ran: no work, no messages, nothing in vCenter or SQLite.
    h.idle()
    assert h.fake.of("response_url") == [] and h.fake.of("chat.postMessage") == []
    assert h.core.repo.list_environments() == []
    assert h.lab.control.stats()["total"] == vcenter_before


# ===================================================================== refresh
def _message(h: SlackHarness, prefix: str) -> Message:
    return h.fake.wait_for(
        lambda: [m for m in h.fake.messages.values() if m.text.startswith(prefix)]
    )[0]


@pytest.mark.lab
def test_refresh_needs_confirmation(harness: SlackHarness) -> None:
    h = harness
    h.deploy("deploy capture 2 as fresh")
    before = h.lab.control.stats()["clone_calls"]
    old = {c.name: c.instance_uuid for c in h.core.repo.clones(environment="fresh")}

    reply = h.command("refresh fresh")
    assert reply.elapsed_s < 3 and "refresh of fresh" in reply.json["text"]
    plan = _message(h, "Refresh fresh?")
    assert plan.channel == CHANNEL
    shown = plan.blocks[0]["text"]["text"]
    assert "destroys and re-creates *2 clones* (2 capture)" in shown and "lost" in shown
    value = plan.button(ACTION_REFRESH_CONFIRM)
    assert value == plan.button(ACTION_REFRESH_CANCEL)
    assert h.lab.control.stats()["clone_calls"] == before  # nothing yet

    # The token confirms a refresh only: not a strip back, and not for a bystander.
    h.click(ACTION_CONFIRM, value, OPERATOR, plan.ts)
    h.fake.wait_for(lambda: any("already confirmed or cancelled" in t for t in h.ephemeral_texts()))
    h.click(ACTION_REFRESH_CONFIRM, value, STRANGER, plan.ts)
    h.fake.wait_for(lambda: any("who asked for this" in t for t in h.ephemeral_texts()))
    assert h.lab.control.stats()["clone_calls"] == before
    assert all(c.state is CloneState.READY for c in h.core.repo.clones(environment="fresh"))

    reply = h.click(ACTION_REFRESH_CONFIRM, value, ADMIN, plan.ts)
    assert reply.status == 200 and reply.elapsed_s < 3
    h.fake.wait_for(lambda: plan.text.startswith("Refreshed fresh"), timeout=60)
    assert "2 clones re-created" in plan.text
    assert h.lab.control.stats()["clone_calls"] == before + 2
    new = {c.name: c.instance_uuid for c in h.core.repo.clones(environment="fresh")}
    assert set(new) == set(old) and all(new[n] != old[n] for n in old)

    # A replayed click refreshes nothing more.
    h.click(ACTION_REFRESH_CONFIRM, value, ADMIN, plan.ts)
    h.fake.wait_for(
        lambda: sum("already confirmed or cancelled" in t for t in h.ephemeral_texts()) >= 2
    )
    assert h.lab.control.stats()["clone_calls"] == before + 2


@pytest.mark.lab
def test_refresh_cancel_changes_nothing(harness: SlackHarness) -> None:
    h = harness
    h.deploy("deploy capture 1 as stay")
    before = h.lab.control.stats()["clone_calls"]
    h.command("refresh stay")
    plan = _message(h, "Refresh stay?")
    h.click(ACTION_REFRESH_CANCEL, plan.button(ACTION_REFRESH_CANCEL), OPERATOR, plan.ts)
    h.fake.wait_for(lambda: "cancelled" in plan.text)
    assert "nothing was changed" in plan.text
    assert h.lab.control.stats()["clone_calls"] == before
    assert any(e.result == "cancelled" for e in h.core.repo.audit_entries())


@pytest.mark.lab
def test_power_and_plan_and_inventory_render(harness: SlackHarness) -> None:
    h = harness
    h.deploy("deploy capture 2 as pw")

    h.command("power on pw")
    power = h.fake.wait_for(
        lambda: [c for c in h.fake.of("response_url") if "Power on" in c.params["text"]]
    )[0]
    assert power.params["response_type"] == "in_channel"
    assert power.params["text"] == "Power on pw: 2 done, 0 failed"

    h.command("inventory pw", user=STRANGER)  # read-only: anyone
    inv = h.fake.wait_for(
        lambda: [c for c in h.fake.of("response_url") if "Inventory" in c.params["text"]]
    )[0]
    table = inv.params["blocks"][0]["text"]["text"]
    assert "```\nNAME" in table and table.count("\non ") + table.count(" on ") >= 2

    h.command("plan capture 5", user=STRANGER)
    plan = h.fake.wait_for(
        lambda: [c for c in h.fake.of("response_url") if "Plan for" in c.params["text"]]
    )[0]
    assert plan.params["text"].startswith("Plan for 5 clones")
    assert "Linked clones" in plan.params["blocks"][0]["text"]["text"]
