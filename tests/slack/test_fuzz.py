"""Property-based tests of Slack payloads through the real Bolt app (signed BoltRequests, the
app's own dispatch): arbitrary slash command text, users and channels, and button clicks with
arbitrary values. Never a traceback or an internal-error id to the user, and never an action a
valid command did not ask for (no run, clone or environment rows, no vCenter change).

CI runs a few hundred examples per test; HYPOTHESIS_PROFILE=thorough runs thousands.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from bot.domain import grammar
from bot.domain.errors import UsageError
from handlers.blocks import ids
from handlers.serving import answer
from tests.conftest import HYPOTHESIS_PROFILE
from tests.faults import record

from .conftest import ADMIN, CHANNEL, OPERATOR, STRANGER, SlackHarness
from .signing import action_body, action_payload, sign, slash_body

pytestmark = pytest.mark.lab

PROFILE = HYPOTHESIS_PROFILE  # registered and loaded in tests/conftest.py

# Commands that change something (from their specs): a stranger is refused each of them.
CHANGING = (grammar.Access.CHANGE, grammar.Access.SELF)
WORDS = [*grammar.VERBS, "capture", "packaging", "as", "until", "at", "and", "power", "on"]
WORDS += ["25", "0", "-1", "999999", "fri", "17:00", "adopt", "remove", "--yes", "\u00a0"]

texts = st.one_of(
    st.text(max_size=200),
    st.lists(st.sampled_from(WORDS) | st.text(max_size=12), max_size=10).map(" ".join),
)
users = st.sampled_from([OPERATOR, ADMIN, STRANGER, "", "U" + "9" * 40]) | st.text(max_size=30)
channels = st.sampled_from([CHANNEL, "CRANDOM", "", "D123"]) | st.text(max_size=30)
ACTIONS = [
    getattr(ids, name) for name in dir(ids) if name.startswith("ACTION_")
]  # every button the app listens for


class Calls:
    """The Slack calls made since a fuzzed request was sent."""

    def __init__(self, h: SlackHarness) -> None:
        self.h = h
        self.start = len(h.fake.calls)

    def texts(self) -> list[str]:
        out = []
        for c in self.h.fake.calls[self.start :]:
            out.append(json.dumps(c.params, default=str))
        return out


def _dispatch(h: SlackHarness, body: str, ctype: str | None = None) -> tuple[int, str]:
    """A signed request through the HTTP front door's own path (`answer`: signature, parse,
    shape, then Bolt's dispatch), as waitress hands it over."""
    headers: dict[str, str | Sequence[str]] = {k.lower(): v for k, v in sign(body).items()}
    if ctype:
        headers["content-type"] = ctype
    resp = answer(h.bot.app, body, headers)
    return resp.status, resp.body


def _clean(text: str) -> None:
    assert "Traceback" not in text
    assert "Internal error" not in text, text  # blocks.internal_error: a bug reached the user


def _nothing_done(h: SlackHarness, vcenter_changes: int) -> None:
    assert h.core.repo.runs() == []
    assert h.core.repo.clones() == []
    assert h.core.repo.list_environments() == []
    assert _changes(h) == vcenter_changes


def _changes(h: SlackHarness) -> int:
    """vCenter calls that could change something (reads are allowed: status, types, ...)."""
    reads = ("Fetch", "Retrieve", "Wait", "Create", "Destroy", "Find", "Current", "Login",
             "Logout", "SessionIsActive", "CheckForUpdates", "QueryEvents")  # fmt: skip
    requests = h.lab.control.stats()["requests"]
    return sum(
        n
        for method, n in requests.items()
        if not method.startswith(reads) or method in ("Destroy_Task", "CreateSnapshot_Task")
    )


def _wants_change(text: str) -> bool:
    try:
        command = grammar.parse(text)
    except UsageError:
        return False
    return command.access in CHANGING


@pytest.fixture
def quiet(harness: SlackHarness) -> SlackHarness:
    return harness


def test_fuzzed_slash_commands(quiet: SlackHarness) -> None:
    h = quiet
    before = _changes(h)
    seen = {"n": 0, "denied": 0, "usage": 0}

    @given(text=texts, user=users, channel=channels)
    def check(text: str, user: str, channel: str) -> None:
        # An operator's valid changing command would (rightly) do something: fuzz the rest.
        assume(not (user in (OPERATOR, ADMIN) and _wants_change(text)))
        calls = Calls(h)
        status, body = _dispatch(h, slash_body(text, user, channel, h.fake.response_url("fz")))
        assert status == 200
        _clean(body)
        seen["n"] += 1
        seen["denied"] += "not allowed" in body or "no operators" in body
        seen["usage"] += body.count(":warning:") > 0
        for t in calls.texts():
            _clean(t)

    check()
    h.idle()  # every queued read and job finished: now check what they did
    for c in h.fake.calls:
        _clean(json.dumps(c.params, default=str))
    _nothing_done(h, before)
    record("fuzzed slash commands", cases=seen["n"], denied=seen["denied"], profile=PROFILE,
           tracebacks=0, unexpected_actions=0)  # fmt: skip


def test_fuzzed_button_clicks(quiet: SlackHarness) -> None:
    h = quiet
    before = _changes(h)
    seen = {"n": 0}

    @given(
        action=st.sampled_from(ACTIONS),
        value=st.text(max_size=80) | st.sampled_from(["", " ", "env token", "x " * 40]),
        user=users,
        channel=channels,
        ts=st.text(max_size=20),
        mangle=st.sampled_from(["none", "no-actions", "no-user", "no-channel", "no-message"]),
    )
    def check(action: str, value: str, user: str, channel: str, ts: str, mangle: str) -> None:
        payload: dict[str, Any] = action_payload(
            action, value, user, channel, ts, h.fake.response_url("bz")
        )
        if mangle == "no-actions":
            payload["actions"] = []
        elif mangle != "none":
            payload.pop(mangle.removeprefix("no-"), None)
        status, body = _dispatch(h, action_body(payload))
        # An empty `actions` list (which Slack never sends) tripped Bolt's own listener
        # matching (a 500); the front door now acknowledges it as a payload of the wrong shape.
        assert status == 200
        _clean(body)
        seen["n"] += 1

    check()
    h.idle()
    for c in h.fake.calls:
        _clean(json.dumps(c.params, default=str))
    _nothing_done(h, before)
    record("fuzzed button clicks", cases=seen["n"], profile=PROFILE, tracebacks=0,
           unexpected_actions=0)  # fmt: skip


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
SHAPED = ["user", "channel", "team", "container", "message", "view", "actions", "type", "event"]


def _base_payload(kind: str, action: str, h: SlackHarness) -> dict[str, Any]:
    if kind == "view_submission":
        return {"type": "view_submission", "user": {"id": STRANGER}, "team": {"id": "T1"},
                "view": {"type": "modal", "callback_id": "x", "state": {"values": {}}}}  # fmt: skip
    if kind == "event_callback":
        return {"type": "event_callback", "team_id": "T1", "api_app_id": "A1",
                "event": {"type": "app_home_opened", "user": STRANGER, "tab": "home"}}  # fmt: skip
    return action_payload(action, "env", STRANGER, CHANNEL, "1.2", h.fake.response_url("sz"))


def test_fuzzed_payload_shapes(quiet: SlackHarness, caplog: pytest.LogCaptureFixture) -> None:
    """Signed payloads whose fields have any JSON shape (user or channel as text, a view
    without its type, actions that are not a list, an event that is not an object...): always
    answered (acknowledged, or 404 for a kind the app does not handle), never a 500, never a
    traceback in the log, nothing done."""
    h = quiet
    before = _changes(h)
    caplog.set_level(logging.INFO)
    seen = {"n": 0, "ignored": 0}

    @given(
        kind=st.sampled_from(["block_actions", "view_submission", "event_callback"]),
        action=st.sampled_from(ACTIONS),
        key=st.sampled_from(SHAPED),
        value=json_values,
        drop=st.booleans(),
    )
    def check(kind: str, action: str, key: str, value: Any, drop: bool) -> None:
        payload = _base_payload(kind, action, h)
        if drop:
            payload.pop(key, None)
        else:
            payload[key] = value
        if kind == "event_callback":
            payload.setdefault("event_id", f"Ev{seen['n']}-{id(value)}")
            status, body = _dispatch(h, json.dumps(payload), "application/json")
        else:
            status, body = _dispatch(h, action_body(payload))
        assert status in (200, 404), (status, body, payload)
        _clean(body)
        seen["n"] += 1
        seen["ignored"] += "wrong shape" in caplog.text
        caplog.clear()

    check()
    h.idle()
    assert not [r for r in caplog.records if r.exc_info], "no traceback in the log"
    for c in h.fake.calls:
        _clean(json.dumps(c.params, default=str))
    _nothing_done(h, before)
    assert seen["ignored"]
    record("fuzzed payload shapes", cases=seen["n"], ignored=seen["ignored"], profile=PROFILE,
           tracebacks=0, unexpected_actions=0)  # fmt: skip
