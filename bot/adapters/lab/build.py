"""Building the `clones-lab` binary: the Go toolchain (installed with apt-get when missing and run
as root), `go build` against Debian's govmomi, and the cache of built binaries."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from bot.adapters.lab.info import LabError


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


def log_stderr(message: str) -> None:
    print(message, file=sys.stderr)


def cache_root() -> Path:
    """Where built binaries (lab-<hash>/) and the Go build cache (go-build/) live."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "clones"


def _go_env() -> dict[str, str]:
    env = dict(os.environ)
    env["GOPATH"] = str(GOPATH)
    env["GO111MODULE"] = "off"
    env.setdefault("GOCACHE", str(cache_root() / "go-build"))
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


def go_sources() -> list[Path]:
    """The Go files the binary is built from (the lab's own tests, *_test.go, are not)."""
    return sorted(p for p in LAB_SOURCE_DIR.glob("*.go") if not p.name.endswith("_test.go"))


def _source_digest(go_version: str) -> str:
    digest = hashlib.sha256(go_version.encode())
    for path in go_sources():
        digest.update(path.name.encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _ensure_toolchain(log: Callable[[str], None]) -> None:
    if shutil.which("go") is None or not GOVMOMI_SRC.is_dir():
        _install_toolchain(log)
    if shutil.which("go") is None or not GOVMOMI_SRC.is_dir():
        raise LabError(
            "Go or govmomi's source is still missing after installing; check "
            f"`apt-get install -y {' '.join(APT_PACKAGES)}`."
        )


def ensure_built(log: Callable[[str], None] = log_stderr) -> Path:
    """Return the path of the `clones-lab` binary, building it first if needed.

    The binary is cached under ``$XDG_CACHE_HOME/clones/lab-<hash>/clones-lab`` (hash of the Go
    sources and the Go version), so a second call returns at once. Builds go to a temporary file
    renamed into place, which is safe when two processes build at the same time.
    """
    with _build_lock:
        _ensure_toolchain(log)
        if not go_sources():
            raise LabError(f"No lab sources (*.go) in {LAB_SOURCE_DIR}.")
        try:
            version = _go_version()
        except (OSError, subprocess.CalledProcessError) as exc:
            raise LabError(f"`go version` failed: {exc}") from exc
        target_dir = cache_root() / f"lab-{_source_digest(version)}"
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
