"""The lab vCenter: build, start, stop and control the `clones-lab` simulator (lab/*.go).

The lab is govmomi's vCenter simulator populated from a JSON spec (docs/lab-spec.md). pyvmomi talks
to it unchanged over plain HTTP (`protocol="http"`). This module never imports pyVmomi: the control
API under ``/lab`` is plain JSON over urllib.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from bot.domain.errors import ConfigError
from bot.host import pid_alive


def _lab_source_dir() -> Path:
    """The lab's Go sources and default spec: `bot/labsrc/` in an installed package (the wheel
    maps the checkout's `lab/` there, see pyproject.toml), else `lab/` beside `bot/` in a
    checkout."""
    package = Path(__file__).resolve().parents[2]  # bot/ (this file: bot/adapters/lab/)
    installed = package / "labsrc"
    return installed if (installed / "main.go").is_file() else package.parent / "lab"


LAB_SOURCE_DIR: Path = _lab_source_dir()
DEFAULT_SPEC: Path = LAB_SOURCE_DIR / "default-spec.json"
GOPATH = Path("/usr/share/gocode")
GOVMOMI_SRC = GOPATH / "src/github.com/vmware/govmomi/simulator"
APT_PACKAGES = ("golang-go", "golang-github-vmware-govmomi-dev")
START_TIMEOUT = 20.0

KNOWN_FAULTS = (
    "FileLocked",
    "InsufficientDiskSpace",
    "InsufficientStorageSpace",
    "DuplicateName",
    "TaskInProgress",
    "HostCommunication",
    "Timedout",
    "InvalidArgument",
    "SystemError",
    "NoDiskSpace",
    "InvalidState",
    "ResourceInUse",
)


class LabError(ConfigError):
    """The lab could not be built, started, reached, or its spec is malformed."""


@dataclass(frozen=True)
class LabInfo:
    """How to reach a running lab."""

    url: str
    host: str
    port: int
    user: str
    password: str
    control: str
    pid: int
    spec: str
    plain: bool = False  # VMware's simulator as shipped (`--plain`): HTTPS, no /lab control

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LabInfo:
        parts = urlsplit(str(data["url"]))
        return cls(
            url=str(data["url"]),
            host=str(data.get("host") or parts.hostname or "127.0.0.1"),
            port=int(data.get("port") or parts.port or 0),
            user=str(data["user"]),
            password=str(data["password"]),
            control=str(data["control"]),
            pid=int(data.get("pid", 0)),
            spec=str(data.get("spec", "")),
            plain=bool(data.get("plain", False)),
        )


def _log_stderr(message: str) -> None:
    print(message, file=sys.stderr)


# ------------------------------------------------------------------------------------------------
# Building


def _cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "clones"


def _go_env() -> dict[str, str]:
    env = dict(os.environ)
    env["GOPATH"] = str(GOPATH)
    env["GO111MODULE"] = "off"
    env.setdefault("GOCACHE", str(_cache_root() / "go-build"))
    env["GOFLAGS"] = ""
    return env


_apt_updated = False
_build_lock = threading.Lock()


def _install_toolchain(log: Callable[[str], None]) -> None:
    global _apt_updated
    command = "apt-get install -y " + " ".join(APT_PACKAGES)
    if os.geteuid() != 0:
        raise LabError(
            "The lab vCenter needs Go and govmomi's source to build. Install them with:\n"
            f"  sudo apt-get update && sudo {command}"
        )
    try:
        if not _apt_updated:
            log("lab: apt-get update")
            subprocess.run(["apt-get", "update"], check=True, capture_output=True, text=True)
            _apt_updated = True
        log(f"lab: {command}")
        subprocess.run(
            ["apt-get", "install", "-y", *APT_PACKAGES],
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", "") or str(exc)
        raise LabError(f"Could not install the lab's build tools ({command}): {detail}") from exc


def _go_version() -> str:
    out = subprocess.run(["go", "version"], check=True, capture_output=True, text=True)
    return out.stdout.strip()


def _source_digest(go_version: str) -> str:
    digest = hashlib.sha256(go_version.encode())
    for path in sorted(LAB_SOURCE_DIR.glob("*.go")):
        digest.update(path.name.encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def ensure_built(log: Callable[[str], None] = _log_stderr) -> Path:
    """Return the path of the `clones-lab` binary, building it first if needed.

    The binary is cached under ``$XDG_CACHE_HOME/clones/lab-<hash>/clones-lab`` (hash of the Go
    sources and the Go version), so a second call returns at once. Builds go to a temporary file
    renamed into place, which is safe when two processes build at the same time.
    """
    with _build_lock:
        if shutil.which("go") is None or not GOVMOMI_SRC.is_dir():
            _install_toolchain(log)
        if shutil.which("go") is None or not GOVMOMI_SRC.is_dir():
            raise LabError(
                "Go or govmomi's source is still missing after installing; check "
                f"`apt-get install -y {' '.join(APT_PACKAGES)}`."
            )
        if not any(LAB_SOURCE_DIR.glob("*.go")):
            raise LabError(f"No lab sources (*.go) in {LAB_SOURCE_DIR}.")
        try:
            version = _go_version()
        except (OSError, subprocess.CalledProcessError) as exc:
            raise LabError(f"`go version` failed: {exc}") from exc
        target_dir = _cache_root() / f"lab-{_source_digest(version)}"
        binary = target_dir / "clones-lab"
        if binary.is_file() and os.access(binary, os.X_OK):
            return binary
        target_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=".clones-lab-", dir=target_dir)
        os.close(fd)
        tmp = Path(tmp_name)
        log(f"lab: building {binary} (about 30 s the first time)")
        try:
            result = subprocess.run(
                ["go", "build", "-o", str(tmp), "."],
                cwd=LAB_SOURCE_DIR,
                env=_go_env(),
                capture_output=True,
                text=True,
            )
            if result.returncode != 0:
                raise LabError(
                    f"Building the lab failed (go build in {LAB_SOURCE_DIR}):\n{result.stderr}"
                )
            tmp.chmod(0o755)
            os.replace(tmp, binary)
        finally:
            tmp.unlink(missing_ok=True)
        return binary


# ------------------------------------------------------------------------------------------------
# Spec validation (same rules as lab/spec.go)

_TOP_KEYS = {
    "datacenter",
    "clusters",
    "datastores",
    "folders",
    "parents",
    "clone_latency_ms",
    "destroy_latency_ms",
    "faults",
    "user",
    "password",
    "customization_specs",
    "customization_latency_ms",
    "privileges",
}
_NESTED_KEYS = {
    "clusters": {"name", "hosts"},
    "datastores": {"name", "capacity_gb", "free_gb"},
    "parents": {
        "name",
        "disk_gb",
        "used_gb",
        "delta_gb",
        "memory_mb",
        "num_cpus",
        "guest_id",
        "folder",
        "cluster",
        "datastore",
        "thin",
        "disk_mode",
    },
    "customization_specs": {"name", "kind", "description"},
}
_FAULT_KEYS = {
    "fail_nth",
    "fail_fraction",
    "fault",
    "seed",
    "full_copy_nth",
    "customization_fail_names",
    "customization_fail_nth",
}
CUSTOMIZATION_KINDS = ("sysprep", "linux")
PARENT_DISK_MODES = (
    "persistent",
    "nonpersistent",
    "undoable",
    "independent_persistent",
    "independent_nonpersistent",
    "append",
)


def _check_keys(where: str, data: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(k for k in data if k not in allowed and not k.startswith("_"))
    if unknown:
        raise LabError(
            f"{where}: unknown field {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})"
        )


def _number(where: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise LabError(f"{where}: must be a number, got {value!r}")
    return float(value)


def _integer(where: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise LabError(f"{where}: must be a whole number, got {value!r}")
    return value


def _name(where: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise LabError(f"{where}: must be a non-empty name")
    return value


def _list_of_objects(where: str, value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise LabError(f"{where}: must be a list of objects")
    return value


def _validate_faults(faults: Any, where: str = "faults") -> None:
    if not isinstance(faults, dict):
        raise LabError(f"{where}: must be an object")
    _check_keys(where, faults, _FAULT_KEYS)
    nth = faults.get("fail_nth", [])
    if not isinstance(nth, list):
        raise LabError(f"{where}.fail_nth: must be a list of call numbers (1-based)")
    for n in nth:
        if _integer(f"{where}.fail_nth", n) < 1:
            raise LabError(f"{where}.fail_nth: ordinals start at 1, got {n}")
    full = faults.get("full_copy_nth", [])
    if not isinstance(full, list):
        raise LabError(f"{where}.full_copy_nth: must be a list of call numbers (1-based)")
    for n in full:
        if _integer(f"{where}.full_copy_nth", n) < 1:
            raise LabError(f"{where}.full_copy_nth: ordinals start at 1, got {n}")
    cust_nth = faults.get("customization_fail_nth", [])
    if not isinstance(cust_nth, list):
        raise LabError(f"{where}.customization_fail_nth: must be a list of numbers (1-based)")
    for n in cust_nth:
        if _integer(f"{where}.customization_fail_nth", n) < 1:
            raise LabError(f"{where}.customization_fail_nth: ordinals start at 1, got {n}")
    fail_names = faults.get("customization_fail_names", [])
    if not isinstance(fail_names, list):
        raise LabError(f"{where}.customization_fail_names: must be a list of VM names")
    for i, n in enumerate(fail_names):
        _name(f"{where}.customization_fail_names[{i}]", n)
    fraction = _number(f"{where}.fail_fraction", faults.get("fail_fraction", 0.0))
    if not 0 <= fraction <= 1:
        raise LabError(f"{where}.fail_fraction: must be between 0 and 1, got {fraction}")
    fault = faults.get("fault", "FileLocked")
    if fault not in KNOWN_FAULTS:
        raise LabError(f"{where}.fault: unknown fault {fault!r} (known: {', '.join(KNOWN_FAULTS)})")
    _integer(f"{where}.seed", faults.get("seed", 1))


def _validate_privileges(value: Any, where: str = "privileges") -> None:
    """A list of vSphere privilege ids ("Group.Sub.Name"), or None for every privilege."""
    if value is None:
        return
    if not isinstance(value, list):
        raise LabError(f"{where}: must be a list of privilege ids, or null for all")
    for i, p in enumerate(value):
        if not isinstance(p, str) or "." not in p or any(c.isspace() for c in p):
            raise LabError(
                f"{where}[{i}]: {p!r} is not a privilege id "
                '(e.g. "VirtualMachine.Provisioning.Clone")'
            )


def validate_spec_data(spec: Any) -> dict[str, Any]:
    """Validate a spec already loaded as a dict; return it with defaults filled in."""
    if not isinstance(spec, dict):
        raise LabError("spec is not a JSON object")
    _check_keys("spec", spec, _TOP_KEYS)
    for key, allowed in _NESTED_KEYS.items():
        if key in spec:
            for i, item in enumerate(_list_of_objects(key, spec[key])):
                _check_keys(f"{key}[{i}]", item, allowed)
    out: dict[str, Any] = {
        "datacenter": "DC0",
        "clusters": [{"name": "Training", "hosts": 8}],
        "datastores": [{"name": "TrainingDS", "capacity_gb": 500, "free_gb": 480}],
        "folders": ["Parents", "Training"],
        "clone_latency_ms": 0,
        "destroy_latency_ms": 0,
        "user": "clones",
        "password": "lab-password",
        "customization_specs": [],
        "customization_latency_ms": 0,
    }
    out.update(copy.deepcopy(spec))
    out["faults"] = {
        "fail_nth": [],
        "fail_fraction": 0.0,
        "fault": "FileLocked",
        "seed": 1,
        "full_copy_nth": [],
        "customization_fail_names": [],
        "customization_fail_nth": [],
    }
    if "faults" in spec:
        _validate_faults(spec["faults"])
        out["faults"].update(spec["faults"])
    if "parents" not in spec:
        raise LabError('spec has no "parents": list at least one parent VM')
    _name("datacenter", out["datacenter"])
    _name("user", out["user"])
    _name("password", out["password"])

    clusters: set[str] = set()
    if not out["clusters"]:
        raise LabError("clusters: list at least one cluster")
    for i, c in enumerate(out["clusters"]):
        name = _name(f"clusters[{i}].name", c.get("name"))
        if name in clusters:
            raise LabError(f"clusters[{i}]: duplicate cluster name {name!r}")
        clusters.add(name)
        hosts = _integer(f"clusters[{i}] {name!r}: hosts", c.get("hosts"))
        if not 1 <= hosts <= 512:
            raise LabError(f"clusters[{i}] {name!r}: hosts must be between 1 and 512, got {hosts}")

    datastores: set[str] = set()
    if not out["datastores"]:
        raise LabError("datastores: list at least one datastore")
    for i, d in enumerate(out["datastores"]):
        name = _name(f"datastores[{i}].name", d.get("name"))
        if any(ch in name for ch in "[]/"):
            raise LabError(f"datastores[{i}]: name must contain no '[', ']' or '/'")
        if name in datastores:
            raise LabError(f"datastores[{i}]: duplicate datastore name {name!r}")
        datastores.add(name)
        cap = _number(f"datastores[{i}] {name!r}: capacity_gb", d.get("capacity_gb", 0))
        if cap <= 0:
            raise LabError(f"datastores[{i}] {name!r}: capacity_gb must be positive, got {cap}")
        free = _number(f"datastores[{i}] {name!r}: free_gb", d.get("free_gb", 0))
        if not 0 <= free <= cap:
            raise LabError(
                f"datastores[{i}] {name!r}: free_gb must be between 0 and capacity_gb, got {free}"
            )

    folders: set[str] = {""}
    if not isinstance(out["folders"], list):
        raise LabError("folders: must be a list of folder paths")
    for i, f in enumerate(out["folders"]):
        if (
            not isinstance(f, str)
            or not f.strip()
            or f.startswith("/")
            or f.endswith("/")
            or "//" in f
        ):
            raise LabError(
                f'folders[{i}]: {f!r} is not a folder path (use "Name" or "Parent/Child")'
            )
        if f in folders:
            raise LabError(f"folders[{i}]: duplicate folder {f!r}")
        folders.add(f)

    parents = _list_of_objects("parents", out["parents"])
    if not parents:
        raise LabError("parents: list at least one parent VM")
    names: set[str] = set()
    for i, p in enumerate(parents):
        name = _name(f"parents[{i}].name", p.get("name"))
        where = f"parents[{i}] {name!r}"
        if name in names:
            raise LabError(f"parents[{i}]: duplicate parent name {name!r}")
        names.add(name)
        disk = _number(f"{where}: disk_gb", p.get("disk_gb", 0))
        if disk <= 0:
            raise LabError(f"{where}: disk_gb must be positive, got {disk}")
        for key in ("used_gb", "delta_gb"):
            value = _number(f"{where}: {key}", p.get(key, 0))
            if not 0 <= value <= disk:
                raise LabError(f"{where}: {key} must be between 0 and disk_gb, got {value}")
        for key, default in (("memory_mb", 1024), ("num_cpus", 1)):
            if _integer(f"{where}: {key}", p.setdefault(key, default)) <= 0:
                raise LabError(f"{where}: {key} must be positive, got {p[key]}")
        if not isinstance(p.setdefault("thin", True), bool):
            raise LabError(f"{where}: thin must be true or false, got {p['thin']!r}")
        if p.setdefault("disk_mode", "persistent") not in PARENT_DISK_MODES:
            raise LabError(
                f"{where}: disk_mode {p['disk_mode']!r} is not a disk mode "
                f"(known: {', '.join(PARENT_DISK_MODES)})"
            )
        p.setdefault("guest_id", "windows9_64Guest")
        p.setdefault("folder", "")
        p.setdefault("cluster", out["clusters"][0]["name"])
        p.setdefault("datastore", out["datastores"][0]["name"])
        if p["folder"] not in folders:
            raise LabError(f'{where}: folder {p["folder"]!r} is not in "folders"')
        if p["cluster"] not in clusters:
            raise LabError(f'{where}: cluster {p["cluster"]!r} is not in "clusters"')
        if p["datastore"] not in datastores:
            raise LabError(f'{where}: datastore {p["datastore"]!r} is not in "datastores"')
    spec_names: set[str] = set()
    for i, c in enumerate(_list_of_objects("customization_specs", out["customization_specs"])):
        name = _name(f"customization_specs[{i}].name", c.get("name"))
        if name in spec_names:
            raise LabError(f"customization_specs[{i}]: duplicate name {name!r}")
        spec_names.add(name)
        kind = c.get("kind")
        if kind not in CUSTOMIZATION_KINDS:
            raise LabError(
                f"customization_specs[{i}] {name!r}: kind must be "
                f'"sysprep" or "linux", got {kind!r}'
            )
        if not isinstance(c.get("description", ""), str):
            raise LabError(f"customization_specs[{i}] {name!r}: description must be a string")
    for key in ("clone_latency_ms", "destroy_latency_ms", "customization_latency_ms"):
        if _integer(key, out[key]) < 0:
            raise LabError(f"{key}: must be 0 or more")
    _validate_privileges(out.get("privileges"))
    return out


def validate_spec(path: Path) -> dict[str, Any]:
    """Load and validate a spec file; return it with defaults filled in (LabError if malformed)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise LabError(f"Cannot read lab spec {path}: {exc.strerror or exc}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LabError(f"Lab spec {path} is not valid JSON: {exc}") from exc
    try:
        return validate_spec_data(data)
    except LabError as exc:
        raise LabError(f"Invalid lab spec {path}: {exc}") from exc


def deep_merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Return `base` with `overrides` merged in (dicts merge recursively, other values replace)."""
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


# ------------------------------------------------------------------------------------------------
# Control API client


class LabControl:
    """Client for a lab's JSON control endpoints under /lab."""

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
        """Change clone_latency_ms, destroy_latency_ms, customization_latency_ms, faults
        (partial dict) and/or privileges (a list, or None for all) at runtime."""
        if "faults" in kwargs:
            _validate_faults(kwargs["faults"])
        if "privileges" in kwargs:
            _validate_privileges(kwargs["privileges"])
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


# ------------------------------------------------------------------------------------------------
# Running a lab


def _spec_file(spec: Path | dict[str, Any] | None, tmp_dir: Path) -> Path:
    if spec is None:
        return DEFAULT_SPEC
    if isinstance(spec, dict):
        validate_spec_data(spec)
        path = tmp_dir / "spec.json"
        path.write_text(json.dumps(spec, indent=2), encoding="utf-8")
        return path
    validate_spec(Path(spec))
    return Path(spec)


class LabProcess:
    """A lab running as a child process of this one (tests use this)."""

    def __init__(self, process: subprocess.Popen[str], info: LabInfo, tmp_dir: Path) -> None:
        self.process = process
        self.info = info
        self.control = LabControl(info.control)
        self._tmp_dir = tmp_dir

    @classmethod
    def start(cls, spec: Path | dict[str, Any] | None = None, port: int = 0) -> LabProcess:
        """Start a lab on 127.0.0.1:`port` (0: a free port) and wait until it serves."""
        binary = ensure_built()
        tmp_dir = Path(tempfile.mkdtemp(prefix="clones-lab-run-"))
        try:
            spec_path = _spec_file(spec, tmp_dir)
            process = subprocess.Popen(
                [str(binary), "--spec", str(spec_path), "--listen", f"127.0.0.1:{port}"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        except BaseException:
            shutil.rmtree(tmp_dir, ignore_errors=True)
            raise
        try:
            info = _read_start_line(process)
        except BaseException:
            process.kill()
            process.wait()
            shutil.rmtree(tmp_dir, ignore_errors=True)
            raise
        return cls(process, info, tmp_dir)

    @classmethod
    def start_plain(
        cls,
        cert_file: Path,
        key_file: Path,
        *,
        user: str = "clones",
        password: str = "lab-password",
        port: int = 0,
    ) -> LabProcess:
        """Start VMware's simulator as shipped (`clones-lab --plain`): the default vcsim
        inventory, none of the lab's fixes, over HTTPS with this certificate and key (PEM),
        accepting one user and password. It has no /lab control API (`control` is empty)."""
        binary = ensure_built()
        tmp_dir = Path(tempfile.mkdtemp(prefix="clones-lab-run-"))
        command = [
            str(binary),
            "--plain",
            "--tls-cert",
            str(cert_file),
            "--tls-key",
            str(key_file),
            "--user",
            user,
            "--password",
            password,
            "--listen",
            f"127.0.0.1:{port}",
        ]
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            info = _read_start_line(process)
        except BaseException:
            process.kill()
            process.wait()
            shutil.rmtree(tmp_dir, ignore_errors=True)
            raise
        return cls(process, info, tmp_dir)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()
        shutil.rmtree(self._tmp_dir, ignore_errors=True)

    def __enter__(self) -> LabProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _read_start_line(process: subprocess.Popen[str]) -> LabInfo:
    stdout, stderr = process.stdout, process.stderr
    assert stdout is not None and stderr is not None
    result: list[str] = []
    reader = threading.Thread(target=lambda: result.append(stdout.readline()), daemon=True)
    reader.start()
    reader.join(START_TIMEOUT)
    line = result[0] if result else ""
    if not line:
        if process.poll() is None:
            process.kill()
        err = stderr.read().strip() or f"no start-up line within {START_TIMEOUT:.0f} s"
        raise LabError(f"The lab did not start: {err}")
    info = LabInfo.from_json(json.loads(line))
    if not _wait_serving(info, START_TIMEOUT):
        raise LabError(f"The lab at {info.url} started but does not answer.")
    return info


def _wait_serving(info: LabInfo, timeout: float) -> bool:
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


def _state_dir(state_dir: Path | None) -> Path:
    if state_dir is not None:
        return Path(state_dir)
    # One lab per user, whatever the current directory: `clones lab down` run anywhere stops
    # the lab `clones lab up` started elsewhere, and url = "lab" always finds it.
    if os.environ.get("CLONES_LAB_DIR"):
        return Path(os.environ["CLONES_LAB_DIR"])
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "clones" / "lab"


def running_lab(state_dir: Path | None = None) -> LabInfo | None:
    """The lab started by `lab_up` in `state_dir` if it is alive and answering, else None."""
    state = _state_dir(state_dir) / "lab.json"
    try:
        info = LabInfo.from_json(json.loads(state.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError):
        return None
    if not pid_alive(info.pid) or not LabControl(info.control, timeout=2.0).ping():
        return None
    return info


DEFAULT_PORT = 8989


def lab_up(
    spec: Path | None = None,
    port: int | None = None,
    state_dir: Path | None = None,
    *,
    restart: bool = False,
) -> LabInfo:
    """Start a lab in the background (detached), or return the one already running.

    A running lab started with another spec, or on another port than one asked for, is never
    silently kept: that is an error saying so, unless `restart` (then it is stopped first).
    State goes to `state_dir` (default $CLONES_LAB_DIR, else ~/.local/state/clones/lab):
    lab.json (url, user, password, control, pid, spec) and lab.log.
    """
    directory = _state_dir(state_dir)
    spec_path = Path(spec).resolve() if spec is not None else DEFAULT_SPEC
    existing = running_lab(directory)
    if existing is not None:
        differs = []
        if Path(existing.spec) != spec_path:
            differs.append(f"spec {existing.spec}, not {spec_path}")
        if port is not None and port != existing.port:
            differs.append(f"port {existing.port}, not {port}")
        if not differs:
            return existing
        if not restart:
            raise LabError(
                f"A lab vCenter is already running at {existing.url} with "
                + " and ".join(differs)
                + ". Stop it first (`clones lab down`), or add --restart to replace it."
            )
        lab_down(directory)
    port = DEFAULT_PORT if port is None else port
    validate_spec(spec_path)
    binary = ensure_built()
    directory.mkdir(parents=True, exist_ok=True)
    state = directory / "lab.json"
    state.unlink(missing_ok=True)
    log_path = directory / "lab.log"
    with open(log_path, "ab") as log, open(os.devnull, "rb") as devnull:
        process = subprocess.Popen(
            [
                str(binary),
                "--spec",
                str(spec_path),
                "--listen",
                f"127.0.0.1:{port}",
                "--state-file",
                str(state),
            ],
            stdin=devnull,
            stdout=log,
            stderr=log,
            start_new_session=True,
            close_fds=True,
        )
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
            reason = tail[-1] if tail else f"exit status {process.returncode}"
            raise LabError(f"The lab did not start: {reason} (log: {log_path})")
        if state.is_file():
            with contextlib.suppress(ValueError, KeyError, OSError):
                info = LabInfo.from_json(json.loads(state.read_text(encoding="utf-8")))
                if _wait_serving(info, max(0.5, deadline - time.monotonic())):
                    return info
        time.sleep(0.1)
    process.terminate()
    raise LabError(f"The lab did not answer within {START_TIMEOUT:.0f} s (log: {log_path}).")


def lab_down(state_dir: Path | None = None) -> bool:
    """Stop the lab started by `lab_up`; False if none was running."""
    directory = _state_dir(state_dir)
    state = directory / "lab.json"
    try:
        info = LabInfo.from_json(json.loads(state.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError):
        return False
    was_running = pid_alive(info.pid)
    if was_running:
        with contextlib.suppress(ProcessLookupError):
            os.kill(info.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while pid_alive(info.pid) and time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(info.pid, os.WNOHANG)
            time.sleep(0.05)
        if pid_alive(info.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(info.pid, signal.SIGKILL)
    state.unlink(missing_ok=True)
    return was_running


@contextlib.contextmanager
def running(spec: Path | dict[str, Any] | None = None) -> Iterator[LabProcess]:
    """Context manager: a LabProcess on a free port, stopped on exit."""
    lab = LabProcess.start(spec)
    try:
        yield lab
    finally:
        lab.stop()
