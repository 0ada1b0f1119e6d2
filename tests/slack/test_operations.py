"""`/ready` and `/metrics` on the bot's HTTP port (handlers/operations.py), over real HTTP, with
the bot on a SQLite file and on a PostgreSQL database (the server stopped under it, too)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable

import pytest

import storage.postgres
from tests.faults import wait_until
from tests.postgres import PostgresServer
from tests.rawdb import BOTH_BACKENDS

from .conftest import SlackHarness

pytestmark = [pytest.mark.lab, BOTH_BACKENDS]


def _get(h: SlackHarness, path: str) -> tuple[int, str]:
    url = h.url.replace("/slack/events", path)
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_ready_says_who_leads_and_metrics_count_runs_clones_and_latencies(
    make_harness: Callable[..., SlackHarness], database: str
) -> None:
    h = make_harness(paused=False, database=database)
    status, body = _get(h, "/ready")
    ready = json.loads(body)
    assert status == 200 and ready["ready"] is True
    assert ready["database"] == "ok" and ready["vcenter"] == "ok"
    assert ready["this_bot_leads"] is True and ready["epoch"] == 1
    assert ready["leader"] == h.bot.schedules.keeper.lock.holder() != ""

    assert h.command("deploy capture 2 as ops-env").status == 200
    # The run's end is recorded a moment after its last clone is ready: wait for both.
    done = ('clones_clones{state="ready"} 2.0', 'clones_runs{kind="deploy",state="succeeded"} 1.0')
    wait_until(lambda: all(m in _get(h, "/metrics")[1] for m in done), timeout=60)
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


@pytest.mark.backends("postgresql")
def test_ready_says_503_while_the_postgresql_server_is_down_and_200_once_it_is_back(
    make_harness: Callable[..., SlackHarness],
    database: str,
    postgres_server: PostgresServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(storage.postgres, "TIMEOUT_S", 2.0)
    h = make_harness(paused=False, database=database)
    assert _get(h, "/ready")[0] == 200
    postgres_server.pg_ctl("stop")
    try:
        status, body = _get(h, "/ready")
        ready = json.loads(body)
        assert status == 503 and ready["ready"] is False
        assert ready["database"].startswith("The database ") and "\n" not in ready["database"]
        assert "clones-test-password" not in body  # never the password
        assert ready["vcenter"] == "ok"  # what is wrong is said, not everything
        status, text = _get(h, "/metrics")  # still answers: the bot's own figures
        assert status == 200 and "clones_leader" in text
    finally:
        postgres_server.pg_ctl("start")
    wait_until(lambda: _get(h, "/ready")[0] == 200, timeout=60)
    assert json.loads(_get(h, "/ready")[1])["database"] == "ok"
