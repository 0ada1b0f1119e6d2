"""Requests signed the way Slack signs them (v0 HMAC-SHA256), as SignatureVerifier checks."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
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


def slash_payload(text: str, user: str, channel: str, response_url: str) -> dict[str, str]:
    return {
        "token": "legacy-unused",
        "team_id": "T1",
        "team_domain": "test",
        "channel_id": channel,
        "channel_name": "training",
        "user_id": user,
        "user_name": user.lower(),
        "command": "/clones",
        "text": text,
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
