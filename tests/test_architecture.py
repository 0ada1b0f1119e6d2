"""The shape of the code (issue 15, docs/architecture.md): sizes, and the import rules.

- No class over 300 lines and no function over 60 without a line beside it saying why it stays
  whole: a comment starting `# Kept whole:` on the line just above it (above its decorators).
- The import rules are import-linter contracts in pyproject.toml, checked here as in CI.
- Every command of the grammar has a route in the dispatch table, a plan when it destroys, and
  a terminal rendering; commands know their verb.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bot.domain import grammar

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bot", "handlers", "storage")
MAX_CLASS, MAX_FUNCTION = 300, 60
WHY = "# Kept whole:"


def _too_long() -> list[str]:
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            source = path.read_text(encoding="utf-8")
            lines = source.splitlines()
            for node in ast.walk(ast.parse(source)):
                if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                    continue
                start = node.decorator_list[0].lineno if node.decorator_list else node.lineno
                length = (node.end_lineno or start) - start + 1
                limit = MAX_CLASS if isinstance(node, ast.ClassDef) else MAX_FUNCTION
                above = lines[start - 2].strip() if start >= 2 else ""
                if length > limit and not above.startswith(WHY):
                    where = path.relative_to(ROOT)
                    found.append(f"{where}:{start} {node.name} ({length} lines, limit {limit})")
    return found


def test_no_class_or_function_is_too_long_without_saying_why() -> None:
    assert _too_long() == []


@pytest.mark.skipif(shutil.which("lint-imports") is None, reason="import-linter not installed")
def test_the_import_rules_hold() -> None:
    done = subprocess.run(
        ["lint-imports", "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


def test_every_command_has_a_route_a_rendering_and_its_verb() -> None:
    """One registry per layer, keyed by the command's class, each complete: the domain's specs
    (grammar.SPECS), the services' routes, the terminal's renderers (Slack's: tests/slack). A
    bulk verb (its spec names `each_clone`) is in neither: both are derived from its spec."""
    from bot.cli.render import RENDER, renderer_for
    from bot.services.dispatch import ROUTES, route_for

    classes = set(grammar.COMMAND_CLASSES)
    bulk = {cls for cls, spec in grammar.SPECS.items() if spec.each_clone is not None}
    assert grammar.Snapshot in bulk
    assert set(ROUTES) | bulk == classes and not set(ROUTES) & bulk
    assert set(RENDER) | bulk == classes and not set(RENDER) & bulk
    assert all(route_for(c) is not None and renderer_for(c) is not None for c in classes)
    assert {c.verb for c in classes} == set(grammar.VERBS)
    for text, verb in (("cancel-schedule x", "cancel-schedule"), ("strip back x", "teardown")):
        assert grammar.parse(text).verb == verb
    planned = {cls for cls, route in ROUTES.items() if route.plan is not None}
    assert planned == {cls for cls, spec in grammar.SPECS.items() if spec.destroys}


def test_the_tables_of_commands_in_the_docs_are_generated_from_the_specs() -> None:
    """README.md's and docs/slack.md's tables of commands are made by scripts/verbs.py from the
    specs: a verb added, renamed or given other access fails here until it is run."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "verbs.py"), "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
