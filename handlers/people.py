"""The workspace's people over Slack's Web API: `bot.ports.Directory` (channel members, who a
member is, look-up by e-mail, user group members) and `bot.ports.Messenger` (direct messages).

Within Slack's rate tiers, through the bot's paced client (`handlers.pacing`):

- Who members are comes from a directory kept here: a few unknown members are read with
  `users.info` (Tier 4), more at once (a channel's) by paging `users.list` (Tier 2, 200 members a
  call) until all are found. Entries are kept for `PROFILE_TTL_S`, so running `assign` again
  with nothing new asks Slack nothing per member.
- A direct message is posted to the member's user ID: Slack opens the app's DM with them, so
  there is no `conversations.open` per trainee. At most one a `interval_s` goes to one
  conversation; the pacer keeps all of them within Slack's posting limits and waits out 429s.
- A message waits for Slack at most as long as its caller allows (`within_s`: what is left of
  the hand-out's time), then is not delivered, saying Slack kept rate limiting it.

What Slack refuses comes back as a sentence saying why (a deactivated account, a missing scope
and which one).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web import SlackResponse

from bot.domain.errors import ClonesError, NotDelivered
from bot.domain.trainees import DirectMessage, Person
from handlers.blocks.trainees import direct_message
from handlers.pacing import Priority, SlackBusy, paced

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
    "channel_not_found": "Slack has no such member, or their account is deactivated",
    "restricted_action": "the workspace does not let the bot message members",
}


PROFILE_TTL_S = 3600.0  # who a member is (name, bot, deactivated) is kept this long
FEW = 3  # this many unknown members are read one by one (users.info); more: users.list
PAGE = 200  # members per users.list / conversations.members call (Slack's recommended most)
MESSAGE_WAIT_S = 600.0  # a direct message waits this long for Slack at most, unless told


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
    if code in ("channel_not_found", "not_in_channel") and method != "chat.postMessage":
        return (
            "the bot cannot see that channel: invite it there with /invite @clones (a private "
            "channel needs the bot as a member)"
        )
    return _UNDELIVERED.get(code, f"Slack answered {code or 'an error'} to {method}")


class SlackPeople:
    """Looks people up and messages them with the bot's paced WebClient (thread-safe)."""

    def __init__(
        self,
        client: WebClient,
        *,
        interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.interval_s = interval_s
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()
        self._next: dict[str, float] = {}  # member -> when their DM may get the next message
        self._known: dict[str, tuple[float, Person]] = {}  # member -> (read at, who)
        self._sweep = threading.Lock()  # one users.list sweep at a time

    # ------------------------------------------------------------------ calls
    def _call(
        self, method: str, call: Callable[[], SlackResponse], *, absent: str = ""
    ) -> SlackResponse:
        """One Web API call (the client paces it and waits out 429s); Slack's `absent` error
        is `_Absent`; anything else refused is a ClonesError saying why."""
        try:
            return call()
        except SlackApiError as exc:
            if absent and _code(exc) == absent:
                raise _Absent() from None
            raise ClonesError(_why(exc, method)) from None
        except SlackBusy as exc:
            raise ClonesError(
                f"Slack kept rate limiting {method}; try again in {exc.retry_after_s} s"
            ) from None
        except (SlackClientError, OSError) as exc:
            raise ClonesError(f"Slack could not be reached for {method} ({exc})") from None

    # ------------------------------------------------------------------ Directory
    def channel_members(self, channel: str) -> list[str]:
        members: list[str] = []
        cursor: str | None = None
        while True:
            resp = self._call(
                "conversations.members",
                lambda c=cursor: self.client.conversations_members(  # type: ignore[misc]
                    channel=channel, limit=PAGE, cursor=c
                ),
            )
            members += [str(m) for m in resp.get("members") or []]
            cursor = str((resp.get("response_metadata") or {}).get("next_cursor") or "")
            if not cursor:
                return members

    def person(self, user: str) -> Person:
        return self.persons([user])[user]

    def persons(self, users: Sequence[str]) -> dict[str, Person]:
        """Who each member is: from the directory kept here; the unknown ones from Slack, a
        few one by one (users.info), more by paging users.list until all are found."""
        found = self._cached(users)
        missing = [u for u in dict.fromkeys(users) if u not in found]
        if len(missing) > FEW:
            with self._sweep:  # a sweep running meanwhile may have found them
                found.update(self._cached(missing))
                missing = [u for u in missing if u not in found]
                if len(missing) > FEW:
                    found.update(self._list_until(set(missing)))
                    missing = [u for u in missing if u not in found]
        for user in missing:  # a few, or members users.list does not show (another workspace)
            resp = self._call("users.info", lambda u=user: self.client.users_info(user=u))  # type: ignore[misc]
            found[user] = self._keep(resp.get("user") or {"id": user})
        return {u: found[u] for u in users}

    def _cached(self, users: Sequence[str]) -> dict[str, Person]:
        now = self._clock()
        with self._lock:
            hits = {u: self._known.get(u) for u in users}
        return {u: hit[1] for u, hit in hits.items() if hit and now - hit[0] < PROFILE_TTL_S}

    def _list_until(self, wanted: set[str]) -> dict[str, Person]:
        """Page through users.list, keeping everyone, until every wanted member was seen."""
        found: dict[str, Person] = {}
        cursor: str | None = None
        while True:
            resp = self._call(
                "users.list",
                lambda c=cursor: self.client.users_list(limit=PAGE, cursor=c),  # type: ignore[misc]
            )
            for record in resp.get("members") or []:
                p = self._keep(record)
                if p.id in wanted:
                    found[p.id] = p
            cursor = str((resp.get("response_metadata") or {}).get("next_cursor") or "")
            if not cursor or len(found) == len(wanted):
                return found

    def _keep(self, u: dict[str, Any]) -> Person:
        profile: dict[str, Any] = u.get("profile") or {}
        p = Person(
            id=str(u.get("id") or ""),
            name=str(profile.get("real_name") or u.get("real_name") or u.get("name") or ""),
            email=str(profile.get("email") or ""),
            bot=bool(u.get("is_bot") or u.get("is_app_user")),
            deleted=bool(u.get("deleted")),
        )
        with self._lock:
            self._known[p.id] = (self._clock(), p)
        return p

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
    def send(self, user: str, message: DirectMessage, *, within_s: float | None = None) -> None:
        """Post `message` to the app's DM with `user` (their user ID as the channel), waiting
        for Slack at most `within_s` (default `MESSAGE_WAIT_S`)."""
        rendered = direct_message(message)
        budget = MESSAGE_WAIT_S if within_s is None else within_s
        if budget <= 0:
            raise NotDelivered(_UNDELIVERED["ratelimited"])
        try:
            self._wait_turn(user)
            with paced(Priority.FINAL, within_s=budget):
                self.client.chat_postMessage(
                    channel=user, text=rendered.text, blocks=rendered.blocks
                )
        except SlackBusy:
            raise NotDelivered(_UNDELIVERED["ratelimited"]) from None
        except SlackApiError as exc:
            raise NotDelivered(_why(exc, "chat.postMessage")) from None
        except (SlackClientError, OSError) as exc:
            raise NotDelivered(f"Slack could not be reached ({exc})") from None

    def _wait_turn(self, user: str) -> None:
        """At most one message per `interval_s` to one member: take the next slot."""
        with self._lock:
            now = self._clock()
            slot = max(now, self._next.get(user, now))
            self._next[user] = slot + self.interval_s
        if slot > now:
            self._sleep(slot - now)
