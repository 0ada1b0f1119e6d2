"""The workspace's people over Slack's Web API: `bot.ports.Directory` (channel members, who a
member is, look-up by e-mail, user group members) and `bot.ports.Messenger` (direct messages).

Direct messages respect Slack's limits: each goes to the conversation `conversations.open`
gives for the person (kept), no faster than one a `interval_s` per conversation (Slack allows
about one message a second per conversation), and a 429 is waited out for its Retry-After: first
by the client's RateLimitErrorRetryHandler (handlers.webapi), then here, a bounded number of
times. What Slack refuses comes back as a sentence saying why (a deactivated account, a missing
scope and which one).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web import SlackResponse

from bot.domain.errors import ClonesError, NotDelivered
from bot.domain.trainees import DirectMessage, Person
from handlers.blocks.trainees import direct_message

log = logging.getLogger(__name__)

# Why Slack would not deliver, in words the trainer can act on.
_UNDELIVERED = {
    "user_not_found": "Slack does not know this member",
    "user_disabled": "their Slack account is deactivated",
    "account_inactive": "their Slack account is deactivated",
    "cannot_dm_bot": "it is a bot, not a person",
    "user_not_visible": "the bot cannot see this member (another workspace)",
    "not_allowed_token_type": "Slack refused the bot token",
    "invalid_auth": "Slack refused the bot token",
    "ratelimited": "Slack kept rate limiting the messages",
    "restricted_action": "the workspace does not let the bot message members",
}


class _Absent(Exception):
    """Slack said the thing looked up does not exist (e.g. nobody has that e-mail address)."""


def _code(exc: SlackApiError) -> str:
    return str(exc.response.get("error", "")) if exc.response is not None else ""


def _why(exc: SlackApiError, method: str) -> str:
    code = _code(exc)
    if code == "missing_scope":
        needed = str(exc.response.get("needed", "") or "") if exc.response is not None else ""
        scope = f"the {needed} scope" if needed else "a scope"
        return (
            f"the Slack app lacks {scope} for {method}: add it under OAuth & Permissions and "
            "reinstall the app (docs/slack.md)"
        )
    if code in ("channel_not_found", "not_in_channel"):
        return (
            "the bot cannot see that channel: invite it there with /invite @clones (a private "
            "channel needs the bot as a member)"
        )
    return _UNDELIVERED.get(code, f"Slack answered {code or 'an error'} to {method}")


class SlackPeople:
    """Looks people up and messages them with one WebClient (thread-safe)."""

    def __init__(
        self,
        client: WebClient,
        *,
        interval_s: float = 1.0,
        retries: int = 3,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.interval_s = interval_s
        self.retries = retries
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()
        self._dms: dict[str, str] = {}  # member -> their DM conversation with the bot
        self._next: dict[str, float] = {}  # conversation -> when it may get the next message

    # ------------------------------------------------------------------ calls
    def _call(
        self, method: str, call: Callable[[], SlackResponse], *, absent: str = ""
    ) -> SlackResponse:
        """One Web API call: a 429 that outlived the client's own retries is waited out again
        (bounded); Slack's `absent` error is `_Absent`; anything else refused is a ClonesError
        saying why."""
        for attempt in range(self.retries + 1):
            try:
                return call()
            except SlackApiError as exc:
                if absent and _code(exc) == absent:
                    raise _Absent() from None
                status = exc.response.status_code if exc.response is not None else 0
                if status == 429 and attempt < self.retries:
                    headers = exc.response.headers if exc.response is not None else {}
                    self._sleep(_retry_after(headers))
                    continue
                raise ClonesError(_why(exc, method)) from None
            except (SlackClientError, OSError) as exc:
                raise ClonesError(f"Slack could not be reached for {method} ({exc})") from None
        raise ClonesError(f"Slack kept rate limiting {method}")  # pragma: no cover

    # ------------------------------------------------------------------ Directory
    def channel_members(self, channel: str) -> list[str]:
        members: list[str] = []
        cursor: str | None = None
        while True:
            resp = self._call(
                "conversations.members",
                lambda c=cursor: self.client.conversations_members(  # type: ignore[misc]
                    channel=channel, limit=200, cursor=c
                ),
            )
            members += [str(m) for m in resp.get("members") or []]
            cursor = str((resp.get("response_metadata") or {}).get("next_cursor") or "")
            if not cursor:
                return members

    def person(self, user: str) -> Person:
        resp = self._call("users.info", lambda: self.client.users_info(user=user))
        u: dict[str, Any] = resp.get("user") or {}
        profile: dict[str, Any] = u.get("profile") or {}
        return Person(
            id=user,
            name=str(profile.get("real_name") or u.get("real_name") or u.get("name") or ""),
            email=str(profile.get("email") or ""),
            bot=bool(u.get("is_bot") or u.get("is_app_user")),
            deleted=bool(u.get("deleted")),
        )

    def user_by_email(self, email: str) -> str | None:
        try:
            resp = self._call(
                "users.lookupByEmail",
                lambda: self.client.users_lookupByEmail(email=email),
                absent="users_not_found",
            )
        except _Absent:
            return None
        user = resp.get("user") or {}
        return str(user.get("id")) if user.get("id") else None

    def group_members(self, group: str) -> list[str]:
        resp = self._call(
            "usergroups.users.list", lambda: self.client.usergroups_users_list(usergroup=group)
        )
        return [str(u) for u in resp.get("users") or []]

    # ------------------------------------------------------------------ Messenger
    def send(self, user: str, message: DirectMessage) -> None:
        rendered = direct_message(message)
        try:
            channel = self._conversation(user)
            self._wait_turn(channel)
            self._call(
                "chat.postMessage",
                lambda: self.client.chat_postMessage(
                    channel=channel, text=rendered.text, blocks=rendered.blocks
                ),
            )
        except NotDelivered:
            raise
        except ClonesError as exc:
            raise NotDelivered(str(exc)) from None

    def _conversation(self, user: str) -> str:
        with self._lock:
            known = self._dms.get(user)
        if known:
            return known
        resp = self._call("conversations.open", lambda: self.client.conversations_open(users=user))
        channel = str((resp.get("channel") or {}).get("id") or "")
        if not channel:
            raise NotDelivered("Slack opened no conversation with this member")
        with self._lock:
            self._dms[user] = channel
        return channel

    def _wait_turn(self, channel: str) -> None:
        """At most one message per `interval_s` to one conversation: take the next slot."""
        with self._lock:
            now = self._clock()
            slot = max(now, self._next.get(channel, now))
            self._next[channel] = slot + self.interval_s
        if slot > now:
            self._sleep(slot - now)


def _retry_after(headers: Any) -> float:
    raw = ""
    for key, value in dict(headers or {}).items():
        if str(key).lower() == "retry-after":
            raw = value[0] if isinstance(value, list) else value
    try:
        return max(0.0, min(float(raw), 60.0))
    except (TypeError, ValueError):
        return 1.0
