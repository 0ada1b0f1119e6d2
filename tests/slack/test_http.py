"""HTTP mode as the internet sees it: waitress and Bolt's WSGI adapter. Malformed, oversized and
unsigned requests get a short 4xx, no traceback and no body in the log; after a flood of them a
signed `/clones status` is still answered within Slack's 3 s."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import pytest

from handlers.serving import MAX_BODY_BYTES
from tests.faults import record

from .conftest import OPERATOR, STRANGER, SlackHarness
from .signing import SECRET, action_body, action_payload, sign, slash_body

pytestmark = pytest.mark.lab

MARKER = "BODY-MARKER-7f3a"  # text that must never reach the log


def _raw(url: str, request: bytes, timeout: float = 10.0) -> tuple[int, bytes]:
    """Send `request` as is; (status, body) of the answer, status 0 when the server hung up
    without one."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout) as sock:
        # The server may refuse the rest of an oversized body; read its answer anyway.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(request)
        data = b""
        try:
            while not _complete(data):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    if not data.startswith(b"HTTP/1."):
        return 0, b""
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def _complete(data: bytes) -> bool:
    """The whole answer is in: its head, and as much body as its Content-Length says."""
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length" and value.strip().isdigit():
            return len(body) >= int(value)
    return True


def _post(url: str, body: bytes, headers: dict[str, str]) -> bytes:
    path = urlsplit(url).path
    lines = [f"POST {path} HTTP/1.1", "Host: slack.test", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
DEEP = b"[" * 100_000 + b"]" * 100_000
DEEP_FORM = b"payload=" + b"%5B" * 50_000


def _signed(url: str, body: bytes, ctype: str, *, timestamp: str | None = None) -> bytes:
    """A request signed with the app's secret (an HMAC over `timestamp` as given, when given)."""
    headers = sign(body.decode())
    if timestamp is not None:
        digest = hmac.new(SECRET.encode(), f"v0:{timestamp}:".encode() + body, hashlib.sha256)
        headers = {
            "X-Slack-Request-Timestamp": timestamp,
            "X-Slack-Signature": "v0=" + digest.hexdigest(),
        }
    headers = {k: v for k, v in headers.items() if k != "Content-Type"}
    return _post(url, body, {"Content-Length": str(len(body)), "Content-Type": ctype, **headers})


def _bad_requests(url: str) -> dict[str, tuple[bytes, int]]:
    """Name -> (raw request, the status it must get)."""
    path = urlsplit(url).path
    bad_utf8 = b"text=\xff\xfe\xfa&user_id=" + MARKER.encode()
    big = b"x" * (MAX_BODY_BYTES + 1)
    return {
        "invalid UTF-8": (_post(url, bad_utf8, {"Content-Length": str(len(bad_utf8))}), 400),
        "Content-Length abc": (_post(url, b"text=hi", {"Content-Length": "abc"}), 400),
        "negative Content-Length": (_post(url, b"text=hi", {"Content-Length": "-5"}), 400),
        "declared too large": (
            _post(url, b"text=hi", {"Content-Length": str(100 * 2**20), "Content-Type": FORM}),
            413,
        ),
        "sent too large": (
            _post(url, big, {"Content-Length": str(len(big)), "Content-Type": FORM}),
            413,
        ),
        "chunked too large": (
            _post(
                url,
                b"%x\r\n" % len(big) + big + b"\r\n0\r\n\r\n",
                {"Transfer-Encoding": "chunked", "Content-Type": FORM},
            ),
            413,
        ),
        # Unsigned, a body is never parsed: whatever it holds, 401.
        "JSON that is not an object": (
            _post(url, b"[1, 2]", {"Content-Length": "6", "Content-Type": "application/json"}),
            401,
        ),
        "JSON that does not parse": (
            _post(url, b'{"a": ', {"Content-Length": "6", "Content-Type": "application/json"}),
            401,
        ),
        "JSON that is not an object, signed": (_signed(url, b"[1, 2]", JSON), 400),
        "JSON that does not parse, signed": (_signed(url, b'{"a": ', JSON), 400),
        "unsigned": (
            _post(url, b"text=status", {"Content-Length": "11", "Content-Type": FORM}),
            401,
        ),
        # Before the body is parsed: a timestamp that is not a number (Bolt's int() raised
        # ValueError: 500 and a traceback), a deeply nested body (RecursionError) unsigned.
        "timestamp abc": (_signed(url, b"text=status", FORM, timestamp="abc"), 401),
        "timestamp abc, no signature": (
            _post(
                url,
                b"text=status",
                {"Content-Length": "11", "Content-Type": FORM, "X-Slack-Request-Timestamp": "abc"},
            ),
            401,
        ),
        "timestamp in Arabic-Indic digits": (
            _signed(url, b"text=status", FORM, timestamp="\u0661\u0662"),
            401,
        ),
        "deeply nested JSON, unsigned": (
            _post(url, DEEP, {"Content-Length": str(len(DEEP)), "Content-Type": JSON}),
            401,
        ),
        "deeply nested JSON, signed": (_signed(url, DEEP, JSON), 400),
        "deeply nested payload form, signed": (_signed(url, DEEP_FORM, FORM), 400),
        "GET of the events URL": (f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode(), 404),
        "garbage request line": (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400),
    }


def test_malformed_requests_get_a_clean_4xx_and_no_traceback(
    harness: SlackHarness, caplog: pytest.LogCaptureFixture
) -> None:
    h = harness
    caplog.set_level(logging.DEBUG)
    got = {name: _raw(h.url, raw)[0] for name, (raw, _) in _bad_requests(h.url).items()}
    want = {name: status for name, (_, status) in _bad_requests(h.url).items()}
    assert got == want
    health = urlsplit(h.url)._replace(path="/health").geturl()
    assert _raw(health, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n") == (200, b"ok")
    h.idle()
    assert not [r for r in caplog.records if r.exc_info], "no traceback in the log"
    assert "Traceback" not in caplog.text
    assert MARKER not in caplog.text
    assert h.core.repo.audit_entries() == [] and h.core.repo.runs() == []


def test_bodies_of_requests_with_a_bad_signature_are_never_logged(
    harness: SlackHarness, caplog: pytest.LogCaptureFixture
) -> None:
    h = harness
    caplog.set_level(logging.DEBUG)
    body = slash_body(f"deploy capture 2 as {MARKER.lower()}", STRANGER, "C1", MARKER)
    body += "&padding=" + "y" * 500_000
    headers = sign(body, secret="not-the-signing-secret-000000")
    reply = h.post(body, headers)
    assert reply.status == 401
    h.idle()
    assert MARKER not in caplog.text and MARKER.lower() not in caplog.text
    assert len(caplog.text) < 10_000  # the 500 KB body did not reach the log
    assert "Refused a request with an invalid or missing Slack signature" in caplog.text


def _slow_client(url: str, stop: threading.Event) -> None:
    """A client that sends half a request and waits (a slowloris connection)."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(b"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nab")
        stop.wait(30)


def test_a_flood_of_bad_requests_then_a_signed_status_is_answered_within_3s(
    harness: SlackHarness, caplog: pytest.LogCaptureFixture
) -> None:
    h = harness
    caplog.set_level(logging.INFO)
    bad = list(_bad_requests(h.url).items())
    flood = [bad[i % len(bad)] for i in range(220)]
    stop = threading.Event()
    slow = [threading.Thread(target=_slow_client, args=(h.url, stop)) for _ in range(30)]
    for t in slow:
        t.start()
    started = time.monotonic()
    try:
        with ThreadPoolExecutor(max_workers=24) as pool:
            statuses = list(pool.map(lambda item: _raw(h.url, item[1][0])[0], flood))
        flood_s = time.monotonic() - started
        assert statuses == [want for _, (_, want) in flood]

        # The slow connections are still open; a signed status command is acked and answered.
        sent = time.monotonic()
        reply = h.command("status", user=STRANGER)
        assert reply.status == 200 and reply.elapsed_s < 3, reply.elapsed_s
        h.fake.wait_for(lambda: h.ephemeral_texts(), timeout=3)
        answered_s = time.monotonic() - sent
        assert answered_s < 3
    finally:
        stop.set()
        for t in slow:
            t.join()
    h.idle()
    assert "Traceback" not in caplog.text and MARKER not in caplog.text
    record(
        "flood of malformed and oversized HTTP requests",
        bad_requests=len(flood),
        slow_connections=len(slow),
        flood_s=round(flood_s, 2),
        status_ack_ms=round(reply.elapsed_s * 1000),
        status_answered_ms=round(answered_s * 1000),
        tracebacks=0,
    )


def test_no_warning_about_the_token_at_start_up(
    make_harness: Callable[..., SlackHarness],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Bolt warns "As you gave `client` as well, `token` will be unused" whenever
    SLACK_BOT_TOKEN is set and a client is passed, which the bot always does on purpose."""
    monkeypatch.setenv("SLACK_BOT_TOKEN", os.environ.get("SLACK_BOT_TOKEN", "xoxb-test-token"))
    caplog.set_level(logging.DEBUG)
    make_harness()
    assert "token` will be unused" not in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and "slack" in r.name]


def test_any_body_and_headers_through_the_wsgi_app_get_an_answer_never_an_exception(
    harness: SlackHarness, caplog: pytest.LogCaptureFixture
) -> None:
    """Arbitrary bytes, content types and Content-Length values through the adapter itself."""
    from io import BytesIO

    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from handlers.serving import SlackWsgiApp

    app = SlackWsgiApp(harness.bot.app)
    caplog.set_level(logging.INFO)
    seen: dict[int, int] = {}

    @settings(
        max_examples=300,
        derandomize=True,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(
        body=st.binary(max_size=300) | st.text(max_size=200).map(str.encode),
        ctype=st.sampled_from([FORM, "application/json", "text/plain", "", "multipart/x"]),
        length=st.none() | st.sampled_from(["abc", "-1", "99999999999", " 3", ""]),
        method=st.sampled_from(["POST", "GET", "PUT", "HEAD"]),
        signed=st.booleans(),
        timestamp=st.none()
        | st.text(max_size=15)
        | st.sampled_from(["abc", "-1", "1e9", "9" * 30, " 123", "\u0661\u0662"]),
    )
    def check(
        body: bytes,
        ctype: str,
        length: str | None,
        method: str,
        signed: bool,
        timestamp: str | None,
    ) -> None:
        environ = {
            "REQUEST_METHOD": method,
            "PATH_INFO": "/slack/events",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "CONTENT_TYPE": ctype,
            "CONTENT_LENGTH": str(len(body)) if length is None else length,
            "wsgi.input": BytesIO(body),
        }
        if signed:
            for k, v in sign(body.decode("utf-8", "replace")).items():
                if k != "Content-Type":
                    environ["HTTP_" + k.upper().replace("-", "_")] = v
        if timestamp is not None:  # any header value: a number or not (ValueError in Bolt)
            environ["HTTP_X_SLACK_REQUEST_TIMESTAMP"] = timestamp
        answers: list[str] = []

        def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
            answers.append(status)
            return lambda data: None  # WSGI's write(), never called here

        app(environ, start_response)
        status = int(answers[0].split()[0])
        assert status in (200, 400, 401, 404, 413), answers
        seen[status] = seen.get(status, 0) + 1

    check()
    harness.idle()
    assert not [r for r in caplog.records if r.exc_info]
    assert {400, 401, 404} <= set(seen)


def test_a_slash_command_holding_the_word_payload_is_answered(harness: SlackHarness) -> None:
    """Bolt takes any form body holding the letters "payload" for a click's and parses it as {}
    (a 404 and no listener): the text, the user's name and an environment name may all hold it."""
    h = harness
    for text, user in (("status payload-tests", OPERATOR), ("help", "PAYLOAD")):
        reply = h.command(text, user=user)
        assert reply.status == 200, (text, user, reply.body)
        h.idle()
    said = " ".join(h.ephemeral_texts())
    assert "payload-tests" in said  # the status listener ran and named the environment


def _shapes(h: SlackHarness) -> dict[str, str]:
    """Name -> a signed-able body Slack never sends: a click whose user or channel is text, a
    view without its type, a click without actions, an event that is not an object."""
    from handlers import confirming
    from handlers.blocks import ids

    def click(action: str, **changes: Any) -> str:
        payload = action_payload(action, "env", STRANGER, "CTRAINING", "1.2", MARKER)
        payload.update(changes)
        return action_body(payload)

    confirm = confirming.TEARDOWN.confirm_id
    bodies = {
        f"user as text ({action})": click(action, user=STRANGER)
        for action in (ids.ACTION_EXTEND, ids.ACTION_HOME_TEARDOWN, ids.ACTION_MY_POWER_ON, confirm)
    }
    bodies |= {
        "channel as text": click(ids.ACTION_MY_POWER_ON, channel="CTRAINING"),
        "team as a number": click(ids.ACTION_EXTEND, team=7),
        "actions as text": click(ids.ACTION_EXTEND, actions="extend"),
        "actions empty": click(ids.ACTION_EXTEND, actions=[]),
        "view without type": action_body(
            {"type": "view_submission", "user": {"id": STRANGER}, "view": {"callback_id": "x"}}
        ),
        "view as a list": action_body({"type": "view_submission", "view": [1]}),
        "type as a number": action_body({"type": 5, "user": {"id": STRANGER}}),
        "event as text": json.dumps({"type": "event_callback", "event": "app_home_opened"}),
        "event without type": json.dumps({"type": "event_callback", "event": {"user": "U1"}}),
    }
    return bodies


def test_signed_payloads_of_the_wrong_shape_are_acked_and_logged_as_ignored(
    harness: SlackHarness, caplog: pytest.LogCaptureFixture
) -> None:
    """They threw in the listener (or in Bolt's own helpers) before or after the ack: 500s and
    404s with a traceback in the log. Now: 200, one line each, nothing done."""
    h = harness
    caplog.set_level(logging.INFO)
    for name, body in _shapes(h).items():
        caplog.clear()
        headers = sign(body)
        if body.startswith("{"):
            headers["Content-Type"] = JSON
        reply = h.post(body, headers)
        h.idle()
        assert (reply.status, reply.body) == (200, ""), name
        assert not [r for r in caplog.records if r.exc_info], name
        said = [r.getMessage() for r in caplog.records if "wrong shape" in r.getMessage()]
        assert len(said) == 1 and said[0].startswith("Ignored a signed Slack request"), (name, said)
        assert MARKER not in caplog.text
    assert h.core.repo.runs() == [] and h.core.repo.audit_entries() == []
    assert not h.fake.of("response_url")
