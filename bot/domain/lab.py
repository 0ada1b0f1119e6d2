"""The bundled lab vCenter as the terminal shows it: where it runs and how to log in (a lab-only
password; the lab is for demos and tests, never a real estate)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LabEndpoint:
    """A running lab vCenter."""

    url: str
    user: str
    password: str
    control: str  # its control API (`/lab/...`), see docs/lab-spec.md
    pid: int
    spec: str
