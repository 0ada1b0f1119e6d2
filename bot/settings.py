"""Configuration: a TOML file plus secrets from the environment.

The file is found at `$CLONES_CONFIG`, else `./clones.toml`, else the bundled lab configuration
(`bot/data/lab.toml`), which points at the lab vCenter simulator. Passwords and tokens never live in
the file: it names the environment variables that hold them.

The settings dataclasses below are the schema of the file (`bot.schema` reads it): a table is a
dataclass, a key is a field with its name, type and default, and `setting(...)` adds a range, an
environment variable that overrides the file, or a check of its own. A key the schema does not
have, a value of the wrong type, a number out of range or not finite: each is an error naming the
table, the key and what to write. Then each table's rules (`_RULES`) check what spans keys. So a
new setting is one line, for example in `[clones]`:

    history_days: int = setting(30, lo=1, hi=3650)  # keep finished runs this long
"""

from __future__ import annotations

import difflib
import json
import os
import re
import string
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.domain.errors import ConfigError, UsageError
from bot.domain.trainees import ASSIGNED_TO
from bot.domain.vsphere import CLONE_ATTRIBUTES, PROVENANCE_ATTRIBUTES
from bot.schema import Check, Place, Reader, Rules, named, setting, shown

BUNDLED_LAB_CONFIG = Path(__file__).resolve().parent / "data" / "lab.toml"
LAB_URL = "lab"  # `[vcenter] url = "lab"`: use the bundled lab vCenter, started on demand
TYPE_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
TYPE_NAME_RULE = 'type names are lower-case letters, digits and "-" (e.g. "capture")'
VM_NAME_MAX = 80  # vSphere limit for a VM name
MAX_CONCURRENCY = 128  # clone tasks at once (the pool runs twice as many threads)
DISK_MODES = (
    "persistent",
    "nonpersistent",
    "undoable",
    "independent_persistent",
    "independent_nonpersistent",
    "append",
)
NETBIOS_MAX = 15  # Windows computer names; customization uses the clone's name
ATTRIBUTE_FIELDS = ("name", "n", "type", "environment")
# Custom attributes only the bot writes: ownership (what a strip back may remove), provenance
# and the trainee a clone is assigned to. A type's `attributes` may not name them.
RESERVED_ATTRIBUTES = (*CLONE_ATTRIBUTES, *PROVENANCE_ATTRIBUTES, ASSIGNED_TO)


# ===================================================================== checks of one key
def _slack_ids(prefixes: str) -> Check:
    def check(value: tuple[str, ...], at: Place) -> tuple[str, ...]:
        for v in value:
            if not re.fullmatch(f"[{prefixes}][A-Z0-9]{{2,}}", v):
                raise at.error(
                    f": {v!r} is not a Slack ID (IDs look like U012ABCDEF; find them in a "
                    "profile's ... menu, Copy member ID)."
                )
        return value

    return check


def _env_name(value: str, at: Place) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
        raise at.error(
            f"must name an environment variable (e.g. SLACK_BOT_TOKEN), not {shown(value)}."
        )
    return value


def _http_url(value: str, at: Place) -> str:
    if not re.fullmatch(r"https?://\S+", value):
        raise at.error(
            f'must be an http(s) URL such as "https://slack-gov.com/api/", got {shown(value)}.'
        )
    return value


def _timezone(value: str, at: Place) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise at.error(
            f'{json.dumps(value)} is not a time zone; use an IANA name such as "Europe/London".'
        ) from None
    return value


class DatabaseUrl(str):
    """`[clones] database` naming a PostgreSQL database: `postgresql://USER@HOST:PORT/DB`, with
    libpq parameters (TLS: sslmode, sslrootcert, ...) after `?`, never with a password (that
    comes from the environment variable `[clones] database_password_env` names)."""

    __slots__ = ()


# libpq's connection parameters a URL may carry after `?` (PostgreSQL 17's list), less the
# secrets: a password belongs in the environment, never in the configuration file.
LIBPQ_PARAMETERS = frozenset(
    (  # noqa: SIM905 (a list of words reads best as words)
        "host hostaddr port dbname user passfile require_auth channel_binding connect_timeout "
        "client_encoding options application_name fallback_application_name keepalives "
        "keepalives_idle keepalives_interval keepalives_count tcp_user_timeout replication "
        "gssencmode sslmode sslnegotiation sslcompression sslcert sslkey sslcertmode sslrootcert "
        "sslcrl sslcrldir sslsni requirepeer ssl_min_protocol_version ssl_max_protocol_version "
        "krbsrvname gsslib gssdelegation service target_session_attrs load_balance_hosts"
    ).split()
)
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
_PG_EXAMPLE = "postgresql://clones@db.example.com:5432/clones?sslmode=verify-full"


def database_location(value: str, base_dir: Path) -> Path | DatabaseUrl:
    """Where the database is, as `[clones] database` (or $CLONES_DB) names it: a SQLite file,
    relative to the configuration file's folder, or a PostgreSQL URL. The one place a database
    address is parsed. ValueError says what is wrong with `value`."""
    scheme = re.match(r"([A-Za-z][A-Za-z0-9+.-]*)://", value)
    if scheme:
        if scheme.group(1).lower() in ("postgresql", "postgres"):
            return _postgres_url(value)
        raise ValueError(
            f"is a {scheme.group(1)}:// URL; give the path of a SQLite file, e.g. "
            f'"clones.db", or a PostgreSQL URL, e.g. "{_PG_EXAMPLE}"'
        )
    path = _expanded(value)
    return path if path.is_absolute() else base_dir / path


def _postgres_url(value: str) -> DatabaseUrl:
    """A PostgreSQL URL checked as far as it can be without connecting."""
    if re.search(r"\s", value):
        raise ValueError("holds a space; a URL has none (write %20 for one in a parameter)")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018  (ValueError for a port that is not a number)
    except ValueError as exc:
        raise ValueError(f"is not a valid URL ({exc}); e.g. {json.dumps(_PG_EXAMPLE)}") from None
    if parts.password is not None:
        raise ValueError(
            "holds a password: write the URL without it (postgresql://USER@HOST/DB) and put the "
            "password in the environment variable [clones] database_password_env names "
            "(CLONES_DATABASE_PASSWORD unless you name another)"
        )
    if not parts.path.strip("/"):
        raise ValueError(f"names no database: end it with /DBNAME, e.g. {json.dumps(_PG_EXAMPLE)}")
    if parts.fragment:
        raise ValueError("has a #fragment, which a database URL cannot have")
    for pair in filter(None, parts.query.split("&")):
        key, _, setting_value = pair.partition("=")
        if key in ("password", "sslpassword"):
            raise ValueError(
                f"holds {key}=...: secrets come from the environment, never the file; put the "
                "password in the variable [clones] database_password_env names"
            )
        if key not in LIBPQ_PARAMETERS:
            near = difflib.get_close_matches(key, sorted(LIBPQ_PARAMETERS), n=1)
            hint = f' (did you mean "{near[0]}"?)' if near else ""
            raise ValueError(
                f"has {json.dumps(key)}, which is not a PostgreSQL connection parameter{hint}; "
                "the TLS ones are sslmode, sslrootcert, sslcert and sslkey"
            )
        if key == "sslmode" and setting_value not in SSL_MODES:
            raise ValueError(
                f"has sslmode={setting_value}; use one of {', '.join(SSL_MODES)} "
                "(verify-full checks the server's certificate and name)"
            )
    return DatabaseUrl(value)


def _expanded(value: str) -> Path:
    """A path as written, `~` expanded; ValueError for one no file can have."""
    if "\0" in value:
        raise ValueError("holds a NUL character, which no path can")
    try:
        return Path(value).expanduser()
    except RuntimeError:  # ~user of a user this machine does not know
        raise ValueError(
            f"starts with {value.split('/')[0]}, a home folder this machine does not know"
        ) from None


def _database(value: str, at: Place) -> Path | DatabaseUrl:
    try:
        return database_location(value, at.base_dir)
    except ValueError as exc:
        raise at.error(f"{shown(without_secrets(value))} {exc}.") from None


def without_secrets(value: str) -> str:
    """Text as a message or the audit log may show it: the password of a database URL in it
    (user:PASSWORD@, password=, sslpassword=) as ***."""
    value = re.sub(r"\b([A-Za-z][A-Za-z0-9+.-]*://[^/@:\s]*):[^/@\s]*@", r"\1:***@", value)
    return re.sub(r"(?i)\b((?:ssl)?password)=[^&]*", r"\1=***", value)


def _ca_file(value: str, at: Place) -> str | None:
    """ca_file as an absolute path (relative to the configuration file's folder), checked to
    hold PEM certificates."""
    if value == "":
        return None
    try:
        path = _expanded(value)
        path = path if path.is_absolute() else at.base_dir / path
        found = path.is_file()
    except (ValueError, OSError) as exc:
        raise at.error(
            f"{shown(value)} cannot be read ({getattr(exc, 'strerror', None) or exc})."
        ) from None
    if not found:
        raise at.error(
            f"{named(str(path))} does not exist (a relative ca_file is read from the "
            "configuration file's folder)."
        )
    from bot.certificates import ca_file_problem  # ssl and hashlib: only when there is one

    problem = ca_file_problem(str(path))
    if problem:
        raise ConfigError(f"{at.label.removesuffix(' ca_file')} {problem}.")
    return str(path)


def _thumbprint(value: str, at: Place) -> str | None:
    if value == "":
        return None
    from bot.certificates import parse_thumbprint

    try:
        return parse_thumbprint(value)
    except ValueError as exc:
        raise at.error(f"{shown(value)} {exc}.") from None


def _disk_mode(value: str, at: Place) -> str:
    if value not in DISK_MODES:
        raise at.error(
            f"{json.dumps(value)} is not a vSphere disk mode; use one of {', '.join(DISK_MODES)} "
            "(training labs usually want independent_nonpersistent)."
        )
    return value


def _attributes(value: dict[str, str], at: Place) -> dict[str, str]:
    reserved = {name.lower(): name for name in RESERVED_ATTRIBUTES}
    for name, pattern in value.items():
        if name.lower() in reserved:
            raise at.error(
                f": {named(name)} is a label the bot writes itself "
                f"({', '.join(RESERVED_ATTRIBUTES)}: they mark which clones are its own and "
                "where they came from); give this "
                f'attribute another name, e.g. "Course{reserved[name.lower()]}".'
            )
        if not name.strip():
            raise at.error(': an attribute name must not be empty (e.g. CostCentre = "TR-01").')
        problem = format_problem(pattern, ATTRIBUTE_FIELDS)
        if problem:
            raise at.error(
                f".{named(name)} = {json.dumps(pattern)} is not valid ({problem}); use only "
                "{name}, {n}, {type} and {environment}."
            )
    return value


def format_problem(pattern: str, names: tuple[str, ...]) -> str:
    """Why `pattern` is not a str.format pattern over `names` ("" when it is): each field one
    of the names, as is (no attribute or index), with a short format spec."""
    try:
        parsed = list(string.Formatter().parse(pattern))
    except ValueError as exc:
        return str(exc)
    for _, name, spec, _ in parsed:
        if name is None:
            continue
        if name not in names:
            return f"unknown field {{{name}}}"
        if spec and (len(spec) > 8 or "{" in spec or re.search(r"\d{3,}", spec)):
            return f"format {spec!r} is too long"
    try:
        pattern.format(**{n: 1 if n == "n" else n for n in names})
    except (KeyError, IndexError, ValueError, TypeError, AttributeError) as exc:
        return str(exc) or type(exc).__name__
    return ""


def _nonblank_optional(value: str, at: Place) -> str:
    if not value.strip():
        raise at.error('must be a spec name, e.g. "win-training", or left out.')
    return value


# ===================================================================== the schema
@dataclass(frozen=True)
class VCenterSettings:
    """`[vcenter]`: where vCenter is and how to trust it; the password comes from the
    environment."""

    url: str = setting(
        env="CLONES_VCENTER_URL",
        nonempty=True,
        example='"https://vcenter.example.com/sdk", or url = "lab" for the bundled lab vCenter',
    )  # https://vcenter.example.com/sdk, or "lab"
    user: str = setting("", env="CLONES_VCENTER_USER")
    password: str = setting(
        "",
        secret=True,
        file=False,
        refuse=": the file must not contain a password; put it in the environment variable "
        "named by password_env (CLONES_VCENTER_PASSWORD unless you name another).",
    )
    password_env: str = setting("CLONES_VCENTER_PASSWORD", check=_env_name)
    insecure: bool = False  # skip TLS certificate verification (self-signed lab endpoints only)
    ca_file: str | None = setting(None, check=_ca_file)  # PEM CA certificate(s) to trust
    thumbprint: str | None = setting(None, check=_thumbprint)  # pinned, "SHA256:AB:CD:..."
    datacenter: str | None = None
    timeout_s: float = setting(60.0, above=0, hi=3600)
    task_timeout_s: float = setting(1800.0, above=0, hi=7 * 24 * 3600)
    # Quiet for this long, the session is checked (one read) before the next call, and renewed
    # if it has ended: the first read after a night's idle never finds out the hard way.
    session_check_s: float = setting(60.0, above=0, hi=24 * 3600)

    @property
    def is_lab(self) -> bool:
        return self.url == LAB_URL


@dataclass(frozen=True)
class TypeSettings:
    """`[types.NAME]`: one kind of training VM and where its clones go."""

    name: str = setting(
        file=False, refuse="is the table's own name ([types.NAME]); remove this key."
    )
    parent: str = setting(nonempty=True)  # VM name, or a path under the datacenter's VM folder
    folder: str = setting(nonempty=True)  # VM folder path under the datacenter's VM folder
    resource_pool: str = setting(nonempty=True)  # cluster name, or "cluster/Resources/pool"
    datastore: str = setting(nonempty=True)
    # str.format pattern with {n}, e.g. "TRN-CAP-{n:03}"; "": TRN- and the name's first letters.
    name_pattern: str = setting("", nonempty=True, example='"TRN-CAP-{n:03}"')
    snapshot: str = setting("clones-base", nonempty=True, example='"clones-base"')
    max_count: int = setting(100, lo=1, hi=10_000)
    description: str = ""
    # A named guest customization spec in vCenter.
    customization_spec: str | None = setting(None, check=_nonblank_optional)
    disk_mode: str | None = setting(None, check=_disk_mode)  # set after cloning
    power_on: bool = False  # power clones on when they are ready
    # Expected delta of a new clone (GB), for plans and the capacity guard until this type has
    # clones of its own to average; None: 1 GB.
    delta_estimate_gb: float | None = setting(None, lo=0, hi=65_536)
    # Extra custom attributes for the asset inventory: name -> value pattern, with {name} (the
    # clone's name), {n} (its number), {type} and {environment} filled in at deploy time.
    attributes: dict[str, str] = setting(
        factory=dict, check=_attributes, example='CostCentre = "TR-01"'
    )


@dataclass(frozen=True)
class SlackSettings:
    """`[slack]`: who may change things from Slack and where the bot acts; tokens come from the
    environment."""

    # Slack user IDs allowed everything, including confirming another user's strip back.
    admins: tuple[str, ...] = setting((), check=_slack_ids("UW"), example='["U012ABCDEF"]')
    # Slack user IDs allowed to deploy, strip back, power, ...
    operators: tuple[str, ...] = setting((), check=_slack_ids("UW"), example='["U012ABCDEF"]')
    # Slack user group IDs (S...) whose members are operators.
    operator_groups: tuple[str, ...] = setting((), check=_slack_ids("S"), example='["S012ABCDEF"]')
    # Channel IDs where the bot acts; empty: any channel.
    channels: tuple[str, ...] = setting((), check=_slack_ids("CGD"), example='["C012ABCDEF"]')
    bot_token_env: str = setting("SLACK_BOT_TOKEN", check=_env_name)
    signing_secret_env: str = setting("SLACK_SIGNING_SECRET", check=_env_name)
    app_token_env: str = setting("SLACK_APP_TOKEN", check=_env_name)
    # At most one chat.update per message this often (Tier 3).
    progress_interval_s: float = setting(3.0, lo=1, hi=600, why="Slack rate limits")
    # Slack Web API base URL: GovSlack (https://slack-gov.com/api/), a proxy, or a test fake.
    api_url: str | None = setting(None, check=_http_url)
    # On SIGTERM, keep answering and wait this long for the work in hand before exiting; what is
    # not finished by then is resumed at the next start. Keep it under the supervisor's kill
    # timeout (Docker 10 s by default, systemd 90 s, Heroku 30 s).
    drain_timeout_s: float = setting(25.0, lo=0, hi=3600)


@dataclass(frozen=True)
class ScheduleSettings:
    """`[schedule]`: deploy-ahead, strip-back and reminder policy."""

    # Remind the owner this long before a scheduled strip back.
    reminder_lead_min: int = setting(60, lo=0, hi=7 * 24 * 60)
    # An environment's end may be at most this long after its start.
    max_lease_hours: int = setting(336, lo=1, hi=366 * 24)
    # `extend ENV` without a length, and Slack's "Extend" button.
    default_extension_min: int = setting(120, lo=1, hi=7 * 24 * 60)
    # How often the scheduler re-reads SQLite (schedules set by another process), and how often a
    # bot standing by tries to take the scheduler over from one that stopped.
    resync_s: float = setting(30.0, lo=0.1, hi=3600)


@dataclass(frozen=True)
class TraineeSettings:
    """`[trainees]`: trainees and the VMs they are given."""

    # Write each assignment on its clone as the custom attribute AssignedTo (one SetField per
    # assignment), so vCenter's own views show who holds which VM.
    assigned_to_attribute: bool = False
    # Send each trainee the reminder before a scheduled strip back, as the owner gets it.
    remind: bool = False
    # Direct messages to one conversation at most this often (Slack: about one a second).
    message_interval_s: float = setting(1.0, lo=0, hi=60)
    # A trainee's rebuild waits this long for a busy environment (another trainee's rebuild,
    # a deployment) before it gives up.
    busy_wait_s: float = setting(120.0, lo=0, hi=3600)
    # A hand-out waits for Slack's rate limits this long in all (not per trainee); those not
    # reached by then are listed for the trainer, and `handout ENV` tries them again.
    handout_timeout_s: float = setting(600.0, lo=10, hi=86400)


@dataclass(frozen=True)
class Settings:
    """The whole file. Its own plain fields are the keys of `[clones]`; a field holding a
    dataclass is a table of that name (`[vcenter]`, `[slack]`, ...), `types` the `[types.NAME]`
    tables."""

    vcenter: VCenterSettings
    types: dict[str, TypeSettings] = setting(
        factory=dict, names=TYPE_NAME_RE.pattern, why=TYPE_NAME_RULE
    )
    # SQLite file, relative to the configuration file, or a PostgreSQL URL
    # ("postgresql://USER@HOST:PORT/DB?sslmode=verify-full"); $CLONES_DB overrides.
    database: Path | DatabaseUrl = setting(
        Path("clones.db"), env="CLONES_DB", check=_database, nonempty=True
    )
    # The environment variable holding the PostgreSQL user's password (never in the file).
    database_password_env: str = setting("CLONES_DATABASE_PASSWORD", check=_env_name)
    # A leader (the bot running the schedules) or a run's owner that stops renewing its lease
    # (killed, hung, cut off) is taken over by another bot this long after its last renewal.
    lease_s: float = setting(30.0, lo=1.0, hi=3600)
    concurrency: int = setting(8, lo=1, hi=MAX_CONCURRENCY)  # clone tasks in vCenter at once
    # ...and at most this many operations (clones, power operations, destroys) at once on one
    # host, and clones and destroys on one datastore: vCenter's own defaults (8 provisioning
    # operations per host, a cost of 128 per datastore). A cluster of many hosts can take a
    # `concurrency` above the per-host limit; the bot then places each clone on a host itself.
    max_ops_per_host: int = setting(8, lo=1, hi=MAX_CONCURRENCY)
    max_ops_per_datastore: int = setting(128, lo=1, hi=1024)
    retries: int = setting(3, lo=0, hi=10)  # extra attempts for a clone after a transient fault
    # First backoff; doubles each attempt, with jitter.
    retry_backoff_s: float = setting(2.0, lo=0, hi=600)
    # Value of the ManagedBy custom attribute on every clone.
    managed_by: str = setting("clones", nonempty=True, example='"clones"')
    # Also write DeployedBy/DeployedAt as custom attributes (they are always in the Notes).
    provenance_attributes: bool = False
    max_environment_clones: int = setting(500, lo=1, hi=10_000)
    # Hosts that may open one shared base disk: 8 on VMFS3, 32 on VMFS5+ with vSphere 5.1+.
    max_hosts_per_base_disk: int = setting(8, lo=1, hi=64)
    confine_hosts: bool = True  # keep each parent's clones on at most that many hosts (DRS rule)
    # Free space to leave on a datastore after a deployment.
    capacity_headroom_gb: float = setting(10.0, lo=0, hi=1_000_000)
    # Wait this long for a guest customization to finish.
    customization_timeout_s: float = setting(900.0, above=0, hi=24 * 3600)
    # Finished environments, their runs and clones are kept this many days (0: for ever), the
    # audit log longer; the scheduler's holder prunes them at prune_hour (team time zone).
    history_days: int = setting(400, lo=0, hi=36_500)
    audit_days: int = setting(1095, lo=0, hi=36_500)
    prune_hour: int = setting(3, lo=0, hi=23)
    slack: SlackSettings = field(default_factory=SlackSettings)
    # The team's time zone for schedules and displayed times.
    timezone: str = setting("UTC", check=_timezone)
    schedule: ScheduleSettings = field(default_factory=ScheduleSettings)
    trainees: TraineeSettings = field(default_factory=TraineeSettings)
    source: Path | None = setting(None, file=False)  # the file these settings came from

    def type(self, name: str) -> TypeSettings:
        from bot.domain.grammar import suggest

        try:
            return self.types[name]
        except KeyError:
            known = ", ".join(sorted(self.types)) or "none configured"
            hint = suggest(name, list(self.types))
            did = f' Did you mean "{hint}"?' if hint else ""
            # What the user typed names no type: a bad command (exit 2), not a broken setup.
            raise UsageError(f'Unknown type "{name}".{did} Known types: {known}.') from None


# ===================================================================== reading a file
def config_path(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    if env.get("CLONES_CONFIG"):
        return Path(env["CLONES_CONFIG"])
    local = Path("clones.toml")
    return local if local.exists() else BUNDLED_LAB_CONFIG


def load_settings(path: Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
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
    except IsADirectoryError:
        raise ConfigError(
            f"{path} is a folder, not a configuration file; give the path of your clones.toml."
        ) from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not a text (UTF-8 TOML) file; check the path.") from None
    except OSError as exc:
        raise ConfigError(
            f"Configuration file {path} cannot be read ({exc.strerror or exc}); check the path "
            "and its permissions."
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc}). Fix the file and try again.") from None
    return settings_from_dict(raw, env=env, source=path)


def settings_from_dict(
    raw: dict[str, Any], *, env: Mapping[str, str] | None = None, source: Path | None = None
) -> Settings:
    """Settings from a parsed file (`raw`, as tomllib returns it) and the environment."""
    env = dict(os.environ if env is None else env)
    where = str(source) if source else "configuration"
    base_dir = source.parent.absolute() if source and source != BUNDLED_LAB_CONFIG else Path.cwd()
    return Reader(where, env, base_dir, _RULES).root(Settings, raw, "clones", source=source)


# ===================================================================== rules across keys
def _vcenter_rules(vc: VCenterSettings, at: Place, env: Mapping[str, str]) -> VCenterSettings:
    url = vc.url.strip()
    if url != LAB_URL:
        scheme = _url_scheme(url)
        if scheme is None:
            raise at.error(
                f'url {json.dumps(url)} is not a URL: e.g. "https://vcenter.example.com/sdk".'
            )
        if scheme == "http" and not vc.insecure:
            raise at.error(
                "url uses plain http; use https, or set insecure = true for a lab endpoint on a "
                "trusted network."
            )
    if vc.thumbprint or vc.ca_file:
        chosen = "thumbprint" if vc.thumbprint else "ca_file"
        if vc.insecure:
            raise at.error(
                f"sets both insecure = true and {chosen}; insecure verifies nothing, so remove "
                f"it (keep {chosen})."
            )
        if vc.thumbprint and vc.ca_file:
            raise at.error(
                "sets both ca_file and thumbprint; keep one: ca_file trusts the CA that issued "
                "vCenter's certificate, thumbprint pins the certificate itself."
            )
        if url != LAB_URL and _url_scheme(url) != "https":
            raise at.error(f"{chosen} needs an https url.")
    return replace(vc, url=url, password=env.get(vc.password_env, ""))


def _url_scheme(url: str) -> str | None:
    """http or https for a URL with a host (and a port, if any, that is a number); else None."""
    try:
        parsed = urlsplit(url)
        parsed.port  # noqa: B018 (a port that is not a number raises here)
    except ValueError:
        return None
    return parsed.scheme if parsed.scheme in ("https", "http") and parsed.hostname else None


def _type_rules(t: TypeSettings, at: Place, env: Mapping[str, str]) -> TypeSettings:
    pattern = t.name_pattern or f"TRN-{t.name[:3].upper()}-{{n:03}}"
    problem = format_problem(pattern, ("n",))
    if problem:
        raise at.error(
            f"name_pattern {json.dumps(pattern)} is not valid ({problem}); use one {{n}} "
            'placeholder, e.g. "TRN-CAP-{n:03}".'
        )
    if "{n" not in pattern or pattern.format(n=2) == pattern.format(n=1):
        raise at.error(
            f'name_pattern {json.dumps(pattern)} must contain {{n}}, e.g. "TRN-CAP-{{n:03}}".'
        )
    longest = pattern.format(n=t.max_count)
    if len(longest) > VM_NAME_MAX:
        raise at.error(f"name_pattern makes names longer than {VM_NAME_MAX} characters.")
    if t.customization_spec is not None and len(longest) > NETBIOS_MAX:
        raise at.error(
            f"name_pattern makes computer names such as {json.dumps(longest)} ({len(longest)} "
            "characters); "
            f'Windows allows {NETBIOS_MAX}. Shorten the pattern, e.g. "TRN-CAP-{{n:03}}".'
        )
    return replace(t, name_pattern=pattern)


def _schedule_rules(s: ScheduleSettings, at: Place, env: Mapping[str, str]) -> ScheduleSettings:
    if s.default_extension_min > s.max_lease_hours * 60:
        raise at.error(
            f"default_extension_min ({s.default_extension_min}) is longer than max_lease_hours "
            f"({s.max_lease_hours} h); make it shorter, e.g. 120."
        )
    return s


def _settings_rules(s: Settings, at: Place, env: Mapping[str, str]) -> Settings:
    where = at.label.removesuffix(" [clones]")
    if not s.types:
        raise ConfigError(f"{where}: no [types.NAME] tables; add one per kind of training VM.")
    seen: dict[str, str] = {}
    for t in s.types.values():  # two types with one pattern would fight over names
        first = t.name_pattern.format(n=1)
        if first in seen:
            raise ConfigError(
                f"{where}: types {seen[first]} and {t.name} use the same name_pattern; give each "
                "type its own prefix."
            )
        seen[first] = t.name
    if isinstance(s.database, Path) and not s.database.is_absolute():  # the default, "clones.db"
        return replace(s, database=at.base_dir / s.database)
    return s


_RULES: dict[type, Rules] = {
    Settings: _settings_rules,
    VCenterSettings: _vcenter_rules,
    TypeSettings: _type_rules,
    ScheduleSettings: _schedule_rules,
}
