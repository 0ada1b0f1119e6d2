"""`/clones deploy` over signed HTTP: ack, live progress, summary, chart, failures, 429s."""

from __future__ import annotations

import itertools

import pytest

from .conftest import CHANNEL, OPERATOR, SlackHarness

pytestmark = pytest.mark.lab

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_deploy_acks_fast_then_shows_progress_summary_and_chart(harness: SlackHarness) -> None:
    h = harness
    h.lab.control.configure(clone_latency_ms=200)

    reply = h.command("deploy capture 4 as nov-cohort")

    assert reply.status == 200
    assert reply.elapsed_s < 3
    assert reply.json["response_type"] == "ephemeral"
    assert reply.json["text"].startswith("Deploying 4 capture clones into nov-cohort...")

    h.fake.wait_for(lambda: h.fake.ok_calls("files.completeUploadExternal"), timeout=60)
    posts = h.fake.ok_calls("chat.postMessage")
    assert len(posts) == 1, "one message per deployment"
    assert posts[0].params["channel"] == CHANNEL
    (message,) = h.fake.messages.values()
    assert message.text.startswith("4 of 4 linked clones ready in nov-cohort")
    shown = "\n".join(b["text"]["text"] for b in message.blocks if b["type"] == "section")
    assert f"<@{OPERATOR}>" in shown
    assert "`" + "█" * 20 + "` 4/4" in shown
    assert "ready 4 · failed 0 · remaining 0" in shown
    assert "```\nLayout" in shown and "Linked clones" in shown  # the savings table

    # Updates in place, never faster than progress_interval_s (1 s here).
    updates = h.fake.ok_calls("chat.update")
    assert updates, "the message is edited in place"
    assert all(u.params["ts"] == message.ts for u in updates)
    stamps = [posts[0].at] + [u.at for u in updates]
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert min(gaps) >= 0.95, gaps

    # The chart: a PNG uploaded into the message's thread.
    (upload,) = h.fake.of("upload")
    assert upload.body.startswith(PNG_MAGIC) and len(upload.body) > 5000
    (complete,) = h.fake.ok_calls("files.completeUploadExternal")
    assert complete.params["channel_id"] == CHANNEL
    assert complete.params["thread_ts"] == message.ts
    assert message.files and message.files[0]["bytes"] == len(upload.body)

    # What vCenter and SQLite say.
    clones = h.core.repo.clones(environment="nov-cohort")
    assert [c.state.value for c in clones] == ["ready"] * 4
    assert h.lab.control.stats()["clone_calls"] == 4


def test_failed_clones_are_listed_with_the_vsphere_fault(harness: SlackHarness) -> None:
    h = harness
    h.lab.control.configure(
        faults={"fail_nth": [2], "fault": "InsufficientDiskSpace", "fail_fraction": 0.0}
    )

    h.command("deploy capture 3 as faulty")

    h.fake.wait_for(lambda: h.fake.ok_calls("files.completeUploadExternal"), timeout=60)
    (message,) = h.fake.messages.values()
    assert message.text.startswith("2 of 3 linked clones ready in faulty, 1 failed")
    shown = "\n".join(b["text"]["text"] for b in message.blocks if b["type"] == "section")
    assert "*Failed clones*" in shown
    assert "(capture):" in shown
    failed = [c for c in h.core.repo.clones(environment="faulty") if c.state.value == "failed"]
    assert len(failed) == 1 and failed[0].error and failed[0].error[:40] in shown
    # The fault names the clone and says what went wrong in plain words, then vCenter's own
    # message (the lab's is vCenter's wording, not a Go type name), never a task id.
    (error,) = [c.error for c in failed]
    assert error == (
        f"{failed[0].name} could not be cloned: not enough free space on the datastore "
        "(InsufficientStorageSpace: Insufficient disk space on datastore 'TrainingDS'.)"
    )
    assert "*types" not in shown and "task-" not in shown


def test_rate_limited_updates_are_retried_and_the_final_state_arrives(
    harness: SlackHarness,
) -> None:
    h = harness
    h.fake.rate_limit("chat.postMessage", times=1, retry_after=1)
    h.fake.rate_limit("chat.update", times=2, retry_after=1)
    h.lab.control.configure(clone_latency_ms=200)

    h.command("deploy capture 2 as limited")

    h.fake.wait_for(lambda: h.fake.ok_calls("files.completeUploadExternal"), timeout=60)
    assert [c.status for c in h.fake.of("chat.postMessage")] == [429, 200]
    assert sum(c.status == 429 for c in h.fake.of("chat.update")) == 2
    (message,) = h.fake.messages.values()
    assert message.text.startswith("2 of 2 linked clones ready in limited")


def test_unknown_type_and_bad_words_answer_in_the_ack(harness: SlackHarness) -> None:
    h = harness
    reply = h.command("deploy captur 3")
    assert reply.elapsed_s < 3
    assert 'Unknown type "captur". Did you mean "capture"?' in reply.json["text"]

    reply = h.command("deplyo capture 3")
    assert 'unknown command "deplyo"' in reply.json["text"]
    assert "`deploy capture 25 as nov-cohort`" in reply.json["text"]  # the usage follows

    reply = h.command("help")
    assert reply.json["response_type"] == "ephemeral"
    assert reply.json["text"].startswith("Type these after `/clones`")
    assert h.fake.of("chat.postMessage") == []
    assert h.core.repo.clones() == []


def test_a_run_started_from_another_channel_is_reported_in_the_environments_channel(
    harness: SlackHarness,
) -> None:
    """Trainers follow an environment in its own channel (where it was first deployed)."""
    h = harness
    h.command("deploy capture 1 as cohort")  # cohort's channel: CHANNEL
    h.fake.wait_for(lambda: len(h.fake.ok_calls("files.completeUploadExternal")) == 1, timeout=60)
    other = "C0OTHERCHAN"
    h.command("deploy capture 2 as cohort", channel=other)
    h.fake.wait_for(lambda: len(h.fake.ok_calls("files.completeUploadExternal")) == 2, timeout=60)
    home = h.fake.wait_for(
        lambda: [
            p
            for p in h.fake.ok_calls("chat.postMessage")
            if p.params["channel"] == CHANNEL and "finished" in p.params["text"]
        ]
    )
    assert home[0].params["text"].startswith("Deployment into cohort by <@")
    assert "2 of 2 linked clones ready" in home[0].params["text"]
    # Only the run from elsewhere is announced: the first one showed its own progress there.
    notes = [
        p for p in h.fake.ok_calls("chat.postMessage") if "Deployment into" in p.params["text"]
    ]
    assert len(notes) == 1
