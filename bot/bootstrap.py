"""The one place that wires settings, storage, the vCenter adapter and the service layer."""

from __future__ import annotations

from dataclasses import dataclass, replace

from bot.adapters.vcenter.client import VCenter
from bot.services.admin import Admin
from bot.services.core import Service
from bot.services.recovery import Recovery
from bot.settings import Settings, VCenterSettings, load_settings
from storage import Repository


@dataclass
class App:
    settings: Settings
    repo: Repository
    vcenter: VCenter
    service: Service
    admin: Admin
    recovery: Recovery

    def close(self) -> None:
        self.vcenter.close()
        self.repo.close()


def resolve_vcenter(settings: VCenterSettings, *, start_lab: bool = True) -> VCenterSettings:
    """For `url = "lab"`, connect to the bundled lab vCenter (starting it when asked)."""
    if not settings.is_lab:
        return settings
    from bot.adapters.lab import launcher as lab

    info = lab.running_lab()
    if info is None:
        if not start_lab:
            from bot.domain.errors import VCenterUnreachable

            raise VCenterUnreachable(
                "The lab vCenter is not running; start it with `clones lab up`."
            )
        info = lab.lab_up()
    return replace(settings, url=info.url, user=info.user, password=info.password, insecure=True)


def build(settings: Settings | None = None, *, start_lab: bool = True) -> App:
    settings = settings or load_settings()
    vc_settings = resolve_vcenter(settings.vcenter, start_lab=start_lab)
    settings = replace(settings, vcenter=vc_settings)
    settings.database.parent.mkdir(parents=True, exist_ok=True)
    repo = Repository(settings.database)
    vcenter = VCenter(settings.vcenter)
    service = Service(settings, repo, vcenter)
    return App(settings, repo, vcenter, service, Admin(service), Recovery(service))
