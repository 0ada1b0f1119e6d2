"""`/ready` and `/metrics` on the bot's HTTP port (handlers/operations.py), over real HTTP."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable

import pytest

from tests.faults import wait_until

from .conftest import SlackHarness

pytestmark = pytest.mark.lab


def _get(h: SlackHarness, path: str) -> tuple[int, str]:
    url = h.url.replace("/slack/events", path)
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_ready_says_who_leads_and_metrics_count_runs_clones_and_latencies(
    make_harness: Callable[..., SlackHarness],
) -> None:
    h = make_harness(paused=False)
    status, body = _get(h, "/ready")
    ready = json.loads(body)
    assert status == 200 and ready["ready"] is True
    assert ready["database"] == "ok" and ready["vcenter"] == "ok"
    assert ready["this_bot_leads"] is True and ready["epoch"] == 1
    assert ready["leader"] == h.bot.schedules.keeper.lock.holder() != ""

    assert h.command("deploy capture 2 as ops-env").status == 200
    wait_until(lambda: 'clones_clones{state="ready"} 2.0' in _get(h, "/metrics")[1], timeout=60)
    status, text = _get(h, "/metrics")
    assert status == 200
    assert 'clones_runs{kind="deploy",state="succeeded"} 1.0' in text
    assert "clones_leader 1.0" in text and "clones_lease_epoch 1.0" in text
    values = dict(line.split(" ", 1) for line in text.splitlines() if not line.startswith("#"))
    assert 0 <= float(values["clones_lease_renewed_seconds_ago"]) < h.core.settings.lease_s
    age = next(line for line in text.splitlines() if line.startswith("clones_lease_age_seconds "))
    assert 0 <= float(age.split()[1]) < h.core.settings.lease_s
    assert 'clones_vcenter_call_seconds_count{method="clone"} 2.0' in text
    acks = next(
        line for line in text.splitlines() if line.startswith("clones_slack_ack_seconds_count")
    )
    assert float(acks.split()[1]) >= 1
