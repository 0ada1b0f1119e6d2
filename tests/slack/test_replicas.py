"""Two Bolt apps on one database, as two replicas behind a load balancer: any request may reach
either. A replayed slash command that reaches the other bot is answered once (the replay keys are
in the database), a Confirm click may reach the bot that did not post the plan (the one-time
tokens are in the database) and is honoured exactly once across both, and the run's progress
message is edited by the bot that runs it. On a SQLite file (two bots of one machine) and on a
PostgreSQL database (bots of any machines)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from handlers.blocks.ids import ACTION_CONFIRM
from tests.faults import record
from tests.rawdb import BOTH_BACKENDS

from .conftest import CHANNEL, OPERATOR, SlackHarness
from .signing import sign, slash_body
from .test_teardown import _plan

pytestmark = [pytest.mark.lab, BOTH_BACKENDS]


def test_a_request_reaching_either_replica_is_answered_once(
    make_harness: Callable[..., SlackHarness], database: str, backend: str
) -> None:
    one = make_harness(database=database)
    two = make_harness(database=database)  # stands by for the schedules, serves requests
    assert one.bot.schedules.active and not two.bot.schedules.active

    # A slash command, then Slack's identical replay delivered to the other replica.
    body = slash_body("deploy capture 3 as twin", OPERATOR, CHANNEL, one.fake.response_url())
    headers = sign(body)
    first = one.post(body, headers)
    assert first.status == 200 and first.json["text"].startswith("Deploying 3 capture clones")
    again = two.post(body, headers)
    assert (again.status, again.body) == (200, "")
    one.fake.wait_for(lambda: one.fake.ok_calls("files.completeUploadExternal"), timeout=60)
    one.fake.wait_for(lambda: all(r.finished_at for r in one.core.repo.runs(environment="twin")))
    assert len(one.core.repo.runs(environment="twin")) == 1
    assert one.lab.control.stats()["clone_calls"] == 3

    # The plan posted by one replica, Confirm clicked on the other, then replayed on the first.
    message, value = _plan(one, "twin")
    assert two.click(ACTION_CONFIRM, value, OPERATOR, message.ts).status == 200
    one.fake.wait_for(lambda: message.text.startswith("Stripped back twin"), timeout=60)
    assert one.click(ACTION_CONFIRM, value, OPERATOR, message.ts).status == 200
    teardowns = [r for r in one.core.repo.runs(environment="twin") if r.kind.value == "teardown"]
    assert len(teardowns) == 1 and teardowns[0].owner == two.core.use_cases.owner
    assert one.lab.control.stats()["requests"].get("Destroy_Task", 0) == 3
    # The plan's own message shows the run, edited by whichever replica ran it.
    shown = one.core.repo.run_message(teardowns[0].id)
    assert shown is not None and (shown.channel, shown.ts) == (message.channel, message.ts)
    one.fake.wait_for(
        lambda: any("already confirmed or cancelled" in t for t in one.ephemeral_texts())
    )
    record(f"two replicas on {backend}: replay and double confirm", runs_started=2, duplicates=0)
