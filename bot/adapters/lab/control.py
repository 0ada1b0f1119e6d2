"""The client of a lab's JSON control API under /lab (plain JSON over urllib, no pyVmomi), and
waiting for a lab to serve."""

from __future__ import annotations

import contextlib
import json
import socket
import time
import urllib.error
import urllib.request
from typing import Any

from bot.adapters.lab.info import LabError, LabInfo

START_TIMEOUT = 20.0  # seconds a lab may take to start serving


class LabControl:
    """Client for a lab's JSON control endpoints under /lab (docs/lab-spec.md). The lab checks
    what it is sent: a refused request raises LabError with the lab's own message."""

    def __init__(self, control_url: str, timeout: float = 10.0) -> None:
        self.base = control_url.rstrip("/")
        self.timeout = timeout

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.base + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            try:
                message = json.loads(exc.read()).get("error", exc.reason)
            except (ValueError, AttributeError):
                message = exc.reason
            raise LabError(f"Lab control {method} {path} failed: {message}") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise LabError(
                f"The lab at {self.base} does not answer ({exc}); start it with `clones lab up`."
            ) from exc

    def info(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "")
        return result

    def stats(self) -> dict[str, Any]:
        """{"requests": {method: count}, "total", "clone_calls", "clones_failed_injected"}."""
        result: dict[str, Any] = self._call("GET", "/stats")
        return result

    def reset(self) -> None:
        """Zero the counters and the fail_nth ordinal (and reseed the fault RNG)."""
        self._call("POST", "/reset", {})

    def config(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/config")
        return result

    def configure(self, **kwargs: Any) -> None:
        """Change clone_latency_ms, destroy_latency_ms, power_on_latency_ms,
        customization_latency_ms, delta_growth_gb_per_min, faults (partial dict), privileges (a
        list, or None for all), expired_session_reads ("fault", or "missing_set": as VMware's
        simulator answers reads after the session ended) and/or no_permission_vms (VM names whose
        reads answer NoPermission; None for none) at runtime."""
        self._call("POST", "/config", kwargs)

    def expire_sessions(self) -> None:
        """End every session: each client's next call gets NotAuthenticated."""
        self._call("POST", "/expire-sessions", {})

    def wait_idle(self, timeout: float = 30.0) -> None:
        """Wait until the lab answers no SOAP request (blocking waits aside): work a killed
        client asked for has then been done."""
        deadline = time.monotonic() + timeout
        while self.stats().get("requests_in_flight", 0):
            if time.monotonic() > deadline:
                raise LabError(f"the lab was still busy after {timeout:.0f} s")
            time.sleep(0.02)

    def pause(self, seconds: float) -> None:
        """Make vCenter unreachable for `seconds` (SOAP connections are dropped); 0 resumes."""
        self._call("POST", "/pause", {"seconds": seconds})

    def vms(self) -> list[dict[str, Any]]:
        """Every VM: name, moref, folder, host, power_state, linked, committed, custom, ..."""
        result: list[dict[str, Any]] = self._call("GET", "/vms")
        return result

    def add_vm(
        self,
        name: str,
        folder: str = "",
        parent_like: str | None = None,
        custom: dict[str, str] | None = None,
        power_state: str | None = None,
        host: str | None = None,
        linked: bool = False,
    ) -> dict[str, Any]:
        """Create an extra VM (e.g. an unmanaged decoy) shaped like a parent."""
        body: dict[str, Any] = {"name": name, "folder": folder, "linked": linked}
        if parent_like:
            body["parent_like"] = parent_like
        if custom:
            body["custom"] = custom
        if power_state:
            body["power_state"] = power_state
        if host:
            body["host"] = host
        result: dict[str, Any] = self._call("POST", "/vms", body)
        return result

    def ping(self) -> bool:
        try:
            self.info()
        except LabError:
            return False
        return True


def wait_serving(info: LabInfo, timeout: float) -> bool:
    """Wait until the lab answers (its control API; a plain simulator: its port)."""
    if info.plain:  # no control API: serving once the port accepts connections
        return _wait_port(info.host, info.port, timeout)
    control = LabControl(info.control, timeout=2.0)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if control.ping():
            return True
        time.sleep(0.1)
    return False


def _wait_port(host: str, port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1.0):
            return True
        time.sleep(0.1)
    return False
