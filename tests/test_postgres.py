"""What is PostgreSQL's own in the storage layer, against the session's real server: a server
that restarts or goes away, the pool's bound, byte order whatever the database's locale, and the
bot's commands on a PostgreSQL database that cannot be reached. (Everything the two backends
share is tested on both by tests/test_storage.py and the others marked BOTH_BACKENDS.)"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

import storage.postgres
from bot.domain.errors import StorageError
from bot.domain.models import RunKind
from storage import Repository
from tests.postgres import PostgresServer
from tests.rawdb import raw
from tests.terminal import Terminal, assert_clean_failure


@pytest.fixture
def url(postgres_server: PostgresServer) -> Iterator[str]:
    made = postgres_server.new_database()
    yield made
    postgres_server.drop_database(made)


def test_a_server_restart_between_statements_costs_no_error(
    postgres_server: PostgresServer, url: str
) -> None:
    with Repository(url) as repo:
        repo.ensure_environment("nov", owner="U1")
        postgres_server.pg_ctl("stop")  # every pooled connection is cut
        postgres_server.pg_ctl("start")
        assert [e.name for e in repo.list_environments()] == ["nov"]  # a read first
        postgres_server.pg_ctl("stop")
        postgres_server.pg_ctl("start")
        repo.ensure_environment("dec", owner="U1")  # a write transaction first
        assert len(repo.list_environments()) == 2
        run = repo.start_run(environment="dec", kind=RunKind.DEPLOY, requested_by="U1", requested=1)
        postgres_server.pg_ctl("stop")
        postgres_server.pg_ctl("start")
        assert repo.heartbeat(run.id, run.owner)  # a one-statement write first (a pipeline)


def test_a_server_gone_mid_run_is_one_sentence_and_the_run_stays_recorded(
    postgres_server: PostgresServer, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(storage.postgres, "TIMEOUT_S", 2.0)
    with Repository(url) as repo:
        repo.ensure_environment("nov", owner="U1")
        run = repo.start_run(environment="nov", kind=RunKind.DEPLOY, requested_by="U1", requested=2)
        postgres_server.pg_ctl("stop")
        try:
            with pytest.raises(StorageError) as caught:
                repo.heartbeat(run.id)
        finally:
            postgres_server.pg_ctl("start")
        message = str(caught.value)
        assert "\n" not in message and message.startswith(f"The database {url} ")
        assert "could not be reached" in message or "cannot be reached" in message
        assert "clones resume" in message
        assert repo.get_run(run.id).state.value == "running"  # resumable, as it was


def test_the_pool_stays_small_under_many_threads(url: str) -> None:
    with Repository(url) as repo:
        repo.ensure_environment("nov", owner="U1")
        start = threading.Barrier(30)
        errors: list[BaseException] = []

        def work(n: int) -> None:
            try:
                start.wait()
                for i in range(10):
                    repo.audit(actor=f"U{n}", source="cli", command=f"c{i}", result="ok")
                    repo.list_environments()
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(30)]
        for t in threads:
            t.start()
        peak = 0
        while any(t.is_alive() for t in threads):
            (row,) = raw(
                url,
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'clones'"
                " AND datname = current_database()",
            )
            peak = max(peak, int(str(row[0])))
        for t in threads:
            t.join()
        assert not errors
        assert len(repo.audit_entries(limit=1000)) == 300
        assert 1 <= peak <= storage.postgres.POOL_SIZE


def test_names_sort_byte_by_byte_as_on_sqlite_whatever_the_locale(
    postgres_server: PostgresServer,
) -> None:
    # A database made with a natural-language collation (ICU en-US) sorts "TRN-b" before
    # "TRN-C"; the bot's text columns are in byte order, as SQLite's are.
    postgres_server.admin(
        "CREATE DATABASE english OWNER clones TEMPLATE template0"
        " LOCALE_PROVIDER icu ICU_LOCALE 'en-US'"
    )
    english = postgres_server.url("english")
    try:
        with Repository(english) as repo:
            for env in ("b-env", "C-env", "a-env"):
                repo.ensure_environment(env, owner="U1")
            for env, pattern in (
                ("b-env", "TRN-b{n}"),
                ("C-env", "TRN-C{n}"),
                ("a-env", "trn-a{n}"),
            ):
                repo.reserve_clones(environment=env, type="capture", parent="p", pattern=pattern,
                                    count=1, run_id=None)  # fmt: skip
            assert [e.name for e in repo.list_environments()] == ["C-env", "a-env", "b-env"]
            assert [c.name for c in repo.clones()] == ["TRN-C1", "trn-a1", "TRN-b1"]
    finally:
        postgres_server.admin("DROP DATABASE english WITH (FORCE)")


def test_commands_on_an_unreachable_database_say_so_in_one_line(
    term: Terminal, monkeypatch: pytest.MonkeyPatch
) -> None:
    term.configure(None)
    monkeypatch.setenv("CLONES_DB", "postgresql://clones@127.0.0.1:9/clones?connect_timeout=3")
    result = term("status")
    assert_clean_failure(
        result, "The database postgresql://clones@127.0.0.1:9/clones", "cannot be reached"
    )
    assert result.code == 1


def test_a_bot_keeps_reading_while_another_version_adds_a_column(url: str) -> None:
    # Upgrading one bot at a time: the new version's migration adds a column under the old
    # bot's feet. Its reads (SELECT *) must go on, not fail on a plan cached for the old shape.
    with Repository(url) as repo:
        repo.ensure_environment("nov", owner="U1")
        (clone,) = repo.reserve_clones(
            environment="nov", type="capture", parent="p", pattern="T-{n}", count=1, run_id=None
        )
        for _ in range(10):  # often enough for a driver to prepare the statement
            assert repo.get_clone(clone.id).name == "T-1"
            assert len(repo.clones(environment="nov")) == 1
        raw(url, "ALTER TABLE clones ADD COLUMN added_by_a_newer_version TEXT")
        for _ in range(3):
            assert repo.get_clone(clone.id).name == "T-1"
            assert len(repo.clones(environment="nov")) == 1
