"""A local stand-in for Slack's Socket Mode WebSocket endpoint.

The app connects (URL from the fake Web API's apps.connections.open), receives envelopes and
must ack each with {"envelope_id": ...}, optionally with a response payload.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any

from websockets.sync.server import Server, ServerConnection, serve


class FakeSocketMode:
    def __init__(self) -> None:
        self.acks: dict[str, tuple[float, dict[str, Any]]] = {}  # envelope_id -> (at, ack)
        self.sent: dict[str, float] = {}
        self._conn: ServerConnection | None = None
        self._cond = threading.Condition()
        self._server: Server = serve(self._handle, "127.0.0.1", 0)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> FakeSocketMode:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()

    @property
    def url(self) -> str:
        host, port = self._server.socket.getsockname()[:2]
        return f"ws://{host}:{port}/"

    def _handle(self, conn: ServerConnection) -> None:
        with self._cond:
            self._conn = conn
            self._cond.notify_all()
        conn.send(
            json.dumps({"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A1"}})
        )
        for message in conn:
            data = json.loads(message)
            if "envelope_id" in data:
                with self._cond:
                    self.acks[data["envelope_id"]] = (time.monotonic(), data)
                    self._cond.notify_all()

    def wait_connected(self, timeout: float = 10.0) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: self._conn is not None, timeout):
                raise AssertionError("the app never connected over Socket Mode")

    def send(self, envelope_type: str, payload: dict[str, Any]) -> str:
        envelope_id = str(uuid.uuid4())
        with self._cond:
            conn = self._conn
        assert conn is not None, "not connected"
        self.sent[envelope_id] = time.monotonic()
        conn.send(
            json.dumps(
                {
                    "envelope_id": envelope_id,
                    "type": envelope_type,
                    "payload": payload,
                    "accepts_response_payload": envelope_type != "events_api",
                }
            )
        )
        return envelope_id

    def wait_ack(self, envelope_id: str, timeout: float = 10.0) -> tuple[float, dict[str, Any]]:
        with self._cond:
            if not self._cond.wait_for(lambda: envelope_id in self.acks, timeout):
                raise AssertionError(f"no ack for envelope {envelope_id}")
            return self.acks[envelope_id]
