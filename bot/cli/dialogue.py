"""Confirming a destructive command in the terminal: show what it would do, then ask the user to
type the environment's name (or the action), or take `--yes`. Off a terminal, without --yes, the
answer is a usage error saying what to type."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO, cast

from bot.cli.options import Options
from bot.cli.render import orphans_text
from bot.domain import grammar
from bot.domain.errors import UsageError
from bot.domain.results import TeardownPlan
from bot.domain.trainees import RebuildPlan
from bot.services import sentences as say
from bot.services.orphans import OrphansOutcome
from bot.services.refresh import RefreshPlan


@dataclass(frozen=True)
class _Typed:
    """A command confirmed by typing the name it acts on (an environment, a VM)."""

    title: str  # "Strip back"
    verb: str  # the command's word, for the `--yes` hint
    purpose: str  # what typing the name agrees to
    name: Callable[[Any], str]  # the name to type, from the plan
    text: Callable[[Any], str]  # what the plan does, in words


_TYPED: dict[type[Any], _Typed] = {
    grammar.Teardown: _Typed(
        "Strip back",
        "teardown",
        "to destroy these clones",
        lambda p: p.environment,
        lambda p: say.teardown_plan(cast(TeardownPlan, p)),
    ),
    grammar.Refresh: _Typed(
        "Refresh",
        "refresh",
        "to refresh",
        lambda p: p.environment,
        lambda p: say.refresh_plan(cast(RefreshPlan, p)),
    ),
    grammar.Rebuild: _Typed(
        "Rebuild",
        "rebuild",
        "to rebuild it",
        lambda p: p.vm,
        lambda p: say.rebuild_plan(cast(RebuildPlan, p)),
    ),
}


def confirmed(command: Any, plan: object, opts: Options, out: TextIO) -> bool:
    """Show `plan` and ask; True when the command may go ahead."""
    typed = _TYPED.get(type(command))
    if typed is not None:
        if opts.yes:
            return True
        name = typed.name(plan)
        print(f"{typed.title} {name}. {typed.text(plan)}", file=out)
        return _ask(
            f"Type {name} {typed.purpose}: ",
            name,
            f"{typed.title} needs confirmation: run `clones {typed.verb} {name} --yes`.",
        )
    if isinstance(command, grammar.Orphans) and command.action is not None:
        assert isinstance(plan, list)
        found = OrphansOutcome(plan, command.action)
        if found.orphans:
            print(orphans_text(found), file=out)
        if not found.ours:
            return True  # nothing of ours to adopt or remove: the command says so
        action = command.action
        return opts.yes or _ask(
            f"{action} {len(found.ours)} VMs? Type {action} to confirm: ",
            action,
            f"Confirm with: clones orphans {action} --yes",
        )
    return True


def _ask(prompt: str, expected: str, off_terminal: str) -> bool:
    if not sys.stdin.isatty():
        raise UsageError(off_terminal)
    return input(prompt).strip() == expected
