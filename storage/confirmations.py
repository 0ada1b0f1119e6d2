"""The one-time tokens of Confirm / Cancel buttons (handlers/confirm_tokens.py), in the database
so that a click reaching any bot that shares it finds its token, and exactly one click, on any
bot, takes it (a compare-and-delete). Portable SQL."""

from __future__ import annotations

import json
from typing import Any

from bot.domain.models import Confirmation
from storage.core import Core


def confirmation_record(row: dict[str, Any]) -> Confirmation:
    return Confirmation(
        token=row["token"],
        environment=row["environment"],
        requester=row["requester"],
        channel=row["channel"],
        issued_at=float(row["issued_at"]),
        action=row["action"],
        items=tuple(json.loads(row["items"])) if row["items"] else (),
    )


class ConfirmationStore(Core):
    """Implements `bot.ports.ConfirmationTokens`."""

    def save_confirmation(self, c: Confirmation) -> None:
        self._execute(
            "INSERT INTO confirmations (token, environment, requester, channel, issued_at,"
            " action, items) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                c.token,
                c.environment,
                c.requester,
                c.channel,
                c.issued_at,
                c.action,
                json.dumps(list(c.items)) if c.items else "",
            ),
        )

    def confirmation(self, token: str) -> Confirmation | None:
        row = self._row("SELECT * FROM confirmations WHERE token = ?", (token,))
        return confirmation_record(row) if row else None

    def take_confirmation(self, token: str) -> Confirmation | None:
        """Use the token up: exactly one caller, in any process, gets it back."""
        with self.transaction():
            found = self.confirmation(token)
            if found is None:
                return None
            gone = self._execute("DELETE FROM confirmations WHERE token = ?", (token,))
            return found if gone.rowcount == 1 else None

    def expire_confirmations(self, before: float) -> None:
        self._execute("DELETE FROM confirmations WHERE issued_at < ?", (before,))
