"""A configuration is read strictly: a key or table the bot does not know, a value of the wrong
type, a number that is not finite or out of range, a database that is a URL, and a type's
attribute that would overwrite one of the bot's own labels are each one clear error naming the
table and the key (and the nearest known key), never a setting silently ignored. A property test
mutates a good configuration at random (unknown keys and tables, wrong types, non-finite numbers,
nesting) and finds no traceback and no key loaded other than as written."""

from __future__ import annotations

import copy
import math
import re
import subprocess
import sys
import types
import typing
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.domain.errors import ConfigError
from bot.schema import file_keys, named
from bot.settings import (
    RESERVED_ATTRIBUTES,
    DatabaseUrl,
    ScheduleSettings,
    Settings,
    SlackSettings,
    TraineeSettings,
    TypeSettings,
    VCenterSettings,
    load_settings,
    settings_from_dict,
)
from tests.conftest import HYPOTHESIS_PROFILE, ROOT
from tests.faults import record
from tests.helpers import LAB_TYPES, PASSWORD_ENV, to_toml, write_config
from tests.terminal import Terminal, assert_clean_failure
from tests.test_settings import SOURCE
from tests.test_settings import good as a_good_file


def good() -> dict[str, Any]:
    """test_settings' good file, with every table present."""
    return {**a_good_file(), "slack": {"channels": ["C012ABCDEF"]}, "schedule": {}, "trainees": {}}


def load(raw: dict[str, Any], env: dict[str, str] | None = None) -> Settings:
    return settings_from_dict(raw, env=env if env is not None else {}, source=SOURCE)


def refused(raw: dict[str, Any], env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        load(raw, env)
    message = str(caught.value)
    assert "\n" not in message
    return message


# ------------------------------------------------------------------------------------------------
# unknown keys and tables


@pytest.mark.parametrize(
    ("table", "key", "message"),
    [
        ("slack", "channel", "[slack] channel: unknown key; did you mean channels?"),
        ("clones", "databse", "[clones] databse: unknown key; did you mean database?"),
        ("clones", "concurency", "[clones] concurency: unknown key; did you mean concurrency?"),
        ("vcenter", "thumbprnt", "[vcenter] thumbprnt: unknown key; did you mean thumbprint?"),
        ("types.capture", "parnet", "[types.capture] parnet: unknown key; did you mean parent?"),
        ("trainees", "remind_trainees", "[trainees] remind_trainees: unknown key"),
        ("vcenter", "name", "[vcenter] name: unknown key; the keys of [vcenter] are url, user"),
    ],
)
def test_an_unknown_key_names_its_table_and_the_nearest_known_key(
    table: str, key: str, message: str
) -> None:
    raw = good()
    node = raw
    for part in table.split("."):
        node = node[part]
    node[key] = ["C012ABCDEF"]
    assert refused(raw).startswith(f"{SOURCE} {message}")


def test_a_typo_in_slack_channels_no_longer_opens_every_channel() -> None:
    """The issue's repro: `channel = [...]` left `channels` empty, so changing commands were
    allowed everywhere."""
    raw = good()
    raw["slack"] = {"channel": ["C012ABCDEF"]}
    assert refused(raw) == f"{SOURCE} [slack] channel: unknown key; did you mean channels?"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"slak": {"channels": []}}, "[slak]: unknown table; did you mean [slack]?"),
        ({"vcentre": {}}, "[vcentre]: unknown table; did you mean [vcenter]?"),
        ({"database": "x.db"}, ": database is outside any table; put it under [clones]."),
        ({"colour": "blue"}, ": colour is outside any table and is not a setting;"),
        ({"clones": {"slack": {}}}, "[clones] slack is a table of its own: [slack]."),
        ({"vcenter": {"url": "lab", "tls": {"insecure": True}}}, "[vcenter] tls: unknown key"),
        ({"types": {"capture": {**LAB_TYPES["capture"], "name": "x"}}}, "[types.capture] name is"),
        ({"vcenter": {"url": "lab", "password": "pw"}}, "must not contain a password"),
    ],
)
def test_unknown_tables_and_keys_in_the_wrong_place(extra: dict[str, Any], message: str) -> None:
    raw = good()
    raw.update(extra)
    assert message in refused(raw)


# ------------------------------------------------------------------------------------------------
# numbers and types


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
@pytest.mark.parametrize(
    ("table", "key"),
    [
        ("clones", "retry_backoff_s"),
        ("clones", "capacity_headroom_gb"),
        ("clones", "customization_timeout_s"),
        ("vcenter", "timeout_s"),
        ("vcenter", "task_timeout_s"),
        ("slack", "progress_interval_s"),
        ("slack", "drain_timeout_s"),
        ("schedule", "resync_s"),
        ("trainees", "message_interval_s"),
        ("trainees", "busy_wait_s"),
        ("types.capture", "delta_estimate_gb"),
    ],
)
def test_numbers_must_be_finite(table: str, key: str, value: float) -> None:
    raw = good()
    node = raw
    for part in table.split("."):
        node = node[part]
    node[key] = value
    message = refused(raw)
    assert f"[{table}] {key} must be a number" in message
    assert message.endswith(f", not {value}.")


def test_a_retry_backoff_of_inf_is_refused_as_the_issue_found_it() -> None:
    raw = good()
    raw["clones"]["retry_backoff_s"] = math.inf
    assert refused(raw) == (
        f"{SOURCE} [clones] retry_backoff_s must be a number of seconds from 0 to 600, not inf."
    )


def test_huge_finite_numbers_are_out_of_range() -> None:
    raw = good()
    raw["clones"]["retry_backoff_s"] = 1e308
    assert "from 0 to 600" in refused(raw)


# ------------------------------------------------------------------------------------------------
# the database: a SQLite path or a PostgreSQL URL, never with a password in it


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://clones@host:5432/clones",
        "postgres://db/clones",
        "POSTGRESQL://x/y",
        "postgresql://clones@db.example.com/clones?sslmode=verify-full&sslrootcert=/etc/ca.pem",
    ],
)
def test_a_postgresql_url_is_taken_as_a_url_not_a_path(url: str) -> None:
    raw = good()
    raw["clones"]["database"] = url
    settings = load(raw)
    assert isinstance(settings.database, DatabaseUrl) and settings.database == url
    assert settings.database_password_env == "CLONES_DATABASE_PASSWORD"
    from_env = load(good(), {"CLONES_DB": url})
    assert isinstance(from_env.database, DatabaseUrl) and from_env.database == url


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("postgresql://clones:s3cret@db/clones", "holds a password: write the URL without it"),
        ("postgresql://clones@db/clones?password=s3cret", "secrets come from the environment"),
        ("postgresql://clones@db/clones?sslpassword=x", "secrets come from the environment"),
        ("postgresql://clones@db", "names no database: end it with /DBNAME"),
        ("postgresql://clones@db:port/clones", "is not a valid URL"),
        ("postgresql://clones@db/clones?sslmod=require", 'did you mean "sslmode"?'),
        ("postgresql://clones@db/clones?sslmode=yes", "use one of disable, allow, prefer"),
        ("postgresql://clones@db/clo nes", "holds a space"),
    ],
)
def test_a_postgresql_url_that_cannot_work_is_refused_with_what_to_write(
    url: str, words: str
) -> None:
    raw = good()
    raw["clones"]["database"] = url
    message = refused(raw)
    assert message.startswith(f"{SOURCE} [clones] database ") and words in message
    assert "s3cret" not in message  # the secret is never repeated back


def test_the_password_variable_is_named_in_the_file_never_the_password() -> None:
    raw = good()
    raw["clones"]["database_password_env"] = "PGPASS_CLONES"
    assert load(raw).database_password_env == "PGPASS_CLONES"
    raw["clones"]["database_password_env"] = "not a name"
    assert "must name an environment variable" in refused(raw)
    raw = good()
    raw["clones"]["database_password"] = "s3cret"
    assert "unknown key" in refused(raw)


def test_other_urls_and_non_text_databases_are_refused() -> None:
    for value, words in (("sqlite:///x.db", "is a sqlite:// URL"), (42, "must be text")):
        raw = good()
        raw["clones"]["database"] = value
        assert words in refused(raw)


# ------------------------------------------------------------------------------------------------
# a type's attributes never overwrite the bot's own labels (issue 21)


@pytest.mark.parametrize("name", [*RESERVED_ATTRIBUTES, "managedby", "ENVIRONMENT"])
def test_reserved_labels_are_refused_in_a_types_attributes(name: str) -> None:
    raw = good()
    raw["types"]["capture"]["attributes"] = {"CostCentre": "TR-01", name: "x"}
    message = refused(raw)
    assert f"[types.capture] attributes: {name} is a label the bot writes itself" in message


@pytest.mark.lab
def test_a_type_labelled_managed_by_deploys_nothing(lab: Any, term: Terminal) -> None:
    """Today the clones were labelled ManagedBy=x and Environment=prod, `status` called them
    relabelled and a strip back left them all; now the file is refused before anything is
    made."""
    types = copy.deepcopy(LAB_TYPES)
    types["capture"]["attributes"] = {"ManagedBy": "x", "Environment": "prod"}
    term.configure(lab, types=types)
    result = term("deploy", "capture", "2", "as", "leak")
    assert_clean_failure(result, "[types.capture] attributes: ManagedBy is a label the bot")
    assert not [vm for vm in lab.control.vms() if vm["name"].startswith("TRN-")]
    assert term.recorded() == (0, 0)


# ------------------------------------------------------------------------------------------------
# the shipped configurations load as they are; every command and the bot check the file


def _readme_config() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("## Configuration", 1)[1].split("```toml\n", 1)[1].split("```", 1)[0]
    return block


@pytest.mark.parametrize("name", ["clones.example.toml", "bot/data/lab.toml", "README.md"])
def test_the_shipped_configurations_load(name: str, tmp_path: Path) -> None:
    path = ROOT / name
    if name == "README.md":
        path = tmp_path / "clones.toml"
        path.write_text(_readme_config(), encoding="utf-8")
    settings = load_settings(path, environ={PASSWORD_ENV: "pw"})
    assert settings.types


def _bad_config(tmp_path: Path) -> Path:
    raw = good()
    raw["vcenter"] = {"url": "lab"}
    raw["slack"] = {"channel": ["C012ABCDEF"]}
    return write_config(tmp_path / "clones.toml", raw)


@pytest.mark.parametrize("words", [["check"], ["status"], ["types"], ["demo"]])
def test_every_command_checks_the_file_first(words: list[str], term: Terminal) -> None:
    config = _bad_config(term.tmp_path)
    result = term("--config", str(config), *words)
    assert_clean_failure(result, "[slack] channel: unknown key; did you mean channels?")
    assert result.code == 1


def test_a_bad_file_never_starts_the_bot(tmp_path: Path) -> None:
    config = _bad_config(tmp_path)
    env = {
        "CLONES_CONFIG": str(config),
        "SLACK_BOT_TOKEN": "xoxb-1",
        "SLACK_APP_TOKEN": "xapp-1",
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(ROOT),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "bot"], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"clones: {config} [slack] channel: unknown key; did you mean channels?"
    ]


# ------------------------------------------------------------------------------------------------
# the property: any mutation is loaded as written or refused naming what it is about

TABLES: dict[str, type] = {
    "vcenter": VCenterSettings,
    "clones": Settings,
    "types.capture": TypeSettings,
    "slack": SlackSettings,
    "schedule": ScheduleSettings,
    "trainees": TraineeSettings,
}
KNOWN = {table: sorted(file_keys(cls)) for table, cls in TABLES.items()}
# Keys whose value the settings keep in another form (a path made absolute, a canonical
# fingerprint, a URL without spaces); checked only for being read, not for equality.
TRANSFORMED = {"database", "ca_file", "thumbprint", "url"}

scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=0, max_value=200),
    st.floats(min_value=0, max_value=100),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["", " ", "lab", "UTC", "C012ABCDEF", "{n}", "TRN-{n:03}", "https://x/sdk"]),
    st.datetimes(timezones=st.just(UTC)) | st.dates() | st.times(),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
known_tables = st.sampled_from([*TABLES, "types.packaging"])
MOSTLY = st.sampled_from([True, True, True, False])  # three in four draws take a known name


def of_type(tp: Any) -> st.SearchStrategy[Any]:
    """Values of a key's own type (in range or not): most of them should load."""
    if isinstance(tp, types.UnionType):
        tp = next(a for a in typing.get_args(tp) if a is not type(None))
    if tp is bool:
        return st.booleans()
    if tp is int:
        return st.integers(min_value=0, max_value=10) | st.integers(min_value=-10, max_value=20_000)
    if tp is float:
        return st.floats(min_value=-1, max_value=5_000) | st.floats()
    if tp in (str, Path):
        odd = ["~nosuchuser/x", "a\x00b", "x" * 300, "postgresql://h/db", "/", "."]
        return st.text(max_size=12) | st.sampled_from(["x", "UTC", "Europe/London", "A_B", *odd])
    if typing.get_origin(tp) is tuple:
        ids = st.sampled_from(["U012ABCDEF", "S012ABCDEF", "C012ABCDEF", "bob"])
        return st.lists(ids | st.text(max_size=5), max_size=3)
    return st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=2)


@st.composite
def mutations(draw: st.DrawFn) -> tuple[str, str, Any]:
    """(table, key, value): a known or unknown key of a known or unknown table, a value of the
    key's type or of any shape."""
    table = draw(known_tables if draw(MOSTLY) else st.text(min_size=1, max_size=10))
    schema = TABLES.get(table.replace("packaging", "capture"))
    known = KNOWN.get(table.replace("packaging", "capture"), [])
    any_key = st.text(min_size=1, max_size=12)
    key = draw(st.sampled_from(known) if bool(known) and draw(MOSTLY) else any_key)
    if schema is not None and key in known and draw(st.booleans()):
        return table, key, draw(of_type(typing.get_type_hints(schema)[key]))
    return table, key, draw(values)


def _apply(raw: dict[str, Any], table: str, key: str, value: Any) -> None:
    node = raw
    for part in table.split(".") if table in TABLES or table.startswith("types.") else [table]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            node[part] = child = {}
        node = child
    node[key] = value


def _loaded(settings: Settings, table: str) -> Any:
    if table == "clones":
        return settings
    if table.startswith("types."):
        return settings.types[table.split(".", 1)[1]]
    return getattr(settings, table)


def _as_loaded(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(value)
    return value


def test_fuzzed_configurations_load_as_written_or_are_refused_naming_the_key() -> None:
    seen = {"n": 0, "loaded": 0, "refused": 0, "unknown": 0}

    @given(mutation=mutations())
    def check(mutation: tuple[str, str, Any]) -> None:
        table, key, value = mutation
        raw = good()
        _apply(raw, table, key, value)
        seen["n"] += 1
        known_table = table in TABLES or table == "types.packaging"
        known_key = known_table and key in KNOWN[table.replace("packaging", "capture")]
        try:
            settings = load(raw)
        except ConfigError as exc:
            message = str(exc)
            seen["refused"] += 1
            seen["unknown"] += not known_key
            assert "\n" not in message and message.startswith(str(SOURCE))
            about = named(key) if known_table else named(table).split(".")[0]
            assert about in message, (mutation, message)
            return
        seen["loaded"] += 1
        assert known_key, f"{table}.{key} = {value!r} was silently ignored"
        if key not in TRANSFORMED and not (key in ("ca_file", "thumbprint") and value == ""):
            got = getattr(_loaded(settings, table), key)
            want = _as_loaded(value)
            assert got == want or (isinstance(got, float) and math.isclose(got, want)), (
                mutation,
                got,
            )

    check()
    assert seen["loaded"] and seen["refused"] and seen["unknown"], seen
    record("fuzzed configurations", cases=seen["n"], loaded=seen["loaded"],
           refused=seen["refused"], unknown_keys_refused=seen["unknown"], tracebacks=0,
           ignored=0, profile=HYPOTHESIS_PROFILE)  # fmt: skip


@given(text=st.text(max_size=300))
def test_any_text_as_a_configuration_file_is_loaded_or_refused_in_one_line(text: str) -> None:
    """Whatever the file holds (not TOML, TOML of any shape), one ConfigError or settings."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "clones.toml"
        path.write_text(to_toml(good()) + text, encoding="utf-8")
        try:
            load_settings(path, environ={})
        except ConfigError as exc:
            assert "\n" not in str(exc).strip() or "not valid TOML" in str(exc)


def test_a_deeply_nested_value_is_a_type_error() -> None:
    deep: Any = "x"
    for _ in range(500):
        deep = {"a": deep}
    raw = good()
    raw["slack"]["channels"] = deep
    assert re.search(r"\[slack\] channels must be a list of text.*not a table", refused(raw))
