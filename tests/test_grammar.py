"""The command grammar: the same text means the same command in Slack and in a terminal."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from bot.domain.errors import UsageError
from bot.domain.grammar import (
    VERBS,
    CancelSchedule,
    Command,
    Deploy,
    DeployItem,
    Extend,
    Help,
    Savings,
    Schedule,
    Status,
    Teardown,
    Types,
    normalise,
    parse,
    suggest,
    usage,
)


def items(*pairs: tuple[str, int]) -> tuple[DeployItem, ...]:
    return tuple(DeployItem(t, n) for t, n in pairs)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("deploy capture 25", Deploy(items(("capture", 25)), None)),
        ("deploy capture 25 as nov-cohort", Deploy(items(("capture", 25)), "nov-cohort")),
        (
            "deploy capture 25 packaging 25 verification 25 as demo",
            Deploy(items(("capture", 25), ("packaging", 25), ("verification", 25)), "demo"),
        ),
        (
            "deploy capture 25, packaging 10 as x",
            Deploy(items(("capture", 25), ("packaging", 10)), "x"),
        ),
        (
            "deploy capture 25,packaging 10 , verification 1 as x",
            Deploy(items(("capture", 25), ("packaging", 10), ("verification", 1)), "x"),
        ),
        (
            "deploy capture 25 and packaging 10",
            Deploy(items(("capture", 25), ("packaging", 10)), None),
        ),
        ("DEPLOY Capture 500 AS Nov-Cohort", Deploy(items(("capture", 500)), "nov-cohort")),
        ("deploy capture 1 as x and power on", Deploy(items(("capture", 1)), "x", power_on=True)),
        ("deploy capture 1 as x power-on", Deploy(items(("capture", 1)), "x", power_on=True)),
        ("deploy capture 1 and power-on", Deploy(items(("capture", 1)), None, power_on=True)),
        (
            "deploy capture 25 as x at mon 08:00 until fri 17:00",
            Deploy(items(("capture", 25)), "x", at="mon 08:00", until="fri 17:00"),
        ),
        (
            "deploy capture 25 as x at Mon 08:00",
            Deploy(items(("capture", 25)), "x", at="Mon 08:00"),
        ),
        (
            # "until" runs to the end, so "at" inside it is part of the time.
            "deploy capture 25 as x until fri at 17:00 and power on",
            Deploy(items(("capture", 25)), "x", power_on=True, until="fri at 17:00"),
        ),
        (
            "deploy capture 25 as x and power on at mon 08:00",
            Deploy(items(("capture", 25)), "x", power_on=True, at="mon 08:00"),
        ),
        ("status", Status()),
        ("status nov-cohort", Status("nov-cohort")),
        ("savings", Savings()),
        ("savings nov-cohort", Savings("nov-cohort")),
        ("teardown nov-cohort", Teardown("nov-cohort")),
        ("strip-back nov-cohort", Teardown("nov-cohort")),
        ("stripback nov-cohort", Teardown("nov-cohort")),
        ("strip back nov-cohort", Teardown("nov-cohort")),
        ("Strip Back NOV-COHORT", Teardown("nov-cohort")),
        ("destroy nov-cohort", Teardown("nov-cohort")),
        ("types", Types()),
        ("help", Help()),
        ("help deploy", Help("deploy")),
        ("help strip back", Help("teardown")),
        ("", Help()),
        ("   ", Help()),
        ("clones status", Status()),  # pasted with the command name
        ("/clones status x", Status("x")),
    ],
)
def test_parses(text: str, expected: Command) -> None:
    assert parse(text) == expected


def test_slack_smart_quotes_dashes_and_nbsp() -> None:
    assert parse("deploy\u00a0capture\u00a025 as \u201cnov\u2013cohort\u201d") == Deploy(
        items(("capture", 25)), "nov-cohort"
    )
    assert parse("deploy capture 2 as x at \u2018mon 08:00\u2019") == Deploy(
        items(("capture", 2)), "x", at="mon 08:00"
    )
    assert normalise("a\u202fb\u200bc") == "a bc"


def test_commands_are_frozen_and_hashable() -> None:
    command = parse("deploy capture 25 as x")
    assert isinstance(command, Deploy)
    with pytest.raises(AttributeError):
        command.environment = "y"  # type: ignore[misc]
    assert hash(command) == hash(parse("deploy  capture  25  as  x"))


def assert_refused(text: str, words: list[str]) -> None:
    """`text` is refused with a one-line message holding each of `words`."""
    with pytest.raises(UsageError) as caught:
        parse(text)
    message = str(caught.value)
    assert "\n" not in message
    for word in words:
        assert word in message


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("deploy capture 0", ["count must be a whole number of 1 or more", "e.g."]),
        ("deploy capture 0000", ["count must be a whole number of 1 or more"]),
        ("deploy capture -5", ["count must be a whole number"]),
        ("deploy capture 2.5", ["count must be a whole number"]),
        ("deploy capture twenty", ["count must be a whole number"]),
        ("deploy capture 99999999999999999999999999999", ["count must be a whole number"]),
        ("deploy capture \u0662\u0665", ["count must be a whole number"]),  # Arabic-Indic 25
        ("deploy 25 capture", ["type before its count", '"deploy capture 25"']),
        ("deploy 25", ["needs a type before it"]),
        ("deploy", ["say which type and how many", "e.g."]),
        ("deploy as x", ["say which type and how many"]),
        ("deploy capture", ["say how many capture VMs"]),
        ("deploy capture 25 nov-cohort", ['"as"', "deploy capture 25 as nov-cohort"]),
        ("deploy capture 25 capture 3", ["capture appears twice"]),
        ("deploy capture 2 Capture 3", ["capture appears twice"]),
        ("deploy capture 25 as", ['"as" needs an environment name']),
        ("deploy capture 25 as x y", ['"as" takes one environment name']),
        ("deploy capture 25 as nov_cohort", ["not a valid environment name"]),
        ("deploy capture 25 as " + "a" * 41, ["not a valid environment name"]),
        ("deploy capture 25 as -x", ["not a valid environment name"]),
        ("deploy capture 25 at", ['"at" needs a time']),
        ("deploy capture 25 at mon until", ['"until" needs a time']),
        ("deploy cap/ture 25", ["not a type name"]),
        ("status a b", ["at most one environment"]),
        ("status Növ", ["not a valid environment name"]),
        ("savings a_b", ["not a valid environment name"]),
        ("teardown", ["say which environment", '"teardown nov-cohort"']),
        ("strip back", ["say which environment"]),
        ("teardown a b", ["one environment name"]),
        ("types capture", ["takes nothing after it"]),
        ("help nothing", ['no help on "nothing"', "`help`"]),
        ("deplyo capture 25", ['unknown command "deplyo"', 'did you mean "deploy"', "`help`"]),
        ("stauts", ['did you mean "status"']),
        ("frobnicate", ['unknown command "frobnicate"', "`help`"]),
        ('deploy capture 25 as "x', ["check the quotes"]),
        ("deploy capture 25 as x\\", ["check the quotes"]),
        ("don't", ["check the quotes"]),
    ],
)
def test_errors_name_the_problem_and_show_an_example(text: str, words: list[str]) -> None:
    assert_refused(text, words)


def test_unknown_verb_without_close_match_has_no_guess() -> None:
    with pytest.raises(UsageError) as caught:
        parse("zzzzzz")
    assert "did you mean" not in str(caught.value)


def test_suggest() -> None:
    assert suggest("captur", ["capture", "packaging"]) == "capture"
    assert suggest("CAPTURE", ["Capture"]) == "Capture"
    assert suggest("xyz", ["capture", "packaging"]) is None
    assert suggest("anything", []) is None


def test_verbs_and_usage() -> None:
    required = {"deploy", "status", "savings", "teardown", "types", "help", "prepare", "power"}
    assert required | {"plan", "inventory", "refresh"} <= set(VERBS)
    text = usage()
    for verb in VERBS:
        assert f"`{verb}" in text
        detail = usage(verb)
        assert detail.startswith(f"`{verb}")
    # Every example in the help text parses: the overview's lines and each "Examples:" list.
    lines = [line for line in usage().splitlines() if line.startswith("`")]
    lines += [line for v in VERBS for line in usage(v).splitlines() if line.startswith("  `")]
    assert len(lines) > len(VERBS)
    for line in lines:
        parse(line.split("`")[1])
    assert "strip back" in usage("teardown")
    assert usage("strip-back") == usage("teardown")
    with pytest.raises(UsageError):
        usage("nonsense")


# ---------------------------------------------------------------------------------------------
# Fuzzing: any text gives a command or a one-line UsageError, never anything else.


def _check_any(text: str) -> None:
    try:
        parse(text)
    except UsageError as exc:
        message = str(exc)
        assert message
        assert "\n" not in message
        assert len(message) < 400


@settings(max_examples=500)
@given(st.text())
def test_fuzz_arbitrary_text(text: str) -> None:
    _check_any(text)


WORDS = st.sampled_from(
    [
        "deploy", "status", "savings", "teardown", "strip", "back", "types", "help", "as", "at",
        "until", "and", "power", "on", "power-on", "capture", "Packaging", "nov-cohort", "0", "1",
        "25", "500", "501", "-1", "9" * 5000, ",", "25,", '"', "'", "\u201c", "\u00a0", "\\", "\n",
        "ünïcödé", "\x00", "#", "x" * 50,
    ]
)  # fmt: skip


@settings(max_examples=1000)
@given(st.lists(WORDS, max_size=12))
def test_fuzz_grammar_words(words: list[str]) -> None:
    _check_any(" ".join(words))


@given(
    st.lists(
        st.tuples(st.from_regex(r"[a-z][a-z0-9_-]{0,15}", fullmatch=True), st.integers(1, 999_999)),
        min_size=1,
        max_size=5,
        unique_by=lambda pair: pair[0],
    ),
    st.none() | st.from_regex(r"[a-z0-9][a-z0-9-]{0,39}", fullmatch=True),
    st.booleans(),
)
def test_valid_deploys_round_trip(
    pairs: list[tuple[str, int]], env: str | None, power_on: bool
) -> None:
    # Words of the grammar cannot be type or environment names ("deploy capture 5 as at").
    reserved = {"as", "at", "until", "and", "power", "power-on", "poweron", "on", "in"}
    assume(not any(t in reserved for t, _ in pairs))
    assume(env not in reserved)
    text = "deploy " + ", ".join(f"{t} {n}" for t, n in pairs)
    if env is not None:
        text += f" as {env}"
    if power_on:
        text += " and power on"
    assert parse(text) == Deploy(items(*pairs), env, power_on)


def test_the_grammar_has_no_count_limit_of_its_own() -> None:
    """One limit: the type's max_count setting, checked where the configuration is known."""
    assert parse("deploy capture 501") == Deploy(items(("capture", 501)))
    assert parse("deploy capture 5000 as big") == Deploy(items(("capture", 5000)), "big")


# ---------------------------------------------------------------------------------------------
# Schedules: schedule / extend / cancel-schedule (times stay raw text; see bot.domain.timeparse)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("schedule nov-cohort until fri 17:00", Schedule("nov-cohort", until="fri 17:00")),
        ("schedule nov-cohort until fri at 17:00", Schedule("nov-cohort", until="fri at 17:00")),
        (
            "schedule Nov-Cohort AT mon 08:00 UNTIL fri 17:00",
            Schedule("nov-cohort", at="mon 08:00", until="fri 17:00"),
        ),
        ("schedule x at mon 08:00", Schedule("x", at="mon 08:00")),
        ("schedule x until in 3h", Schedule("x", until="in 3h")),
        ("schedule x until 2026-12-01 09:00", Schedule("x", until="2026-12-01 09:00")),
        ("extend nov-cohort 2h", Extend("nov-cohort", "2h")),
        ("extend nov-cohort by 1h 30m", Extend("nov-cohort", "by 1h 30m")),
        ("extend nov-cohort", Extend("nov-cohort")),
        ("cancel-schedule nov-cohort", CancelSchedule("nov-cohort")),
        ("unschedule nov-cohort", CancelSchedule("nov-cohort")),
        ("cancel schedule nov-cohort", CancelSchedule("nov-cohort")),
        ("help unschedule", Help("cancel-schedule")),
    ],
)
def test_parses_schedule_verbs(text: str, expected: Command) -> None:
    assert parse(text) == expected


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("schedule", ["say which environment", '"schedule nov-cohort until fri 17:00"']),
        ("schedule x", ['"until"', '"schedule x until fri 17:00"']),
        ("schedule x fri 17:00", ['got "fri 17:00"', '"schedule x until fri 17:00"']),
        ("schedule x until", ['"until" needs a time']),
        ("schedule x at", ['"at" needs a time']),
        ("schedule x at mon 08:00 until", ['"until" needs a time']),
        ("schedule x_y until fri 17:00", ["not a valid environment name"]),
        ("extend", ["say which environment", '"extend nov-cohort 2h"']),
        ("extend x 2 parsecs", ['could not read "2 parsecs"', '"2h"']),
        ("extend x 0h", ["more than zero"]),
        ("cancel-schedule", ["say which environment"]),
        ("unschedule x y", ["one environment name", '"cancel-schedule nov-cohort"']),
    ],
)
def test_schedule_verb_errors_show_an_example(text: str, words: list[str]) -> None:
    assert_refused(text, words)


def test_schedule_verbs_in_usage() -> None:
    assert {"schedule", "extend", "cancel-schedule"} <= set(VERBS)
    text = usage()
    assert "`schedule nov-cohort until fri 17:00`" in text
    assert "`extend nov-cohort 2h`" in text
    assert "unschedule" in usage("cancel-schedule")
    assert usage("unschedule") == usage("cancel-schedule")
    assert "maximum lease" in usage("extend")
