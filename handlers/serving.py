"""Serving the Bolt app over HTTP: waitress (a production WSGI server) and Bolt's WSGI adapter.

Slack's requests arrive at `POST /slack/events`; `GET /health` answers "ok" for load balancers.
Whatever else arrives is answered with a short 4xx and never reaches a listener or the log as a
traceback: waitress itself refuses a malformed or negative Content-Length (400) and a body over
the cap (413) before reading it; this adapter refuses a body that is not UTF-8 or not a Slack
payload (400); Bolt refuses a bad signature (401).

Request bodies are never logged. Bolt logs the whole body of a request whose signature is wrong,
at INFO (an unsigned 100 MB POST added 100 MB to the log); `bolt_logger()` is the base logger the
app is built with, and its filter rewrites that line without the body, shortens the other few
that carry request content, and drops the start-up warning "As you gave `client` as well, `token`
will be unused" (the bot passes its own client, with retries and `api_url`, on purpose).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import waitress
from slack_bolt import App, BoltContext, BoltRequest, BoltResponse
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_bolt.adapter.wsgi.http_request import WsgiHttpRequest
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped
from slack_bolt.request.internals import build_context
from waitress.channel import HTTPChannel

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
            record.msg, record.args = (
                "Refused a request with an invalid or missing Slack signature (body not logged)",
                (),
            )
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

    def __init__(self, app: App, *, max_body: int = MAX_BODY_BYTES) -> None:
        super().__init__(app, EVENTS_PATH)
        self.max_body = max_body

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        method = str(environ.get("REQUEST_METHOD", ""))
        path = str(environ.get("PATH_INFO", ""))
        if path == HEALTH_PATH and method in ("GET", "HEAD"):
            return _plain(start_response, 200, "ok")
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
        try:
            bolt_request = slack_request(body, request.get_headers(), request.query_string)
        except (ValueError, TypeError, AttributeError, KeyError):
            # JSON that does not parse, or a payload that is not an object: not from Slack.
            return BoltResponse(status=400, body="The request body is not a Slack payload.")
        return self.app.dispatch(bolt_request)


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
    app: App, host: str = "0.0.0.0", port: int = 3000, *, max_body: int = MAX_BODY_BYTES
) -> HttpServer:
    """Slack's request URL served by waitress (call `serve_forever()` in a thread)."""
    return HttpServer(SlackWsgiApp(app, max_body=max_body), host, port, max_body=max_body)
