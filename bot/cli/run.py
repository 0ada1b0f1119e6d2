"""One `clones ...` command: parse the words, confirm what destroys, dispatch through the table
every front end shares (`bot.services.dispatch`), render the result.

What a command needs is imported when it runs (the services, rendering, the terminal-only verbs):
`clones help` imports the grammar and little else (docs/performance.md, "Cold start")."""

from __future__ import annotations

import getpass
import json
import os
import sys
from typing import TYPE_CHECKING, Any, TextIO

from bot.cli.options import EXIT_INTERRUPTED, EXIT_OK, TERMINAL_HELP, TERMINAL_VERBS, Options
from bot.domain import grammar
from bot.domain.errors import UsageError

if TYPE_CHECKING:
    from bot.cli.stopping import Stopping
    from bot.cli.wiring import Wiring
    from bot.services.container import Services


def run(opts: Options, out: TextIO, wiring: Wiring) -> int:
    words = opts.words
    if words and words[0] in TERMINAL_VERBS:
        from bot.cli.terminal import run_terminal_verb

        done = run_terminal_verb(words, opts, out, wiring)
        if done is not None:
            return done
    command = grammar.parse(" ".join(_quote(w) for w in words))
    if isinstance(command, grammar.Help):
        text = grammar.usage(command.topic) + (TERMINAL_HELP if command.topic is None else "")
        print(text.replace("`", ""), file=out)
        return EXIT_OK
    from bot.cli.roster import with_roster
    from bot.cli.stopping import Stopping
    from bot.settings import load_settings

    command = with_roster(command)
    services = wiring.build(load_settings(opts.config))
    # Ctrl-C and SIGTERM stop the command and let it report (bot/cli/stopping.py), when its spec
    # says it starts operations in vCenter; its spec also says whether it shows a progress bar.
    with Stopping(services, enabled=grammar.spec_of(command).stoppable) as stopping:
        try:
            code = _run(command, services, opts, out, stopping)
        finally:
            services.close()
    return EXIT_INTERRUPTED if stopping.requested else code


def _run(command: Any, services: Services, opts: Options, out: TextIO, stopping: Stopping) -> int:
    from dataclasses import replace

    from bot.cli.dialogue import confirmed
    from bot.cli.progress import Progress
    from bot.cli.render import View, renderer_for
    from bot.cli.roster import handout_lines
    from bot.services.dispatch import Invocation, dispatch, plan_for, resolve_target

    actor = os.environ.get("CLONES_USER") or getpass.getuser()
    if command.access is grammar.Access.CHANGE and not isinstance(command, grammar.Resume):
        _warn_abandoned(services)
    # The terminal is trusted like an operator: self-service commands may name any trainee's VM.
    invocation = Invocation(actor, "cli", anyone=True, on_handout=handout_lines(opts, out))
    command = resolve_target(services, command, invocation)
    plan = plan_for(services, command)
    if plan is not None and not confirmed(command, plan, opts, out):
        print("Cancelled: nothing was changed.", file=out)
        return EXIT_OK
    if isinstance(command, grammar.Orphans) and isinstance(plan, list):
        # Only the orphans shown (and agreed to) are acted on, as in Slack.
        invocation = replace(invocation, only=[o.vm.moref for o in plan if o.ours])
    render = renderer_for(type(command))
    if render is None:  # every command has a renderer; a test checks it
        raise UsageError(f'"{command.verb}" is not available in the terminal; type "clones help".')
    with Progress(out, enabled=not opts.json and grammar.spec_of(command).progress) as progress:
        invocation = replace(invocation, on_event=progress)
        result = stopping.run(lambda: dispatch(services, command, invocation))
    return render(result, View(command, opts, out, services))


def _warn_abandoned(services: Services) -> None:
    runs = services.recovery.abandoned()
    if runs:
        names = ", ".join(f"{r.kind.value} of {r.environment} (run {r.id})" for r in runs[:5])
        print(
            f"clones: note: {len(runs)} interrupted run(s): {names}. "
            'Run "clones resume" to finish them.',
            file=sys.stderr,
        )


def _quote(word: str) -> str:
    return word if word and not any(c in word for c in " '\"\\") else json.dumps(word)
