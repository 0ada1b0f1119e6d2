"""Trainees: the direct messages they get (the hand-out, the reminder, "your VM was removed"),
their VMs with the self-service buttons (`/clones my` and the Home tab), and what the trainer
sees of `assign` (the hand-out's progress, who was not reached) and `unassign`."""

from __future__ import annotations

from collections.abc import Sequence

from bot.domain.trainees import (
    Assigned,
    DirectMessage,
    HandedOut,
    HandOut,
    HandOutProgress,
    LabEnding,
    MyVm,
    MyVms,
    SelfService,
    Unassigned,
    VmLost,
    VmRemoved,
)
from bot.services import sentences as say
from bot.services.refresh import RefreshResult
from handlers.blocks.ids import (
    ACTION_MY_POWER_OFF,
    ACTION_MY_POWER_ON,
    ACTION_MY_REBUILD,
    ACTION_MY_RESET,
)
from handlers.blocks.kit import (
    MRKDWN,
    Block,
    Rendered,
    actions,
    button,
    capped_lines,
    context,
    duration,
    esc,
    failures,
    progress_bar,
    section,
    who,
)

MAX_NOT_REACHED = 30  # listed by name; the rest as "...and N more"

SELF_SERVICE = (
    "*What you can do* (type these in any channel, or use the buttons on my Home tab):\n"
    "• `/clones my`: your VM, its state and links\n"
    "• `/clones power on` and `/clones power off`\n"
    "• `/clones reset`: power-reset it (with non-persistent disks: back to how it started)\n"
    "• `/clones rebuild`: re-create it from scratch, same name (you confirm first)"
)


def _link(url: str, label: str) -> str:
    """A mrkdwn link; the URLs are ours (vCenter's host and a moref), never user text."""
    clean = url.replace("|", "%7C").replace(">", "%3E")
    return f"<{clean}|{label}>"


def _links(client_url: str, vmrc: str) -> str:
    lines = []
    if client_url:
        lines.append(":globe_with_meridians: " + _link(client_url, "Open it in the vSphere Client"))
    if vmrc:
        console = _link(vmrc, "Open its console in VMware Remote Console")
        lines.append(f":desktop_computer: {console}")
    return "\n".join(lines)


# ===================================================================== direct messages
def hand_out(m: HandOut) -> Rendered:
    kind = esc(m.type) + (f": {esc(m.description)}" if m.description else "")
    ends = (
        f":calendar: The lab ends *{esc(m.ends)}*; the VM is removed then, so keep nothing on "
        "it you need afterwards."
        if m.ends
        else ":calendar: No end is scheduled yet; your trainer will say when the lab ends."
    )
    blocks: list[Block] = [
        {"type": "header", "text": {"type": "plain_text", "text": "Your training VM is ready"}},
        section(f":computer: *`{esc(m.vm)}`* ({kind}) in *{esc(m.environment)}*"),
    ]
    links = _links(m.client_url, m.vmrc_url)
    if links:
        blocks.append(section(links))
    blocks += [section(ends), section(SELF_SERVICE)]
    return Rendered(f"Your training VM: {m.vm} in {m.environment}", blocks)


def removed(m: VmRemoved) -> Rendered:
    text = (
        f"The course {m.environment} is over: your training VM {m.vm} was removed. "
        "Thank you for taking part!"
    )
    return Rendered(
        text,
        [
            section(
                f":wave: The course *{esc(m.environment)}* is over: your training VM "
                f"`{esc(m.vm)}` was removed. Thank you for taking part!"
            )
        ],
    )


_LOST = {
    "missing": "it is gone from vCenter (deleted outside the bot)",
    "failed": "it could not be made again when it was rebuilt",
}


def lost(m: VmLost) -> Rendered:
    why = _LOST.get(m.why, m.why)
    text = (
        f"Your training VM {m.vm} in {m.environment} is no longer yours: {why}. Its buttons "
        "do nothing now; ask your trainer for another VM."
    )
    return Rendered(
        text,
        [
            section(
                f":warning: Your training VM `{esc(m.vm)}` in *{esc(m.environment)}* is no "
                f"longer yours: {esc(why)}. Its buttons do nothing now; ask your trainer for "
                "another VM."
            )
        ],
    )


def ending(m: LabEnding) -> Rendered:
    return Rendered(
        f"{m.environment} ends {m.ends}: your VM {m.vm} is removed then",
        [
            section(
                f":alarm_clock: *{esc(m.environment)}* ends *{esc(m.ends)}*: your VM "
                f"`{esc(m.vm)}` is removed then. Save anything you want to keep before that."
            )
        ],
    )


def direct_message(message: DirectMessage) -> Rendered:
    if isinstance(message, HandOut):
        return hand_out(message)
    if isinstance(message, VmRemoved):
        return removed(message)
    if isinstance(message, VmLost):
        return lost(message)
    return ending(message)


# ===================================================================== a trainee's VMs
def vm_buttons(vm: MyVm) -> Block:
    """The VM's buttons: each names it by identity (its record and instance UUID), so a
    button kept after the VM is gone, rebuilt or its name reused acts on nothing else."""
    name, value = vm.assignment.clone_name, vm.ref.value
    return actions(
        f"clones_my_{name}"[:255],
        button("Power on", ACTION_MY_POWER_ON, value),
        button("Power off", ACTION_MY_POWER_OFF, value),
        button("Reset", ACTION_MY_RESET, value),
        button("Rebuild...", ACTION_MY_REBUILD, value, "danger"),
    )


def vm_blocks(vm: MyVm) -> list[Block]:
    lines = [f":computer: {say.my_vm(vm, MRKDWN)}"]
    links = _links(vm.client_url, vm.vmrc_url)
    if links:
        lines.append(links)
    return [section("\n".join(lines)), vm_buttons(vm)]


def my_vms(mine: MyVms) -> Rendered:
    if not mine.vms:
        return Rendered(say.no_vms(), [section(esc(say.no_vms()))])
    blocks: list[Block] = []
    for vm in mine.vms[:10]:
        blocks += vm_blocks(vm)
    names = ", ".join(v.assignment.clone_name for v in mine.vms)
    return Rendered(f"Your training VMs: {names}", blocks)


def self_service(r: SelfService, user: str) -> Rendered:
    icon = ":white_check_mark:" if not r.failed else ":warning:"
    blocks = [section(f"{icon} {say.self_served(r, MRKDWN)} (for {who(user)})")]
    blocks += failures("Not done", r.failed)
    return Rendered(say.self_served(r), blocks)


def rebuild_progress(vm: str, confirmer: str) -> Rendered:
    name = f"`{esc(vm)}`" if vm else "the VM"
    return Rendered(
        f"Rebuilding {vm or 'the VM'}",
        [
            section(
                f":hourglass_flowing_sand: Rebuilding {name} from its base snapshot, "
                f"confirmed by {who(confirmer)}..."
            )
        ],
    )


def rebuilt(r: RefreshResult, confirmer: str) -> Rendered:
    ok = bool(r.refreshed)
    icon = ":white_check_mark:" if ok else ":x:"
    return Rendered(
        say.rebuilt(r),
        [section(f"{icon} {say.rebuilt(r, MRKDWN)} (confirmed by {who(confirmer)}).")],
    )


def rebuild_stopped(vm: str, requester: str, why: str) -> Rendered:
    return Rendered(
        f"Rebuild of {vm} stopped: {why}",
        [section(f":x: Rebuild of `{esc(vm)}` for {who(requester)} stopped: {esc(why)}")],
    )


# ===================================================================== the trainer
def assigning(environment: str) -> str:
    """The slash command's answer while the trainees are paired and messaged."""
    return f"Assigning the VMs of {environment}; the hand-out's progress follows here..."


def handout_starting(environment: str, user: str) -> Rendered:
    return Rendered(
        f"Assigning the VMs of {environment}",
        [section(f":outbox_tray: {who(user)} is assigning the VMs of *{esc(environment)}*...")],
    )


def pacing(left_s: float) -> str:
    """Slack's rate limits are spacing the hand-out out: when it will be done."""
    return (
        f":snail: Slack is pacing the hand-out (its rate limits for apps): about "
        f"{duration(max(1.0, left_s))} to go."
    )


def handout_progress(p: HandOutProgress, user: str, note: str = "") -> Rendered:
    """The hand-out so far (`p.total` 0: the trainees are still being looked up); `note`:
    `pacing`, when Slack is pacing it."""
    extra = f"\n{note}" if note else ""
    if not p.total:
        return Rendered(
            f"Assigning the VMs of {p.environment}",
            [
                section(
                    f":outbox_tray: {who(user)} is assigning the VMs of *{esc(p.environment)}*: "
                    f"looking the trainees up...{extra}"
                )
            ],
        )
    bar = progress_bar(p.sent, p.failed, p.total)
    missed = f", {p.failed} not reached" if p.failed else ""
    return Rendered(
        f"Handing out {p.environment}: {p.sent}/{p.total}",
        [
            section(
                f":outbox_tray: Handing out *{esc(p.environment)}* for {who(user)}\n"
                f"`{bar}` {p.sent}/{p.total} reached{missed}{extra}"
            )
        ],
    )


def _not_reached(environment: str, failed: Sequence[tuple[str, str]]) -> list[Block]:
    if not failed:
        return []
    lines = [f"*Not reached* ({say.retry_handout(environment, MRKDWN)}):"]
    lines += [f"• {say.not_reached(u, why, MRKDWN)}" for u, why in failed[:MAX_NOT_REACHED]]
    if len(failed) > MAX_NOT_REACHED:
        lines.append(f"…and {len(failed) - MAX_NOT_REACHED} more")
    return [section(capped_lines(lines))]


def assigned(r: Assigned, user: str) -> Rendered:
    icon = ":white_check_mark:" if not r.handout.failed else ":warning:"
    blocks: list[Block] = [
        section(
            f"{icon} {say.assigned(r, MRKDWN)}, assigned by {who(user)}.\n"
            f"{say.handed_out(r.handout, MRKDWN)}."
        )
    ]
    blocks += _not_reached(r.environment, r.handout.failed)
    notes = []
    if r.left_out:
        notes.append(say.left_out(r.left_out))
    if r.attribute_errors:
        notes.append(
            "AssignedTo not written on "
            + ", ".join(f"{esc(vm)} ({esc(why)})" for vm, why in r.attribute_errors[:10])
        )
    if notes:
        blocks.append(context(*notes))
    return Rendered(f"{say.assigned(r)}. {say.handed_out(r.handout)}", blocks)


def handed_out(r: HandedOut, user: str) -> Rendered:
    """What `handout ENV` did, in the trainer's message."""
    ok = not r.report.failed and not r.report.not_sent
    icon = ":white_check_mark:" if ok else ":warning:"
    blocks: list[Block] = [section(f"{icon} {say.handed_out_again(r, MRKDWN)} (for {who(user)}).")]
    blocks += _not_reached(r.environment, r.report.failed)
    return Rendered(f"{say.handed_out_again(r)}.", blocks)


def handout_stopped(environment: str, user: str, why: str) -> Rendered:
    return Rendered(
        f"The hand-out of {environment} stopped: {why}",
        [section(f":x: The hand-out of *{esc(environment)}* for {who(user)}: {esc(why)}")],
    )


def handing_out(environment: str) -> str:
    """The slash command's answer to `handout ENV`."""
    return (
        f"Sending the hand-out of {environment} to its trainees not reached yet; the progress "
        "follows here..."
    )


def unassigned(r: Unassigned, user: str) -> Rendered:
    lines = [f":outbox_tray: {say.unassigned(r, MRKDWN)} (for {who(user)})."]
    if r.not_assigned:
        lines.append("Held none there: " + ", ".join(who(u) for u in r.not_assigned))
    return Rendered(say.unassigned(r), [section("\n".join(lines))])


def assign_stopped(environment: str, user: str, why: str) -> Rendered:
    return Rendered(
        f"Assigning the VMs of {environment} stopped: {why}",
        [section(f":x: Assigning the VMs of *{esc(environment)}* for {who(user)}: {esc(why)}")],
    )
