"""The one place that wires settings, storage, the vCenter adapter and the service layer."""

from __future__ import annotations

from dataclasses import dataclass, replace

from bot.adapters.scheduler import Scheduler, lock_path_for
from bot.adapters.vcenter.client import VCenter
from bot.domain.timeparse import zone_of
from bot.ports import Clock, Notifier
from bot.services.admin import Admin
from bot.services.core import Service
from bot.services.recovery import Recovery
from bot.services.schedules import ScheduleService
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
    return App(settings, repo, vcenter, service, Admin(service), Recovery.over(service))


def scheduler(settings: Settings) -> Scheduler:
    """APScheduler in the team's zone, with the database's single-scheduler lock (not started)."""
    return Scheduler(lock_path_for(settings.database), timezone=zone_of(settings.timezone))


def schedule_service(
    app: App, *, notifier: Notifier | None = None, clock: Clock | None = None
) -> ScheduleService:
    """The schedule service of `app` on the scheduler adapter. Not started: the bot starts it
    (holding the scheduler or standing by); the terminal only records times in SQLite."""
    return ScheduleService(
        app.settings, app.repo, app.service, scheduler(app.settings), notifier=notifier, clock=clock
    )
