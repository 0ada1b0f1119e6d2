"""One-time tokens behind the Confirm / Cancel buttons (a strip back, a refresh, removing orphans;
the flow that uses them is `handlers.confirming`).

A button's value carries the environment and a random token. The first click takes the token,
so a double click, two people clicking at once, or a replayed request finds it gone and destroys
nothing more. Tokens live in the database (`bot.ports.ConfirmationTokens`) when one is given, so
a click that reaches another bot sharing it (behind a load balancer, or its own Socket Mode
connection) is still honoured, exactly once across bots; without one (tools, benchmarks) they
live in memory. Each token is bound to its action ("teardown", "refresh" or "orphans"): a strip
back's token cannot confirm a refresh, nor the other way round; an orphans token also binds
exactly the VMs that were shown.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable

from bot.domain.models import Confirmation
from bot.ports import ConfirmationTokens

TOKEN_TTL_S = 30 * 60.0  # Slack's response_url also stops working after 30 minutes

PendingTeardown = Confirmation  # the name the flow has always used


class Confirmations:
    def __init__(
        self,
        ttl_s: float = TOKEN_TTL_S,
        clock: Callable[[], float] = time.time,
        store: ConfirmationTokens | None = None,
    ) -> None:
        self._ttl_s = ttl_s
        self._clock = clock
        self._store = store
        self._pending: dict[str, Confirmation] = {}
        self._lock = threading.Lock()

    def issue(
        self,
        environment: str,
        requester: str,
        channel: str,
        action: str = "teardown",
        items: tuple[str, ...] = (),
    ) -> Confirmation:
        pending = Confirmation(
            secrets.token_urlsafe(16), environment, requester, channel, self._clock(), action, items
        )
        if self._store is not None:
            self._store.expire_confirmations(self._clock() - self._ttl_s)
            self._store.save_confirmation(pending)
            return pending
        with self._lock:
            self._expire()
            self._pending[pending.token] = pending
        return pending

    def peek(self, token: str, environment: str, action: str = "teardown") -> Confirmation | None:
        """The pending action for this button, without using it up (for permission checks)."""
        if self._store is not None:
            pending = self._store.confirmation(token)
        else:
            with self._lock:
                self._expire()
                pending = self._pending.get(token)
        return pending if self._live(pending, environment, action) else None

    def take(self, token: str, environment: str, action: str = "teardown") -> Confirmation | None:
        """Use the token up; exactly one caller ever gets it back."""
        if self._store is not None:
            if self.peek(token, environment, action) is None:
                return None
            return self._store.take_confirmation(token)
        with self._lock:
            self._expire()
            pending = self._pending.get(token)
            if not self._live(pending, environment, action):
                return None
            del self._pending[token]
            return pending

    def _live(self, pending: Confirmation | None, environment: str, action: str) -> bool:
        return (
            _matches(pending, environment, action)
            and pending is not None
            and pending.issued_at >= self._clock() - self._ttl_s
        )

    def _expire(self) -> None:
        cutoff = self._clock() - self._ttl_s
        for token in [t for t, p in self._pending.items() if p.issued_at < cutoff]:
            del self._pending[token]


def _matches(pending: Confirmation | None, environment: str, action: str) -> bool:
    return pending is not None and pending.environment == environment and pending.action == action
