"""Configuration: a TOML file plus secrets from the environment.

The file is found at `$CLONES_CONFIG`, else `./clones.toml`, else the bundled lab configuration
(`bot/data/lab.toml`), which points at the lab vCenter simulator. Passwords and tokens never live in
the file: it names the environment variables that hold them.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.errors import ConfigError

BUNDLED_LAB_CONFIG = Path(__file__).resolve().parent / "data" / "lab.toml"
LAB_URL = "lab"  # `[vcenter] url = "lab"`: use the bundled lab vCenter, started on demand
TYPE_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
VM_NAME_MAX = 80  # vSphere limit for a VM name


@dataclass(frozen=True)
class VCenterSettings:
    url: str  # https://vcenter.example.com/sdk, or "lab"
    user: str = ""
    password: str = field(default="", repr=False)
    password_env: str = "CLONES_VCENTER_PASSWORD"
    insecure: bool = False  # skip TLS certificate verification (self-signed lab endpoints only)
    ca_file: str | None = None
    datacenter: str | None = None
    timeout_s: float = 60.0
    task_timeout_s: float = 1800.0

    @property
    def is_lab(self) -> bool:
        return self.url == LAB_URL


@dataclass(frozen=True)
class TypeSettings:
    """One kind of training VM and where its clones go."""

    name: str
    parent: str  # VM name, or an inventory path under the datacenter's VM folder
    name_pattern: str  # str.format pattern with {n}, e.g. "TRN-CAP-{n:03}"
    folder: str  # VM folder path under the datacenter's VM folder
    resource_pool: str  # cluster name, or "cluster/Resources/pool"
    datastore: str
    snapshot: str = "clones-base"
    max_count: int = 100
    description: str = ""


@dataclass(frozen=True)
class SlackSettings:
    """Who may change things from Slack and where the bot acts; tokens come from the environment."""

    # Slack user IDs allowed everything, including confirming another user's strip back.
    admins: tuple[str, ...] = ()
    operators: tuple[str, ...] = ()  # Slack user IDs allowed to deploy, strip back, power, ...
    operator_groups: tuple[str, ...] = ()  # Slack user group IDs (S...) whose members are operators
    channels: tuple[str, ...] = ()  # channel IDs where the bot acts; empty: any channel
    bot_token_env: str = "SLACK_BOT_TOKEN"
    signing_secret_env: str = "SLACK_SIGNING_SECRET"
    app_token_env: str = "SLACK_APP_TOKEN"
    progress_interval_s: float = 3.0  # at most one chat.update per message this often (Tier 3)
    api_url: str | None = None  # Slack Web API base URL; tests point it at a local fake


@dataclass(frozen=True)
class Settings:
    vcenter: VCenterSettings
    types: dict[str, TypeSettings]
    database: Path
    concurrency: int = 8
    retries: int = 3  # extra attempts for a clone after a transient fault
    retry_backoff_s: float = 2.0  # first backoff; doubles each attempt, with jitter
    managed_by: str = "clones"  # value of the ManagedBy custom attribute on every clone
    max_environment_clones: int = 500
    slack: SlackSettings = field(default_factory=SlackSettings)
    timezone: str = "UTC"  # the team's time zone for schedules and displayed times
    source: Path | None = None  # the file these settings came from

    def type(self, name: str) -> TypeSettings:
        from bot.grammar import suggest

        try:
            return self.types[name]
        except KeyError:
            known = ", ".join(sorted(self.types)) or "none configured"
            hint = suggest(name, list(self.types))
            did = f' Did you mean "{hint}"?' if hint else ""
            raise ConfigError(f'Unknown type "{name}".{did} Known types: {known}.') from None


def config_path(environ: dict[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    if env.get("CLONES_CONFIG"):
        return Path(env["CLONES_CONFIG"])
    local = Path("clones.toml")
    return local if local.exists() else BUNDLED_LAB_CONFIG


def load_settings(path: Path | None = None, environ: dict[str, str] | None = None) -> Settings:
    """Read and validate the configuration; raise ConfigError naming the problem and the fix."""
    env = dict(os.environ if environ is None else environ)
    path = path or config_path(env)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"Configuration file {path} not found. Set CLONES_CONFIG to your clones.toml "
            "or copy clones.example.toml to ./clones.toml."
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc}). Fix the file and try again.") from None
    return settings_from_dict(raw, env=env, source=path)


def settings_from_dict(
    raw: dict[str, Any], *, env: dict[str, str] | None = None, source: Path | None = None
) -> Settings:
    env = dict(os.environ if env is None else env)
    where = str(source) if source else "configuration"
    base_dir = source.parent if source and source != BUNDLED_LAB_CONFIG else Path.cwd()

    vc_raw = _table(raw, "vcenter", where)
    vcenter = _vcenter(vc_raw, env, where)

    clones_raw = _table(raw, "clones", where, required=False)
    database = Path(env.get("CLONES_DB") or clones_raw.get("database", "clones.db"))
    if not database.is_absolute():
        database = base_dir / database
    concurrency = _int(clones_raw, "concurrency", 8, 1, 64, f"{where} [clones]")
    retries = _int(clones_raw, "retries", 3, 0, 10, f"{where} [clones]")
    backoff = float(clones_raw.get("retry_backoff_s", 2.0))
    if backoff < 0:
        raise ConfigError(f"{where} [clones] retry_backoff_s must be 0 or more seconds.")
    managed_by = str(clones_raw.get("managed_by", "clones"))
    if not managed_by.strip():
        raise ConfigError(f'{where} [clones] managed_by must not be empty (e.g. "clones").')
    max_env = _int(clones_raw, "max_environment_clones", 500, 1, 10_000, f"{where} [clones]")

    types_raw = _table(raw, "types", where)
    if not types_raw:
        raise ConfigError(f"{where}: no [types.NAME] tables; add one per kind of training VM.")
    types = {name: _type(name, t, where) for name, t in types_raw.items()}
    _check_patterns_disjoint(types, where)

    slack = _slack(_table(raw, "slack", where, required=False), where)
    timezone = str(clones_raw.get("timezone", "UTC"))
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f'{where} [clones] timezone "{timezone}" is not a time zone; use an IANA name such as '
            '"Europe/London".'
        ) from None

    return Settings(
        vcenter=vcenter,
        slack=slack,
        timezone=timezone,
        types=types,
        database=database,
        concurrency=concurrency,
        retries=retries,
        retry_backoff_s=backoff,
        managed_by=managed_by,
        max_environment_clones=max_env,
        source=source,
    )


def _vcenter(vc: dict[str, Any], env: dict[str, str], where: str) -> VCenterSettings:
    url = str(env.get("CLONES_VCENTER_URL") or vc.get("url", "")).strip()
    if not url:
        raise ConfigError(
            f'{where} [vcenter] url is missing: e.g. url = "https://vcenter.example.com/sdk", '
            'or url = "lab" for the bundled lab vCenter.'
        )
    password_env = str(vc.get("password_env", "CLONES_VCENTER_PASSWORD"))
    if "password" in vc:
        raise ConfigError(
            f"{where} [vcenter] must not contain a password; put it in the environment "
            f"variable named by password_env ({password_env})."
        )
    insecure = bool(vc.get("insecure", False))
    if url != LAB_URL:
        parsed = urlparse(url)
        if parsed.scheme not in ("https", "http") or not parsed.hostname:
            raise ConfigError(
                f'{where} [vcenter] url "{url}" is not a URL: e.g. "https://vcenter.example.com/sdk".'
            )
        if parsed.scheme == "http" and not insecure:
            raise ConfigError(
                f"{where} [vcenter] url uses plain http; use https, or set insecure = true "
                "for a lab endpoint on a trusted network."
            )
    user = str(env.get("CLONES_VCENTER_USER") or vc.get("user", ""))
    ca_file = vc.get("ca_file")
    if ca_file is not None and not Path(str(ca_file)).is_file():
        raise ConfigError(f"{where} [vcenter] ca_file {ca_file} does not exist.")
    return VCenterSettings(
        url=url,
        user=user,
        password=env.get(password_env, ""),
        password_env=password_env,
        insecure=insecure,
        ca_file=str(ca_file) if ca_file else None,
        datacenter=vc.get("datacenter"),
        timeout_s=float(vc.get("timeout_s", 60.0)),
        task_timeout_s=float(vc.get("task_timeout_s", 1800.0)),
    )


def _slack(raw: dict[str, Any], where: str) -> SlackSettings:
    ctx = f"{where} [slack]"

    def ids(key: str, prefixes: str) -> tuple[str, ...]:
        value = raw.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f'{ctx} {key} must be a list of Slack IDs, e.g. ["U012ABCDEF"].')
        bad = [v for v in value if not re.fullmatch(f"[{prefixes}][A-Z0-9]{{2,}}", v)]
        if bad:
            raise ConfigError(
                f"{ctx} {key}: {bad[0]!r} is not a Slack ID (IDs look like U012ABCDEF; find them "
                "in a profile's ... menu, Copy member ID)."
            )
        return tuple(value)

    interval = float(raw.get("progress_interval_s", 3.0))
    if interval < 1.0:
        raise ConfigError(
            f"{ctx} progress_interval_s must be at least 1 second (Slack rate limits)."
        )
    return SlackSettings(
        admins=ids("admins", "UW"),
        operators=ids("operators", "UW"),
        operator_groups=ids("operator_groups", "S"),
        channels=ids("channels", "CGD"),
        bot_token_env=str(raw.get("bot_token_env", "SLACK_BOT_TOKEN")),
        signing_secret_env=str(raw.get("signing_secret_env", "SLACK_SIGNING_SECRET")),
        app_token_env=str(raw.get("app_token_env", "SLACK_APP_TOKEN")),
        progress_interval_s=interval,
        api_url=raw.get("api_url"),
    )


def _type(name: str, t: Any, where: str) -> TypeSettings:
    ctx = f"{where} [types.{name}]"
    if not TYPE_NAME_RE.match(name):
        raise ConfigError(
            f'{ctx}: type names are lower-case letters, digits and "-" (e.g. "capture").'
        )
    if not isinstance(t, dict):
        raise ConfigError(f"{ctx} must be a table.")
    missing = [k for k in ("parent", "folder", "resource_pool", "datastore") if not t.get(k)]
    if missing:
        raise ConfigError(f"{ctx} is missing {', '.join(missing)}.")
    pattern = str(t.get("name_pattern", f"TRN-{name[:3].upper()}-{{n:03}}"))
    try:
        sample = pattern.format(n=1)
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(
            f'{ctx} name_pattern "{pattern}" is not valid ({exc}); use one {{n}} placeholder, '
            'e.g. "TRN-CAP-{n:03}".'
        ) from None
    if "{n" not in pattern or pattern.format(n=2) == sample:
        raise ConfigError(
            f'{ctx} name_pattern "{pattern}" must contain {{n}}, e.g. "TRN-CAP-{{n:03}}".'
        )
    max_count = _int(t, "max_count", 100, 1, 10_000, ctx)
    if len(pattern.format(n=max_count)) > VM_NAME_MAX:
        raise ConfigError(f"{ctx} name_pattern makes names longer than {VM_NAME_MAX} characters.")
    snapshot = str(t.get("snapshot", "clones-base"))
    if not snapshot.strip():
        raise ConfigError(f'{ctx} snapshot must not be empty (e.g. "clones-base").')
    return TypeSettings(
        name=name,
        parent=str(t["parent"]),
        name_pattern=pattern,
        folder=str(t["folder"]),
        resource_pool=str(t["resource_pool"]),
        datastore=str(t["datastore"]),
        snapshot=snapshot,
        max_count=max_count,
        description=str(t.get("description", "")),
    )


def _check_patterns_disjoint(types: dict[str, TypeSettings], where: str) -> None:
    """Two types with one naming pattern would fight over names; refuse that at load time."""
    seen: dict[str, str] = {}
    for t in types.values():
        key = t.name_pattern.format(n=1)
        if key in seen:
            raise ConfigError(
                f"{where}: types {seen[key]} and {t.name} use the same name_pattern; "
                "give each type its own prefix."
            )
        seen[key] = t.name


def _table(raw: dict[str, Any], key: str, where: str, required: bool = True) -> dict[str, Any]:
    value = raw.get(key)
    if value is None:
        if required:
            raise ConfigError(f"{where}: the [{key}] table is missing.")
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: {key} must be a table ([{key}]).")
    return value


def _int(raw: dict[str, Any], key: str, default: int, lo: int, hi: int, ctx: str) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ConfigError(f"{ctx} {key} must be a whole number from {lo} to {hi}.")
    return value
