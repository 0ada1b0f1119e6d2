"""Every message lands where it belongs: a channel the bot may not post in is found out before
anything is created, a chart Slack refuses is explained in the thread (everything else still
finishes), and counts over a type's maximum are refused in the acknowledgement."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.faults import record

from .conftest import CHANNEL, OPERATOR, SlackHarness

pytestmark = pytest.mark.lab

OUTSIDE = "COUTSIDE"  # a channel the bot is not a member of


def _sections(h: SlackHarness, ts: str) -> str:
    m = h.fake.messages[ts]
    return "\n".join(b["text"]["text"] for b in m.blocks if b["type"] == "section")


def _nothing_created(h: SlackHarness) -> None:
    assert h.core.repo.list_environments() == []
    assert h.core.repo.runs() == [] and h.core.repo.clones() == []
    assert h.lab.control.stats()["clone_calls"] == 0


@pytest.mark.parametrize(
    ("error", "advice"),
    [
        ("not_in_channel", "Invite me with `/invite @clones` in this channel"),
        ("channel_not_found", "a private channel or a direct message I am not in"),
    ],
)
def test_deploy_where_the_bot_cannot_post_is_refused_privately_and_creates_nothing(
    harness: SlackHarness, error: str, advice: str
) -> None:
    h = harness
    h.fake.refuse("chat.postMessage", error, channel=OUTSIDE)
    reply = h.command("deploy capture 2 as nowhere", channel=OUTSIDE)
    assert reply.status == 200 and reply.elapsed_s < 3
    h.idle()
    (said,) = h.ephemeral_texts()
    assert advice in said and "Nothing was created." in said
    assert "Internal error" not in said
    _nothing_created(h)
    assert h.fake.messages == {}
    record(f"deploy where chat.postMessage says {error}", runs=0, clones=0, internal_errors=0)


def test_a_scheduled_deploy_where_the_bot_cannot_post_is_not_scheduled(
    harness: SlackHarness,
) -> None:
    h = harness
    h.fake.refuse("chat.postMessage", "not_in_channel", channel=OUTSIDE)
    h.command("deploy capture 2 as later at in 2h", channel=OUTSIDE)
    h.idle()
    (said,) = h.ephemeral_texts()
    assert "/invite @clones" in said and "Nothing was created." in said
    _nothing_created(h)
    assert h.bot.schedules.job_ids() == []


def test_a_refused_chart_is_explained_in_the_thread_and_the_rest_finishes(
    harness: SlackHarness,
) -> None:
    h = harness
    h.fake.refuse(
        "files.getUploadURLExternal", "missing_scope", needed="files:write", provided="commands"
    )
    other = "COTHER"
    h.command("deploy capture 1 as charted")  # the environment's home channel: CHANNEL
    h.idle()
    h.command("deploy capture 2 as charted", channel=other)
    h.idle()

    # The run's message is final and says where the chart is not; the thread says why.
    (message,) = h.fake.in_channel(other)
    assert message.text.startswith("2 of 2 linked clones ready in charted")
    assert "```\nLayout" in _sections(h, message.ts)  # the savings table is still there
    footer = message.blocks[-1]["elements"][0]["text"]
    assert "the savings chart could not be uploaded (see the thread)" in footer
    (note,) = [m for m in h.fake.messages.values() if m.thread_ts == message.ts]
    assert "missing_scope" in note.text and "`files:write` scope" in note.text
    assert "OAuth &amp; Permissions" in note.text and "reinstall" in note.text  # mrkdwn-escaped
    # Everything else finished: the environment's own channel is told, nobody saw an error.
    home = [m for m in h.fake.in_channel(CHANNEL) if m.text.startswith("Deployment into")]
    assert home and "2 of 2 linked clones ready" in home[0].text
    assert not any("Internal error" in t for t in h.ephemeral_texts())
    assert h.fake.ok_calls("files.completeUploadExternal") == []
    assert len([c for c in h.core.repo.clones(environment="charted") if c.state.live]) == 3
    record("chart upload refused (missing_scope)", thread_notes=1, home_channel_told=1,
           internal_errors=0)  # fmt: skip


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("deploy capture 500", "500 capture clones is more than the type's maximum of 100"),
        ("deploy capture 101 as big", "more than the type's maximum of 100"),
        ("deploy capture 60 packaging 150 as mixed", "150 packaging clones is more than"),
        ("deploy capture 500 as later at in 2h", "500 capture clones is more than"),
    ],
)
def test_counts_over_the_types_maximum_are_refused_in_the_ack(
    harness: SlackHarness, text: str, expected: str
) -> None:
    h = harness
    reply = h.command(text)
    assert reply.status == 200 and reply.elapsed_s < 3
    said = reply.json["text"]
    assert expected in said and "max_count setting" in said
    assert "Deploying" not in said
    h.idle()
    _nothing_created(h)
    assert h.fake.of("chat.postMessage") == []


def test_the_maximum_counts_what_the_environment_already_has(
    make_harness: Callable[..., SlackHarness],
) -> None:
    h = make_harness()
    h.command("deploy capture 3 as cohort")
    h.idle()
    settings = h.core.settings
    limit = settings.types["capture"].max_count
    reply = h.command(f"deploy capture {limit - 2} as cohort")
    said = reply.json["text"]
    assert "(3 already in cohort)" in said
    assert f'ask for at most {limit - 3}, e.g. "deploy capture {limit - 3} as cohort"' in said
    reply = h.command(f"deploy capture {limit - 3} as cohort", user=OPERATOR)
    assert reply.json["text"].startswith(f"Deploying {limit - 3} capture clones into cohort")
