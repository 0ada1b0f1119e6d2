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

from bot.domain.errors import ConfigError, UsageError

BUNDLED_LAB_CONFIG = Path(__file__).resolve().parent / "data" / "lab.toml"
LAB_URL = "lab"  # `[vcenter] url = "lab"`: use the bundled lab vCenter, started on demand
TYPE_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
VM_NAME_MAX = 80  # vSphere limit for a VM name
MAX_CONCURRENCY = 128  # clone tasks at once (the pool runs twice as many threads)


@dataclass(frozen=True)
class VCenterSettings:
    url: str  # https://vcenter.example.com/sdk, or "lab"
    user: str = ""
    password: str = field(default="", repr=False)
    password_env: str = "CLONES_VCENTER_PASSWORD"
    insecure: bool = False  # skip TLS certificate verification (self-signed lab endpoints only)
    ca_file: str | None = None  # PEM CA certificate(s) to trust (absolute path)
    thumbprint: str | None = None  # pinned certificate fingerprint, "SHA256:AB:CD:..."
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
    customization_spec: str | None = None  # a named guest customization spec in vCenter
    disk_mode: str | None = None  # e.g. "independent_nonpersistent", set after cloning
    power_on: bool = False  # power clones on when they are ready
    # Expected delta of a new clone (GB), for plans and the capacity guard until this type has
    # clones of its own to average; None: 1 GB.
    delta_estimate_gb: float | None = None
    # Extra custom attributes for the asset inventory: name -> value pattern, with {name} (the
    # clone's name), {n} (its number), {type} and {environment} filled in at deploy time.
    attributes: dict[str, str] = field(default_factory=dict)


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
    # Slack Web API base URL: GovSlack (https://slack-gov.com/api/), a proxy, or a test fake.
    api_url: str | None = None
    # On SIGTERM, keep answering and wait this long for the work in hand before exiting; what is
    # not finished by then is resumed at the next start. Keep it under the supervisor's kill
    # timeout (Docker 10 s by default, systemd 90 s, Heroku 30 s).
    drain_timeout_s: float = 25.0


@dataclass(frozen=True)
class ScheduleSettings:
    """Deploy-ahead, strip-back and reminder policy (the `[schedule]` table)."""

    reminder_lead_min: int = 60  # remind the owner this long before a scheduled strip back
    max_lease_hours: int = 336  # an environment's end may be at most this long after its start
    default_extension_min: int = 120  # `extend ENV` without a length, and Slack's "Extend" button
    # How often the scheduler re-reads SQLite (schedules set by another process), and how often a
    # bot standing by tries to take the scheduler over from one that stopped.
    resync_s: float = 30.0


@dataclass(frozen=True)
class TraineeSettings:
    """Trainees and the VMs they are given (the `[trainees]` table)."""

    # Write each assignment on its clone as the custom attribute AssignedTo (one SetField per
    # assignment), so vCenter's own views show who holds which VM.
    assigned_to_attribute: bool = False
    # Send each trainee the reminder before a scheduled strip back, as the owner gets it.
    remind: bool = False
    # Direct messages to one conversation at most this often (Slack: about one a second).
    message_interval_s: float = 1.0
    # A trainee's rebuild waits this long for a busy environment (another trainee's rebuild,
    # a deployment) before it gives up.
    busy_wait_s: float = 120.0


@dataclass(frozen=True)
class Settings:
    vcenter: VCenterSettings
    types: dict[str, TypeSettings]
    database: Path
    concurrency: int = 8  # clone tasks in vCenter at once, in all
    # ...and at most this many operations (clones, power operations, destroys) at once on one
    # host, and clones and destroys on one datastore: vCenter's own defaults (8 provisioning
    # operations per host, a cost of 128 per datastore). A cluster of many hosts can take a
    # `concurrency` above the per-host limit; the bot then places each clone on a host itself.
    max_ops_per_host: int = 8
    max_ops_per_datastore: int = 128
    retries: int = 3  # extra attempts for a clone after a transient fault
    retry_backoff_s: float = 2.0  # first backoff; doubles each attempt, with jitter
    managed_by: str = "clones"  # value of the ManagedBy custom attribute on every clone
    # Also write DeployedBy/DeployedAt as custom attributes (they are always in the Notes).
    provenance_attributes: bool = False
    max_environment_clones: int = 500
    # Hosts that may open one shared base disk: 8 on VMFS3, 32 on VMFS5+ with vSphere 5.1+.
    max_hosts_per_base_disk: int = 8
    confine_hosts: bool = True  # keep each parent's clones on at most that many hosts (DRS rule)
    capacity_headroom_gb: float = 10.0  # free space to leave on a datastore after a deployment
    customization_timeout_s: float = 900.0  # wait this long for a guest customization to finish
    # Finished environments, their runs and clones are kept this many days (0: for ever), the
    # audit log longer; the scheduler's holder prunes them at prune_hour (team time zone).
    history_days: int = 400
    audit_days: int = 1095
    prune_hour: int = 3
    slack: SlackSettings = field(default_factory=SlackSettings)
    timezone: str = "UTC"  # the team's time zone for schedules and displayed times
    schedule: ScheduleSettings = field(default_factory=ScheduleSettings)
    trainees: TraineeSettings = field(default_factory=TraineeSettings)
    source: Path | None = None  # the file these settings came from

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


# Kept whole: reads the file's tables in order; each check names the key it is about.
def settings_from_dict(
    raw: dict[str, Any], *, env: dict[str, str] | None = None, source: Path | None = None
) -> Settings:
    env = dict(os.environ if env is None else env)
    where = str(source) if source else "configuration"
    base_dir = source.parent if source and source != BUNDLED_LAB_CONFIG else Path.cwd()

    vc_raw = _table(raw, "vcenter", where)
    vcenter = _vcenter(vc_raw, env, where, base_dir)

    clones_raw = _table(raw, "clones", where, required=False)
    database = Path(env.get("CLONES_DB") or clones_raw.get("database", "clones.db"))
    if not database.is_absolute():
        database = base_dir / database
    concurrency = _int(clones_raw, "concurrency", 8, 1, MAX_CONCURRENCY, f"{where} [clones]")
    per_host = _int(clones_raw, "max_ops_per_host", 8, 1, MAX_CONCURRENCY, f"{where} [clones]")
    per_datastore = _int(clones_raw, "max_ops_per_datastore", 128, 1, 1024, f"{where} [clones]")
    retries = _int(clones_raw, "retries", 3, 0, 10, f"{where} [clones]")
    backoff = _number(clones_raw, "retry_backoff_s", 2.0, f"{where} [clones]")
    if backoff < 0:
        raise ConfigError(f"{where} [clones] retry_backoff_s must be 0 or more seconds.")
    managed_by = str(clones_raw.get("managed_by", "clones"))
    if not managed_by.strip():
        raise ConfigError(f'{where} [clones] managed_by must not be empty (e.g. "clones").')
    provenance = clones_raw.get("provenance_attributes", False)
    if not isinstance(provenance, bool):
        raise ConfigError(f"{where} [clones] provenance_attributes must be true or false.")
    max_env = _int(clones_raw, "max_environment_clones", 500, 1, 10_000, f"{where} [clones]")
    max_hosts = _int(clones_raw, "max_hosts_per_base_disk", 8, 1, 64, f"{where} [clones]")
    confine = clones_raw.get("confine_hosts", True)
    if not isinstance(confine, bool):
        raise ConfigError(f"{where} [clones] confine_hosts must be true or false.")
    headroom = clones_raw.get("capacity_headroom_gb", 10.0)
    if isinstance(headroom, bool) or not isinstance(headroom, int | float) or headroom < 0:
        raise ConfigError(f"{where} [clones] capacity_headroom_gb must be 0 or more (GB).")
    custom_timeout = clones_raw.get("customization_timeout_s", 900.0)
    if isinstance(custom_timeout, bool) or not isinstance(custom_timeout, int | float):
        raise ConfigError(f"{where} [clones] customization_timeout_s must be a number of seconds.")
    if custom_timeout <= 0:
        raise ConfigError(f"{where} [clones] customization_timeout_s must be more than 0.")
    history_days = _int(clones_raw, "history_days", 400, 0, 36_500, f"{where} [clones]")
    audit_days = _int(clones_raw, "audit_days", 1095, 0, 36_500, f"{where} [clones]")
    prune_hour = _int(clones_raw, "prune_hour", 3, 0, 23, f"{where} [clones]")

    types_raw = _table(raw, "types", where, required=False)
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

    schedule = _schedule(_table(raw, "schedule", where, required=False), where)
    trainees = _trainees(_table(raw, "trainees", where, required=False), where)

    return Settings(
        vcenter=vcenter,
        slack=slack,
        timezone=timezone,
        schedule=schedule,
        trainees=trainees,
        types=types,
        database=database,
        concurrency=concurrency,
        max_ops_per_host=per_host,
        max_ops_per_datastore=per_datastore,
        retries=retries,
        retry_backoff_s=backoff,
        managed_by=managed_by,
        provenance_attributes=provenance,
        max_environment_clones=max_env,
        max_hosts_per_base_disk=max_hosts,
        confine_hosts=confine,
        capacity_headroom_gb=float(headroom),
        customization_timeout_s=float(custom_timeout),
        history_days=history_days,
        audit_days=audit_days,
        prune_hour=prune_hour,
        source=source,
    )


# Kept whole: reads [vcenter] key by key; each check names its key and the fix.
def _vcenter(
    vc: dict[str, Any], env: dict[str, str], where: str, base_dir: Path
) -> VCenterSettings:
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
    insecure = vc.get("insecure", False)
    if not isinstance(insecure, bool):
        raise ConfigError(f"{where} [vcenter] insecure must be true or false (no quotes).")
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
    ca_file = _ca_file(vc.get("ca_file"), where, base_dir)
    thumbprint = _thumbprint(vc.get("thumbprint"), where)
    if thumbprint or ca_file:
        chosen = "thumbprint" if thumbprint else "ca_file"
        if insecure:
            raise ConfigError(
                f"{where} [vcenter] sets both insecure = true and {chosen}; insecure verifies "
                f"nothing, so remove it (keep {chosen})."
            )
        if thumbprint and ca_file:
            raise ConfigError(
                f"{where} [vcenter] sets both ca_file and thumbprint; keep one: ca_file trusts "
                "the CA that issued vCenter's certificate, thumbprint pins the certificate itself."
            )
        if url != LAB_URL and urlparse(url).scheme != "https":
            raise ConfigError(f"{where} [vcenter] {chosen} needs an https url.")
    timeout_s = _number(vc, "timeout_s", 60.0, f"{where} [vcenter]")
    task_timeout_s = _number(vc, "task_timeout_s", 1800.0, f"{where} [vcenter]")
    for key, value in (("timeout_s", timeout_s), ("task_timeout_s", task_timeout_s)):
        if value <= 0:
            raise ConfigError(f"{where} [vcenter] {key} must be more than 0 seconds.")
    return VCenterSettings(
        url=url,
        user=user,
        password=env.get(password_env, ""),
        password_env=password_env,
        insecure=insecure,
        ca_file=ca_file,
        thumbprint=thumbprint,
        datacenter=vc.get("datacenter"),
        timeout_s=timeout_s,
        task_timeout_s=task_timeout_s,
    )


def _ca_file(value: Any, where: str, base_dir: Path) -> str | None:
    """ca_file as an absolute path (relative to the configuration file's folder), checked to
    hold PEM certificates."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ConfigError(f'{where} [vcenter] ca_file must be a path, e.g. "vcenter-ca.pem".')
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = base_dir / path
    if not path.is_file():
        raise ConfigError(
            f"{where} [vcenter] ca_file {path} does not exist (a relative ca_file is read from "
            "the configuration file's folder)."
        )
    from bot.certificates import ca_file_problem  # ssl and hashlib: only when there is one

    problem = ca_file_problem(str(path))
    if problem:
        raise ConfigError(f"{where} [vcenter] {problem}.")
    return str(path)


def _thumbprint(value: Any, where: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ConfigError(f'{where} [vcenter] thumbprint must be text, e.g. "SHA256:AB:CD:...".')
    try:
        from bot.certificates import parse_thumbprint

        return parse_thumbprint(value)
    except ValueError as exc:
        raise ConfigError(f"{where} [vcenter] thumbprint {value!r} {exc}.") from None


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

    interval = _number(raw, "progress_interval_s", 3.0, ctx)
    if interval < 1.0:
        raise ConfigError(
            f"{ctx} progress_interval_s must be at least 1 second (Slack rate limits)."
        )
    drain = _number(raw, "drain_timeout_s", 25.0, ctx)
    if not 0 <= drain <= 3600:
        raise ConfigError(f"{ctx} drain_timeout_s must be from 0 to 3600 seconds, got {drain}.")
    api_url = raw.get("api_url")
    if api_url is not None and (
        not isinstance(api_url, str) or not re.fullmatch(r"https?://\S+", api_url)
    ):
        raise ConfigError(
            f'{ctx} api_url must be an http(s) URL such as "https://slack-gov.com/api/", '
            f"got {api_url!r}."
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
        api_url=api_url,
        drain_timeout_s=drain,
    )


def _schedule(raw: dict[str, Any], where: str) -> ScheduleSettings:
    ctx = f"{where} [schedule]"
    lead = _int(raw, "reminder_lead_min", 60, 0, 7 * 24 * 60, ctx)
    max_lease = _int(raw, "max_lease_hours", 336, 1, 366 * 24, ctx)
    extension = _int(raw, "default_extension_min", 120, 1, 7 * 24 * 60, ctx)
    if extension > max_lease * 60:
        raise ConfigError(
            f"{ctx} default_extension_min ({extension}) is longer than max_lease_hours "
            f"({max_lease} h); make it shorter, e.g. 120."
        )
    resync = _number(raw, "resync_s", 30.0, ctx)
    if not 0.1 <= resync <= 3600:
        raise ConfigError(f"{ctx} resync_s must be from 0.1 to 3600 seconds (e.g. 30).")
    known = ("reminder_lead_min", "max_lease_hours", "default_extension_min", "resync_s")
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise ConfigError(
            f"{ctx} has unknown key(s) {', '.join(unknown)}; known: {', '.join(known)}."
        )
    return ScheduleSettings(
        reminder_lead_min=lead,
        max_lease_hours=max_lease,
        default_extension_min=extension,
        resync_s=resync,
    )


def _trainees(raw: dict[str, Any], where: str) -> TraineeSettings:
    ctx = f"{where} [trainees]"
    flags = {}
    for key in ("assigned_to_attribute", "remind"):
        value = raw.get(key, False)
        if not isinstance(value, bool):
            raise ConfigError(f"{ctx} {key} must be true or false.")
        flags[key] = value
    interval = _number(raw, "message_interval_s", 1.0, ctx)
    if not 0 <= interval <= 60:
        raise ConfigError(f"{ctx} message_interval_s must be from 0 to 60 seconds (e.g. 1).")
    busy = _number(raw, "busy_wait_s", 120.0, ctx)
    if not 0 <= busy <= 3600:
        raise ConfigError(f"{ctx} busy_wait_s must be from 0 to 3600 seconds (e.g. 120).")
    known = ("assigned_to_attribute", "remind", "message_interval_s", "busy_wait_s")
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise ConfigError(
            f"{ctx} has unknown key(s) {', '.join(unknown)}; known: {', '.join(known)}."
        )
    return TraineeSettings(
        assigned_to_attribute=flags["assigned_to_attribute"],
        remind=flags["remind"],
        message_interval_s=interval,
        busy_wait_s=busy,
    )


# Kept whole: reads one [types.NAME] table key by key; each check names its key and the fix.
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
    spec = t.get("customization_spec")
    if spec is not None:
        if not isinstance(spec, str) or not spec.strip():
            raise ConfigError(f'{ctx} customization_spec must be a spec name, e.g. "win-training".')
        longest = pattern.format(n=max_count)
        if len(longest) > NETBIOS_MAX:
            raise ConfigError(
                f'{ctx} name_pattern makes computer names such as "{longest}" ({len(longest)} '
                f"characters); Windows allows {NETBIOS_MAX}. Shorten the pattern, e.g. "
                '"TRN-CAP-{n:03}".'
            )
    disk_mode = t.get("disk_mode")
    if disk_mode is not None and disk_mode not in DISK_MODES:
        raise ConfigError(
            f'{ctx} disk_mode "{disk_mode}" is not a vSphere disk mode; use one of '
            f"{', '.join(DISK_MODES)} (training labs usually want independent_nonpersistent)."
        )
    delta_estimate = t.get("delta_estimate_gb")
    if delta_estimate is not None and (
        isinstance(delta_estimate, bool)
        or not isinstance(delta_estimate, int | float)
        or delta_estimate < 0
    ):
        raise ConfigError(f"{ctx} delta_estimate_gb must be a number of GB, 0 or more (e.g. 0.5).")
    power_on = t.get("power_on", False)
    if not isinstance(power_on, bool):
        raise ConfigError(f"{ctx} power_on must be true or false.")
    attributes = t.get("attributes", {})
    if not isinstance(attributes, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in attributes.items()
    ):
        raise ConfigError(
            f'{ctx} attributes must be a table of names to text, e.g. CostCentre = "TR-01".'
        )
    for key, value in attributes.items():
        try:
            value.format(name="TRN-CAP-001", n=1, type=name, environment="env")
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError(
                f'{ctx} attributes.{key} = "{value}" is not valid ({exc}); use only '
                f"{{name}}, {{n}}, {{type}} and {{environment}}."
            ) from None
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
        customization_spec=spec,
        disk_mode=disk_mode,
        power_on=power_on,
        attributes=dict(attributes),
        delta_estimate_gb=float(delta_estimate) if delta_estimate is not None else None,
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
            raise ConfigError(
                f"{where}: the [{key}] table is missing; add it (README.md, Configuration, "
                "lists its settings)."
            )
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: {key} must be a table ([{key}]).")
    return value


def _number(raw: dict[str, Any], key: str, default: float, ctx: str) -> float:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(
            f"{ctx} {key} must be a number of seconds (e.g. {default}), not {value!r}."
        )
    return float(value)


def _int(raw: dict[str, Any], key: str, default: int, lo: int, hi: int, ctx: str) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ConfigError(f"{ctx} {key} must be a whole number from {lo} to {hi}.")
    return value
