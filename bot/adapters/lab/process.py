"""A lab running as a child process of this one, on a free port (tests use this)."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import tempfile
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

from bot.adapters.lab.build import DEFAULT_SPEC, ensure_built
from bot.adapters.lab.control import START_TIMEOUT, LabControl, wait_serving
from bot.adapters.lab.info import LabError, LabInfo
from bot.adapters.lab.spec import validate_spec, validate_spec_data


def _spec_file(spec: Path | dict[str, Any] | None, tmp_dir: Path) -> Path:
    """The spec file to start with, checked by the binary first (LabError if malformed)."""
    if spec is None:
        return DEFAULT_SPEC
    if not isinstance(spec, dict):
        validate_spec(Path(spec))
        return Path(spec)
    validate_spec_data(spec)
    path = tmp_dir / "spec.json"
    path.write_text(json.dumps(spec, indent=2), encoding="utf-8")
    return path


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
        except BaseException:
            shutil.rmtree(tmp_dir, ignore_errors=True)
            raise
        command = [str(binary), "--spec", str(spec_path), "--listen", f"127.0.0.1:{port}"]
        return cls._run(command, tmp_dir)

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
        return cls._run(command, tmp_dir)

    @classmethod
    def _run(cls, command: list[str], tmp_dir: Path) -> LabProcess:
        """Start the binary and wait for its start-up line and for it to serve."""
        try:
            process = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
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
    if not wait_serving(info, START_TIMEOUT):
        raise LabError(f"The lab at {info.url} started but does not answer.")
    return info
