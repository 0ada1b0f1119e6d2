"""Reading a TOML file into frozen dataclasses that are its schema (standard library only).

A table is a dataclass; a key is a field, with its name, type and default; `setting(...)` puts in
the field's metadata what the type cannot say (a range, an environment variable that overrides
the file, a check of its own). A field whose type is a dataclass is a table of its own, one whose
type is `dict[str, SomeDataclass]` a table of tables (`[types.NAME]`). The root dataclass's plain
fields are the keys of one named table (`[clones]`).

`Reader` reads every table against its dataclass: a key the dataclass does not have, a value of
the wrong type, a number out of range or not finite, a table where a value belongs and the
reverse: each is a ConfigError of one line naming the file, the table and the key, and what to
write instead (for an unknown key, the nearest known one). Then the rules of the table (a
function per dataclass, given to the reader) check what spans keys. Types understood: bool, int,
float, str, Path (from text), `X | None` (the key may be left out), `tuple[str, ...]` (a list of
text) and `dict[str, str]` (a table of text).
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import MISSING, Field, dataclass, field, fields, is_dataclass
from functools import cache
from pathlib import Path
from types import UnionType
from typing import Any, TypeVar, get_args, get_origin, get_type_hints

from bot.domain.errors import ConfigError

T = TypeVar("T")


@dataclass(frozen=True)
class Place:
    """Where a value came from, for messages: `/etc/clones/clones.toml [slack] channels`."""

    label: str
    base_dir: Path  # relative paths in the file are read from here

    def error(self, text: str) -> ConfigError:
        return ConfigError(f"{self.label}{'' if text[:1] in ':;,.' else ' '}{text}")


Check = Callable[[Any, Place], Any]  # a further check of one value; returns the value to keep
Rules = Callable[[Any, Place, Mapping[str, str]], Any]  # a table's checks across keys


@dataclass(frozen=True)
class Spec:
    """What a field's type does not say about its key (see `setting`)."""

    lo: float | None = None  # the smallest value allowed
    hi: float | None = None  # the largest value allowed
    above: float | None = None  # the value must be more than this
    why: str = ""  # the reason for a range (or for `names`), for messages
    env: str | None = None  # an environment variable that, when set, overrides the file
    check: Check | None = None
    example: str = ""  # a good value as written in the file, for messages
    nonempty: bool = False  # text that must not be blank
    file: bool = True  # False: not a key of the file (set by a rule, or from the environment)
    refuse: str = ""  # for a key that must not be in the file: why, and what to do instead
    names: str = ""  # a table of tables: the pattern its tables' names must match


def setting(
    default: Any = MISSING,
    *,
    factory: Callable[[], Any] | None = None,
    secret: bool = False,
    **spec: Any,
) -> Any:
    """A settings field: its default (none: the key is required) and its `Spec`; a `secret`
    is left out of the dataclass's repr."""
    metadata = {"spec": Spec(**spec)}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata, repr=not secret)
    return field(default=default, metadata=metadata, repr=not secret)


class Reader:
    """Reads one file's tables (see the module's docstring)."""

    def __init__(
        self,
        where: str,
        env: Mapping[str, str],
        base_dir: Path,
        rules: Mapping[type, Rules],
    ) -> None:
        self.where = where
        self.env = env
        self.base_dir = base_dir
        self.rules = rules

    def place(self, what: str) -> Place:
        return Place(f"{self.where} {what}", self.base_dir)

    def root(self, cls: type[T], raw: dict[str, Any], own: str, **given: Any) -> T:
        """The whole file as `cls`: its plain fields from the table `own`, its table fields
        from the tables of their names; then `cls`'s rules."""
        schema: type = cls
        tables = _tables(schema)
        names = [own, *tables]
        keys = file_keys(schema)
        for name, value in raw.items():
            if name in names:
                continue
            if name in keys:
                raise ConfigError(
                    f"{self.where}: {named(name)} is outside any table; put it under [{own}]."
                )
            if isinstance(value, dict):
                raise ConfigError(
                    f"{self.where} [{named(name)}]: unknown table;"
                    + nearest(name, names, "the tables are", brackets=True)
                )
            raise ConfigError(
                f"{self.where}: {named(name)} is outside any table and is not a setting;"
                + nearest(name, list(keys), f"the keys of [{own}] are")
            )
        values = self.keys(cls, self.table(raw, own, required=False), own)
        for name, f in tables.items():
            tp = _hints(schema)[name]
            required = f.default is MISSING and f.default_factory is MISSING
            sub = self.table(raw, name, required=required)
            if get_origin(tp) is dict:
                values[name] = self._tables_of(get_args(tp)[1], sub, name, _spec_of(f))
            else:
                values[name] = self.read(tp, sub, name)
        return self._ruled(cls(**values, **given), own)

    def table(self, raw: dict[str, Any], name: str, *, required: bool) -> dict[str, Any]:
        value = raw.get(name)
        if value is None:
            if required:
                raise ConfigError(
                    f"{self.where}: the [{name}] table is missing; add it (README.md, "
                    "Configuration, lists its settings)."
                )
            return {}
        if not isinstance(value, dict):
            raise ConfigError(
                f"{self.where}: {name} must be a table ([{name}]), not {shown(value)}."
            )
        return value

    def read(self, cls: type[T], raw: dict[str, Any], table: str, **given: Any) -> T:
        """One table as `cls`, then `cls`'s rules."""
        return self._ruled(cls(**self.keys(cls, raw, table), **given), table)

    def _ruled(self, made: T, table: str) -> T:
        rules = self.rules.get(type(made))
        return rules(made, self.place(f"[{table}]"), self.env) if rules else made

    def _tables_of(self, cls: type, raw: dict[str, Any], table: str, spec: Spec) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, sub in raw.items():
            ctx = f"{self.where} [{table}.{named(name)}]"
            if spec.names and not re.fullmatch(spec.names, name):
                raise ConfigError(f"{ctx}: {spec.why}.")
            if not isinstance(sub, dict):
                raise ConfigError(f"{ctx} must be a table, not {shown(sub)}.")
            own = {"name": name} if "name" in {f.name for f in fields(cls)} else {}
            out[name] = self.read(cls, sub, f"{table}.{named(name)}", **own)
        return out

    def keys(self, cls: type, raw: dict[str, Any], table: str) -> dict[str, Any]:
        """The values of `cls`'s keys in `raw` (and the environment); defaults are left to the
        dataclass."""
        known = file_keys(cls)
        for name in raw:
            if name in known:
                continue
            at = self.place(f"[{table}] {named(name)}")
            f = next((f for f in fields(cls) if f.name == name), None)
            if f is not None and _spec_of(f).refuse:
                raise at.error(_spec_of(f).refuse)
            if name in _tables(cls):
                raise at.error(f"is a table of its own: [{name}].")
            raise at.error(
                ": unknown key;" + nearest(name, list(known), f"the keys of [{table}] are")
            )
        values: dict[str, Any] = {}
        missing = []
        for name, (tp, spec, required) in known.items():
            at = self.place(f"[{table}] {name}")
            value = raw.get(name, MISSING)
            if spec.env and self.env.get(spec.env, "").strip():
                value, at = self.env[spec.env].strip(), Place(f"${spec.env}", self.base_dir)
            if value is MISSING:
                missing += [name] if required else []
                continue
            if isinstance(tp, UnionType):  # X | None: the key may be left out, never written empty
                tp = next(a for a in get_args(tp) if a is not type(None))
            kept = _typed(value, tp, spec, at)
            values[name] = spec.check(kept, at) if spec.check else kept
        if missing:
            example = known[missing[0]][1].example
            eg = f": e.g. {missing[0]} = {example}" if example else "."
            raise ConfigError(f"{self.where} [{table}] is missing {', '.join(missing)}{eg}")
        return values


def _typed(value: Any, tp: Any, spec: Spec, at: Place) -> Any:
    """`value` as the field's type, or a ConfigError saying what to write."""
    eg = f", e.g. {spec.example}" if spec.example else ""
    if tp is bool:
        if not isinstance(value, bool):
            raise at.error(f"must be true or false (no quotes), not {shown(value)}.")
        return value
    if tp is int or tp is float:
        return _number(value, tp, spec, at)
    if tp is str or tp is Path:
        if not isinstance(value, str):
            raise at.error(f"must be text in quotes{eg}, not {shown(value)}.")
        if spec.nonempty and not value.strip():
            raise at.error(
                f"must not be empty (e.g. {spec.example})." if eg else "must not be empty."
            )
        return value
    origin, args = get_origin(tp), get_args(tp)
    if origin is tuple and args[0] is str:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise at.error(f"must be a list of text{eg}, not {shown(value)}.")
        return tuple(value)
    if origin is dict and args == (str, str):
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise at.error(f"must be a table of names to text{eg}, not {shown(value)}.")
        return dict(value)
    raise TypeError(f"schema: no reader for {tp!r} ({at.label})")  # a schema bug, not input


def _number(value: Any, tp: type, spec: Spec, at: Place) -> int | float:
    whole = tp is int
    ok = isinstance(value, int) if whole else isinstance(value, int | float)
    if isinstance(value, bool) or not ok or not math.isfinite(value) or not _in_range(value, spec):
        unit = _unit(at.label)
        kind = "a whole number" if whole else f"a number{f' of {unit}' if unit else ''}"
        why = f" ({spec.why})" if spec.why else ""
        raise at.error(f"must be {kind} {_range(spec)}{why}, not {shown(value)}.")
    return value if whole else float(value)


def _in_range(value: float, spec: Spec) -> bool:
    return (
        (spec.lo is None or value >= spec.lo)
        and (spec.hi is None or value <= spec.hi)
        and (spec.above is None or value > spec.above)
    )


def _range(spec: Spec) -> str:
    lo, hi, above = (None if v is None else _num(v) for v in (spec.lo, spec.hi, spec.above))
    if above is not None:
        return f"more than {above}" + (f" and at most {hi}" if hi is not None else "")
    if lo is not None and hi is not None:
        return f"from {lo} to {hi}"
    if lo is not None:
        return f"of {lo} or more"
    return f"of at most {hi}" if hi is not None else ""


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


_UNITS = {"_s": "seconds", "_min": "minutes", "_hours": "hours", "_gb": "GB", "_days": "days"}


def _unit(label: str) -> str:
    return next((unit for suffix, unit in _UNITS.items() if label.endswith(suffix)), "")


def named(name: str) -> str:
    """A name from the file as a message shows it: as is when it is plain, else quoted with its
    escapes (a key may hold a newline or a quote)."""
    if re.fullmatch(r"[\w./~:@+=-]+", name):
        return name
    return json.dumps(name, ensure_ascii=not name.isprintable())


def shown(value: Any) -> str:
    """A value as a message shows it: a table, a list, or the value itself (shortened)."""
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def nearest(name: str, known: list[str], listing: str, *, brackets: bool = False) -> str:
    """' did you mean X?' for the known name nearest `name`, else ' {listing} a, b, c.'"""
    shown_names = [f"[{k}]" if brackets else k for k in known]
    lowered = [k.lower() for k in known]
    near = difflib.get_close_matches(name.lower(), lowered, n=1, cutoff=0.6)
    if near:
        return f" did you mean {shown_names[lowered.index(near[0])]}?"
    return f" {listing} {', '.join(shown_names)}."


@cache
def _hints(cls: type) -> dict[str, Any]:
    return get_type_hints(cls)


def _spec_of(f: Field[Any]) -> Spec:
    spec = f.metadata.get("spec")
    return spec if isinstance(spec, Spec) else Spec()


@cache
def file_keys(cls: type) -> dict[str, tuple[Any, Spec, bool]]:
    """The keys of `cls`'s table: name -> (type, spec, required); not its tables, nor the
    fields that are not keys of the file."""
    out = {}
    for f in fields(cls):
        spec = _spec_of(f)
        if spec.file and f.name not in _tables(cls):
            required = f.default is MISSING and f.default_factory is MISSING
            out[f.name] = (_hints(cls)[f.name], spec, required)
    return out


@cache
def _tables(cls: type) -> dict[str, Field[Any]]:
    """The fields of `cls` that are tables of their own: a dataclass, or a dict of them."""
    out: dict[str, Field[Any]] = {}
    for f in fields(cls):
        tp = _hints(cls)[f.name]
        args = get_args(tp)
        if is_dataclass(tp) or (get_origin(tp) is dict and args and is_dataclass(args[-1])):
            out[f.name] = f
    return out
