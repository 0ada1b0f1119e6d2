"""Trainees and the VMs they are given: how people and channels are named in a command or a
roster, the links a hand-out carries, the direct messages the bot sends trainees, and what the
trainee commands come to. Plain data and text; nothing here calls Slack or vCenter."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field

from bot.domain.errors import UsageError
from bot.domain.models import Assignment
from bot.domain.results import FailedClone

# Slack member IDs (U..., W... on Enterprise Grid) and conversation IDs (C public, G private).
USER_ID = re.compile(r"[UW][A-Z0-9]{2,}")
CHANNEL_ID = re.compile(r"[CG][A-Z0-9]{2,}")
EMAIL = re.compile(r"[^@\s<>|,;\"']+@[^@\s<>|,;\"']+\.[A-Za-z]{2,}")
# What Slack sends for a picked @person or #channel (the manifest's should_escape: true).
_ESCAPED_USER = re.compile(r"<@([UW][A-Z0-9]{2,})(?:\|[^>]*)?>")
_ESCAPED_CHANNEL = re.compile(r"<#([CG][A-Z0-9]{2,})(?:\|[^>]*)?>")
_ESCAPED_MAILTO = re.compile(r"<mailto:([^|>]+)(?:\|[^>]*)?>")
VM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,79}")

ASSIGNED_TO = "AssignedTo"  # the custom attribute that shows a clone's trainee in vCenter


def unescape_mentions(text: str) -> str:
    """Slack's escaped mentions as plain words: `<@U123|alice>` -> `@U123`, `<#C123|x>` ->
    `#C123`, `<mailto:a@b.c|a@b.c>` -> `a@b.c` (so display names with spaces stay one word)."""
    text = _ESCAPED_USER.sub(r"@\1", text)
    text = _ESCAPED_CHANNEL.sub(r"#\1", text)
    return _ESCAPED_MAILTO.sub(r"\1", text)


def person(word: str) -> str | None:
    """A Slack member ID (`U0123`, `@U0123`) or an e-mail address (lower-cased); None if the
    word is neither."""
    word = unescape_mentions(word.strip()).strip(",;")
    bare = word.removeprefix("@")
    if USER_ID.fullmatch(bare):
        return bare
    if EMAIL.fullmatch(word):
        return word.lower()
    return None


def channel(word: str) -> str | None:
    """A channel ID from `#C0123` or `C0123`; None if the word is not one."""
    bare = unescape_mentions(word.strip()).removeprefix("#")
    return bare if CHANNEL_ID.fullmatch(bare) else None


def is_email(who: str) -> bool:
    return "@" in who


def read_roster(text: str, source: str = "the roster") -> list[str]:
    """The people of a roster: CSV (or one per line) with a Slack member ID or an e-mail address
    on each row, in any column; a first row with neither is a header. Blank lines and lines
    starting with # are skipped. Repeats count once."""
    people: list[str] = []
    rows = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    for number, row in enumerate(rows, start=1):
        cells = [c.strip() for c in row if c.strip()]
        if not cells or cells[0].startswith("#"):
            continue
        found = [p for p in (person(c) for c in cells) if p is not None]
        if not found:
            if number == 1:
                continue  # a header, e.g. "name,email"
            shown = ",".join(cells)[:60]
            raise UsageError(
                f'{source}, line {number}: "{shown}" has no Slack member ID (U0123ABCD) or '
                "e-mail address; put one on each line, e.g. alice@example.com"
            )
        ids = [p for p in found if not is_email(p)]
        chosen = ids[0] if ids else found[0]  # a member ID needs no look-up
        if chosen not in people:
            people.append(chosen)
    if not people:
        raise UsageError(
            f"{source} names nobody: put one Slack member ID or e-mail address on each line"
        )
    return people


# ---------------------------------------------------------------------------------------- identity


@dataclass(frozen=True)
class VmRef:
    """A trainee's VM as a button or a settled command names it: the clone's record id and the
    instance UUID it had when it was shown (the name is only a label: names are reused once a
    VM is gone). Acted on only while both still hold: the record is held, and carries that UUID.
    """

    clone_id: int
    instance_uuid: str
    name: str = ""

    @property
    def value(self) -> str:
        """A button's value: "TRN-CAP-001 12 4f1c...", the name first for people reading it."""
        return f"{self.name or '-'} {self.clone_id} {self.instance_uuid}"

    @classmethod
    def parse(cls, value: str) -> VmRef | None:
        """The reference in a button's value; None for anything else (a bare VM name, from a
        button posted before buttons carried identities)."""
        words = value.split()
        if len(words) != 3 or not words[1].isdigit() or not _UUID.fullmatch(words[2]):
            return None
        name = words[0] if VM_NAME.fullmatch(words[0]) else ""
        return cls(int(words[1]), words[2], name)


_UUID = re.compile(r"[0-9A-Za-z][0-9A-Za-z-]{0,63}")  # an instance UUID (checked for equality)


# ---------------------------------------------------------------------------------------- links


def vsphere_client_url(host: str, vcenter_uuid: str, moref: str) -> str:
    """The VM's summary page in the vSphere Client (HTML5), by moref and vCenter's instance
    UUID (the client's own deep-link form)."""
    return f"https://{host}/ui/app/vm;nav=h/urn:vmomi:VirtualMachine:{moref}:{vcenter_uuid}/summary"


def vmrc_url(host: str, moref: str) -> str:
    """Opens the VM's console in VMware Remote Console (it asks for the trainee's login)."""
    return f"vmrc://{host}/?moid={moref}"


# ---------------------------------------------------------------------------------------- people


@dataclass(frozen=True)
class Person:
    """A workspace member as the directory knows them."""

    id: str
    name: str = ""
    email: str = ""
    bot: bool = False
    deleted: bool = False

    @property
    def label(self) -> str:
        """How vCenter's AssignedTo attribute names them: "Alice Smith (U0123)"."""
        name = self.name or self.email
        return f"{name} ({self.id})" if name else self.id


# ---------------------------------------------------------------------------------------- messages


@dataclass(frozen=True)
class HandOut:
    """A trainee's VM, as the hand-out message tells it."""

    environment: str
    vm: str
    type: str
    description: str = ""
    client_url: str = ""  # empty when vCenter's instance UUID could not be read
    vmrc_url: str = ""
    ends: str = ""  # "Fri 27 Nov 17:00 GMT (in 1 d 7 h)"; empty: no end scheduled


@dataclass(frozen=True)
class VmRemoved:
    """A strip back removed the trainee's VM: the course is over."""

    environment: str
    vm: str


@dataclass(frozen=True)
class VmLost:
    """The trainee's VM left them before the course ended: it vanished from vCenter (deleted
    outside the bot), or a rebuild could not make it again. The assignment has ended."""

    environment: str
    vm: str
    why: str  # "missing" or "failed" (the assignment's ended_reason)


@dataclass(frozen=True)
class LabEnding:
    """The reminder before a scheduled strip back, for a trainee."""

    environment: str
    vm: str
    ends: str


DirectMessage = HandOut | VmRemoved | VmLost | LabEnding


# ---------------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class HandOutProgress:
    """The hand-out so far, after each trainee."""

    environment: str
    total: int
    sent: int
    failed: int
    trainee: str = ""
    error: str = ""  # why this trainee was not reached


@dataclass(frozen=True)
class HandOutReport:
    """Who was reached; who was not, and why; or why nobody was messaged at all."""

    sent: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (trainee, why)
    not_sent: str = ""


@dataclass(frozen=True)
class Assigned:
    """What `assign` did."""

    environment: str
    new: list[Assignment]
    kept: list[Assignment]
    replaced: list[Assignment] = field(default_factory=list)  # ended: their clone was not ready
    left_out: int = 0  # channel members who are bots or who run the lab
    handout: HandOutReport = field(default_factory=HandOutReport)
    attribute_errors: list[tuple[str, str]] = field(default_factory=list)  # (vm, why)

    @property
    def trainees(self) -> int:
        return len(self.new) + len(self.kept)


@dataclass(frozen=True)
class HandedOut:
    """What `handout ENV` did: the hand-out again to the trainees not reached before."""

    environment: str
    report: HandOutReport
    waiting: int  # trainees who had not been reached


@dataclass(frozen=True)
class Unassigned:
    environment: str
    ended: list[Assignment]
    not_assigned: list[str]  # people named who held no VM there


@dataclass(frozen=True)
class MyVm:
    """One VM a trainee holds, for `my` and the Home tab."""

    assignment: Assignment
    type: str
    state: str  # the clone's state: ready, destroying, ...
    power_state: str
    client_url: str = ""
    vmrc_url: str = ""
    ends: str = ""
    instance_uuid: str = ""  # the VM's, as recorded now: its buttons name it

    @property
    def ref(self) -> VmRef:
        return VmRef(self.assignment.clone_id, self.instance_uuid, self.assignment.clone_name)


@dataclass(frozen=True)
class MyVms:
    """The VMs `user` holds (none: an empty list)."""

    user: str
    vms: list[MyVm]


@dataclass(frozen=True)
class SelfService:
    """A trainee's reset or power command on their VMs."""

    action: str  # "on", "off" or "reset"
    done: list[str]
    failed: list[FailedClone]


@dataclass(frozen=True)
class RebuildPlan:
    """What `rebuild` re-creates, shown before it is confirmed."""

    vm: str
    environment: str
    type: str
    trainee: str
    ref: VmRef | None = None  # the VM a confirmation binds (record id and instance UUID)
