"""Who may run which verb where, from Slack.

Read-only verbs (those with `Access.READ` in their spec: status, history, ...) are for everyone,
everywhere. `check` and `audit` are for admins only (in any channel). Self-service verbs (reset,
rebuild, and power on|off without an environment) are for trainees (anyone holding an assignment)
on their own VM, and for operators on anyone's, anywhere; which VM is checked by the trainee
service, which audits a refusal too. Every other verb changes something (`Access.CHANGE`:
deploy, teardown, power ENV, ...) and needs an admin, an operator, or a member of an operator user
group, in one of the configured channels (any channel when none are configured). With nobody
configured, changing verbs are refused: a fresh install must not let a whole workspace destroy
VMs.

Operator groups' members are read from Slack (`usergroups.users.list`, Tier 2) into a cache that
`refresh` keeps current in the background; a check never waits for Slack when it may not
(`wait=False`, before the slash command's 3-second ack): a group not read yet makes the
decision `pending`, and the front end decides after its ack.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from bot.domain import grammar
from bot.settings import SlackSettings

log = logging.getLogger(__name__)

READ_ONLY_VERBS = grammar.verbs_with(grammar.Access.READ)
# Verbs for admins only, in any channel: `check` changes nothing but shows the vCenter setup
# (hosts, objects, the service account's privileges).
ADMIN_VERBS = grammar.verbs_with(grammar.Access.ADMIN)
_ADMIN_SHOWS = {"check": "how vCenter is set up", "audit": "who asked for what, from where"}
# Verbs Slack never runs (`db copy`): they work on files of the bot's machine.
TERMINAL_VERBS = grammar.verbs_with(grammar.Access.TERMINAL)


def _listed(verbs: list[str]) -> str:
    return ", ".join(verbs[:-1]) + " and " + verbs[-1] if len(verbs) > 1 else "".join(verbs)


# What everyone may run, in the help's order ("status, history, ... and help").
_READ_ONLY_TEXT = _listed([v for v in grammar.VERBS if v in READ_ONLY_VERBS])

GroupMembers = Callable[[str], Iterable[str]]  # user group ID -> member user IDs


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str = ""  # for a denial: one sentence the user can act on
    # Not decided yet: it depends on an operator group not read from Slack yet (check again
    # with wait=True, off Slack's acknowledgement clock).
    pending: bool = False

    def __bool__(self) -> bool:
        return self.allowed


ALLOWED = Decision(True)
PENDING = Decision(False, "your operator groups are still being read from Slack", pending=True)


class _Unknown(Exception):
    """A group's members are not known yet, and the caller may not wait for Slack."""


class AccessPolicy:
    """Decides from SlackSettings; operator groups are looked up lazily and cached."""

    def __init__(
        self,
        settings: SlackSettings,
        group_members: GroupMembers | None = None,
        *,
        is_trainee: Callable[[str], bool] | None = None,
        cache_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self._group_members = group_members
        self._is_trainee = is_trainee
        self._cache_s = cache_s
        self._clock = clock
        self._cache: dict[str, tuple[float, frozenset[str]]] = {}
        self._lock = threading.Lock()
        # Set when a group is stale or missing: wakes the background refresh early.
        self.wanted = threading.Event()
        # True while a background refresh keeps the groups current (the Slack bot): a stale
        # group is then used as it is, never read on the caller's thread.
        self.refreshed_in_background = False

    @property
    def configured(self) -> bool:
        s = self.settings
        return bool(s.admins or s.operators or s.operator_groups)

    def is_admin(self, user: str) -> bool:
        return user in self.settings.admins

    def is_operator(self, user: str, *, wait: bool = True) -> bool:
        """An admin, an operator, or a member of an operator group (`wait=False`: `_Unknown`
        when a group that could decide it has not been read yet)."""
        if self.is_admin(user) or user in self.settings.operators:
            return True
        return any(
            user in self._members(group, wait=wait) for group in self.settings.operator_groups
        )

    def is_trainee(self, user: str) -> bool:
        """Holds an assignment (a training VM)."""
        return self._is_trainee is not None and self._is_trainee(user)

    def acts_for_anyone(self, user: str, *, wait: bool = True) -> bool:
        """May act on any trainee's VM (self-service verbs): the operators."""
        return self.configured and self.is_operator(user, wait=wait)

    def check(
        self,
        user: str,
        channel: str,
        verb: str,
        access: grammar.Access | None = None,
        *,
        wait: bool = True,
    ) -> Decision:
        """May `user` run `verb` in `channel`? `access`: the command's own (a verb such as
        `power` is both an operator's and a trainee's); None: the verb's usual one.
        `wait=False`: never wait for Slack; `PENDING` when a group not read yet decides it."""
        try:
            return self._check(user, channel, verb, access, wait)
        except _Unknown:
            return PENDING

    def _check(
        self, user: str, channel: str, verb: str, access: grammar.Access | None, wait: bool
    ) -> Decision:
        if access is grammar.Access.SELF:
            return self._self_service(user, verb, wait)
        if verb in TERMINAL_VERBS or access is grammar.Access.TERMINAL:
            return Decision(
                False,
                f"`{verb}` runs only in a terminal on the bot's machine: it works on the bot's "
                f"own database files. Run `clones {verb} ...` there (`clones help {verb}`).",
            )
        if verb in READ_ONLY_VERBS and access in (None, grammar.Access.READ):
            return ALLOWED
        if verb in ADMIN_VERBS:
            if self.is_admin(user):
                return ALLOWED
            shows = _ADMIN_SHOWS.get(verb, "what only admins may see")
            return Decision(
                False,
                f"`{verb}` is for the bot's admins: it shows {shows}. Ask an admin to run it, or "
                f"run `clones {verb}` in a terminal.",
            )
        if not self.configured:
            return Decision(
                False,
                f"`{verb}` is refused: no operators or admins are configured for this bot yet, so "
                f"only {_READ_ONLY_TEXT} work. Ask whoever runs the bot to add Slack "
                "user IDs to `operators` or `admins` in the [slack] section of clones.toml.",
            )
        if not self.is_operator(user, wait=wait):
            if self.is_trainee(user):
                return Decision(
                    False,
                    f"You are not allowed to `{verb}` an environment: that is for the bot's "
                    "operators. On the VM you were given, type `power on`, `power off`, `reset` "
                    "or `rebuild` (without a name); `my` shows it.",
                )
            return Decision(
                False,
                f"You are not allowed to `{verb}`: only the bot's operators and admins may change "
                f"environments. You can still use {_READ_ONLY_TEXT}. Ask an admin "
                "to add you to `operators` (or an operator user group) in clones.toml.",
            )
        if self.settings.channels and channel not in self.settings.channels:
            where = ", ".join(f"<#{c}>" for c in self.settings.channels)
            return Decision(
                False,
                f"`{verb}` is not allowed in this channel; the bot changes environments only "
                f"from {where}. Run it there.",
            )
        return ALLOWED

    def _self_service(self, user: str, verb: str, wait: bool) -> Decision:
        if self.is_trainee(user) or self.acts_for_anyone(user, wait=wait):
            return ALLOWED
        return Decision(
            False,
            f"`{verb}` is for trainees, on the VM they were given, and for the bot's operators: "
            "you hold no training VM. Your trainer gives you one with `assign`; `/clones my` "
            "shows it.",
        )

    def may_confirm(self, user: str, requester: str) -> Decision:
        """Only the person who asked for a strip back, or an admin, may confirm it."""
        if user == requester or self.is_admin(user):
            return ALLOWED
        return Decision(
            False,
            f"Only <@{requester}>, who asked for this strip back, or an admin can confirm it.",
        )

    def _members(self, group: str, *, wait: bool = True) -> frozenset[str]:
        """The group's members: from the cache (also once stale: `refresh` renews it in the
        background); read now when never read, if the caller may wait (else `_Unknown`)."""
        with self._lock:
            hit = self._cache.get(group)
        if hit is not None:
            if self._clock() - hit[0] >= self._cache_s:
                if wait and not self.refreshed_in_background:
                    fresh = self._read(group)
                    return hit[1] if fresh is None else fresh
                self._stale()
            return hit[1]
        if self._group_members is None:
            return frozenset()
        if not wait:
            self._stale()
            raise _Unknown(group)
        return self._read(group) or frozenset()

    def _read(self, group: str) -> frozenset[str] | None:
        """Read one group from Slack into the cache; None (logged) when Slack could not say."""
        assert self._group_members is not None
        try:
            members = frozenset(self._group_members(group))
        except Exception:
            # Slack unreachable or rate limiting: keep the last known members if any (a blip
            # must not lock out the operators), otherwise fail closed until a read succeeds.
            log.exception("could not list members of user group %s", group)
            return None
        with self._lock:
            self._cache[group] = (self._clock(), members)
        return members

    def _stale(self) -> None:
        """Ask the background refresh (when one runs) to read the groups again soon."""
        self.wanted.set()

    def refresh(self) -> int:
        """Read every operator group again (the background refresh); returns how many were
        read. A group Slack would not list keeps its last members."""
        if self._group_members is None:
            return 0
        self.wanted.clear()
        return sum(self._read(g) is not None for g in self.settings.operator_groups)

    def stale_in(self) -> float:
        """Seconds until the oldest cached group goes stale (0: one is stale or never read)."""
        groups = self.settings.operator_groups
        with self._lock:
            ages = [self._clock() - self._cache[g][0] for g in groups if g in self._cache]
        if len(ages) < len(groups):
            return 0.0
        return max(0.0, self._cache_s - max(ages, default=0.0))
