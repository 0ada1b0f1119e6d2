"""Repeated Slack requests over real HTTP: an identical signed replay within 5 minutes, a slash
command Slack retries (X-Slack-Retry-Num, re-signed), a replayed Confirm click, and half-signed
requests. None starts a second deployment or strip back."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlencode

import pytest

from handlers.blocks.ids import ACTION_CONFIRM
from tests.faults import record

from .conftest import CHANNEL, OPERATOR, SlackHarness
from .signing import action_body, action_payload, sign, slash_body
from .test_teardown import _deploy, _plan

pytestmark = pytest.mark.lab


def _runs(h: SlackHarness, env: str, kind: str = "deploy") -> int:
    return len([r for r in h.core.repo.runs(environment=env) if r.kind.value == kind])


def _deployed(h: SlackHarness, env: str) -> None:
    h.fake.wait_for(lambda: h.fake.ok_calls("files.completeUploadExternal"), timeout=60)
    h.fake.wait_for(lambda: all(r.finished_at for r in h.core.repo.runs(environment=env)))


def test_an_identical_signed_replay_never_starts_a_second_deployment(h: SlackHarness) -> None:
    body = slash_body("deploy capture 2 as replayed", OPERATOR, CHANNEL, h.fake.response_url())
    headers = sign(body)
    first = h.post(body, headers)
    assert first.status == 200 and first.json["text"].startswith("Deploying 2 capture clones")
    replays = [h.post(body, headers) for _ in range(3)]  # same body, timestamp and signature
    assert [(r.status, r.body) for r in replays] == [(200, "")] * 3
    _deployed(h, "replayed")
    h.idle()
    assert _runs(h, "replayed") == 1
    assert len(h.core.repo.clones(environment="replayed")) == 2
    assert h.lab.control.stats()["clone_calls"] == 2
    record("replayed signed slash command", faults_injected=3, runs_started=1, duplicates=0)


def test_a_retried_slash_command_never_starts_a_second_deployment(h: SlackHarness) -> None:
    body = slash_body("deploy capture 2 as retried", OPERATOR, CHANNEL, h.fake.response_url())
    assert h.post(body, sign(body)).status == 200
    # Slack's retries are signed afresh (new timestamp) and say which retry they are.
    retries = []
    for n in (1, 2):
        headers = sign(body, timestamp=int(time.time()) + n)
        headers["X-Slack-Retry-Num"] = str(n)
        headers["X-Slack-Retry-Reason"] = "http_timeout"
        retries.append(h.post(body, headers))
    assert [(r.status, r.body) for r in retries] == [(200, ""), (200, "")]
    _deployed(h, "retried")
    h.idle()
    assert _runs(h, "retried") == 1
    assert len(h.core.repo.clones(environment="retried")) == 2
    record("retried slash command (X-Slack-Retry-Num)", faults_injected=2, runs_started=1)


def test_a_new_command_with_the_same_text_is_not_mistaken_for_a_replay(h: SlackHarness) -> None:
    assert h.command("deploy capture 1 as twice").status == 200
    _deployed(h, "twice")
    again = h.command("deploy capture 1 as twice")  # a new trigger_id: a real second request
    assert again.json["text"].startswith("Deploying 1 capture clone")
    h.fake.wait_for(lambda: len(h.core.repo.clones(environment="twice")) == 2, timeout=60)


def test_a_replayed_confirm_click_strips_back_once(h: SlackHarness) -> None:
    _deploy(h, 3, "clicked")
    message, value = _plan(h, "clicked")
    destroys = h.lab.control.stats()["requests"].get("Destroy_Task", 0)
    payload = action_payload(
        ACTION_CONFIRM, value, OPERATOR, CHANNEL, message.ts, h.fake.response_url("c1")
    )
    body = action_body(payload)
    headers = sign(body)
    replies = [h.post(body, headers) for _ in range(3)]  # the same click, replayed
    # ...and replayed re-signed, as if retried: the trigger_id gives it away.
    replies.append(h.post(body, sign(body, timestamp=int(time.time()) + 1)))
    assert [r.status for r in replies] == [200] * 4
    h.fake.wait_for(lambda: message.text.startswith("Stripped back clicked"), timeout=60)
    h.idle()
    assert _runs(h, "clicked", "teardown") == 1
    assert h.lab.control.stats()["requests"].get("Destroy_Task", 0) - destroys == 3
    record("replayed Confirm click", faults_injected=3, strip_backs=1, destroyed=3)


@pytest.mark.parametrize(
    "drop", ["X-Slack-Request-Timestamp", "X-Slack-Signature"], ids=["no-timestamp", "no-sig"]
)
def test_half_signed_requests_get_401_and_change_nothing(h: SlackHarness, drop: str) -> None:
    before = h.lab.control.stats()["total"]
    body = slash_body("deploy capture 2 as halfsigned", OPERATOR, CHANNEL, h.fake.response_url())
    headers = sign(body)
    del headers[drop]
    assert h.post(body, headers).status == 401
    h.idle()
    assert h.core.repo.runs() == [] and h.core.repo.audit_entries() == []
    assert h.lab.control.stats()["total"] == before


def test_a_replay_with_another_users_id_is_forged(h: SlackHarness) -> None:
    """Changing any field of a captured request breaks its signature."""
    body = slash_body("status", "USTRANGER", CHANNEL, h.fake.response_url())
    headers = sign(body)
    fields = {k: v[0] for k, v in parse_qs(body).items()}
    forged = urlencode({**fields, "user_id": OPERATOR, "text": "deploy capture 2 as stolen"})
    assert h.post(forged, headers).status == 401
    assert h.core.repo.runs() == []


@pytest.fixture
def h(harness: SlackHarness) -> SlackHarness:
    return harness


def test_a_replay_after_the_bot_restarted_is_still_recognised(h: SlackHarness) -> None:
    """The seen-request memory lives in SQLite: a fresh bot on the same database (a restart)
    refuses what the first one already acted on."""
    from handlers.dedupe import SeenRequests

    keys = ["sig:1700000000:v0=abc", "trigger:9.9.9"]
    before_restart = SeenRequests(store=h.core.repo.first_sighting)
    assert before_restart.first(keys)
    after_restart = SeenRequests(store=h.core.repo.first_sighting)
    assert not after_restart.first(["trigger:9.9.9"])
    assert after_restart.first(["trigger:another"])
