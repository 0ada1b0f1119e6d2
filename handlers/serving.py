"""Serving the Bolt app over HTTP: waitress (a production WSGI server) and Bolt's WSGI adapter.

Slack's requests arrive at `POST /slack/events`; `GET /health` answers "ok" for load balancers.
Whatever else arrives is answered with a short 4xx and never reaches a listener or the log as a
traceback: waitress itself refuses a malformed or negative Content-Length (400) and a body over
the cap (413) before reading it; this adapter refuses a body that is not UTF-8 (400), then checks
the signature before it parses anything (`answer`: a timestamp that is not a number, or a wrong
or missing signature, is 401), then refuses a body that is not a Slack payload (400: JSON that
does not parse, or nests deeper than Python can). A signed payload of the wrong shape (`user` or
`channel` that is text where Slack sends an object, a view without its type) is acknowledged and
logged as ignored in one line (`wrong_shape`); it never reaches Bolt, whose own helpers would
throw on it. Socket Mode envelopes pass the same shape check (`GatedSocketModeHandler`).

Request bodies are never logged. Bolt logs the whole body of a request whose signature is wrong,
at INFO (an unsigned 100 MB POST added 100 MB to the log); `bolt_logger()` is the base logger the
app is built with, and its filter rewrites that line without the body, shortens the other few
that carry request content, and drops the start-up warning "As you gave `client` as well, `token`
will be unused" (the bot passes its own client, with retries and `api_url`, on purpose).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import waitress
from slack_bolt import App, BoltContext, BoltRequest, BoltResponse
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_bolt.adapter.wsgi.http_request import WsgiHttpRequest
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped
from slack_bolt.request.internals import build_context, parse_body
from slack_bolt.request.payload_utils import (
    to_action,
    to_event,
    to_message,
    to_options,
    to_shortcut,
    to_step,
    to_view,
)
from slack_sdk.signature import SignatureVerifier
from slack_sdk.socket_mode.builtin.client import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from waitress.channel import HTTPChannel

from handlers.operations import CONTENT_TYPE, METRICS_PATH, READY_PATH, Operations

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIEnvironment

log = logging.getLogger("clones.http")

EVENTS_PATH = "/slack/events"  # what the manifest's request URLs point at
HEALTH_PATH = "/health"
# Slack's payloads are small: a slash command is about 1 KB, a block action with a large message
# a few tens of KB. 1 MiB leaves room and refuses floods before they are read.
MAX_BODY_BYTES = 1 << 20
HTTP_THREADS = 8  # each request holds one only until Bolt's ack (milliseconds)
CONNECTION_LIMIT = 256
IDLE_CONNECTION_S = 30  # idle keep-alive connections are closed after this long


# ===================================================================== logs without bodies
_TOKEN_SKIPPED = warning_client_prioritized_and_token_skipped()
_REFUSED = "Refused a request with an invalid or missing Slack signature (body not logged)"


class _NoRequestBodies(logging.Filter):
    """Keeps Slack request content out of the log (see the module docstring)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed log call: leave it to logging's own error handling
            return True
        if message == _TOKEN_SKIPPED:
            return False
        if message.startswith("Invalid request signature detected"):
            record.msg, record.args = _REFUSED, ()
        elif message.startswith("A global middleware") and "request (" in message:
            record.msg, record.args = message.split(" for the request (", 1)[0], ()
        elif message.lower().startswith("request body:"):
            return False
        return True


_BOLT_LOGGER = "clones.bolt"
_FILTER = _NoRequestBodies()


def bolt_logger() -> logging.Logger:
    """The base logger for the Bolt app: Bolt copies its filter to every logger it creates."""
    logger = logging.getLogger(_BOLT_LOGGER)
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
    # Loggers Bolt made before (another App in this process) keep their old configuration.
    for name in ("slack_bolt.RequestVerification", "slack_bolt.IgnoringSelfEvents"):
        other = logging.getLogger(name)
        if _FILTER not in other.filters:
            other.addFilter(_FILTER)
    return logger


# ===================================================================== WSGI
class SlackWsgiApp(SlackRequestHandler):
    """Bolt's WSGI adapter with a health check, a body cap and clean 4xx for malformed bodies."""

    def __init__(
        self, app: App, *, max_body: int = MAX_BODY_BYTES, ops: Operations | None = None
    ) -> None:
        super().__init__(app, EVENTS_PATH)
        self.max_body = max_body
        self.ops = ops

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        method = str(environ.get("REQUEST_METHOD", ""))
        path = str(environ.get("PATH_INFO", ""))
        if path == HEALTH_PATH and method in ("GET", "HEAD"):
            return _plain(start_response, 200, "ok")
        if self.ops is not None and method in ("GET", "HEAD"):
            if path == READY_PATH:
                ready, body = self.ops.ready()
                status = "200 OK" if ready else "503 Service Unavailable"
                start_response(status, [("Content-Type", "application/json")])
                return [body]
            if path == METRICS_PATH:
                start_response("200 OK", [("Content-Type", CONTENT_TYPE)])
                return [self.ops.metrics()]
        if self.ops is not None and path == self.path and method == "POST":
            started = time.monotonic()
            try:
                return self._events(environ, start_response)
            finally:
                self.ops.ack_latency.observe(time.monotonic() - started)
        return self._events(environ, start_response)

    def _events(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        method = str(environ.get("REQUEST_METHOD", ""))
        path = str(environ.get("PATH_INFO", ""))
        if path == self.path and method == "POST":
            # waitress checks these first; this keeps the adapter safe under any WSGI server.
            length = str(environ.get("CONTENT_LENGTH") or "0").strip()
            if not length.isdigit():
                return _plain(start_response, 400, "Content-Length must be a whole number.")
            if int(length) > self.max_body:
                return _plain(start_response, 413, "The request body is too large.")
        return super().__call__(environ, start_response)

    def dispatch(self, request: WsgiHttpRequest) -> BoltResponse:
        try:
            body = request.get_body()
        except UnicodeDecodeError:
            return BoltResponse(status=400, body="The request body is not UTF-8.")
        return answer(self.app, body, request.get_headers(), request.query_string)


_TIMESTAMP = re.compile(r"[0-9]{1,12}")


def answer(
    app: App, body: str, headers: Mapping[str, Any], query: str | dict[str, Any] | None = None
) -> BoltResponse:
    """Bolt's answer to an HTTP request to the events URL, after the checks that come first:
    the signature (before the body is parsed), the body as a Slack payload, its shape."""
    secret = getattr(app, "_signing_secret", "")  # what Bolt verifies with (slack_bolt 1.x)
    if secret:
        fields = {k.lower(): _one(v) for k, v in headers.items()}
        timestamp = fields.get("x-slack-request-timestamp", "")
        signature = fields.get("x-slack-signature", "")
        if not _TIMESTAMP.fullmatch(timestamp) or not SignatureVerifier(secret).is_valid(
            body, timestamp, signature
        ):
            log.info(
                "Refused a request with an invalid or missing Slack signature (body not logged)"
            )
            return BoltResponse(status=401, body="")
    not_slack = BoltResponse(status=400, body="The request body is not a Slack payload.")
    try:
        payload = slack_payload(body, headers)
    except (ValueError, RecursionError):  # JSON that does not parse, or nests too deep
        return not_slack
    why = wrong_shape(payload) if isinstance(payload, dict) else ""
    if why:
        log.warning("Ignored a signed Slack request of the wrong shape (%s); acknowledged", why)
        return BoltResponse(status=200, body="")
    try:
        bolt_request = slack_request(body, dict(headers), query)
    except (ValueError, TypeError, AttributeError, KeyError, RecursionError):
        return not_slack  # a payload that is not an object
    try:
        return app.dispatch(bolt_request)
    except RecursionError:  # a signed payload nested too deep for Bolt's own helpers
        log.warning("Ignored a signed Slack request nested too deep; acknowledged")
        return BoltResponse(status=200, body="")


def _one(value: Any) -> str:
    """One header's value (Bolt's adapters give some as lists)."""
    if isinstance(value, list | tuple):
        value = value[0] if value else ""
    return str(value).strip()


_OBJECTS = ("user", "channel", "team", "container", "message", "view", "enterprise")
_ACTIONS = ("block_actions", "interactive_message")  # a click: at least one action, with its id


def wrong_shape(body: Any) -> str:
    """Why a parsed payload is not of a shape Slack sends ("" when it is), before Bolt or a
    listener reads it: a slash command's fields are text; in an interactive payload `user`,
    `channel`, `team`, `container`, `message`, `view` and `enterprise` are objects, a view has
    a type, a click holds a list of actions, each with its action_id; an event callback holds an
    event object with a type. Then Bolt's own readers must manage it (`_unreadable`)."""
    if not isinstance(body, dict) or not body:
        return ""  # Bolt answers an empty body, or one that is not an object, itself
    if "event" in body and not isinstance(body["event"], dict):  # Bolt's middleware reads it
        return f"event is {type(body['event']).__name__}, not an object"
    kind = body.get("type")
    if "command" in body and kind is None:
        bad = [k for k in ("command", "text", "user_id", "channel_id") if not _text(body.get(k))]
        return f"slash command {bad[0]} is not text" if bad else _unreadable(body)
    if not isinstance(kind, str):
        return "type is not text"
    if kind == "event_callback":
        event = body.get("event")
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            return "event_callback without an event object and its type"
        return _unreadable(body)
    for key in _OBJECTS:
        if body.get(key) is not None and not isinstance(body[key], dict):
            return f"{kind} {key} is {type(body[key]).__name__}, not an object"
    view = body.get("view")
    if view is not None and not isinstance(view.get("type"), str):
        return f"{kind} view without a type"
    actions = body.get("actions", [] if kind in _ACTIONS else None)
    if actions is not None and (
        not isinstance(actions, list)
        or not all(isinstance(a, dict) and isinstance(a.get("action_id"), str) for a in actions)
        or (kind in _ACTIONS and not actions)
    ):
        return f"{kind} actions is not a list of actions with their action_id"
    return _unreadable(body)


def _unreadable(body: dict[str, Any]) -> str:
    """What Bolt reads of every request before any listener (its context, and what it hands a
    listener: the action, the view, the event...), tried here: "" when it manages."""
    try:
        build_context(BoltContext(), body)
        for read in (to_action, to_view, to_step, to_event, to_message, to_options, to_shortcut):
            read(body)
    except (KeyError, IndexError, TypeError, AttributeError, ValueError) as exc:
        return f"Bolt cannot read it: {type(exc).__name__}"
    return ""


def _text(value: Any) -> bool:
    return value is None or isinstance(value, str)


class GatedSocketModeHandler(SocketModeHandler):
    """Bolt's Socket Mode handler with the HTTP path's shape check (`wrong_shape`): an envelope
    of the wrong shape is acknowledged and logged, never dispatched."""

    def handle(self, client: SocketModeClient, req: SocketModeRequest) -> None:  # type: ignore[override]
        why = wrong_shape(req.payload)
        if why:
            log.warning("Ignored a Socket Mode %s envelope of the wrong shape (%s)", req.type, why)
            client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))
            return
        super().handle(client, req)


def slack_payload(body: str, headers: Mapping[str, Any]) -> Any:
    """The payload of an HTTP body as `slack_request` reads it (Bolt's parse, and a form that
    merely holds the word "payload" read as the form it is), without building a request."""
    ctype = next((_one(v) for k, v in headers.items() if k.lower() == "content-type"), "")
    parsed = parse_body(body, ctype.split(";")[0] or None)
    if parsed or not body or body.lstrip().startswith("{"):
        return parsed
    form = dict(parse_qsl(body, keep_blank_values=True))
    return parsed if "payload" in form else form


def slack_request(
    body: str, headers: dict[str, Any], query: str | dict[str, Any] | None = None
) -> BoltRequest:
    """A BoltRequest for an HTTP body, parsed right.

    Bolt takes any form body that merely contains the letters "payload" for a button click and
    looks for a `payload` field; a slash command whose text, user name or channel name holds the
    word (`/clones deploy capture 2 as payload-tests`, a user called "payload") then parses as {}
    and is answered 404 with no listener run. Such a form is parsed again here as the plain form
    it is, and the request's context rebuilt from it (the signature check reads the raw body,
    which stays as it came)."""
    req = BoltRequest(body=body, query=query, headers=headers)
    if req.body or not body or body.lstrip().startswith("{"):
        return req
    form = dict(parse_qsl(body, keep_blank_values=True))
    if "payload" in form:
        return req  # a real click whose payload is empty or not an object: Bolt's {} stands
    req.body = form
    req.context = build_context(BoltContext(), form)
    return req


def _plain(start_response: StartResponse, status: int, text: str) -> list[bytes]:
    body = text.encode("utf-8")
    reason = {200: "OK", 400: "Bad Request", 413: "Payload Too Large"}.get(status, "")
    start_response(
        f"{status} {reason}".strip(),
        [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))],
    )
    return [body]


# ===================================================================== the server
class HttpServer:
    """waitress serving a WSGI app; `serve_forever()` in a thread, `shutdown()` from another."""

    def __init__(
        self,
        wsgi: Any,
        host: str,
        port: int,
        *,
        max_body: int = MAX_BODY_BYTES,
        threads: int = HTTP_THREADS,
    ) -> None:
        self._server: Any = waitress.create_server(
            wsgi,
            host=host,
            port=port,
            threads=threads,
            max_request_body_size=max_body,
            connection_limit=CONNECTION_LIMIT,
            channel_timeout=IDLE_CONNECTION_S,
            ident="clones",
            expose_tracebacks=False,
        )
        self._serving = threading.Event()
        self._stopped = threading.Event()

    @property
    def server_address(self) -> tuple[str, int]:
        return str(self._server.effective_host), int(self._server.effective_port)

    def serve_forever(self) -> None:
        self._serving.set()
        try:
            self._server.run()
        finally:
            self._stopped.set()

    def shutdown(self) -> None:
        """Stop accepting, close every connection, and let the serving thread return."""
        if self._serving.is_set() and not self._stopped.is_set():
            # Sockets belong to the serving thread's loop: close them there (closing them from
            # here could pull a file descriptor out from under its select()).
            try:
                self._server.trigger.pull_trigger(self._close_all)
            except OSError:  # the wake-up pipe is gone already: nothing left to wake
                self._close_all()
            self._stopped.wait(5)
        else:
            self._close_all()
        self._server.task_dispatcher.shutdown(cancel_pending=True, timeout=5)

    def _close_all(self) -> None:
        """Close every dispatcher in the socket map (the listener, the wake-up trigger, client
        connections); the loop in serve_forever() ends when the map is empty."""
        socket_map = self._server._map
        for fileno, dispatcher in list(socket_map.items()):
            try:
                if isinstance(dispatcher, HTTPChannel):
                    dispatcher.handle_close()  # also releases its buffers
                else:
                    dispatcher.close()
            except OSError:
                pass
            socket_map.pop(fileno, None)

    def server_close(self) -> None:
        """Kept for callers of the old http.server interface: shutdown() already closed it."""


def http_server(
    app: App,
    host: str = "0.0.0.0",
    port: int = 3000,
    *,
    max_body: int = MAX_BODY_BYTES,
    ops: Operations | None = None,
) -> HttpServer:
    """Slack's request URL served by waitress (call `serve_forever()` in a thread), with
    `/ready` and `/metrics` when `ops` is given."""
    return HttpServer(SlackWsgiApp(app, max_body=max_body, ops=ops), host, port, max_body=max_body)
