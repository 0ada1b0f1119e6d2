"""Two bots on two "machines": separate `python -m bot` processes that share nothing but the
database (each its own folder, configuration, working directory and log). The leader is SIGKILLed
or, separately, SIGSTOPped while a 30-clone deployment runs and a strip back falls due: the other
bot takes the lease over within `lease_s` (and a third), runs the strip back exactly once, resumes
the deployment (after the run's own lease ran out) to exactly 30 clones, and nothing is done
twice. A stopped leader, continued, does nothing it no longer leads: its writes are refused
(fenced), which it logs. On a SQLite file (two bots of one machine) and on a PostgreSQL database,
which is how bots on two machines share one: the two processes then share nothing but its URL."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.adapters.lab import LabProcess
from bot.domain.models import CloneState, RunKind, RunState
from storage import Repository
from storage.postgres import WRITE_LOCK
from tests.faults import record, wait_until
from tests.rawdb import BOTH_BACKENDS, connect, is_postgres, run

from .fake_api import FakeSlack
from .process import BotProcess

pytestmark = [pytest.mark.lab, BOTH_BACKENDS]

MakeLab = Callable[[dict[str, Any]], LabProcess]
LEASE_S = 3.0


@pytest.fixture
def bots() -> Iterator[list[BotProcess]]:
    started: list[BotProcess] = []
    yield started
    for bot in started:
        if bot.proc is not None and bot.proc.poll() is None:
            bot.proc.send_signal(signal.SIGCONT)
        bot.stop()


def _leader(database: str) -> str:
    with Repository(database) as repo:
        lease = repo.get_lease("scheduler")
    return lease.holder if lease is not None and lease.expires_at > time.time() else ""


def _pid_of(holder: str) -> int:
    return int(holder.split(":")[1]) if holder else 0


def _ready(database: str, environment: str) -> int:
    with Repository(database) as repo:
        return sum(c.state is CloneState.READY for c in repo.clones(environment=environment))


def _due_soon(database: str, environment: str, seconds: float) -> datetime:
    """Schedule `environment`'s strip back `seconds` from now (as `schedule ENV until` would)."""
    end = datetime.now(UTC) + timedelta(seconds=seconds)
    with Repository(database) as repo, repo.transaction():
        repo.update_environment(environment, ends_at=end)
        repo.save_schedule(environment, requested_by="UOPER")
    return end


def _hang_outside_a_write(proc: subprocess.Popen[bytes], database: str) -> None:
    """SIGSTOP `proc` at a moment it holds no write transaction. Both backends have one writer
    at a time (SQLite's lock, PostgreSQL's advisory write lock): a process stopped inside a
    write would block every other writer until it is continued, or on PostgreSQL until the
    server ends its session (`idle_in_transaction_session_timeout`, docs/operations.md). That is
    the write lock's limit, not the lease's, so the stop is retried."""
    while True:
        proc.send_signal(signal.SIGSTOP)
        if _writer_free(database):
            return
        proc.send_signal(signal.SIGCONT)
        time.sleep(0.05)


def _writer_free(database: str) -> bool:
    """True when nobody holds the database's write lock (it is taken and let go at once)."""
    if is_postgres(database):
        with connect(database) as conn:
            [(took,)] = run(conn, f"SELECT pg_try_advisory_lock({WRITE_LOCK})")
            if took:
                run(conn, f"SELECT pg_advisory_unlock({WRITE_LOCK})")
            return bool(took)
    probe = sqlite3.connect(database, timeout=0.3, isolation_level=None)
    try:
        probe.execute("BEGIN IMMEDIATE")
        probe.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        probe.close()


@pytest.mark.parametrize("how", ["SIGKILL", "SIGSTOP"])
def test_the_other_bot_takes_over_and_nothing_is_done_twice(
    how: str,
    backend: str,
    database: str,
    make_lab: MakeLab,
    fake_slack: FakeSlack,
    tmp_path: Path,
    bots: list[BotProcess],
) -> None:
    lab = make_lab({"clone_latency_ms": 1200})

    def bot(name: str) -> BotProcess:
        b = BotProcess(
            tmp_path / name,
            lab,
            fake_slack,
            database=database,
            clones={"lease_s": LEASE_S},
            schedule={"resync_s": 1.0},
            # Two machines: neither can tell from a process id whether the other is alive, so
            # a takeover waits for the lease to run out, SIGKILL or not.
            environ={
                "CLONES_MACHINE": f"machine-{name}",
                "XDG_STATE_HOME": str(tmp_path / name / "state"),  # its own state folder
            },
        )
        bots.append(b.start())
        return b

    a = bot("a")
    assert a.proc is not None
    wait_until(lambda: _pid_of(_leader(database)) == a.proc.pid, timeout=60)  # type: ignore[union-attr]
    b = bot("b")
    assert b.proc is not None

    assert a.command("deploy capture 2 as sb").status == 200
    wait_until(lambda: _ready(database, "sb") == 2, timeout=90)
    assert a.command("deploy capture 30 as big").status == 200
    wait_until(lambda: _ready(database, "big") >= 6, timeout=120)
    due = _due_soon(database, "sb", 1.0)  # falls due while nobody leads

    stopped = time.monotonic()
    if how == "SIGKILL":
        a.proc.send_signal(signal.SIGKILL)
    else:
        _hang_outside_a_write(a.proc, database)
    wait_until(lambda: _pid_of(_leader(database)) == b.proc.pid, timeout=60)  # type: ignore[union-attr]
    takeover_s = time.monotonic() - stopped
    assert datetime.now(UTC) > due

    def settled() -> bool:
        with Repository(database) as repo:
            big = repo.runs(environment="big", limit=10)
            sb = repo.clones(environment="sb")
            return (
                bool(big)
                and big[0].state is RunState.SUCCEEDED
                and all(c.state is CloneState.DESTROYED for c in sb)
                and repo.get_schedule("sb") is None
            )

    wait_until(settled, timeout=180)
    settled_s = time.monotonic() - stopped
    # The deployment's own progress message (posted by A) is finished by B, which ran it last.
    with Repository(database) as repo:
        shown = repo.run_message(repo.runs(environment="big", limit=1)[0].id)
    assert shown is not None
    message = fake_slack.messages[shown.ts]
    assert message.channel == shown.channel
    fake_slack.wait_for(lambda: message.text.startswith("30 of 30 linked clones ready"), timeout=60)

    refused = ""
    if how == "SIGSTOP":
        a.proc.send_signal(signal.SIGCONT)  # the old leader comes back
        wait_until(lambda: "fenced: Refused" in a.log(), timeout=60)
        wait_until(lambda: "fenced: Refused: renewing lease 'scheduler'" in a.log(), timeout=60)
        # ...and the deployment it was running, taken over meanwhile: its next clone write.
        wait_until(lambda: "is no longer this process's" in a.log(), timeout=60)
        refused = "\n".join(line for line in a.log().splitlines() if "fenced:" in line)
        # Its refused run leaves the run's message as the bot that finished it left it.
        time.sleep(2.0)  # a progress edit it might still send goes out within its interval
        assert message.text.startswith("30 of 30 linked clones ready"), message.text
        assert a.proc.poll() is None  # refused, not crashed
    else:
        a.proc.wait(30)

    with Repository(database) as repo:
        big_runs = repo.runs(environment="big", limit=10)
        sb_runs = repo.runs(environment="sb", limit=10)
        big = [c for c in repo.clones(environment="big") if c.state.live]
        lease = repo.get_lease("scheduler")
    vms = [vm for vm in lab.control.vms() if vm["name"].startswith("TRN-")]
    # The deployment: exactly 30 clones, each one VM (none made twice), run taken over once.
    assert len(big) == 30 and all(c.state is CloneState.READY for c in big)
    assert len({c.instance_uuid for c in big}) == 30
    assert sorted(vm["name"] for vm in vms) == sorted(c.name for c in big)
    assert [r.state for r in big_runs] == [RunState.SUCCEEDED, RunState.SUPERSEDED]
    assert big_runs[0].owner != big_runs[1].owner
    # The strip back: exactly once (one teardown run), by the bot that leads now.
    teardowns = [r for r in sb_runs if r.kind is RunKind.TEARDOWN]
    assert len(teardowns) == 1 and teardowns[0].state is RunState.SUCCEEDED
    assert lease is not None and lease.epoch == 2 and _pid_of(lease.holder) == b.proc.pid
    # The other bot took over within the lease (and its next try); margin for a busy machine.
    assert takeover_s <= LEASE_S + LEASE_S / 3 + 3.0, takeover_s
    if how == "SIGSTOP":
        assert "fenced: Refused: renewing lease 'scheduler' epoch 1" in refused
        assert "Refused: run" in a.log()
    # Nothing asked of vCenter twice: 2 + 30 clone tasks, those in flight at the stop adopted.
    # A stopped leader, continued, asks for no clone: its run's lease is renewed (refused)
    # just before each ask, however long it waited for a slot (it asked 1 to 4 more before).
    clone_calls = lab.control.stats()["clone_calls"]
    assert clone_calls == 32, clone_calls
    figures = {
        "lease_s": LEASE_S,
        "takeover_s": round(takeover_s, 2),
        "settled_s": round(settled_s, 2),
        "clone_calls": clone_calls,
        "refused": refused.count("\n") + 1 if refused else 0,
    }
    print(f"failover after {how} of the leader on {backend}: {figures}")
    record(f"failover after {how} of the leader on {backend}", **figures)
