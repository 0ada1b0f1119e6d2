"""The provenance Notes a clone carries: written in one form, read back exactly."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bot.domain.provenance import HEADER, MAX_NOTES, provenance_note, read_provenance

FACTS = {
    "ManagedBy": "clones",
    "Environment": "nov-cohort",
    "DeployedFrom": "Parents/Capture",
    "Snapshot": "clones-base",
    "DeployedBy": "U0123ABC",
    "DeployedAt": "2026-11-26T22:00:00+00:00",
}


def test_note_lists_each_fact_on_its_own_line_and_reads_back() -> None:
    note = provenance_note(FACTS)
    assert note.splitlines() == [HEADER, *(f"{k}: {v}" for k, v in FACTS.items())]
    assert read_provenance(note) == FACTS


def test_notes_written_by_someone_else_are_not_read() -> None:
    assert read_provenance("") == {}
    assert read_provenance("Owner: bob\nDeployedBy: mallory") == {}
    assert read_provenance("Patched 2026-11-01 by the desktop team") == {}


def test_a_value_cannot_add_lines_of_its_own() -> None:
    note = provenance_note({**FACTS, "DeployedBy": "eve\nManagedBy: someone-else"})
    assert read_provenance(note)["ManagedBy"] == "clones"
    assert read_provenance(note)["DeployedBy"] == "eve ManagedBy: someone-else"


@given(st.dictionaries(st.from_regex(r"[A-Za-z]{1,12}", fullmatch=True), st.text(max_size=40)))
def test_any_facts_read_back_as_written_with_whitespace_folded(facts: dict[str, str]) -> None:
    note = provenance_note(facts)
    assert len(note) <= MAX_NOTES
    folded = {k: " ".join(v.split()) for k, v in facts.items()}
    if len(note) < MAX_NOTES:
        assert read_provenance(note) == folded
