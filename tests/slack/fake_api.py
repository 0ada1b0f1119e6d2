"""A local fake of the Slack Web API that records every call.

Speaks what slack_sdk's WebClient and Bolt send: form or JSON bodies to /api/METHOD, the file
upload URL of files_upload_v2, and response_url posts. It can answer 429 with Retry-After, refuse
a method with one of Slack's errors (`not_in_channel`, `missing_scope` with `needed`, ...), and
keeps the latest text and blocks of every message so tests can assert what a channel shows. It
has a workspace too (`add_user`, `channel_members`): users.info, users.list and
conversations.members (paged), users.lookupByEmail, and direct messages (a post to a user ID,
or conversations.open, is channel `dm(user)`).

With `tiers=True` it keeps Slack's rate limits as Slack documents them: each method its tier's
calls per minute (`TIERS`), chat.postMessage about one a second per channel with short bursts
(`POST_BURST` in `POST_BURST` seconds), and a call over a limit is answered 429 with the
Retry-After left in its window (a refused call does not count). `minute_s` makes Slack's minute
shorter for tests (every window scales with it); benchmarks keep the real 60 s.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

# Slack's documented tiers (api.slack.com/docs/rate-limits): calls per minute per method.
TIER_PER_MINUTE = {1: 1, 2: 20, 3: 50, 4: 100}
# The tier of each method this fake answers, from each method's page in Slack's reference.
TIERS = {
    "apps.connections.open": 1,
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
POST_BURST = 5  # chat.postMessage: at most this many per channel in this many seconds


@dataclass
class Call:
    method: str  # Web API method, "upload" or "response_url"
    params: dict[str, Any]
    at: float  # time.monotonic() on arrival
    status: int = 200
    body: bytes = b""
    error: str = ""  # Slack's error code when the call was answered {"ok": false}


@dataclass(frozen=True)
class _Refusal:
    method: str
    error: str
    channel: str | None
    extra: dict[str, Any]


@dataclass
class Message:
    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    thread_ts: str | None = None
    files: list[dict[str, Any]] = field(default_factory=list)
    edits: int = 0

    def button(self, action_id: str) -> str:
        """The value of the message's button `action_id` (StopIteration: it has none)."""
        return next(
            e["value"]
            for b in self.blocks
            if b["type"] == "actions"
            for e in b["elements"]
            if e["action_id"] == action_id
        )


class FakeSlack:
    def __init__(self, *, tiers: bool = False, minute_s: float = 60.0) -> None:
        self.tiers = tiers  # enforce Slack's rate limits (see the module's docstring)
        self.minute_s = minute_s  # Slack's minute, shorter in tests
        self._windows: dict[str, list[float]] = {}  # limit -> [window start, calls in it]
        self.calls: list[Call] = []
        self.messages: dict[str, Message] = {}  # ts -> message
        self.uploads: dict[str, bytes] = {}  # file_id -> bytes
        self.group_members: dict[str, list[str]] = {}
        # The workspace: members (users.info / users.lookupByEmail) and channels' members
        # (conversations.members, paged `page_size` at a time).
        self.users: dict[str, dict[str, Any]] = {}
        self.channel_members: dict[str, list[str]] = {}
        self.page_size = 200
        self.socket_url = ""
        # (method, channel or None) -> [remaining, retry_after]
        self._rate_limits: dict[tuple[str, str | None], list[int]] = {}
        self._refusals: list[_Refusal] = []
        self._ts = itertools.count(1)
        self._files = itertools.count(1)
        self._cond = threading.Condition()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> FakeSlack:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def base(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def api_url(self) -> str:
        return self.base + "/api/"

    def response_url(self, name: str = "r") -> str:
        return f"{self.base}/response/{name}"

    # ------------------------------------------------------------------ scripting and queries
    def rate_limit(
        self, method: str, times: int = 1, retry_after: int = 1, *, channel: str | None = None
    ) -> None:
        """Answer the next `times` calls of `method` (to `channel` only, if given) with 429
        and Retry-After."""
        with self._cond:
            self._rate_limits[(method, channel)] = [times, retry_after]

    def refuse(self, method: str, error: str, *, channel: str | None = None, **extra: Any) -> None:
        """Answer `method` (in `channel` only, if given) with {"ok": false, "error": error,
        **extra}, as Slack does (HTTP 200), from now on."""
        with self._cond:
            self._refusals.append(_Refusal(method, error, channel, dict(extra)))

    def _refusal(self, method: str, params: dict[str, Any]) -> dict[str, Any] | None:
        with self._cond:
            for r in self._refusals:
                where = params.get("channel") or params.get("channel_id")
                if r.method == method and (r.channel is None or r.channel == where):
                    return {"ok": False, "error": r.error, **r.extra}
        return None

    def add_user(
        self, user: str, name: str = "", email: str = "", *, bot: bool = False,
        deleted: bool = False,
    ) -> None:  # fmt: skip
        """A workspace member, as users.info and users.lookupByEmail show them."""
        with self._cond:
            self.users[user] = {
                "id": user,
                "name": name.lower().replace(" ", "."),
                "real_name": name,
                "deleted": deleted,
                "is_bot": bot,
                "profile": {"real_name": name, "email": email},
            }

    @staticmethod
    def dm(user: str) -> str:
        """The direct-message conversation conversations.open gives for `user`."""
        return f"D{user}"

    def in_channel(self, channel: str) -> list[Message]:
        """The top-level messages of a channel (not thread replies), oldest first."""
        with self._cond:
            return [
                m for m in self.messages.values() if m.channel == channel and m.thread_ts is None
            ]

    def of(self, method: str) -> list[Call]:
        with self._cond:
            return [c for c in self.calls if c.method == method]

    def ok_calls(self, method: str) -> list[Call]:
        return [c for c in self.of(method) if c.status == 200 and not c.error]

    def limited(self) -> list[Call]:
        """The calls answered 429."""
        with self._cond:
            return [c for c in self.calls if c.status == 429]

    def busiest(self, method: str, window_s: float, where: Callable[[Call], bool] = bool) -> int:
        """The most calls of `method` Slack took (not 429) in any `window_s` seconds."""
        stamps = sorted(c.at for c in self.of(method) if c.status == 200 and where(c))
        most, first = 0, 0
        for last, at in enumerate(stamps):
            while at - stamps[first] >= window_s:
                first += 1
            most = max(most, last - first + 1)
        return most

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 15.0) -> Any:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                result = predicate()
                if result:
                    return result
                left = deadline - time.monotonic()
                if left <= 0:
                    said = [c.params.get("text") for c in self.calls if c.method == "response_url"]
                    raise AssertionError(
                        f"timed out waiting; calls so far: {[c.method for c in self.calls]}; "
                        f"ephemeral replies: {said}"
                    )
                self._cond.wait(min(left, 0.2))

    # ------------------------------------------------------------------ the server
    def _record(self, call: Call) -> None:
        with self._cond:
            self.calls.append(call)
            self._cond.notify_all()

    def _limited(self, method: str, params: dict[str, Any]) -> int | None:
        where = str(params.get("channel") or params.get("channel_id") or "")
        with self._cond:
            for key in ((method, where), (method, None)):
                rule = self._rate_limits.get(key)
                if rule and rule[0] > 0:
                    rule[0] -= 1
                    return rule[1]
        return None

    def _over_tier(self, method: str, p: dict[str, Any], now: float) -> float | None:
        """With tiers on: the Retry-After (s) when this call is over one of Slack's limits,
        else None (and the call is counted)."""
        if not self.tiers:
            return None
        scale = self.minute_s / 60.0
        limits: list[tuple[str, int, float]] = []
        if method in TIERS:
            limits.append((f"method:{method}", TIER_PER_MINUTE[TIERS[method]], self.minute_s))
        if method == "chat.postMessage":
            where = self._conversation(str(p.get("channel", "")))
            limits.append((f"channel:{where}", POST_BURST, POST_BURST * scale))
        with self._cond:
            waits = []
            for key, limit, window in limits:
                start, count = self._windows.get(key, [now, 0])
                if now >= start + window:  # a new window starts with this call
                    start, count = now, 0
                self._windows[key] = [start, count]
                if count >= limit:
                    waits.append(start + window - now)
            if waits:
                return max(waits)
            for key, _, _ in limits:
                self._windows[key][1] += 1
        return None

    def _conversation(self, channel: str) -> str:
        """Where a post to `channel` goes: a user ID is that member's DM with the app."""
        return self.dm(channel) if channel[:1] in ("U", "W") else channel

    def _api(self, method: str, p: dict[str, Any]) -> dict[str, Any]:
        with self._cond:
            if method == "auth.test":
                return {
                    "ok": True,
                    "user_id": "UBOT",
                    "bot_id": "BBOT",
                    "team_id": "T1",
                    "user": "clones",
                    "team": "Test",
                }
            if method == "chat.postMessage":
                channel = str(p.get("channel"))
                if channel[:1] in ("U", "W"):  # the app's DM with that member
                    member = self.users.get(channel)
                    if member is not None and member["deleted"]:
                        return {"ok": False, "error": "channel_not_found"}
                    channel = self.dm(channel)
                ts = f"{1700000000 + next(self._ts)}.000100"
                self.messages[ts] = Message(
                    channel,
                    ts,
                    str(p.get("text", "")),
                    list(p.get("blocks") or []),
                    p.get("thread_ts"),
                )
                return {
                    "ok": True,
                    "channel": channel,
                    "ts": ts,
                    "message": {"text": p.get("text"), "ts": ts},
                }
            if method == "chat.update":
                m = self.messages.get(str(p.get("ts")))
                if m is None:
                    return {"ok": False, "error": "message_not_found"}
                m.text, m.blocks, m.edits = (
                    str(p.get("text", "")),
                    list(p.get("blocks") or []),
                    m.edits + 1,
                )
                return {"ok": True, "channel": m.channel, "ts": m.ts}
            if method == "chat.postEphemeral":
                return {"ok": True, "message_ts": f"{1700000000 + next(self._ts)}.000200"}
            if method == "views.publish":
                return {"ok": True, "view": p.get("view")}
            people = self._people(method, p)
            if people is not None:
                return people
            if method == "usergroups.users.list":
                return {"ok": True, "users": self.group_members.get(str(p.get("usergroup")), [])}
            if method == "files.getUploadURLExternal":
                file_id = f"F{next(self._files):04d}"
                return {
                    "ok": True,
                    "file_id": file_id,
                    "upload_url": f"{self.base}/upload/{file_id}",
                }
            if method == "files.completeUploadExternal":
                files = p.get("files") or []
                if isinstance(files, str):
                    files = json.loads(files)
                thread = self.messages.get(str(p.get("thread_ts")))
                out = []
                for f in files:
                    entry = {
                        "id": f["id"],
                        "title": f.get("title"),
                        "channel": p.get("channel_id"),
                        "thread_ts": p.get("thread_ts"),
                        "bytes": len(self.uploads.get(f["id"], b"")),
                    }
                    if thread is not None:
                        thread.files.append(entry)
                    out.append(entry)
                return {"ok": True, "files": out}
            if method == "apps.connections.open":
                return {"ok": True, "url": self.socket_url}
        return {"ok": False, "error": "unknown_method"}

    def _people(self, method: str, p: dict[str, Any]) -> dict[str, Any] | None:
        """The workspace's methods (caller holds the lock); None: not one of them."""
        if method == "users.info":
            found = self.users.get(str(p.get("user")))
            if found is None:
                return {"ok": False, "error": "user_not_found"}
            return {"ok": True, "user": found}
        if method == "users.lookupByEmail":
            email = str(p.get("email", "")).lower()
            for record in self.users.values():
                if str(record["profile"].get("email", "")).lower() == email:
                    return {"ok": True, "user": record}
            return {"ok": False, "error": "users_not_found"}
        if method == "users.list":
            everyone = list(self.users.values())
            first = int(p.get("cursor") or 0)
            size = min(int(p.get("limit") or 0) or self.page_size, self.page_size)
            listed = everyone[first : first + size]
            after = str(first + size) if first + size < len(everyone) else ""
            return {"ok": True, "members": listed, "response_metadata": {"next_cursor": after}}
        if method == "conversations.members":
            channel = str(p.get("channel"))
            if channel not in self.channel_members:
                return {"ok": False, "error": "channel_not_found"}
            members = self.channel_members[channel]
            start = int(p.get("cursor") or 0)
            page = members[start : start + self.page_size]
            more = start + self.page_size < len(members)
            cursor = str(start + self.page_size) if more else ""
            return {"ok": True, "members": page, "response_metadata": {"next_cursor": cursor}}
        if method == "conversations.open":
            member = str(p.get("users", ""))
            if member not in self.users:
                return {"ok": False, "error": "user_not_found"}
            if self.users[member]["deleted"]:
                return {"ok": False, "error": "user_disabled"}
            return {"ok": True, "channel": {"id": self.dm(member)}}
        return None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                arrived = time.monotonic()
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                path = self.path.partition("?")[0]
                if path.startswith("/upload/"):
                    file_id = path.rsplit("/", 1)[1]
                    with fake._cond:
                        fake.uploads[file_id] = raw
                    fake._record(Call("upload", {"file_id": file_id}, arrived, 200, raw))
                    self._reply(200, b"OK", "text/plain")
                    return
                params = _params(raw, self.headers.get("Content-Type", ""))
                if path.startswith("/response/"):
                    fake._record(Call("response_url", params, arrived))
                    self._reply(200, b"ok", "text/plain")
                    return
                method = path.removeprefix("/api/")
                retry_after = fake._limited(method, params)
                if retry_after is None:
                    over = fake._over_tier(method, params, arrived)
                    retry_after = None if over is None else max(1, math.ceil(over))
                if retry_after is not None:
                    fake._record(Call(method, params, arrived, 429))
                    body = json.dumps({"ok": False, "error": "ratelimited"}).encode()
                    self._reply(429, body, "application/json", {"Retry-After": str(retry_after)})
                    return
                result = fake._refusal(method, params) or fake._api(method, params)
                error = "" if result.get("ok") else str(result.get("error", ""))
                fake._record(Call(method, params, arrived, error=error))
                self._reply(200, json.dumps(result).encode(), "application/json")

            def _reply(
                self, status: int, body: bytes, ctype: str, extra: dict[str, str] | None = None
            ) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (extra or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


def _params(raw: bytes, content_type: str) -> dict[str, Any]:
    text = raw.decode("utf-8") if raw else ""
    if not text:
        return {}
    if "json" in content_type:
        data = json.loads(text)
        return data if isinstance(data, dict) else {"_": data}
    params: dict[str, Any] = dict(parse_qsl(text, keep_blank_values=True))
    for key in ("blocks", "files", "view"):  # form-encoded JSON fields
        if isinstance(params.get(key), str):
            with contextlib.suppress(ValueError):
                params[key] = json.loads(params[key])
    return params
