"""Configuration validation: every malformed config is a ConfigError naming the problem and fix."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trustme

from bot.domain.errors import ConfigError, UsageError
from bot.settings import BUNDLED_LAB_CONFIG, load_settings, settings_from_dict
from tests.helpers import LAB_TYPES, PASSWORD_ENV, to_toml, write_config

SOURCE = Path("/etc/clones/clones.toml")


def good() -> dict[str, Any]:
    return {
        "vcenter": {"url": "https://vcenter.example.com/sdk", "user": "svc-clones"},
        "clones": {"database": "clones.db", "retry_backoff_s": 0},
        "types": copy.deepcopy(LAB_TYPES),
    }


def load(raw: dict[str, Any], env: dict[str, str] | None = None) -> Any:
    return settings_from_dict(raw, env=env or {PASSWORD_ENV: "secret"}, source=SOURCE)


def test_a_good_config_loads() -> None:
    s = load(good())
    assert s.vcenter.url == "https://vcenter.example.com/sdk"
    assert s.vcenter.password == "secret" and not s.vcenter.insecure
    assert s.database == Path("/etc/clones/clones.db")  # relative to the config file
    assert sorted(s.types) == ["capture", "packaging", "verification"]
    assert s.types["capture"].snapshot == "clones-base" and s.types["capture"].max_count == 100
    assert s.retry_backoff_s == 0 and s.concurrency == 8 and s.retries == 3


def test_the_environment_overrides_the_file() -> None:
    env = {
        "CLONES_VCENTER_URL": "https://other.example.com/sdk",
        "CLONES_VCENTER_USER": "someone",
        "CLONES_DB": "/tmp/x.db",
        "MY_PASSWORD": "pw",
    }
    raw = good()
    raw["vcenter"]["password_env"] = "MY_PASSWORD"
    s = load(raw, env)
    assert s.vcenter.url == "https://other.example.com/sdk"
    assert (s.vcenter.user, s.vcenter.password) == ("someone", "pw")
    assert s.database == Path("/tmp/x.db")


def test_the_bundled_lab_config_loads() -> None:
    s = load_settings(BUNDLED_LAB_CONFIG, environ={})
    assert s.vcenter.is_lab
    assert {t.parent for t in s.types.values()} == {"Capture", "Packaging", "Verification"}


def test_unknown_type_suggests_the_nearest() -> None:
    s = load(good())
    with pytest.raises(UsageError, match=r'Unknown type "captur"\. Did you mean "capture"'):
        s.type("captur")


Mutate = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Mutate:
    def mutate(raw: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = raw
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value

    return mutate


def _drop(path: str) -> Mutate:
    def mutate(raw: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = raw
        for key in parents:
            node = node[key]
        del node[last]

    return mutate


BAD: list[tuple[str, Mutate, list[str]]] = [
    ("no-vcenter", _drop("vcenter"), ["[vcenter] table is missing", "add it"]),
    ("vcenter-not-table", _set("vcenter", "x"), ["vcenter must be a table"]),
    ("no-url", _drop("vcenter.url"), ["is missing url", 'url = "https://']),
    ("url-not-url", _set("vcenter.url", "vcenter.example.com"), ["is not a URL", "https://"]),
    ("ftp-url", _set("vcenter.url", "ftp://vc/sdk"), ["is not a URL"]),
    ("plain-http", _set("vcenter.url", "http://vc/sdk"), ["plain http", "insecure = true"]),
    ("password-in-file", _set("vcenter.password", "pw"), ["must not contain a password",
                                                          PASSWORD_ENV]),
    ("ca-file-missing", _set("vcenter.ca_file", "/nowhere/ca.pem"), ["ca_file", "does not exist"]),
    ("insecure-not-bool", _set("vcenter.insecure", "no"), ["insecure", "true or false"]),
    ("timeout-not-number", _set("vcenter.timeout_s", "soon"), ["timeout_s", "number"]),
    ("concurrency-zero", _set("clones.concurrency", 0), ["concurrency", "from 1 to 128"]),
    ("concurrency-high", _set("clones.concurrency", 129), ["concurrency", "from 1 to 128"]),
    ("per-host-zero", _set("clones.max_ops_per_host", 0), ["max_ops_per_host", "from 1 to 128"]),
    ("per-host-text", _set("clones.max_ops_per_host", "8"), ["max_ops_per_host", "whole number"]),
    ("per-host-float", _set("clones.max_ops_per_host", 2.5), ["max_ops_per_host", "whole number"]),
    (
        "per-datastore-zero",
        _set("clones.max_ops_per_datastore", 0),
        ["max_ops_per_datastore", "from 1 to 1024"],
    ),
    (
        "per-datastore-bool",
        _set("clones.max_ops_per_datastore", True),
        ["max_ops_per_datastore", "whole number"],
    ),
    ("concurrency-text", _set("clones.concurrency", "8"), ["concurrency", "whole number"]),
    ("concurrency-bool", _set("clones.concurrency", True), ["concurrency", "whole number"]),
    ("retries-negative", _set("clones.retries", -1), ["retries", "from 0 to 10"]),
    ("backoff-negative", _set("clones.retry_backoff_s", -1), ["retry_backoff_s", "from 0 to 600"]),
    ("backoff-text", _set("clones.retry_backoff_s", "fast"), ["retry_backoff_s", "number"]),
    ("managed-by-empty", _set("clones.managed_by", " "), ["managed_by must not be empty"]),
    ("provenance-not-bool", _set("clones.provenance_attributes", "yes"),
     ["provenance_attributes", "true or false"]),
    ("max-env-zero", _set("clones.max_environment_clones", 0), ["max_environment_clones"]),
    ("timezone", _set("clones.timezone", "Mars/Olympus"), ["Mars/Olympus", "Europe/London"]),
    ("no-types", _drop("types"), ["no [types.NAME] tables", "add one"]),
    ("empty-types", _set("types", {}), ["no [types.NAME] tables"]),
    ("type-name", _set("types.Capture", LAB_TYPES["capture"]), ["types.Capture", "lower-case"]),
    ("type-not-table", _set("types.capture", 3), ["[types.capture] must be a table"]),
    ("type-no-parent", _drop("types.capture.parent"), ["[types.capture] is missing parent"]),
    ("type-no-place", _drop("types.capture.datastore"), ["is missing datastore"]),
    ("pattern-no-n", _set("types.capture.name_pattern", "TRN-CAP"), ["must contain {n}"]),
    ("pattern-bad-field", _set("types.capture.name_pattern", "TRN-{x}"), ["not valid", "{n}"]),
    ("pattern-broken", _set("types.capture.name_pattern", "TRN-{n"), ["not valid", "{n}"]),
    ("pattern-too-long", _set("types.capture.name_pattern", "T" * 80 + "{n}"), ["longer than 80"]),
    ("max-count-zero", _set("types.capture.max_count", 0), ["max_count", "from 1"]),
    ("snapshot-empty", _set("types.capture.snapshot", ""), ["snapshot must not be empty"]),
    (
        "same-pattern",
        _set("types.packaging.name_pattern", "TRN-CAP-{n:03}"),
        ["same name_pattern", "own prefix"],
    ),
    ("slack-admins-text", _set("slack.admins", "U123"), ["admins must be a list", "U012ABCDEF"]),
    ("slack-bad-id", _set("slack.operators", ["bob"]), ["'bob' is not a Slack ID"]),
    ("slack-interval", _set("slack.progress_interval_s", 0.1), ["from 1 to", "Slack rate limits"]),
    ("slack-interval-text", _set("slack.progress_interval_s", "x"), ["progress_interval_s"]),
]  # fmt: skip


@pytest.mark.parametrize(("mutate", "fragments"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_malformed_config_names_the_problem_and_the_fix(
    mutate: Mutate, fragments: list[str]
) -> None:
    raw = good()
    mutate(raw)
    with pytest.raises(ConfigError) as caught:
        load(raw)
    message = str(caught.value)
    assert str(SOURCE) in message
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_malformed_toml(tmp_path: Path) -> None:
    path = tmp_path / "clones.toml"
    path.write_text('[vcenter]\nurl = "https://vc/sdk"\n[types\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"not valid TOML .* Fix the file"):
        load_settings(path, environ={})


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"not found\. Set CLONES_CONFIG"):
        load_settings(tmp_path / "nope.toml", environ={})


def test_config_path_comes_from_clones_config(tmp_path: Path) -> None:
    path = write_config(tmp_path / "mine.toml", good())
    s = load_settings(environ={"CLONES_CONFIG": str(path)})
    assert s.source == path and s.database == tmp_path / "clones.db"


def test_to_toml_round_trips() -> None:
    import tomllib

    raw = good()
    raw["slack"] = {"admins": ["U012ABCDEF"], "progress_interval_s": 3.0}
    assert tomllib.loads(to_toml(raw)) == raw


def test_the_example_configuration_loads() -> None:
    """clones.example.toml (what the README and the errors point people to) stays valid."""
    from pathlib import Path

    from bot.settings import load_settings

    example = Path(__file__).resolve().parent.parent / "clones.example.toml"
    settings = load_settings(example, environ={"CLONES_VCENTER_PASSWORD": "secret"})
    assert sorted(settings.types) == ["capture", "packaging", "verification"]
    assert settings.vcenter.url.startswith("https://") and not settings.vcenter.insecure
    assert settings.vcenter.password == "secret"


def test_delta_estimate_is_validated() -> None:
    from bot.domain.errors import ConfigError
    from bot.settings import settings_from_dict

    def load(value: object) -> object:
        raw = {
            "vcenter": {"url": "lab"},
            "types": {
                "capture": {
                    "parent": "Capture",
                    "folder": "Training",
                    "resource_pool": "Training",
                    "datastore": "TrainingDS",
                    "delta_estimate_gb": value,
                }
            },
        }
        return settings_from_dict(raw, env={}).types["capture"].delta_estimate_gb

    assert load(0.13) == 0.13
    for bad in (-1, "lots", True):
        with pytest.raises(ConfigError, match="delta_estimate_gb"):
            load(bad)


# ------------------------------------------------------------------------------------------------
# [vcenter] trust: ca_file, thumbprint, user name forms


def _config_with(tmp_path: Path, vcenter: str) -> Path:
    path = tmp_path / "conf" / "clones.toml"
    path.parent.mkdir(exist_ok=True)
    raw = good()
    del raw["vcenter"]
    path.write_text(f"[vcenter]\n{vcenter}\n" + to_toml(raw), encoding="utf-8")
    return path


PEM = (
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBkTCCATegAwIBAgIUQ0HvJ2zGGZ+o9X7o7S5o3y8b3oIwCgYIKoZIzj0EAwIw\n"
    "-----END CERTIFICATE-----\n"
)


def test_a_relative_ca_file_is_read_from_the_config_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca = trustme.CA()
    (tmp_path / "conf").mkdir()
    ca.cert_pem.write_to_path(str(tmp_path / "conf" / "vcenter-ca.pem"))
    config = _config_with(
        tmp_path, 'url = "https://vc.example.com/sdk"\nca_file = "vcenter-ca.pem"'
    )
    monkeypatch.chdir(tmp_path)  # not the config's folder
    s = load_settings(config, environ={PASSWORD_ENV: "pw"})
    assert s.vcenter.ca_file == str(tmp_path / "conf" / "vcenter-ca.pem")


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"\x30\x82\x01\x0a\x02\x82", "is a DER (binary) certificate, not PEM"),
        (b"ask the VMware team\n", "is not a PEM certificate file"),
        (PEM.encode(), "holds a PEM block that is not a valid certificate"),
    ],
)
def test_a_ca_file_that_is_not_pem_says_so(tmp_path: Path, content: bytes, words: str) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "ca.crt").write_bytes(content)
    config = _config_with(tmp_path, 'url = "https://vc.example.com/sdk"\nca_file = "ca.crt"')
    with pytest.raises(ConfigError, match=re.escape(words)) as info:
        load_settings(config, environ={PASSWORD_ENV: "pw"})
    assert str(tmp_path / "conf" / "ca.crt") in str(info.value)


def test_a_missing_ca_file_names_where_it_was_looked_for(tmp_path: Path) -> None:
    config = _config_with(tmp_path, 'url = "https://vc.example.com/sdk"\nca_file = "nope.pem"')
    with pytest.raises(ConfigError, match="read from the configuration file's folder"):
        load_settings(config, environ={PASSWORD_ENV: "pw"})


HEX = "6C4F" * 16  # 32 bytes


@pytest.mark.parametrize(
    "written",
    [
        "SHA256:" + ":".join(HEX[i : i + 2] for i in range(0, 64, 2)),
        HEX.lower(),
        "sha256:" + HEX,
        ":".join(HEX[i : i + 2] for i in range(0, 64, 2)).lower(),
    ],
)
def test_thumbprint_forms(written: str) -> None:
    raw = good()
    raw["vcenter"]["thumbprint"] = written
    expected = "SHA256:" + ":".join(HEX[i : i + 2] for i in range(0, 64, 2))
    assert load(raw).vcenter.thumbprint == expected


@pytest.mark.parametrize(
    ("vcenter", "words"),
    [
        ({"thumbprint": "AB:CD:EF"}, "is not a SHA-256 fingerprint; run `clones thumbprint`"),
        ({"thumbprint": "ab" * 20}, "looks like a SHA-1 thumbprint; pin the SHA-256"),
        ({"thumbprint": HEX, "insecure": True}, "both insecure = true and thumbprint"),
        (
            {"thumbprint": HEX, "url": "http://vc.example.com/sdk", "insecure": False},
            "plain http",
        ),
        ({"timeout_s": 0}, "timeout_s must be a number of seconds more than 0"),
    ],
)
def test_trust_settings_that_cannot_work(vcenter: dict[str, Any], words: str) -> None:
    raw = good()
    raw["vcenter"].update(vcenter)
    with pytest.raises(ConfigError, match=re.escape(words)):
        load(raw)


def test_ca_file_and_thumbprint_are_alternatives(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    trustme.CA().cert_pem.write_to_path(str(tmp_path / "conf" / "ca.pem"))
    config = _config_with(
        tmp_path,
        f'url = "https://vc.example.com/sdk"\nca_file = "ca.pem"\nthumbprint = "{HEX}"',
    )
    with pytest.raises(ConfigError, match="sets both ca_file and thumbprint; keep one"):
        load_settings(config, environ={PASSWORD_ENV: "pw"})


def test_user_name_forms_and_the_environment(tmp_path: Path) -> None:
    upn = _config_with(tmp_path, 'url = "https://vc/sdk"\nuser = "svc-clones@vsphere.local"')
    assert load_settings(upn, environ={}).vcenter.user == "svc-clones@vsphere.local"
    literal = _config_with(tmp_path, "url = \"https://vc/sdk\"\nuser = 'CORP\\svc-clones'")
    assert load_settings(literal, environ={}).vcenter.user == "CORP\\svc-clones"
    escaped = _config_with(tmp_path, 'url = "https://vc/sdk"\nuser = "CORP\\\\svc-clones"')
    assert load_settings(escaped, environ={}).vcenter.user == "CORP\\svc-clones"
    env = {"CLONES_VCENTER_USER": "other@vsphere.local"}
    assert load_settings(literal, environ=env).vcenter.user == "other@vsphere.local"


def test_per_host_and_per_datastore_limits_default_to_vcenters_own() -> None:
    s = load(good())
    assert (s.concurrency, s.max_ops_per_host, s.max_ops_per_datastore) == (8, 8, 128)
    raw = good()
    raw["clones"].update(concurrency=64, max_ops_per_host=4, max_ops_per_datastore=16)
    s = load(raw)
    assert (s.concurrency, s.max_ops_per_host, s.max_ops_per_datastore) == (64, 4, 16)
