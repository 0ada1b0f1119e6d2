"""Operating the bot: `GET /ready` (database reachable, vCenter session good, who leads) and
`GET /metrics` in Prometheus' text format (prometheus-client): runs by kind and state, clones by
state, vCenter call latency by method, Slack acknowledgement latency, whether this bot leads and
how old its lease is. `/health` (alive) stays in handlers/serving.py. See docs/operations.md.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from bot.domain.errors import ClonesError
from bot.services.container import Services
from bot.services.schedules import ScheduleService

log = logging.getLogger(__name__)

READY_PATH = "/ready"
METRICS_PATH = "/metrics"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
VCENTER_CHECK_S = 5.0  # /ready asks vCenter at most this often (a load balancer polls it)
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Operations:
    """What `/ready` and `/metrics` answer, for one bot."""

    def __init__(self, services: Services, schedules: ScheduleService) -> None:
        self.services = services
        self.schedules = schedules
        self.registry = CollectorRegistry()
        self.vcenter_latency = Histogram(
            "clones_vcenter_call_seconds",
            "vCenter calls by adapter method",
            ["method"],
            registry=self.registry,
            buckets=_BUCKETS,
        )
        self.ack_latency = Histogram(
            "clones_slack_ack_seconds",
            "From a Slack request's arrival to its acknowledgement",
            registry=self.registry,
            buckets=_BUCKETS,
        )
        self.registry.register(_StateCollector(self))
        self._guard = threading.Lock()
        self._vcenter_checked = 0.0
        self._vcenter_ok: tuple[bool, str] = (False, "not checked yet")

    def observe_vcenter(self, method: str, seconds: float) -> None:
        self.vcenter_latency.labels(method=method).observe(seconds)

    # ------------------------------------------------------------------ /ready
    def ready(self) -> tuple[bool, bytes]:
        """(ready, JSON body): the database answers, vCenter's session is good, and who leads
        (this bot or another: either way the bot can serve)."""
        lock = self.schedules.keeper.lock
        body: dict[str, Any] = {}
        try:
            lease = self.services.repo.get_lease("scheduler")
            body["database"] = "ok"
        except ClonesError as exc:
            lease = None
            body["database"] = str(exc)
        ok_vc, why = self._vcenter()
        body["vcenter"] = "ok" if ok_vc else why
        now = time.time()
        live = lease is not None and not lease.expired(now)
        body["leader"] = lease.holder if live and lease is not None else ""
        body["epoch"] = lease.epoch if lease is not None else 0
        body["this_bot_leads"] = lock.held
        ready = body["database"] == "ok" and ok_vc
        body["ready"] = ready
        return ready, json.dumps(body, sort_keys=True).encode()

    def _vcenter(self) -> tuple[bool, str]:
        with self._guard:
            if time.monotonic() - self._vcenter_checked < VCENTER_CHECK_S:
                return self._vcenter_ok
        try:
            self.services.vcenter.connect()
            self.services.vcenter.datacenter_name()
            result = (True, "ok")
        except ClonesError as exc:
            result = (False, str(exc))
        except Exception as exc:  # an adapter fault not translated: still "not ready"
            log.exception("/ready: vCenter check")
            result = (False, f"vCenter check failed: {type(exc).__name__}")
        with self._guard:
            self._vcenter_checked, self._vcenter_ok = time.monotonic(), result
        return result

    # ------------------------------------------------------------------ /metrics
    def metrics(self) -> bytes:
        return generate_latest(self.registry)


class _StateCollector(Collector):
    """Read at each scrape from the database (shared by every bot: the same figures from
    each), plus this bot's own leadership."""

    def __init__(self, ops: Operations) -> None:
        self.ops = ops

    def collect(self) -> Iterator[GaugeMetricFamily]:
        repo = self.ops.services.repo
        runs = GaugeMetricFamily("clones_runs", "Runs by kind and state", labels=["kind", "state"])
        clones = GaugeMetricFamily("clones_clones", "Clones by state", labels=["state"])
        try:
            for kind, state, n in repo.run_counts():
                runs.add_metric([kind, state], n)
            by_state: dict[str, int] = {}
            for by_type in repo.clone_counts().values():
                for states in by_type.values():
                    for state, n in states.items():
                        by_state[state.value] = by_state.get(state.value, 0) + n
            for state, n in sorted(by_state.items()):
                clones.add_metric([state], n)
        except ClonesError:
            log.warning("/metrics: the database did not answer")
        yield runs
        yield clones
        try:
            lease = repo.get_lease("scheduler")
        except ClonesError:
            lease = None
        if lease is not None:
            yield GaugeMetricFamily(
                "clones_lease_epoch", "The leader's lease epoch (raised by every takeover)",
                value=lease.epoch,
            )  # fmt: skip
            yield GaugeMetricFamily(
                "clones_lease_renewed_seconds_ago",
                "Seconds since whichever bot leads last renewed the lease (by this bot's clock)",
                value=max(0.0, time.time() - lease.renewed_at),
            )
        lock = self.ops.schedules.keeper.lock
        yield GaugeMetricFamily(
            "clones_leader", "1 while this bot leads (runs the schedules)", value=int(lock.held)
        )
        age = lock.lease_age()
        yield GaugeMetricFamily(
            "clones_lease_age_seconds",
            "Seconds since this bot last renewed its leader's lease (-1: it does not lead)",
            value=-1.0 if age is None else age,
        )
