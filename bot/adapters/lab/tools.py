"""The `Lab` port over the launcher: `clones lab up|down|status|build`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bot.adapters.lab import launcher
from bot.domain.lab import LabEndpoint


def _endpoint(info: launcher.LabInfo) -> LabEndpoint:
    return LabEndpoint(info.url, info.user, info.password, info.control, info.pid, info.spec)


class LabTools:
    """Builds, starts and stops the user's lab vCenter (state in $CLONES_LAB_DIR)."""

    def build(self, log: Callable[[str], None]) -> Path:
        return launcher.ensure_built(log=log)

    def up(self, spec: Path | None, port: int | None, *, restart: bool) -> LabEndpoint:
        return _endpoint(launcher.lab_up(spec=spec, port=port, restart=restart))

    def down(self) -> bool:
        return launcher.lab_down()

    def running(self) -> LabEndpoint | None:
        info = launcher.running_lab()
        return _endpoint(info) if info is not None else None
