"""Replayed and retried Slack requests are acknowledged and otherwise ignored.

Bolt checks each request's signature and refuses timestamps older than 5 minutes, but a request
captured and sent again within those 5 minutes verifies perfectly, and Slack itself resends a
request it thinks was lost (with an `X-Slack-Retry-Num` header). Either would start a second
deployment. This global middleware runs after Bolt's signature check (so forged requests never
fill its memory) and remembers, for 5 minutes:

- each request's (X-Slack-Request-Timestamp, X-Slack-Signature) pair: an identical replay;
- a slash command's or a click's `trigger_id` and an event's `event_id`: the same user action
  delivered again, even re-signed (Slack's retries carry a new timestamp and signature).

The keys live in SQLite (`Repository.first_sighting`), so a request replayed or retried after
the bot restarted is still recognised. A repeat gets an empty 200 (so Slack stops retrying) and
reaches no listener. Socket Mode requests carry no signature; their trigger_id and event_id still
count.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

from slack_bolt import BoltRequest, BoltResponse

log = logging.getLogger("handlers")

REPLAY_WINDOW_S = 5 * 60.0  # Bolt's SignatureVerifier refuses anything older
MAX_REMEMBERED = 100_000  # verified requests only; a bound all the same


Store = Callable[[list[str], float], bool]  # keys, window seconds -> first sighting?


class SeenRequests:
    """Keys seen in the last `window_s` seconds; `first(keys)` is an atomic check-and-insert."""

    def __init__(
        self,
        window_s: float = REPLAY_WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
        store: Store | None = None,
    ) -> None:
        self._window_s = window_s
        self._clock = clock
        self._store = store
        self._seen: dict[str, float] = {}  # key -> when it expires (insertion ordered)
        self._lock = threading.Lock()

    def first(self, keys: list[str]) -> bool:
        """True if none of `keys` was seen (and remember them all); False for a repeat."""
        if not keys:
            return True
        if self._store is not None:
            # The database remembers across restarts of the bot (and across bots).
            try:
                return self._store(keys, self._window_s)
            except Exception:  # never drop a real request because the store hiccuped
                log.exception("replay store failed; remembering in memory only")
        now = self._clock()
        with self._lock:
            self._expire(now)
            if any(k in self._seen for k in keys):
                return False
            for k in keys:
                self._seen[k] = now + self._window_s
            while len(self._seen) > MAX_REMEMBERED:
                self._seen.pop(next(iter(self._seen)))
            return True

    def _expire(self, now: float) -> None:
        for key in [k for k, until in self._seen.items() if until <= now]:
            del self._seen[key]


def request_keys(req: BoltRequest) -> list[str]:
    """What identifies this delivery of a Slack request (see the module docstring)."""
    keys: list[str] = []
    ts = _header(req, "x-slack-request-timestamp")
    sig = _header(req, "x-slack-signature")
    if ts and sig:
        keys.append(f"sig:{ts}:{sig}")
    body = _body(req)
    trigger = body.get("trigger_id")
    if isinstance(trigger, str) and trigger:
        keys.append(f"trigger:{trigger}")
    event_id = body.get("event_id")
    if isinstance(event_id, str) and event_id:
        keys.append(f"event:{event_id}")
    return keys


def _header(req: BoltRequest, name: str) -> str:
    values = req.headers.get(name) or []
    return str(values[0]) if values else ""


def _body(req: BoltRequest) -> dict[str, Any]:
    """The request's fields: form fields of a slash command, the JSON `payload` of a click, or
    the JSON of an event; {} when it is none of these."""
    if isinstance(req.body, dict) and req.body:
        return req.body
    raw = req.raw_body or ""
    try:
        if raw.lstrip().startswith("{"):
            data = json.loads(raw)
            return data if isinstance(data, dict) else {}
        form = {k: v[0] for k, v in parse_qs(raw).items() if v}
        if "payload" in form:
            data = json.loads(form["payload"])
            return data if isinstance(data, dict) else {}
        return form
    except ValueError:
        return {}


def dedupe_middleware(seen: SeenRequests) -> Callable[..., BoltResponse | None]:
    def dedupe(
        req: BoltRequest, resp: BoltResponse, next: Callable[[], None]
    ) -> BoltResponse | None:
        if seen.first(request_keys(req)):
            next()
            return resp
        retry = _header(req, "x-slack-retry-num")
        log.info(
            "ignored a repeated Slack request%s", f" (retry {retry})" if retry else " (replay)"
        )
        return BoltResponse(status=200, body="")

    return dedupe
