"""One-time tokens behind the Confirm / Cancel buttons (a strip back, a refresh, removing orphans;
the flow that uses them is `handlers.confirming`).

A button's value carries the environment and a random token. The first click takes the token
under a lock, so a double click, two people clicking at once, or a replayed request finds it gone
and destroys nothing more. Tokens live in memory: after a restart an old button simply says it
expired, which is the safe direction for a destructive action. Each token is bound to its action
("teardown", "refresh" or "orphans"): a strip back's token cannot confirm a refresh, nor the other
way round; an orphans token also binds exactly the VMs that were shown.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

TOKEN_TTL_S = 30 * 60.0  # Slack's response_url also stops working after 30 minutes


@dataclass(frozen=True)
class PendingTeardown:
    token: str
    environment: str
    requester: str
    channel: str
    issued_at: float
    action: str = "teardown"  # what the token confirms: "teardown", "refresh", "orphans"
    items: tuple[str, ...] = ()  # exactly what was shown, when the action acts on a list


class Confirmations:
    def __init__(
        self, ttl_s: float = TOKEN_TTL_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._ttl_s = ttl_s
        self._clock = clock
        self._pending: dict[str, PendingTeardown] = {}
        self._lock = threading.Lock()

    def issue(
        self,
        environment: str,
        requester: str,
        channel: str,
        action: str = "teardown",
        items: tuple[str, ...] = (),
    ) -> PendingTeardown:
        pending = PendingTeardown(
            secrets.token_urlsafe(16), environment, requester, channel, self._clock(), action, items
        )
        with self._lock:
            self._expire()
            self._pending[pending.token] = pending
        return pending

    def peek(
        self, token: str, environment: str, action: str = "teardown"
    ) -> PendingTeardown | None:
        """The pending action for this button, without using it up (for permission checks)."""
        with self._lock:
            self._expire()
            pending = self._pending.get(token)
        return pending if _matches(pending, environment, action) else None

    def take(
        self, token: str, environment: str, action: str = "teardown"
    ) -> PendingTeardown | None:
        """Use the token up; exactly one caller ever gets it back."""
        with self._lock:
            self._expire()
            pending = self._pending.get(token)
            if pending is None or not _matches(pending, environment, action):
                return None
            del self._pending[token]
            return pending

    def _expire(self) -> None:
        cutoff = self._clock() - self._ttl_s
        for token in [t for t, p in self._pending.items() if p.issued_at < cutoff]:
            del self._pending[token]


def _matches(pending: PendingTeardown | None, environment: str, action: str) -> bool:
    return pending is not None and pending.environment == environment and pending.action == action
