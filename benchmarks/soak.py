"""11. Soak (issue 26): a long run stays flat.

`python -m bot` in HTTP mode (the process a deployment runs, its log on stderr into a file)
against the lab vCenter at low latency and the fake Slack Web API. Lanes (3) run cycles side by
side, each through the real Bolt app with signed requests: deploy a small environment and wait
for its run to end, `/clones status` (timed to its answer at the response_url), `assign` it to two
trainees, `teardown` it and press the plan's Confirm, and wait for the strip back to end. After
each round (every lane's cycle done) the bot's RSS, threads and open files, the database's size
(with its WAL), the bot's log, the lab's RSS and the round's status times are sampled; after the
warm-up, the slope of each per 100 cycles is fitted by least squares.

`--soak-minutes N` runs longer (default: a few minutes; the smoke profile: half a minute).
"""

from __future__ import annotations

import itertools
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from benchmarks.common import Profile, Table, lab, targets_table, write_result
from bot.adapters.lab import LabProcess
from handlers.blocks.ids import ACTION_CONFIRM
from tests.helpers import lab_environ
from tests.slack.fake_api import FakeSlack
from tests.slack.process import ROOT, BotProcess
from tests.slack.signing import SECRET, action_body, action_payload, sign, slash_body

OPERATOR = "UOPERATOR"  # tests.slack.process configures it as the bot's operator
CHANNEL = "CTRAINING"
TARGET_RSS_SLOPE_MB = 0.3  # per 100 cycles, after the warm-up
TARGET_FLAT = 1.0  # threads or open files per 100 cycles
TARGET_STATUS_SLOPE_MS = 1.0  # per 100 cycles: no upward slope beyond noise
TARGET_LAB_RSS = 1.2  # of the lab's baseline, after each round's strip backs
DEPLOY = "deploy capture 2 packaging 1 verification 1 as {env}"


class SoakBot(BotProcess):
    """`python -m bot` as tests.slack.process starts it, through benchmarks.soak_bot: the same
    bot, with a thread writing SQLite's and Python's heap figures to `probe_path`."""

    def start(self, timeout: float = 90.0) -> SoakBot:
        self.probe_path = self.tmp_path / "probe.jsonl"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "CLONES_"))}
        env.update(
            {
                "CLONES_CONFIG": str(self.config),
                "CLONES_SOAK_PROBE": str(self.probe_path),
                "SLACK_BOT_TOKEN": "xoxb-test",
                "SLACK_SIGNING_SECRET": SECRET,
                "PORT": str(self.port),
                "PYTHONUNBUFFERED": "1",
                **lab_environ(self.lab),
            }
        )
        # CLONES_SOAK_BOT_ROOT: run the bot of another checkout (with benchmarks/soak_bot.py
        # copied in), e.g. the code before a fix, for a comparison made side by side.
        root = Path(os.environ.get("CLONES_SOAK_BOT_ROOT") or ROOT)
        env["PYTHONPATH"] = str(root)
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "benchmarks.soak_bot"],
                cwd=root,
                env=env,
                stdout=log,
                stderr=log,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the bot exited at start-up:\n{self.log()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2):
                    return self
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"the bot did not answer /health within {timeout} s")

    def probed(self) -> dict[str, Any]:
        """The probe's latest line."""
        lines = self.probe_path.read_text(encoding="utf-8").splitlines()
        return dict(json.loads(lines[-1])) if lines else {}


class Answers:
    """A response_url sink: when each named answer arrived."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        self._cond = threading.Condition()
        answers = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with answers._cond:
                    answers.arrived.setdefault(self.path.rsplit("/", 1)[-1], time.monotonic())
                    answers._cond.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def url(self, name: str) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/{name}"

    def wait(self, name: str, timeout: float = 60.0) -> float:
        deadline = time.monotonic() + timeout
        with self._cond:
            while name not in self.arrived:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError(f"no answer {name} within {timeout} s")
                self._cond.wait(left)
            return self.arrived.pop(name)

    def stop(self) -> None:
        self._server.shutdown()


@dataclass
class Soak:
    bot: SoakBot
    fake: FakeSlack
    lab: LabProcess
    answers: Answers
    names: Any = field(default_factory=lambda: itertools.count(1))

    # ------------------------------------------------------------------ requests
    def post(self, body: str) -> None:
        request = urllib.request.Request(self.bot.url, data=body.encode(), headers=sign(body))
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()
            if response.status != 200:
                raise RuntimeError(f"HTTP {response.status}")

    def command(self, text: str, answer: str | None = None) -> float:
        """Send `/clones text`; with `answer`, wait for its response and return the seconds."""
        name = answer or f"r{next(self.names)}"
        started = time.monotonic()
        self.post(slash_body(text, OPERATOR, CHANNEL, self.answers.url(name)))
        return self.answers.wait(name) - started if answer else 0.0

    def db(self) -> sqlite3.Connection:
        return sqlite3.connect(f"file:{self.bot.database}?mode=ro", uri=True, timeout=30)

    def wait_db(self, sql: str, params: tuple[Any, ...], ok: Callable[[Any], bool]) -> None:
        deadline = time.monotonic() + 120
        conn = self.db()
        try:
            while time.monotonic() < deadline:
                row = conn.execute(sql, params).fetchone()
                if ok(row):
                    return
                time.sleep(0.05)
        finally:
            conn.close()
        raise RuntimeError(f"timed out waiting for {sql} {params}")

    def run_over(self, env: str, kind: str) -> None:
        self.wait_db(
            "SELECT state FROM runs WHERE environment = ? AND kind = ? ORDER BY id DESC LIMIT 1",
            (env, kind),
            lambda row: row is not None and row[0] != "running",
        )

    # ------------------------------------------------------------------ one cycle
    def cycle(self, lane: int, n: int) -> float:
        """Deploy, status, assign, strip back one environment; the status answer's seconds."""
        env = f"soak-{lane}-{n}"
        self.command(DEPLOY.format(env=env))
        self.run_over(env, "deploy")
        status_s = self.command("status", answer=f"status-{env}")
        trainees = [f"UT{lane}A{n % 2}", f"UT{lane}B{n % 2}"]
        self.command(f"assign {env} " + " ".join(f"<@{t}|{t.lower()}>" for t in trainees))
        self.wait_db(
            "SELECT count(*) FROM assignments WHERE environment = ? AND ended_at IS NULL",
            (env,),
            lambda row: row[0] == len(trainees),
        )
        self.command(f"teardown {env}")
        plan = self.fake.wait_for(lambda: self._plan(env), timeout=60)
        ts, value = plan
        payload = action_payload(
            ACTION_CONFIRM, value, OPERATOR, CHANNEL, ts, self.answers.url(f"c{next(self.names)}")
        )
        self.post(action_body(payload))
        self.run_over(env, "teardown")
        return status_s

    def _plan(self, env: str) -> tuple[str, str] | None:
        with self.fake._cond:
            messages = list(self.fake.messages.values())
        for m in messages:
            if m.text.startswith(f"Strip back {env}?"):
                for block in m.blocks:
                    if block.get("type") == "actions":
                        for e in block["elements"]:
                            if e.get("action_id") == ACTION_CONFIRM:
                                return m.ts, str(e["value"])
        return None

    def forget_old(self) -> None:
        """Keep the fake Slack's own records small (the driver's memory is not measured); the
        messages stay, as the bot edits its own later."""
        with self.fake._cond:
            self.fake.calls.clear()
            self.fake.uploads.clear()


def _proc(pid: int) -> tuple[float, int, int]:
    """(RSS MB, threads, open files) of a process."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    rss_mb = int(fields["VmRSS"].split()[0]) / 1024
    return round(rss_mb, 2), int(fields["Threads"]), len(os.listdir(f"/proc/{pid}/fd"))


def _size_mb(database: Path) -> float:
    paths = [database, database.with_name(database.name + "-wal")]
    return round(sum(p.stat().st_size for p in paths if p.exists()) / 2**20, 3)


def slope_per_100(xs: list[float], ys: list[float]) -> float:
    if len(xs) < 2 or len(set(xs)) < 2:
        return 0.0
    return round(statistics.linear_regression(xs, ys).slope * 100, 3)


def quiet_status_ms(s: Soak, name: str, repeats: int = 5) -> float:
    """`/clones status` answered while nothing else runs (the lanes are between rounds): what
    the read costs, without the noise of the other lanes' work; the best of `repeats`, as a
    machine shared with other work only ever adds to it."""
    return min(s.command("status", answer=f"{name}-{i}") * 1000 for i in range(repeats))


def sample(s: Soak, cycles: int, status_ms: list[float], log: Path) -> dict[str, Any]:
    assert s.bot.proc is not None
    quiet = quiet_status_ms(s, f"quiet-{cycles}")
    rss, threads, files = _proc(s.bot.proc.pid)
    lab_rss, _, _ = _proc(s.lab.info.pid)
    probed = s.bot.probed()
    return {
        "t": time.time(),
        "quiet_status_ms": round(quiet, 1),
        "sqlite_mb": probed.get("sqlite_mb"),
        "py_blocks": probed.get("py_blocks"),
        "malloc_used_mb": probed.get("malloc_used_mb"),
        "malloc_free_mb": probed.get("malloc_free_mb"),
        "malloc_mmap_mb": probed.get("malloc_mmap_mb"),
        "cycles": cycles,
        "bot_rss_mb": rss,
        "threads": threads,
        "open_files": files,
        "database_mb": _size_mb(Path(s.bot.database)),  # the soak runs on SQLite
        "log_kb": round(log.stat().st_size / 1024, 1),
        "lab_rss_mb": lab_rss,
        "status_ms": round(statistics.median(status_ms), 1),
    }


def soak(profile: Profile, tmp: Path) -> dict[str, Any]:
    fake = FakeSlack().start()
    answers = Answers()
    lanes = profile.soak_lanes
    for lane in range(lanes):
        for who in ("A", "B"):
            for parity in (0, 1):
                trainee = f"UT{lane}{who}{parity}"
                fake.add_user(trainee, f"Trainee {trainee}", f"{trainee.lower()}@example.com")
    with lab(profile.soak_latency_ms) as lb:
        bot = SoakBot(tmp, lb, fake).start()
        s = Soak(bot, fake, lb, answers)
        samples: list[dict[str, Any]] = []
        try:
            lab_start, _, _ = _proc(lb.info.pid)
            cycles, rounds = 0, 0
            deadline = time.monotonic() + profile.soak_minutes * 60
            while time.monotonic() < deadline or rounds < 4:
                status_s: list[float] = [0.0] * lanes
                errors: list[BaseException] = []

                def one(lane: int, n: int, out: list[float], errors: list[BaseException]) -> None:
                    try:
                        out[lane] = s.cycle(lane, n)
                    except BaseException as exc:  # reported below, with the bot's log
                        errors.append(exc)

                threads = [
                    threading.Thread(target=one, args=(k, rounds, status_s, errors))
                    for k in range(lanes)
                ]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                if errors:
                    raise RuntimeError(f"round {rounds}: {errors[0]}\n{bot.log()[-3000:]}")
                rounds += 1
                cycles += lanes
                samples.append(sample(s, cycles, [x * 1000 for x in status_s], bot.log_path))
                s.forget_old()
        finally:
            bot.stop()
            answers.stop()
            fake.stop()
    return {
        "samples": samples,
        "lab_start_mb": lab_start,
        "probe": bot.probe_path.read_text(encoding="utf-8"),
        "warm_probe_at": samples[max(1, int(len(samples) * profile.soak_warmup)) - 1]["t"],
    }


def run(profile: Profile, out_dir: Path) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="clones-soak-") as tmp:
        result = soak(profile, Path(tmp))
    samples = result["samples"]
    warm = max(1, int(len(samples) * profile.soak_warmup))
    after = samples[warm:]
    xs = [float(x["cycles"]) for x in after]
    slopes = {
        key: slope_per_100(xs, [float(x[key]) for x in after])
        for key in ("bot_rss_mb", "threads", "open_files", "database_mb", "log_kb")
    }
    slopes["lab_rss_mb"] = slope_per_100(xs, [x["lab_rss_mb"] for x in after])
    probed = ("sqlite_mb", "py_blocks", "malloc_used_mb", "malloc_free_mb", "malloc_mmap_mb")
    for key in ("status_ms", "quiet_status_ms", *probed):
        if all(x.get(key) is not None for x in after):
            slopes[key] = slope_per_100(xs, [float(x[key]) for x in after])
    lab_baseline = samples[warm - 1]["lab_rss_mb"]
    lab_worst = max(x["lab_rss_mb"] for x in after) if after else lab_baseline
    targets = {
        "bot_rss_slope": {
            "value": slopes["bot_rss_mb"],
            "target": f"<= {TARGET_RSS_SLOPE_MB} MB per 100 cycles",
            "met": slopes["bot_rss_mb"] <= TARGET_RSS_SLOPE_MB,
        },
        "threads_flat": {
            "value": slopes["threads"],
            "target": f"<= {TARGET_FLAT:g} per 100 cycles",
            "met": slopes["threads"] <= TARGET_FLAT,
        },
        "open_files_flat": {
            "value": slopes["open_files"],
            "target": f"<= {TARGET_FLAT:g} per 100 cycles",
            "met": slopes["open_files"] <= TARGET_FLAT,
        },
        "status_time_slope": {
            "value": slopes["quiet_status_ms"],
            "target": f"<= {TARGET_STATUS_SLOPE_MS:g} ms per 100 cycles",
            "met": slopes["quiet_status_ms"] <= TARGET_STATUS_SLOPE_MS,
        },
        "lab_rss_after_strip_back": {
            "value": round(lab_worst / lab_baseline, 3),
            "target": f"<= {TARGET_LAB_RSS:g} x baseline ({lab_baseline} MB)",
            "met": lab_worst <= TARGET_LAB_RSS * lab_baseline,
        },
    }
    cycles = samples[-1]["cycles"]
    table = Table(
        f"11. Soak: {cycles} cycles (deploy {DEPLOY.split(' as ')[0][7:]}, status, assign 2, "
        f"strip back) in {profile.soak_lanes} lanes at {profile.soak_latency_ms} ms latency; "
        f"slopes after a warm-up of {samples[warm - 1]['cycles']} cycles",
        ["metric", "at warm-up", "at end", "slope per 100 cycles"],
    )
    first, last = samples[warm - 1], samples[-1]
    for key, label in (
        ("bot_rss_mb", "bot RSS MB"),
        ("threads", "bot threads"),
        ("open_files", "bot open files"),
        ("database_mb", "database MB (with WAL)"),
        ("log_kb", "bot log KB"),
        ("lab_rss_mb", "lab RSS MB"),
        ("quiet_status_ms", "status answer ms (between rounds)"),
        ("status_ms", "status answer ms (in the rounds)"),
        ("sqlite_mb", "bot's SQLite heap MB"),
        ("py_blocks", "bot's Python blocks"),
        ("malloc_used_mb", "bot's C heap in use MB"),
        ("malloc_free_mb", "bot's C heap freed, kept MB"),
        ("malloc_mmap_mb", "bot's mmapped blocks MB"),
    ):
        if key in slopes:
            table.add(label, first[key], last[key], slopes[key])
    checks = targets_table(targets)
    print(table.render())
    print(f"   lab RSS at start {result['lab_start_mb']} MB; worst after warm-up {lab_worst} MB")
    print(checks.render())
    data = {
        "params": {
            "minutes": profile.soak_minutes,
            "lanes": profile.soak_lanes,
            "latency_ms": profile.soak_latency_ms,
            "cycles": cycles,
            "warm_up_cycles": samples[warm - 1]["cycles"],
        },
        "slopes_per_100_cycles": slopes,
        "lab_start_mb": result["lab_start_mb"],
        "samples": samples,
        "targets": targets,
        "tables": [table.to_json(), checks.to_json()],
    }
    write_result("soak", profile, data, out_dir)
    (out_dir / "soak-probe.jsonl").write_text(result["probe"], encoding="utf-8")
    growth = type_growth(result["probe"], result["warm_probe_at"])
    if growth:
        print("   Python objects of the bot that grew most after the warm-up (type: added):")
        print("   " + ", ".join(f"{name}: {n:+,}" for name, n in growth[:12]))
    data["object_growth"] = growth[:40]
    return data


def type_growth(probe: str, since: float) -> list[tuple[str, int]]:
    """The types whose object counts grew most between the probe's first census after `since`
    and its last."""
    censuses = [
        line
        for line in map(json.loads, probe.splitlines())
        if "types" in line and line["t"] >= since
    ]
    if len(censuses) < 2:
        return []
    first, last = censuses[0]["types"], censuses[-1]["types"]
    grown = {name: n - first.get(name, 0) for name, n in last.items()}
    return sorted(((k, v) for k, v in grown.items() if v > 0), key=lambda kv: -kv[1])
