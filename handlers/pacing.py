"""One pacer for every Slack Web API call this process makes (docs/slack.md, "Rate limits").

Slack limits each Web API method per app per workspace by tier (Tier 2 about 20 calls a minute,
Tier 3 about 50, Tier 4 about 100), posts to about one a second per channel with short bursts,
and answers a call over the limit with HTTP 429 and `Retry-After`. The bot keeps under those
limits instead of running into them:

- **Rules.** Each method the bot uses has its documented tier, kept with a safety margin
  (`MARGIN`); `chat.postMessage` is paced per channel, and direct messages (a post to a user ID
  or a DM conversation) also globally. A rule counts a call from when it starts until it ends
  (in flight, then by its end time), so however long a call travels, no window of Slack's
  sees more calls than the rule allows.
- **Priorities.** Calls waiting for the same rule go in priority order: answers to a person
  first, then final states, then progress edits, then background refreshes; progress and
  background calls leave a quarter of every rule's room to the first two, so a final state or an
  answer never waits a whole minute behind progress.
- **429s.** A 429 pauses what it limits (the method; for a post, its channel) for everyone for
  its Retry-After, not just the one call, and the call waits its turn again. A call has a
  budget (`paced(within_s=...)`): when the wait would outlast it, it fails at once with
  `SlackBusy`, which says how long Slack asked to wait.

`PacedWebClient` is slack_sdk's WebClient with every call (`api_call`, which each method of the
client ends in) going through the process's pacer. Without the client's own 429 retry handler:
a retry there would resend the same payload, unpaced and unseen by anyone else.

Who waits how: `paced(priority, within_s)` sets both for the calls made inside it (a context
variable, so one thread's setting never leaks into another's); `Pacer.turn` lets a caller take
its turn first and decide only then what to send (a progress message sends its latest state,
never a stale one, `handlers.progress`); `watching(callback)` is told how long each call made
inside it has to wait (the hand-out's message says when Slack is pacing it).
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web import SlackResponse

log = logging.getLogger(__name__)


class Priority(IntEnum):
    """Who goes first when calls wait for the same rule (lower first)."""

    PERSON = 0  # an answer to someone who acted: a reply, a confirmation, a run's first message
    FINAL = 1  # a run's final state, a trainee's direct message
    PROGRESS = 2  # a progress edit (only the latest state is ever sent)
    BACKGROUND = 3  # refreshing a cache (user groups, the workspace's directory)


# Slack's documented floor of each tier, in calls per minute (api.slack.com/docs/rate-limits).
TIER_PER_MINUTE = {1: 1, 2: 20, 3: 50, 4: 100}
# The tier of each method the bot calls, from its page in Slack's method reference.
# apps.connections.open (Socket Mode, Tier 1) is called once at start and after a dropped
# connection, and slack_sdk backs off between reconnects: it has no rule of its own here.
METHOD_TIERS = {
    "usergroups.users.list": 2,
    "users.list": 2,
    "chat.update": 3,
    "conversations.open": 3,
    "users.lookupByEmail": 3,
    "auth.test": 4,
    "chat.postEphemeral": 4,
    "conversations.members": 4,
    "files.completeUploadExternal": 4,
    "files.getUploadURLExternal": 4,
    "users.info": 4,
    "views.publish": 4,
}
MARGIN = 0.8  # the bot keeps to 80% of each tier
# Posts: about one a second per channel with short bursts (Slack), so at most 4 in 5 s; direct
# messages, each to its own conversation, also at most 2 a second in all (Slack keeps a
# workspace-wide limit on posting beside the per-channel one, and publishes no figure for it).
POST_METHODS = frozenset({"chat.postMessage"})
PER_CHANNEL = (4, 5.0)
DIRECT_MESSAGES = (2, 1.0)
# Progress and background calls may use this share of a rule; the rest waits for answers to a
# person and final states.
LOW_PRIORITY_SHARE = 0.75
NOTICEABLE_WAIT_S = 1.0  # waits adding up to this much are worth telling a person about
MAX_BUCKETS = 2_000  # past this many channels, the idle ones are forgotten


@dataclass(frozen=True)
class Rule:
    """At most `limit` calls in any `window_s` seconds (a call counts until it has ended)."""

    limit: int
    window_s: float

    def room(self, priority: Priority) -> int:
        """How many of `limit` a call of this priority may use."""
        if priority >= Priority.PROGRESS and self.limit > 1:
            return max(1, math.floor(self.limit * LOW_PRIORITY_SHARE))
        return self.limit


def tier_rule(tier: int, scale: float = 1.0) -> Rule:
    per_minute = TIER_PER_MINUTE[tier]
    return Rule(max(1, math.floor(per_minute * MARGIN)), 60.0 * scale)


def is_direct(channel: str) -> bool:
    """A direct message: posted to a user ID (Slack opens the app's DM) or a DM conversation."""
    return channel[:1] in ("U", "W", "D")


class SlackBusy(SlackClientError):
    """Slack is rate limiting this call's method (or channel) for longer than the call may wait."""

    def __init__(self, method: str, retry_after_s: float) -> None:
        self.method = method
        self.retry_after_s = max(1, math.ceil(retry_after_s))
        super().__init__(
            f"Slack is rate-limiting {method}; the next call is possible in {self.retry_after_s} s"
        )


# ===================================================================== the pacer
@dataclass
class _Bucket:
    rules: tuple[Rule, ...]
    ends: deque[float] = field(default_factory=deque)  # end times of finished calls, in order
    in_flight: int = 0
    paused_until: float = 0.0
    waiting: list[_Ticket] = field(default_factory=list)

    def forget(self, now: float) -> None:
        longest = max(r.window_s for r in self.rules)
        while self.ends and self.ends[0] <= now - longest:
            self.ends.popleft()

    def ready_at(self, now: float, priority: Priority, ahead: int) -> float | None:
        """When a call behind `ahead` others may start here: now, a later time, or None
        (when calls in flight end: they notify)."""
        if self.paused_until > now:
            return self.paused_until
        at = now
        for rule in self.rules:
            recent = [e for e in self.ends if e > now - rule.window_s]
            over = len(recent) + self.in_flight + ahead + 1 - rule.room(priority)
            if over <= 0:
                continue
            if over > len(recent):
                return None  # waiting on calls in flight (or on those ahead)
            at = max(at, recent[over - 1] + rule.window_s)
        return at


@dataclass(eq=False)
class _Ticket:
    method: str
    channel: str
    priority: Priority
    seq: int
    buckets: list[_Bucket]

    def before(self, other: _Ticket) -> bool:
        return (self.priority, self.seq) < (other.priority, other.seq)


@dataclass(frozen=True)
class _Options:
    priority: Priority = Priority.PERSON
    within_s: float | None = 120.0
    watch: Callable[[float], None] | None = None


_DEFAULT = _Options()
_OPTIONS: ContextVar[_Options] = ContextVar("slack_pacing", default=_DEFAULT)
_HELD: ContextVar[_Ticket | None] = ContextVar("slack_turn", default=None)


@contextmanager
def paced(
    priority: Priority = Priority.PERSON, *, within_s: float | None = 120.0
) -> Iterator[None]:
    """Calls made inside wait their turn at `priority`, for at most `within_s` seconds each
    (None: as long as it takes); past that they raise `SlackBusy`."""
    token = _OPTIONS.set(_Options(priority, within_s, _OPTIONS.get().watch))
    try:
        yield
    finally:
        _OPTIONS.reset(token)


@contextmanager
def watching(callback: Callable[[float], None]) -> Iterator[None]:
    """`callback(seconds)` is told how long each call made inside has to wait (when it must)."""
    current = _OPTIONS.get()
    token = _OPTIONS.set(_Options(current.priority, current.within_s, callback))
    try:
        yield
    finally:
        _OPTIONS.reset(token)


class Pacer:
    """The rules, the calls waiting for them, and what 429s paused (thread-safe)."""

    def __init__(
        self,
        *,
        scale: float = 1.0,
        tiers: Mapping[str, int] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`scale`: every window times this (tests run Slack's minute faster, as the fake
        does); `tiers`: method -> tier, Slack's by default."""
        self.scale = scale
        self._tiers = dict(METHOD_TIERS if tiers is None else tiers)
        self._clock = clock
        self._cond = threading.Condition()
        self._buckets: dict[str, _Bucket] = {}
        self._seq = itertools.count()
        self._streams = 0
        self.waited_s = 0.0  # total time calls waited for their turn (figures, logs)
        self.limited = 0  # 429s received
        self.calls = 0  # calls let through (each attempt of a call counts)

    # ------------------------------------------------------------------ rules
    def _bucket(self, key: str) -> _Bucket | None:
        bucket = self._buckets.get(key)
        if bucket is not None:
            return bucket
        kind, _, name = key.partition(":")
        if kind == "method":
            tier = self._tiers.get(name)
            rules: tuple[Rule, ...] = (tier_rule(tier, self.scale),) if tier else ()
        elif kind == "channel":
            rules = (Rule(PER_CHANNEL[0], PER_CHANNEL[1] * self.scale),)
        else:  # "dm"
            rules = (Rule(DIRECT_MESSAGES[0], DIRECT_MESSAGES[1] * self.scale),)
        bucket = _Bucket(rules or (Rule(1_000_000, 1.0),))
        self._buckets[key] = bucket
        return bucket

    def _keys(self, method: str, channel: str) -> list[str]:
        keys = [f"method:{method}"]
        if method in POST_METHODS and channel:
            keys.append(f"channel:{channel}")
            if is_direct(channel):
                keys.append("dm:")
        return keys

    def _buckets_for(self, method: str, channel: str) -> list[_Bucket]:
        return [b for k in self._keys(method, channel) if (b := self._bucket(k)) is not None]

    # ------------------------------------------------------------------ waiting
    def acquire(
        self,
        method: str,
        channel: str = "",
        priority: Priority = Priority.PERSON,
        *,
        deadline: float | None = None,
        watch: Callable[[float], None] | None = None,
        on_ticket: Callable[[_Ticket | None], None] | None = None,
    ) -> _Ticket:
        """Wait for this call's turn; `SlackBusy` when it would come after `deadline`.
        `watch(seconds)`: told how long the wait looks (once); `on_ticket`: handed the
        ticket while it waits, then None."""
        told = False
        started = self._clock()
        with self._cond:
            ticket = _Ticket(
                method, channel, priority, next(self._seq), self._buckets_for(method, channel)
            )
            for b in ticket.buckets:
                b.waiting.append(ticket)
        if on_ticket is not None:
            on_ticket(ticket)
        try:
            while True:
                tell = 0.0
                with self._cond:
                    now = self._clock()
                    at = self._ready_at(ticket, now)
                    if at is not None and at <= now:
                        for b in ticket.buckets:
                            b.in_flight += 1
                        self.waited_s += now - started
                        self.calls += 1
                        return ticket
                    if at is not None and deadline is not None and at > deadline:
                        raise SlackBusy(method, at - now)
                    if deadline is not None and now >= deadline:
                        raise SlackBusy(method, 1.0)
                    if watch and not told and at is not None and at > now:
                        tell, told = at - now, True
                    if not tell:
                        limit = 1.0 if at is None else at - now
                        if deadline is not None:
                            limit = min(limit, max(0.0, deadline - now))
                        self._cond.wait(max(0.001, limit))
                        continue
                if watch is not None:  # outside the lock: the watcher may do what it likes
                    try:
                        watch(tell)
                    except Exception:
                        log.exception("a pacing watcher failed")
        finally:
            with self._cond:
                for b in ticket.buckets:
                    b.waiting.remove(ticket)
                self._cond.notify_all()
            if on_ticket is not None:
                on_ticket(None)

    def _ready_at(self, ticket: _Ticket, now: float) -> float | None:
        latest = now
        for b in ticket.buckets:
            b.forget(now)
            ahead = sum(1 for t in b.waiting if t is not ticket and t.before(ticket))
            at = b.ready_at(now, ticket.priority, ahead)
            if at is None:
                return None
            latest = max(latest, at)
        return latest

    def release(self, ticket: _Ticket) -> None:
        """The call ended: it counts by its end time from now on."""
        with self._cond:
            now = self._clock()
            for b in ticket.buckets:
                b.in_flight -= 1
                b.ends.append(now)
            if len(self._buckets) > MAX_BUCKETS:
                self._drop_idle(now)
            self._cond.notify_all()

    def _drop_idle(self, now: float) -> None:
        """Forget channels nothing happened in for a while (each DM is a channel of its own)."""
        for key, b in list(self._buckets.items()):
            b.forget(now)
            if not (b.ends or b.in_flight or b.waiting or b.paused_until > now):
                del self._buckets[key]

    def promote(self, ticket: _Ticket, priority: Priority) -> None:
        """A waiting call became more urgent (a progress message's final state arrived)."""
        with self._cond:
            if priority < ticket.priority:
                ticket.priority = priority
                self._cond.notify_all()

    def rate_limited(self, method: str, channel: str, retry_after_s: float) -> None:
        """Slack answered 429: pause what it limits for everyone. A post's limit is its
        channel's; any other method's is the method's."""
        key = f"channel:{channel}" if method in POST_METHODS and channel else f"method:{method}"
        with self._cond:
            self.limited += 1
            bucket = self._bucket(key)
            if bucket is not None:
                until = self._clock() + retry_after_s
                bucket.paused_until = max(bucket.paused_until, until)
            self._cond.notify_all()
        log.warning("Slack rate-limited %s%s: pausing it for %.0f s", method,
                    f" in {channel}" if channel else "", retry_after_s)  # fmt: skip

    @contextmanager
    def turn(
        self,
        method: str,
        channel: str = "",
        priority: Priority = Priority.PERSON,
        *,
        within_s: float | None = None,
        on_ticket: Callable[[_Ticket | None], None] | None = None,
    ) -> Iterator[None]:
        """Take a turn for one `method` call first, then make it inside: it is tried once (a
        429 pauses the method and raises `SlackBusy`), so the caller chooses what to send only
        when it may. `on_ticket` is handed the ticket while it waits (to `promote` it)."""
        deadline = None if within_s is None else self._clock() + within_s
        ticket = self.acquire(method, channel, priority, deadline=deadline, on_ticket=on_ticket)
        token = _HELD.set(ticket)
        try:
            yield
        finally:
            _HELD.reset(token)
            self.release(ticket)

    # ------------------------------------------------------------------ what it looks like
    def paused_for(self, method: str, channel: str = "") -> float:
        """Seconds until a 429's pause of this call's method or channel ends (0: none)."""
        with self._cond:
            now = self._clock()
            return max([0.0] + [b.paused_until - now for b in self._buckets_for(method, channel)])

    def direct_messages_eta(self, calls: int) -> float:
        """About how long `calls` more direct messages take at the current pace."""
        return self._eta(["method:chat.postMessage", "dm:"], calls)

    def eta(self, method: str, channel: str, calls: int) -> float:
        """About how long `calls` more calls like this one take at the current pace."""
        return self._eta(self._keys(method, channel), calls)

    def _eta(self, keys: list[str], calls: int) -> float:
        if calls <= 0:
            return 0.0
        with self._cond:
            now = self._clock()
            longest = 0.0
            for b in [b for k in keys if (b := self._bucket(k)) is not None]:
                b.forget(now)
                pause = max(0.0, b.paused_until - now)
                for rule in b.rules:
                    used = sum(1 for e in b.ends if e > now - rule.window_s) + b.in_flight
                    free = max(0, rule.limit - used)
                    windows = math.ceil(max(0, calls - free) / rule.limit)
                    longest = max(longest, pause + windows * rule.window_s)
            return longest

    # ------------------------------------------------------------------ progress messages
    def stream_started(self) -> None:
        with self._cond:
            self._streams += 1

    def stream_ended(self) -> None:
        with self._cond:
            self._streams = max(0, self._streams - 1)

    @property
    def streams(self) -> int:
        """Messages kept current with progress edits right now."""
        with self._cond:
            return self._streams

    def edit_interval(self, base_s: float) -> float:
        """How often each live progress message may be edited so that all of them together
        keep within chat.update's tier (its progress share): at least `base_s`."""
        rule = tier_rule(METHOD_TIERS["chat.update"], self.scale)
        per_window = rule.room(Priority.PROGRESS)
        return max(base_s, self.streams * rule.window_s / per_window)


# ===================================================================== the client
def _channel_of(*sources: Any) -> str:
    for source in sources:
        if isinstance(source, dict) and source.get("channel"):
            return str(source["channel"])
    return ""


def _retry_after(exc: SlackApiError) -> float:
    headers = exc.response.headers if exc.response is not None else {}
    raw: Any = ""
    for key, value in dict(headers or {}).items():
        if str(key).lower() == "retry-after":
            raw = value[0] if isinstance(value, list) else value
    try:
        return max(0.0, float(raw))
    except (TypeError, ValueError):
        return 1.0


def _status(exc: SlackApiError) -> int:
    return int(exc.response.status_code) if exc.response is not None else 0


class PacedWebClient(WebClient):
    """slack_sdk's WebClient, every call paced by `pacer` (one per process: the Bolt app's
    requests, the notifier, the trainees' messages and the caches share it)."""

    def __init__(self, *args: Any, pacer: Pacer, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pacer = pacer

    def api_call(self, api_method: str, *, http_verb: str = "POST", **kwargs: Any) -> SlackResponse:
        channel = _channel_of(kwargs.get("json"), kwargs.get("data"), kwargs.get("params"))
        held = _HELD.get()
        if held is not None and held.method == api_method:
            return self._once(api_method, channel, http_verb, kwargs)
        options = _OPTIONS.get()
        clock = self.pacer._clock
        deadline = None if options.within_s is None else clock() + options.within_s
        while True:
            ticket = self.pacer.acquire(
                api_method, channel, options.priority, deadline=deadline, watch=options.watch
            )
            try:
                return super().api_call(api_method, http_verb=http_verb, **kwargs)
            except SlackApiError as exc:
                if _status(exc) != 429:
                    raise
                self.pacer.rate_limited(api_method, channel, _retry_after(exc))
            finally:
                self.pacer.release(ticket)

    def _once(
        self, method: str, channel: str, http_verb: str, kwargs: dict[str, Any]
    ) -> SlackResponse:
        """The call of a turn taken with `Pacer.turn`: one attempt; a 429 pauses and raises."""
        try:
            return super().api_call(method, http_verb=http_verb, **kwargs)
        except SlackApiError as exc:
            if _status(exc) != 429:
                raise
            wait = _retry_after(exc)
            self.pacer.rate_limited(method, channel, wait)
            raise SlackBusy(method, wait) from None


def pacer_of(client: WebClient) -> Pacer:
    """The pacer of the bot's client; a plain WebClient here is a wiring mistake (its calls
    would go unpaced), said at once."""
    if not isinstance(client, PacedWebClient):
        raise TypeError("Slack calls must go through the bot's PacedWebClient (handlers.webapi)")
    return client.pacer
