"""Replay protection: the keys of Slack requests already handled, each kept for a window."""

from __future__ import annotations

import time
from collections.abc import Sequence

from storage.core import Core
from storage.sql import placeholders


class SeenRequestStore(Core):
    """Implements `bot.ports.Repository.first_sighting`."""

    def first_sighting(
        self, keys: Sequence[str], window_s: float, now: float | None = None
    ) -> bool:
        """True, and remember `keys` for `window_s` seconds, unless one of them was seen within
        its window (then False). Atomic across threads and processes."""
        if not keys:
            return True
        moment = time.time() if now is None else now
        with self.transaction():
            self._execute("DELETE FROM seen_requests WHERE expires_at <= ?", (moment,))
            seen = self._row(
                f"SELECT key FROM seen_requests WHERE key IN ({placeholders(keys)}) LIMIT 1",
                list(keys),
            )
            if seen is not None:
                return False
            self._execute_many(
                "INSERT INTO seen_requests (key, expires_at) VALUES (?, ?)",
                [(k, moment + window_s) for k in dict.fromkeys(keys)],
            )
            return True
