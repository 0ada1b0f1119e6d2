"""What the terminal is handed by `bot.bootstrap` (the composition root): how to build the
services for a configuration, and the lab and certificate tools. The terminal imports no
adapter and no storage; it reaches them only through this."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from bot.ports import Lab, Trust
    from bot.services.container import Services
    from bot.settings import Settings


class Wiring(Protocol):
    @property
    def lab(self) -> Lab: ...

    @property
    def trust(self) -> Trust: ...

    def build(self, settings: Settings) -> Services:
        """The services for `settings` (starting the lab vCenter when url = "lab")."""
        ...
