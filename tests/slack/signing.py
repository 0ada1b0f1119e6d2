"""Requests signed the way Slack signs them (v0 HMAC-SHA256), as SignatureVerifier checks."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import re
import time
from typing import Any
from urllib.parse import urlencode

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"  # a made-up signing secret of Slack's shape
_TRIGGERS = itertools.count(1)


def trigger_id() -> str:
    """A fresh trigger_id, as Slack gives each user action (repeats are deduplicated)."""
    return f"{time.time_ns()}.{next(_TRIGGERS)}.a1b2c3"


def sign(body: str, secret: str = SECRET, timestamp: int | None = None) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    base = f"v0:{ts}:{body}".encode()
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": f"v0={digest}",
        "Content-Type": "application/x-www-form-urlencoded",
    }


# What Slack itself writes in a slash command's text with should_escape: mentions, channels,
# user groups, special mentions and links. Everything else the user typed arrives escaped.
_SLACK_MARKUP = re.compile(r"<(?:[@#!][^<>\s]*|(?:https?|mailto):[^<>\s]*)>")


def slack_escaped(typed: str) -> str:
    """The text as Slack sends it with `should_escape: true`: `&`, `<` and `>` the user typed
    become `&amp;`, `&lt;` and `&gt;`; the markup Slack made for picked people, channels and
    links (`<@U123|ann>`, `<#C123|general>`) is left as it is."""

    def esc(part: str) -> str:
        return part.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

    out, last = [], 0
    for m in _SLACK_MARKUP.finditer(typed):
        out += [esc(typed[last : m.start()]), m.group(0)]
        last = m.end()
    return "".join([*out, esc(typed[last:])])


def slash_payload(text: str, user: str, channel: str, response_url: str) -> dict[str, str]:
    """A slash command as Slack sends it; `text` is what the user typed (Slack's markup for
    picked people and channels written as Slack writes it), escaped as Slack escapes it."""
    return {
        "token": "legacy-unused",
        "team_id": "T1",
        "team_domain": "test",
        "channel_id": channel,
        "channel_name": "training",
        "user_id": user,
        "user_name": user.lower(),
        "command": "/clones",
        "text": slack_escaped(text),
        "api_app_id": "A1",
        "response_url": response_url,
        "trigger_id": trigger_id(),
    }


def slash_body(text: str, user: str, channel: str, response_url: str) -> str:
    return urlencode(slash_payload(text, user, channel, response_url))


def action_payload(
    action_id: str, value: str, user: str, channel: str, ts: str, response_url: str
) -> dict[str, Any]:
    return {
        "type": "block_actions",
        "team": {"id": "T1", "domain": "test"},
        "user": {"id": user, "username": user.lower(), "team_id": "T1"},
        "api_app_id": "A1",
        "token": "legacy-unused",
        "container": {"type": "message", "message_ts": ts, "channel_id": channel},
        "trigger_id": trigger_id(),
        "channel": {"id": channel, "name": "training"},
        "message": {"type": "message", "ts": ts, "text": "", "user": "UBOT"},
        "response_url": response_url,
        "actions": [
            {
                "type": "button",
                "action_id": action_id,
                "block_id": "clones_teardown",
                "value": value,
                "action_ts": str(time.time()),
            }
        ],
    }


def action_body(payload: dict[str, Any]) -> str:
    return urlencode({"payload": json.dumps(payload)})
