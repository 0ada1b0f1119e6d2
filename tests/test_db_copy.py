"""`clones db copy SOURCE TARGET`: a SQLite database into an empty PostgreSQL one, as an operator
runs it in a terminal, against the session's real PostgreSQL server (tests/postgres.py)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.domain.models import CloneState, ParentFacts, RunKind, RunState
from storage import Repository
from tests.helpers import recorded_deployment, set_state
from tests.postgres import PostgresServer
from tests.rawdb import raw, tables
from tests.terminal import Terminal, assert_clean_failure

PATTERN = "TRN-CAP-{n:03}"


@pytest.fixture
def target(postgres_server: PostgresServer) -> Iterator[str]:
    url = postgres_server.new_database()
    yield url
    postgres_server.drop_database(url)


def a_lived_in_database(path: Path) -> None:
    """A database with a history: every table with rows, a run superseded by a later one, an
    assignment ended by the clone's removal (the trigger), and rows deleted after ids were
    handed out (so the next id is above the highest one left)."""
    with Repository(path) as repo:
        repo.ensure_environment("nov", owner="U1", channel="C1")
        repo.update_environment("nov", ends_at=datetime(2030, 11, 28, 17, tzinfo=UTC))
        repo.save_schedule("nov", deploy_command="deploy capture 3 as nov", requested_by="U1")
        deploy, made = recorded_deployment(repo, "nov", 3, PATTERN, owner="a:1")
        for clone in made:
            set_state(
                repo,
                clone.id,
                CloneState.READY,
                moref=f"vm-{clone.id}",
                instance_uuid=f"uuid-{clone.id}",
                delta_bytes=130_000_000 * clone.id,
            )
        repo.save_run_message(deploy.id, channel="C1", ts="1700000000.000100")
        repo.finish_run(deploy.id, state=RunState.INTERRUPTED, succeeded=3, failed=0)
        taken = repo.supersede_run(deploy.id, owner="b:2", expected_owner="a:1")
        assert taken is not None
        repo.finish_run(taken.id, state=RunState.SUCCEEDED, succeeded=3, failed=0)
        repo.assign(
            environment="nov", pairs=[("UANN", made[0].id), ("UBOB", made[1].id)], assigned_by="U1"
        )
        set_state(repo, made[0].id, CloneState.DESTROYED)  # ends Ann's assignment (trigger)
        repo.save_parent_facts(ParentFacts("Capture", 11 * 2**30, 3 * 2**30, memory_mb=4096))
        for n in range(5):
            repo.audit(actor="U1", source="cli", command=f"deploy {n}", result="ok")
        repo.first_sighting(["sig:1", "trigger:t1"], 300, now=4_000_000_000.0)
        repo.ensure_environment("gone", owner="U2")
        repo.start_run(environment="gone", kind=RunKind.DEPLOY, requested_by="U2", requested=0)
    # Ids handed out, then their rows deleted: the copy must never hand them out again.
    raw(path, "DELETE FROM audit WHERE id > 3")
    raw(path, "DELETE FROM runs WHERE environment = 'gone'")


def every_row(location: str | Path, table: str) -> list[tuple[object, ...]]:
    return raw(location, f"SELECT * FROM {table} ORDER BY 1, 2")


def test_copy_keeps_every_row_id_and_sequence(term: Terminal, target: str) -> None:
    term.configure(None)
    a_lived_in_database(term.database)
    copied = term("db", "copy", str(term.database), target)
    assert copied.code == 0, copied.err
    assert f"to {target}; ids and sequences kept." in copied.out
    assert "Now set [clones] database" in copied.out

    ours = tables(term.database) - {"sqlite_sequence", "_sqlite_migrations"}
    assert ours <= tables(target)
    for table in sorted(ours):
        assert every_row(target, table) == every_row(term.database, table), table
    assert "  runs " in copied.out and "  audit " in copied.out

    with Repository(target) as repo:  # the bot carries on where the SQLite file stopped
        assert [r.state for r in repo.runs(environment="nov")] == [
            RunState.SUCCEEDED,
            RunState.SUPERSEDED,
        ]
        old = repo.runs(environment="nov")[1]
        assert old.superseded_by == repo.runs(environment="nov")[0].id
        (ann,) = repo.assignments(trainee="UANN", active=False)
        assert ann.ended_reason == "removed" and ann.ended_at is not None
        assert repo.audit(actor="U1", source="cli", command="after", result="ok").id == 6
        run = repo.start_run(
            environment="nov", kind=RunKind.TEARDOWN, requested_by="U1", requested=1
        )
        assert run.id == 4  # ids 1-3 were given in SQLite (3 to a run deleted since)
        assert not repo.first_sighting(["trigger:t1"], 300, now=4_000_000_100.0)


def test_a_target_with_rows_is_refused_and_nothing_is_written(term: Terminal, target: str) -> None:
    term.configure(None)
    a_lived_in_database(term.database)
    with Repository(target) as repo:
        repo.ensure_environment("already", owner="U9")
    before = {t: every_row(target, t) for t in tables(target)}
    refused = term("db", "copy", str(term.database), target)
    assert_clean_failure(
        refused,
        f"The database {target} holds rows already (environments 1)",
        "nothing was copied",
        "createdb",
    )
    assert {t: every_row(target, t) for t in tables(target)} == before


def test_a_database_of_something_else_is_refused(term: Terminal, target: str) -> None:
    term.configure(None)
    a_lived_in_database(term.database)
    raw(target, "CREATE TABLE invoices (id INT)")
    refused = term("db", "copy", str(term.database), target)
    assert_clean_failure(refused, "holds tables of something else (invoices)", "nothing was")
    assert tables(target) == {"invoices"}


def test_copy_is_all_or_nothing(term: Terminal, target: str) -> None:
    term.configure(None)
    a_lived_in_database(term.database)
    # A value PostgreSQL's column refuses, in the last table written: everything goes back.
    raw(term.database, "UPDATE seen_requests SET expires_at = 'soon'")
    failed = term("db", "copy", str(term.database), target)
    assert_clean_failure(failed, f"The database {target} failed (")
    with Repository(target) as repo:
        assert repo.list_environments() == [] and repo.audit_entries() == []


@pytest.mark.parametrize(
    ("words", "fragments"),
    [
        (["db"], ['"db" takes "copy SOURCE TARGET"']),
        (["db", "copy", "clones.db"], ['"db copy" takes a SOURCE file and a TARGET URL']),
        (["db", "copy", "missing.db", "postgresql://c@h/db"], ["SOURCE", "does not exist"]),
        (["db", "copy", "postgresql://c@h/a", "postgresql://c@h/b"], ["SOURCE must be the SQLite"]),
        (["db", "copy", "clones.db", "other.db"], ["TARGET must be a postgresql://"]),
        (["db", "copy", "clones.db", "postgresql://c:hunter2@h/db"], ["TARGET holds a password"]),
    ],
)
def test_bad_words_are_one_sentence_and_change_nothing(
    term: Terminal, words: list[str], fragments: list[str]
) -> None:
    term.configure(None)
    Repository(term.database).close()
    result = term(*words)
    assert_clean_failure(result, *fragments)
    assert result.code == 2
    assert "hunter2" not in result.err + result.out


def test_an_unreachable_target_is_one_sentence(term: Terminal) -> None:
    term.configure(None)
    Repository(term.database).close()
    url = "postgresql://clones@127.0.0.1:9/clones?connect_timeout=3"
    result = term("db", "copy", str(term.database), url)
    assert_clean_failure(result, f"The database {url} cannot be reached", "(Connection refused)")


def test_help_names_it_terminal_only(term: Terminal) -> None:
    result = term("help", "db")
    assert result.code == 0
    assert "db copy SOURCE TARGET" in result.out and "In a terminal only" in result.out


def test_a_wrong_password_is_one_sentence_naming_its_variable(
    term: Terminal, target: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    term.configure(None)
    Repository(term.database).close()
    monkeypatch.setenv("CLONES_DATABASE_PASSWORD", "not-the-password-42")
    result = term("db", "copy", str(term.database), target)
    assert_clean_failure(result, "refused the login", "CLONES_DATABASE_PASSWORD")
    assert "not-the-password-42" not in result.err
