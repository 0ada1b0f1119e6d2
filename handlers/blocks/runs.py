"""A run's own message: posted before anything is created (a deployment) or in place of the
Confirm / Cancel buttons (a strip back, a refresh), edited with progress, and finally the summary.
Also the same message for scheduled runs, runs resumed after a restart, and runs a restart
paused."""

from __future__ import annotations

from bot.domain.models import Run, RunKind, RunState
from bot.domain.results import DeployResult, ProgressEvent, TeardownResult
from bot.domain.savings import format_table
from bot.services import sentences as say
from bot.services.refresh import RefreshResult
from handlers.blocks.kit import (
    MRKDWN,
    Block,
    Rendered,
    capped_lines,
    clip,
    code,
    context,
    duration,
    esc,
    failures,
    progress_bar,
    section,
    who,
)

_OK = {RunState.SUCCEEDED: ":white_check_mark:", RunState.PARTIAL: ":warning:"}


def _what(kind: RunKind) -> str:
    """ "Deployment into", "Refresh of", "Strip back of": a run, before its environment."""
    return {RunKind.DEPLOY: "Deployment into", RunKind.REFRESH: "Refresh of"}.get(
        kind, "Strip back of"
    )


def _progress(text: str, head: str, e: ProgressEvent, done_word: str, eta: str = "") -> Rendered:
    """A run's live message: what it is, the bar with its counts, and elapsed / ETA / run."""
    bar = progress_bar(e.done, e.failed, e.total)
    counts = f"{done_word} {e.done} · failed {e.failed} · remaining {e.remaining}"
    stages = f"\n{e.stages_text}" if e.stages_text else ""  # cloned / powered on / customized
    eta = eta or duration(e.eta_s)
    blocks = [
        section(head),
        section(f"`{bar}` {e.done + e.failed}/{e.total}\n{counts}{stages}"),
        context(f"elapsed {duration(e.elapsed_s)} · ETA {eta} · run {e.run_id}"),
    ]
    if e.waiting:  # queued behind other runs for vCenter capacity: not stuck
        blocks.insert(2, context(f":hourglass: {esc(e.waiting)}"))
    return Rendered(text, blocks)


# ===================================================================== deploy
def deploy_ack(by_type: dict[str, int], environment: str) -> str:
    """The slash command's answer within 3 s; the run's message follows in the channel."""
    total = sum(by_type.values())
    if len(by_type) == 1:
        (kind,) = by_type
        what = f"{total} {kind} clones"
    else:
        what = f"{total} clones ({say.kinds(by_type)})"
    return f"Deploying {what} into {environment}... Progress follows in this channel."


def deploy_starting(
    by_type: dict[str, int], environment: str, requester: str, origin: str = ""
) -> Rendered:
    """The run's message before anything is created; posting it proves the bot may post here."""
    total = sum(by_type.values())
    what = say.plural(total, f"{next(iter(by_type))} clone" if len(by_type) == 1 else "clone")
    text = f"Deploying {what} into {environment}: checking parents and datastores"
    blocks = [
        section(
            f":hourglass_flowing_sand: Deploying {esc(what)} into *{esc(environment)}* for "
            f"{who(requester)}: checking parents and datastores..."
        )
    ]
    if origin:
        blocks.append(context(origin))
    return Rendered(text, blocks)


def deploy_progress(e: ProgressEvent, requester: str) -> Rendered:
    return _progress(
        f"Deploying into {e.environment}: {e.done + e.failed}/{e.total} "
        f"(ready {e.done} · failed {e.failed} · remaining {e.remaining})",
        f":hourglass_flowing_sand: Deploying {say.plural(e.total, 'linked clone')} into "
        f"*{esc(e.environment)}* for {who(requester)}",
        e,
        "ready",
        # every clone made, customization still awaited: the ETA is not known
        eta=duration(e.eta_s) if e.remaining or e.eta_s is None else "0s",
    )


def deploy_summary(
    r: DeployResult,
    requester: str,
    schedule_note: str = "",
    *,
    origin: str = "",
    chart_failed: bool = False,
) -> Rendered:
    """A deployment's final state. `origin` says how it came about (scheduled, resumed after a
    restart); `chart_failed`: the chart promised in the thread could not be uploaded."""
    ready, failed = len(r.ready), len(r.failed)
    head = (
        f"{_OK.get(r.state, ':x:')} {say.deployed(r, MRKDWN)} for {who(requester)} "
        f"({duration(r.elapsed_s)})"
    )
    text = say.deployed(r) + (f", {failed} failed" if failed else "")
    blocks = [
        section(head),
        *([context(origin)] if origin else []),
        section(
            f"`{progress_bar(ready, failed, r.requested)}` {ready + failed}/{r.requested}\n"
            f"ready {ready} · failed {failed} · remaining {r.requested - ready - failed}"
        ),
    ]
    if r.message and r.state is not RunState.SUCCEEDED:
        blocks.append(section(esc(r.message)))
    if r.savings is not None:
        blocks.append(
            section(f"*Savings in {esc(r.environment)}*\n{code(format_table(r.savings))}")
        )
    blocks += failures("Failed clones", r.failed)
    if schedule_note:
        blocks.append(section(f":calendar: {esc(schedule_note)}"))
    tail = f"run {r.run_id}"
    if r.savings is not None and r.savings.clones:
        tail += (
            " · the savings chart could not be uploaded (see the thread)"
            if chart_failed
            else " · savings chart in the thread"
        )
    blocks.append(context(tail))
    return Rendered(text, blocks)


def deploy_not_started(environment: str, requester: str, message: str) -> Rendered:
    """A deployment refused before anything was created (busy, capacity, parent problems)."""
    return Rendered(
        clip(f"Deployment into {environment} did not start: {message}"),
        [
            section(
                f":x: Deployment into *{esc(environment)}* for {who(requester)} did not start: "
                f"{esc(message)} No clones were created."
            )
        ],
    )


def deploy_finished_note(r: DeployResult, requester: str) -> str:
    """For the environment's own channel, when the deployment was shown in another."""
    failed = f", {len(r.failed)} failed" if r.failed else ""
    return (
        f"Deployment into {r.environment} by {who(requester)} finished: "
        f"{say.ready_count(r)}{failed}."
    )


def chart_failed(reason: str) -> str:
    """The thread reply when the savings chart could not be uploaded."""
    return f":warning: The savings chart could not be uploaded: {esc(reason)}"


def run_aborted(kind: RunKind, environment: str, requester: str, message: str) -> Rendered:
    """A run that stopped before finishing (vCenter unreachable, a conflict, a bug)."""
    what = _what(kind)
    return Rendered(
        f"{what} {environment} stopped: {message}",
        [section(f":x: {what} *{esc(environment)}* for {who(requester)} stopped: {esc(message)}")],
    )


# ===================================================================== strip back
def _confirmed_progress(doing: str, e: ProgressEvent, confirmer: str, done_word: str) -> Rendered:
    """A confirmed strip back's or refresh's live message, in place of its buttons."""
    return _progress(
        f"{doing} {e.environment}: {e.done + e.failed}/{e.total}",
        f":hourglass_flowing_sand: {doing} *{esc(e.environment)}* (confirmed by {who(confirmer)})",
        e,
        done_word,
    )


def teardown_progress(e: ProgressEvent, confirmer: str) -> Rendered:
    return _confirmed_progress("Stripping back", e, confirmer, "destroyed")


def teardown_result(r: TeardownResult, confirmer: str, how: str = "") -> Rendered:
    """A strip back's final state; `how` replaces "confirmed by ..." (e.g. "scheduled")."""
    icon = ":white_check_mark:" if r.state is RunState.SUCCEEDED else ":warning:"
    gone = len(r.destroyed) + len(r.already_gone) + len(r.cleared)
    how = how or f"confirmed by {who(confirmer)}"
    blocks = [section(f"{icon} {say.stripped_back(r, MRKDWN, how)} in {duration(r.elapsed_s)}.")]
    if r.already_gone:
        blocks.append(section(f"{say.already_gone(len(r.already_gone))}."))
    if r.cleared:
        blocks.append(section(clip(f"{say.cleared(r.cleared, MRKDWN)}.")))
    if r.renamed:
        renamed = [say.renamed(old, new, MRKDWN) for old, new in sorted(r.renamed.items())]
        blocks.append(section("Renamed outside the bot, destroyed:\n" + capped_lines(renamed)))
    blocks += failures("Left alone (not provably ours)", r.skipped)
    blocks += failures("Cannot see in vCenter (left as recorded)", r.unseen)
    blocks += failures("Failed", r.failed)
    left = len(r.failed) + len(r.skipped) + len(r.unseen)
    blocks.append(context(f"run {r.run_id} · {gone} of {gone + left}"))
    return Rendered(say.stripped_back(r), blocks)


def teardown_finished_note(r: TeardownResult, confirmer: str) -> str:
    """For the environment's own channel, when the strip back was confirmed in another."""
    return (
        f"Strip back of {r.environment} confirmed by {who(confirmer)} finished: "
        f"{say.destroyed_count(r)}."
    )


# ===================================================================== refresh
def refresh_progress(e: ProgressEvent, confirmer: str) -> Rendered:
    return _confirmed_progress("Refreshing", e, confirmer, "refreshed")


def refresh_result(r: RefreshResult, confirmer: str) -> Rendered:
    icon = ":white_check_mark:" if r.state is RunState.SUCCEEDED else ":warning:"
    how = f"confirmed by {who(confirmer)}"
    blocks = [section(f"{icon} {say.refreshed(r, MRKDWN, how)} in {duration(r.elapsed_s)}.")]
    blocks += failures("Failed", r.failed)
    blocks += failures("Left alone (not provably ours)", r.skipped)
    blocks.append(context(f"run {r.run_id}"))
    return Rendered(say.refreshed(r), blocks)


# ===================================================================== scheduled runs
def scheduled_starting(action: RunKind, environment: str, text: str) -> Rendered:
    """A scheduled run's message before its first progress event."""
    verb = "Deploying" if action is RunKind.DEPLOY else "Stripping back"
    return Rendered(
        f"{verb} {environment} (scheduled): starting",
        [
            section(f":hourglass_flowing_sand: {verb} *{esc(environment)}* (scheduled)..."),
            context(esc(text)),
        ],
    )


def scheduled_progress(e: ProgressEvent) -> Rendered:
    """A scheduled deploy's or strip back's live message (the same bar as a manual run)."""
    verb, done_word, what = e.label.doing, e.label.done, e.label.what
    if e.kind == "finished":
        icon = ":white_check_mark:" if not e.failed and not e.remaining else ":warning:"
        counts = f"{done_word} {e.done} · failed {e.failed} · remaining {e.remaining}"
        head = f"{icon} Scheduled {what} *{esc(e.environment)}* finished"
        text = f"Scheduled {what} {e.environment} finished: {counts}"
    else:
        head = f":hourglass_flowing_sand: {verb} *{esc(e.environment)}* (scheduled)"
        text = f"{verb} {e.environment} (scheduled): {e.done + e.failed}/{e.total}"
    return _progress(text, head, e, done_word)


def scheduled_stopped(action: RunKind, environment: str, text: str) -> Rendered:
    """A scheduled run that ended without a result: refused, nothing to do, or interrupted."""
    what = "deployment into" if action is RunKind.DEPLOY else "strip back of"
    return Rendered(
        clip(text), [section(f":warning: Scheduled {what} *{esc(environment)}*: {esc(text)}")]
    )


# ===================================================================== restarts
def resumed_progress(e: ProgressEvent, requester: str) -> Rendered:
    """A run taken over after a restart: what is left of it, live."""
    what = e.label.what
    return _progress(
        f"Resuming the {what} {e.environment} after a restart: {e.done + e.failed}/{e.total}",
        f":recycle: Resuming the {what} *{esc(e.environment)}* for {who(requester)} "
        f"after a restart: {e.label.doing.lower()} {say.plural(e.total, 'clone')}",
        e,
        e.label.done,
    )


def resumed_origin(adopted: int, recreated: int) -> str:
    return (
        f":recycle: Resumed after a restart of the bot: {say.plural(adopted, 'clone')} found in "
        f"vCenter and adopted, {recreated} re-created."
    )


def resumed_teardown(run: Run) -> Rendered:
    """The final state of a strip back finished after a restart (counts from its run record)."""
    icon = ":white_check_mark:" if run.state is RunState.SUCCEEDED else ":warning:"
    line = (
        f"{icon} Stripped back *{esc(run.environment)}* for {who(run.requested_by)}: "
        f"{say.plural(run.succeeded, 'clone')} destroyed"
        + (f", {run.failed} left (see `status {esc(run.environment)}`)" if run.failed else "")
        + "."
    )
    return Rendered(
        f"Stripped back {run.environment}: {say.plural(run.succeeded, 'clone')} destroyed",
        [
            section(line),
            context(":recycle: Finished after a restart of the bot."),
            context(f"run {run.id}"),
        ],
    )


def recovery_stopped(kind: RunKind, environment: str, requester: str, why: str) -> Rendered:
    """A run interrupted by a restart that could not be finished at start-up."""
    what = _what(kind)
    text = f"{what} {environment} was interrupted by a restart and is not finished: {why}"
    return Rendered(
        clip(text),
        [
            section(
                f":warning: {what} *{esc(environment)}* for {who(requester)} was interrupted by a "
                f"restart of the bot and could not be finished: {esc(why)}"
            ),
            context("Once the cause is fixed, `/clones resume` finishes it."),
        ],
    )


def restart_pending(run: Run, ready: int) -> Rendered:
    """A run the bot stopped in the middle of (SIGTERM past the drain limit)."""
    what = _what(run.kind)
    done = f" ({ready} of {run.requested} clones ready)" if run.kind is RunKind.DEPLOY else ""
    blocks: list[Block] = [
        section(
            f":double_vertical_bar: {what} *{esc(run.environment)}* for "
            f"{who(run.requested_by)} was paused by a restart of the bot{done}. It resumes in "
            "this message when the bot is back."
        ),
        context(f"run {run.id}"),
    ]
    return Rendered(f"{what} {run.environment} paused by a restart of the bot", blocks)
