"""Confirming a destructive command in the terminal: show what it would do, then ask the user to
type the environment's name (or the action), or take `--yes`. Off a terminal, without --yes, the
answer is a usage error saying what to type."""

from __future__ import annotations

import sys
from typing import Any, TextIO

from bot.cli.options import Options
from bot.cli.render import orphans_text
from bot.domain import grammar
from bot.domain.errors import UsageError
from bot.domain.results import TeardownPlan
from bot.domain.trainees import RebuildPlan
from bot.services import sentences as say
from bot.services.orphans import OrphansOutcome
from bot.services.refresh import RefreshPlan


def confirmed(command: Any, plan: object, opts: Options, out: TextIO) -> bool:
    """Show `plan` and ask; True when the command may go ahead."""
    if isinstance(command, grammar.Teardown):
        assert isinstance(plan, TeardownPlan)
        if opts.yes:
            return True
        print(f"Strip back {plan.environment}. {say.teardown_plan(plan)}", file=out)
        return _ask(
            f"Type {plan.environment} to destroy these clones: ",
            plan.environment,
            f"Strip back needs confirmation: run `clones teardown {plan.environment} --yes`.",
        )
    if isinstance(command, grammar.Refresh):
        assert isinstance(plan, RefreshPlan)
        if opts.yes:
            return True
        print(f"Refresh {plan.environment}. {say.refresh_plan(plan)}", file=out)
        return _ask(
            f"Type {plan.environment} to refresh: ",
            plan.environment,
            f"Refresh needs confirmation: run `clones refresh {plan.environment} --yes`.",
        )
    if isinstance(command, grammar.Rebuild):
        assert isinstance(plan, RebuildPlan)
        if opts.yes:
            return True
        print(f"Rebuild {plan.vm}. {say.rebuild_plan(plan)}", file=out)
        return _ask(
            f"Type {plan.vm} to rebuild it: ",
            plan.vm,
            f"Rebuild needs confirmation: run `clones rebuild {plan.vm} --yes`.",
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
