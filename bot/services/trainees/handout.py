"""Messages to trainees: the hand-out (their VM, its vSphere Client and console links, when the
lab ends), the reminder before a scheduled strip back, and, once their VM left them, that the
course is over (a strip back removed it) or that they hold it no more (it went missing from
vCenter, or a rebuild failed): told once each, whoever ended it (an outbox in SQLite)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from urllib.parse import urlparse

from bot.domain.errors import ClonesError, NotDelivered, VCenterError
from bot.domain.models import Assignment, Clone, Environment
from bot.domain.timeparse import describe_time
from bot.domain.trainees import (
    DirectMessage,
    HandOut,
    HandOutProgress,
    HandOutReport,
    LabEnding,
    VmLost,
    VmRemoved,
    vmrc_url,
    vsphere_client_url,
)
from bot.services.core import Core, OnCore
from bot.services.trainees.people import People

log = logging.getLogger(__name__)

OnHandOut = Callable[[HandOutProgress], None]


class HandOuts(OnCore):
    """Builds and sends the trainees' direct messages through the `Messenger` port."""

    def __init__(self, core: Core, people: People) -> None:
        super().__init__(core)
        self.people = people
        self._uuid: str | None = None  # vCenter's instance UUID, read once
        self._lock = threading.Lock()
        self.monotonic: Callable[[], float] = time.monotonic  # the hand-outs' time budgets

    # ------------------------------------------------------------------ links
    @property
    def host(self) -> str:
        """vCenter's host (and port, when not 443) as the vSphere Client and VMRC address it."""
        url = urlparse(self.settings.vcenter.url)
        host = url.hostname or ""
        port = url.port
        return f"{host}:{port}" if port and port != 443 else host

    def vcenter_uuid(self) -> str:
        """vCenter's instance UUID ("" while vCenter cannot be read: the link is left out)."""
        with self._lock:
            if self._uuid is None:
                try:
                    self._uuid = self.vcenter.endpoint().instance_uuid
                except VCenterError as exc:
                    log.warning("vCenter's instance UUID unavailable: %s", exc)
                    return ""
            return self._uuid

    def links(self, clone: Clone) -> tuple[str, str]:
        """(vSphere Client URL, VMRC URL) of a clone; empty strings without a moref."""
        if not clone.moref:
            return "", ""
        uuid = self.vcenter_uuid()
        client = vsphere_client_url(self.host, uuid, clone.moref) if uuid else ""
        return client, vmrc_url(self.host, clone.moref)

    def ends(self, env: Environment) -> str:
        if env.ends_at is None:
            return ""
        return describe_time(env.ends_at, self.clock(), self.settings.timezone)

    def hand_out(self, env: Environment, clone: Clone) -> HandOut:
        client, console = self.links(clone)
        t = self.settings.types.get(clone.type)
        return HandOut(
            environment=env.name,
            vm=clone.name,
            type=clone.type,
            description=t.description if t is not None else "",
            client_url=client,
            vmrc_url=console,
            ends=self.ends(env),
        )

    # ------------------------------------------------------------------ sending
    def send(
        self,
        env: Environment,
        assignments: Sequence[Assignment],
        on_progress: OnHandOut | None = None,
    ) -> HandOutReport:
        """The hand-out to each of these trainees, one after the other (the messenger paces
        them and waits out rate limits, for `[trainees] handout_timeout_s` in all: those left
        then are not reached, and `handout ENV` tries them again); each one reached is
        recorded."""
        messenger = self.people.messenger
        if not assignments:
            return HandOutReport()
        if messenger is None:
            return HandOutReport(not_sent=f"trainees were not messaged: {self.people.missing}")
        clones = {c.id: c for c in self.repo.clones(environment=env.name)}
        deadline = self.monotonic() + self.settings.trainees.handout_timeout_s
        sent: list[str] = []
        failed: list[tuple[str, str]] = []
        _show(on_progress, HandOutProgress(env.name, len(assignments), 0, 0))
        for a in assignments:
            error = ""
            try:
                left = max(0.0, deadline - self.monotonic())
                messenger.send(a.trainee, self.hand_out(env, clones[a.clone_id]), within_s=left)
                self.repo.mark_handed_out(a.id)
                sent.append(a.trainee)
            except ClonesError as exc:  # NotDelivered, or a vCenter read for the links
                error = str(exc)
                failed.append((a.trainee, error))
            _show(
                on_progress,
                HandOutProgress(
                    env.name, len(assignments), len(sent), len(failed), a.trainee, error
                ),
            )
        return HandOutReport(sent, failed)

    def waiting(self, env: Environment) -> list[Assignment]:
        """The environment's trainees not reached yet (their hand-out never arrived)."""
        return [a for a in self.repo.assignments(environment=env.name) if not a.handed_out_at]

    def _tell(self, user: str, message: DirectMessage, deadline: float | None = None) -> bool:
        messenger = self.people.messenger
        if messenger is None:
            return False
        left = None if deadline is None else max(0.0, deadline - self.monotonic())
        try:
            messenger.send(user, message, within_s=left)
        except NotDelivered as exc:
            log.warning("could not tell %s about %s: %s", user, message.vm, exc)
            return False
        return True

    def tell_removed(self) -> int:
        """Tell each trainee whose assignment ended with its VM (and who was not told yet):
        a strip back removed it (the course is over), or it went missing or its rebuild failed
        (they hold it no more). Each is claimed first, so two processes never tell one twice.
        Without a messenger they wait for one (the bot's). Returns how many were told."""
        if self.people.messenger is None:
            return 0
        told = 0
        deadline = self.monotonic() + self.settings.trainees.handout_timeout_s
        for a in self.repo.untold_removals():
            if self.repo.claim_told(a.id):
                message: DirectMessage = (
                    VmRemoved(a.environment, a.clone_name)
                    if a.ended_reason == "removed"
                    else VmLost(a.environment, a.clone_name, a.ended_reason)
                )
                told += self._tell(a.trainee, message, deadline)
        return told

    def remind(self, env: Environment) -> int:
        """The reminder before a scheduled strip back, to each of the environment's trainees
        (when `[trainees] remind` is set). Returns how many were reached."""
        if not self.settings.trainees.remind or env.ends_at is None:
            return 0
        ends = self.ends(env)
        deadline = self.monotonic() + self.settings.trainees.handout_timeout_s
        return sum(
            self._tell(a.trainee, LabEnding(env.name, a.clone_name, ends), deadline)
            for a in self.repo.assignments(environment=env.name)
        )


def _show(on_progress: OnHandOut | None, progress: HandOutProgress) -> None:
    if on_progress is None:
        return
    try:
        on_progress(progress)
    except Exception:  # a broken display must not stop the hand-out
        log.exception("hand-out progress display failed")
