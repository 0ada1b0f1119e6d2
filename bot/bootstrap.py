"""The one place that wires settings, storage, the vCenter adapter and the service layer."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import replace

from bot.adapters.chart import MatplotlibChart
from bot.adapters.lab.tools import LabTools
from bot.adapters.scheduler import Scheduler, lock_path_for
from bot.adapters.vcenter.client import VCenter
from bot.adapters.vcenter.trust import TlsTrust
from bot.cli.main import main as cli_main
from bot.domain.timeparse import zone_of
from bot.ports import Clock, Lab, Notifier, Trust
from bot.services.access import AccessPolicy
from bot.services.admin import Admin
from bot.services.container import Services
from bot.services.core import Service
from bot.services.recovery import Recovery
from bot.services.schedules import ScheduleService
from bot.settings import Settings, VCenterSettings, load_settings
from storage import Repository

App = Services  # the wired application: what every front end holds


def resolve_vcenter(settings: VCenterSettings, *, start_lab: bool = True) -> VCenterSettings:
    """For `url = "lab"`, connect to the bundled lab vCenter (starting it when asked)."""
    if not settings.is_lab:
        return settings
    from bot.adapters import lab

    info = lab.running_lab()
    if info is None:
        if not start_lab:
            from bot.domain.errors import VCenterUnreachable

            raise VCenterUnreachable(
                "The lab vCenter is not running; start it with `clones lab up`."
            )
        info = lab.lab_up()
    return replace(settings, url=info.url, user=info.user, password=info.password, insecure=True)


def build(settings: Settings | None = None, *, start_lab: bool = True) -> Services:
    """The services for `settings`: SQLite, the vCenter adapter, the chart, and the schedule
    service (recording times; the Slack bot replaces it with one that runs the scheduler)."""
    settings = settings or load_settings()
    vc_settings = resolve_vcenter(settings.vcenter, start_lab=start_lab)
    settings = replace(settings, vcenter=vc_settings)
    settings.database.parent.mkdir(parents=True, exist_ok=True)
    repo = Repository(settings.database)
    vcenter = VCenter(settings.vcenter)
    service = Service(settings, repo, vcenter)
    services = Services(
        settings,
        repo,
        vcenter,
        service,
        Admin(service),
        Recovery.over(service),
        chart=MatplotlibChart(),
    )
    services.schedules = schedule_service(services)
    services.schedule_factory = lambda notifier, clock: schedule_service(
        services, notifier=notifier, clock=clock
    )
    connect_people(services)
    return services


def connect_people(app: App, environ: Mapping[str, str] | None = None) -> None:
    """Trainees are looked up and messaged in Slack with the bot's token when it is set here
    (the terminal's `assign`, a strip back's "your VM was removed"); otherwise the services say
    so. The Slack bot connects its own client in its place (`handlers.app.create_bot`)."""
    env = os.environ if environ is None else environ
    slack = app.settings.slack
    token = env.get(slack.bot_token_env, "").strip()
    trainees = app.service.trainees
    if not token:
        trainees.connect(
            None,
            None,
            staff=AccessPolicy(slack).is_operator,
            missing=f"{slack.bot_token_env} is not set (the bot's token, xoxb-...): set it "
            "here as where the bot runs, so trainees can be looked up and messaged",
        )
        return
    from handlers.people import SlackPeople
    from handlers.webapi import make_client

    people = SlackPeople(
        make_client(slack, token), interval_s=app.settings.trainees.message_interval_s
    )
    trainees.connect(people, people, staff=AccessPolicy(slack, people.group_members).is_operator)


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


class _TerminalWiring:
    """What the terminal front end is handed: the services, the lab and the certificate tools."""

    def __init__(self) -> None:
        self.lab: Lab = LabTools()
        self.trust: Trust = TlsTrust()

    def build(self, settings: Settings) -> Services:
        return build(settings)


def cli(argv: Sequence[str] | None = None) -> int:
    """The `clones` console script."""
    return cli_main(argv, _TerminalWiring())


def slack(environ: Mapping[str, str] | None = None) -> int:
    """`python -m bot`: the Slack bot (Socket Mode or HTTP, see handlers.app)."""
    from handlers.app import main as slack_main

    return slack_main(build, environ)
