"""Deploying and planning: `deploy` and `plan`, which share the TYPE COUNT list."""

from __future__ import annotations

from dataclasses import dataclass

from bot.domain.errors import UsageError
from bot.domain.verbs import words as w
from bot.domain.verbs.spec import Access, Verb, command


@dataclass(frozen=True, slots=True)
class DeployItem:
    type: str
    count: int


_DEPLOY_EXAMPLE = "deploy capture 25 as nov-cohort"
_POWER_ON_TAILS = (("power", "on"), ("power-on",), ("poweron",))


def _strip_power_on(words: list[str]) -> tuple[list[str], bool]:
    """Remove a trailing `[and] power on` / `power-on` flag."""
    lowered = [w.lower() for w in words]
    for tail in _POWER_ON_TAILS:
        n = len(tail)
        if len(words) >= n and tuple(lowered[-n:]) == tail:
            rest = words[:-n]
            if rest and rest[-1].lower() == "and":
                rest = rest[:-1]
            return rest, True
    return words, False


def _count(type_name: str, word: str) -> int:
    if not w.COUNT_PATTERN.fullmatch(word) or int(word) < 1:
        raise UsageError(
            f'count must be a whole number of 1 or more, got "{w.show(word)}" for '
            f'{w.show(type_name)}, e.g. "deploy {w.show(type_name)} 25 as nov-cohort"'
        )
    return int(word)


def _deploy_items(words: list[str]) -> tuple[DeployItem, ...]:
    # "capture 25 and packaging 10" reads naturally; "and" between pairs is a separator.
    words = [w for w in words if w.lower() != "and"]
    if not words:
        raise UsageError(f'say which type and how many, e.g. "{_DEPLOY_EXAMPLE}"')
    items: list[DeployItem] = []
    seen: set[str] = set()
    for i in range(0, len(words), 2):
        word = words[i]
        following = words[i + 1] if i + 1 < len(words) else None
        if w.COUNT_PATTERN.fullmatch(word) or (word.startswith("-") and word[1:].isdigit()):
            if following is not None and not w.COUNT_PATTERN.fullmatch(following):
                raise UsageError(
                    f"put the type before its count, "
                    f'e.g. "deploy {w.show(following.lower())} {w.show(word)}" '
                    f'not "deploy {w.show(word)} {w.show(following)}"'
                )
            raise UsageError(f'a count needs a type before it, e.g. "{_DEPLOY_EXAMPLE}"')
        type_name = word.lower()
        if not w.TYPE_PATTERN.fullmatch(type_name):
            raise UsageError(
                f'"{w.show(word)}" is not a type name: use letters, digits, "-" or "_", '
                f'e.g. "{_DEPLOY_EXAMPLE}" (`types` lists them)'
            )
        if following is None:
            if items:  # most likely an environment name without "as"
                raise UsageError(
                    f'"{w.show(word)}" has no count after it; to name the environment use "as", '
                    f'e.g. "deploy capture 25 as {w.show(type_name)}"'
                )
            raise UsageError(
                f"say how many {w.show(type_name)} VMs after the type, "
                f'e.g. "deploy {w.show(type_name)} 25 as nov-cohort"'
            )
        count = _count(type_name, following)
        if type_name in seen:
            raise UsageError(
                f"{w.show(type_name)} appears twice: give each type once with its total count, "
                f'e.g. "deploy capture 25 packaging 10"'
            )
        seen.add(type_name)
        items.append(DeployItem(type_name, count))
    return tuple(items)


def _parse_deploy(args: list[str]) -> Deploy:
    # The time tail: `at ...` runs to `until`; `until ...` runs to the end (so that
    # "until fri at 17:00" keeps its "at"). Each part may end with the power-on flag.
    lowered = [w.lower() for w in args]
    first = next((i for i, w in enumerate(lowered) if w in ("at", "until")), len(args))
    at_words: list[str] | None = None
    until_words: list[str] | None = None
    if first < len(args) and lowered[first] == "at":
        cut = lowered.index("until", first) if "until" in lowered[first:] else len(args)
        at_words = args[first + 1 : cut]
        if cut < len(args):
            until_words = args[cut + 1 :]
    elif first < len(args):
        until_words = args[first + 1 :]

    power_on = False
    at = until = None
    if at_words is not None:
        at_words, flag = _strip_power_on(at_words)
        at, power_on = w.time_text("at", at_words), power_on or flag
    if until_words is not None:
        until_words, flag = _strip_power_on(until_words)
        until, power_on = w.time_text("until", until_words), power_on or flag

    # Commas separate type/count pairs: treat them as spaces ("capture 25, packaging 10").
    head = [part for arg in args[:first] for part in arg.split(",") if part]
    head, flag = _strip_power_on(head)
    power_on = power_on or flag

    environment: str | None = None
    head_lower = [w.lower() for w in head]
    if "as" in head_lower:
        cut = head_lower.index("as")
        after = head[cut + 1 :]
        if len(after) != 1:
            raise UsageError(
                f'"as" takes one environment name at the end, e.g. "{_DEPLOY_EXAMPLE}"'
                if after
                else f'"as" needs an environment name after it, e.g. "{_DEPLOY_EXAMPLE}"'
            )
        if after[0].lower() in ("at", "until", "as", "and"):
            raise UsageError(f'"{after[0]}" is a keyword, not a name, e.g. "{_DEPLOY_EXAMPLE}"')
        environment = w.environment(after[0], _DEPLOY_EXAMPLE)
        head = head[:cut]

    return Deploy(_deploy_items(head), environment, power_on, at, until)


@command(
    "deploy",
    Access.CHANGE,
    parse=_parse_deploy,
    summary="deploy linked clones of one or more types into an environment",
    example=_DEPLOY_EXAMPLE,
    syntax="deploy TYPE COUNT [TYPE COUNT ...] [as ENV] [and power on] [at WHEN] [until WHEN]",
    detail=(
        "COUNT is 1 up to the type's maximum (its max_count setting; `types` shows it); "
        "separate pairs with spaces, commas or `and`.",
        "ENV names the environment: lower-case letters, digits and dashes, up to 40 characters.",
        "`and power on` powers the clones on once they are ready.",
        "`at WHEN` deploys later; `until WHEN` strips the environment back then (put it last).",
    ),
    examples=(
        "deploy capture 25",
        "deploy capture 25 packaging 25 verification 25 as nov-cohort",
        "deploy capture 25, packaging 10 as demo and power on",
        "deploy capture 25 as nov-cohort at mon 08:00 until fri 17:00",
    ),
    progress=True,
)
class Deploy(Verb):
    """Deploy clones of one or more types; `at`/`until` are raw time text, parsed later."""

    items: tuple[DeployItem, ...]
    environment: str | None = None
    power_on: bool = False
    at: str | None = None
    until: str | None = None


def _parse_plan(args: list[str]) -> Plan:
    words, power_on = _strip_power_on(list(args))
    return Plan(_deploy_items(words), power_on)


@command(
    "plan",
    Access.READ,
    parse=_parse_plan,
    summary="estimate thick, thin and linked sizes and check the datastore's free space",
    example="plan capture 25",
    syntax="plan TYPE COUNT [TYPE COUNT ...] [and power on]",
    detail=("Nothing is created; `and power on` counts RAM-sized swap files too.",),
    examples=("plan capture 25", "plan capture 25 packaging 25 and power on"),
)
class Plan(Verb):
    items: tuple[DeployItem, ...]
    power_on: bool = False
