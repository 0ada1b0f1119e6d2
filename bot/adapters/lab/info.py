"""What the lab layers share: the error they raise and how to reach a running lab."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

from bot.domain.errors import ConfigError


class LabError(ConfigError):
    """The lab could not be built, started, reached, or its spec is malformed."""


@dataclass(frozen=True)
class LabInfo:
    """How to reach a running lab (the JSON line `clones-lab` prints on start)."""

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
