"""Fixtures of the unit tier: the services over the in-memory vCenter and a SQLite file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.services.admin import Admin
from bot.services.container import Services
from bot.services.recovery import Recovery
from bot.services.usecases import UseCases
from bot.settings import settings_from_dict
from storage import Repository
from tests.fakes import FakeVCenter
from tests.helpers import lab_config


@pytest.fixture
def vcenter() -> FakeVCenter:
    return FakeVCenter()


@pytest.fixture
def make_services(tmp_path: Path, vcenter: FakeVCenter) -> Iterator[Any]:
    """Factory: `Services` over `vcenter` and a fresh SQLite file (settings may be overridden
    as for the lab: `make_services(concurrency=2)`; the [trainees] table: `trainees={...}`)."""
    made: list[Services] = []

    def make(*, trainees: dict[str, Any] | None = None, **overrides: Any) -> Services:
        database = tmp_path / f"unit-{len(made)}.db"
        raw = lab_config(None, database, **overrides)
        if trainees is not None:
            raw["trainees"] = trainees
        settings = settings_from_dict(raw, env={"CLONES_VCENTER_PASSWORD": "x"})
        repo = Repository(database)
        service = UseCases(settings, repo, vcenter)
        services = Services(
            settings, repo, vcenter, service, Admin(service), Recovery.over(service)
        )
        made.append(services)
        return services

    yield make
    for s in made:
        s.close()


@pytest.fixture
def services(make_services: Any) -> Services:
    s: Services = make_services()
    return s
