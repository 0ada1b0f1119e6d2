"""The one place that wires settings, storage, the vCenter adapter and the service layer.

Adapters are imported when they are first needed, not when this module is: pyVmomi, APScheduler
and matplotlib together take most of a second to import, and `clones help` or `clones status`
need none of them (docs/performance.md, "Cold start"). The vCenter adapter is built on its first
use (`lazily`), the chart on its first render, the scheduler when the schedule service is
made.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from bot.adapters.chart import MatplotlibChart
    from bot.adapters.scheduler.jobs import Scheduler
    from bot.adapters.vcenter.client import VCenter as VCenterAdapter
    from bot.ports import Clock, Lab, Leases, Notifier, Trust, VCenter
    from bot.services.container import Services
    from bot.services.container import Services as App  # the wired application
    from bot.services.leadership import Leadership
    from bot.services.schedules import ScheduleService
    from bot.settings import Settings, VCenterSettings

T = TypeVar("T")


def __getattr__(name: str) -> Any:
    """`App`, the wired application every front end holds (`Services`), imported on use."""
    if name == "App":
        from bot.services.container import Services

        return Services
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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


class _Lazy(Generic[T]):
    """An adapter made by `make` on its first use: every attribute is the adapter's (`known`
    ones are answered without making it), and `close` closes it only if it was ever made."""

    def __init__(self, make: Callable[[], T], **known: object) -> None:
        self._make = make
        self._known = known
        self._real: T | None = None
        self._lock = threading.Lock()
        # Told how long each call took (method name, seconds): the bot's /metrics.
        self.observe: Callable[[str, float], None] | None = None

    def _made(self) -> T:
        with self._lock:
            if self._real is None:
                self._real = self._make()
            return self._real

    def __getattr__(self, name: str) -> Any:
        if name in self._known:
            return self._known[name]
        value = getattr(self._made(), name)
        observe = self.observe
        if observe is None or not callable(value) or name.startswith("_"):
            return value

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.monotonic()
            try:
                return value(*args, **kwargs)
            finally:
                observe(name, time.monotonic() - started)

        return timed

    def close(self) -> None:
        with self._lock:
            real = self._real
        close = getattr(real, "close", None)
        if close is not None:
            close()


def lazily(make: Callable[[], T], **known: object) -> T:
    """`make()`'s adapter, made on its first use (see `_Lazy`), typed as what `make` returns.

    The type is the adapter's own, never a port's: where the result is handed on as a port
    (`vcenter_for` returns `VCenter`, `build` passes the scheduler to `ScheduleService`), mypy
    checks the adapter class against that port, so an adapter missing a port's method fails
    `mypy` here (docs/architecture.md, "What mypy checks").
    """
    proxy: Any = _Lazy(make, **known)  # stands in for a T: every attribute is the T's
    return proxy


def vcenter_for(settings: VCenterSettings) -> VCenter:
    """The vCenter port over `settings`: the adapter (`bot.adapters.vcenter.client.VCenter`,
    checked against the port by mypy here), built on first use: a command that never talks to
    vCenter never imports pyVmomi."""

    def adapter() -> VCenterAdapter:
        from bot.adapters.vcenter.client import VCenter as Adapter

        return Adapter(settings)

    return lazily(adapter)


def _chart() -> MatplotlibChart:
    """The savings chart (matplotlib), imported on the first render."""
    from bot.adapters.chart import MatplotlibChart

    return MatplotlibChart()


def build(settings: Settings | None = None, *, start_lab: bool = True) -> Services:
    """The services for `settings`: SQLite, the vCenter adapter, the chart, and the schedule
    service (recording times; the Slack bot replaces it with one that runs the scheduler)."""
    from bot.host import say_on_bus_error
    from bot.services.admin import Admin
    from bot.services.container import Services
    from bot.services.limits import OpLimits
    from bot.services.recovery import Recovery
    from bot.services.schedules import ScheduleService
    from bot.services.usecases import UseCases
    from bot.settings import load_settings
    from storage import Repository
    from storage.copy import DatabaseCopier

    settings = settings or load_settings()
    vc_settings = resolve_vcenter(settings.vcenter, start_lab=start_lab)
    settings = replace(settings, vcenter=vc_settings)
    if isinstance(settings.database, Path):  # a SQLite file maps its WAL index (-shm)
        say_on_bus_error(
            f"clones: The database {settings.database} has become read-only or failed while in "
            f"use: the system stopped clones with a bus error (SIGBUS) when it wrote "
            f"{settings.database.name}-shm (the file was made immutable, or its filesystem was "
            "remounted read-only, often after a disk error). What was done so far is recorded: "
            "make it writable again, then run the command again (`clones resume` finishes a run "
            "that stopped)."
        )
    # A SQLite file (its folder made; StorageError when it cannot), or a PostgreSQL database
    # whose password is read from the environment variable the settings name.
    repo = Repository(settings.database, password_env=settings.database_password_env)
    vcenter = vcenter_for(settings.vcenter)
    # One limiter for every run of the process (typed, scheduled, resumed; deploys, strip backs,
    # power, refresh, bring-up): `concurrency` and the per-host and per-datastore limits are
    # vCenter's, whoever asks.
    service = UseCases(settings, repo, vcenter, limits=OpLimits.of(settings))
    services = Services(
        settings,
        repo,
        vcenter,
        service,
        Admin(service),
        Recovery.over(service),
        chart=lazily(_chart),
    )
    # Recording times only (the terminal): APScheduler is imported if the scheduler is ever used.
    services.schedules = ScheduleService(
        settings, repo, service, _recording_scheduler(settings, repo)
    )
    services.schedule_factory = lambda notifier, clock: schedule_service(
        services, notifier=notifier, clock=clock
    )
    services.databases = DatabaseCopier(password_env=settings.database_password_env)
    connect_people(services)
    return services


def _recording_scheduler(settings: Settings, repo: Leases) -> Scheduler:
    """The scheduler adapter with its leadership made now and APScheduler imported on first use
    (the terminal's schedule service records times and never starts it)."""
    lock = leadership(settings, repo)

    def adapter() -> Scheduler:
        from bot.adapters.scheduler.jobs import Scheduler
        from bot.domain.timeparse import zone_of

        return Scheduler(lock, timezone=zone_of(settings.timezone))

    return lazily(adapter, lock=lock)


def leadership(settings: Settings, repo: Leases) -> Leadership:
    """Who leads (runs the schedules and the start-up recovery) for this database: its lease."""
    from bot.services.leadership import Leadership

    return Leadership(repo, lease_s=settings.lease_s)


def connect_people(app: App, environ: Mapping[str, str] | None = None) -> None:
    """Trainees are looked up and messaged in Slack with the bot's token when it is set here
    (the terminal's `assign`, a strip back's "your VM was removed"); otherwise the services say
    so. The Slack bot connects its own client in its place (`handlers.app.create_bot`)."""
    from bot.services.access import AccessPolicy

    env = os.environ if environ is None else environ
    slack = app.settings.slack
    token = env.get(slack.bot_token_env, "").strip()
    trainees = app.use_cases.trainees
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


def scheduler(settings: Settings, repo: Leases) -> Scheduler:
    """APScheduler in the team's zone, with the database's leadership (not started)."""
    from bot.adapters.scheduler.jobs import Scheduler
    from bot.domain.timeparse import zone_of

    return Scheduler(leadership(settings, repo), timezone=zone_of(settings.timezone))


def schedule_service(
    app: App, *, notifier: Notifier | None = None, clock: Clock | None = None
) -> ScheduleService:
    """The schedule service of `app` on the scheduler adapter. Not started: the bot starts it
    (holding the scheduler or standing by); the terminal only records times in SQLite."""
    from bot.services.schedules import ScheduleService

    return ScheduleService(
        app.settings,
        app.repo,
        app.use_cases,
        scheduler(app.settings, app.repo),
        notifier=notifier,
        clock=clock,
    )


class _TerminalWiring:
    """What the terminal front end is handed: the services, the lab and the certificate tools
    (each made when the command needs it)."""

    @property
    def lab(self) -> Lab:
        from bot.adapters.lab.tools import LabTools

        return LabTools()

    @property
    def trust(self) -> Trust:
        from bot.adapters.vcenter.trust import TlsTrust

        return TlsTrust()

    def build(self, settings: Settings) -> Services:
        return build(settings)


def cli(argv: Sequence[str] | None = None) -> int:
    """The `clones` console script (`argv` None: the process's own arguments)."""
    from bot.cli.main import main as cli_main
    from bot.host import watch_bus_errors

    if argv is None:  # the console script: a process of its own
        watch_bus_errors(code=1)
    try:
        return cli_main(argv, _TerminalWiring())
    finally:
        if argv is None:
            # The process ends now, its report written: a late Ctrl-C or SIGTERM must not kill
            # it (Python restores the default action of a handled signal as it exits).
            import signal

            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)


def slack(environ: Mapping[str, str] | None = None) -> int:
    """`python -m bot`: the Slack bot (Socket Mode or HTTP, see handlers.app)."""
    from bot.host import limit_malloc_arenas, watch_bus_errors
    from handlers.app import main as slack_main

    watch_bus_errors(code=2)
    limit_malloc_arenas()  # a long-running process of many threads: see bot/host.py
    return slack_main(build, environ)
