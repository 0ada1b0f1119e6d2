"""One linked clone: reserve its instance UUID, clone it from the base snapshot (adopting a VM
an earlier attempt made under that UUID), label it, and record the outcome."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import replace

from bot.domain.errors import (
    CannotSee,
    ClonesError,
    CloneUnread,
    Fenced,
    Interrupted,
    LinkedCloneCheckFailed,
    VCenterFault,
    VCenterUnreachable,
)
from bot.domain.models import Clone, CloneState, Environment, Fence
from bot.domain.provenance import provenance_note
from bot.domain.vsphere import (
    ATTR_DEPLOYED_AT,
    ATTR_DEPLOYED_BY,
    ATTR_DEPLOYED_FROM,
    ATTR_ENVIRONMENT,
    ATTR_MANAGED_BY,
    CLONE_ATTRIBUTES,
    PROVENANCE_ATTRIBUTES,
    CloneRequest,
    VmFacts,
)
from bot.ports import VCenter
from bot.services.core import Core, OnCore
from bot.services.pipeline import retrying
from bot.services.runbook import Emitter
from bot.settings import TypeSettings

log = logging.getLogger(__name__)


class Unmaker(OnCore):
    """Removes a VM a clone task made when a later step failed for good (no leak)."""

    def unmake(
        self,
        clone: Clone,
        moref: str,
        instance_uuid: str,
        why: ClonesError,
        attempts: int,
        fence: Fence,
    ) -> Clone:
        """A step after the clone task failed for good: destroy the VM the task made (proved
        by the instance UUID this clone chose) and say so. If vCenter goes away meanwhile the
        record stays `cloning` with the VM's moref, for `resume`; if the destroy is refused,
        the clone is recorded failed with its moref kept, so `orphans` finds it as the bot's.
        Only while the run is still this process's (`fence`): else another bot adopts the VM."""
        reason = f"{clone.name} was cloned ({moref}) but could not be finished: {why}"
        if fence.run_id is not None:
            self.runs.assert_owned(fence.run_id)  # Fenced: nothing destroyed, nothing recorded
        try:
            self.vcenter.destroy(moref, expected_uuid=instance_uuid)
        except VCenterUnreachable:
            self.repo.update_clone(clone.id, fence=fence, attempts=attempts)
            raise
        except ClonesError as exc:
            error = (
                f"{reason}. Destroying it failed too ({exc}): it stays in vCenter as {moref}, "
                'recorded; "orphans remove" removes it, "orphans adopt" keeps it.'
            )
            self._audit(clone, moref, instance_uuid, "error", f"NOT destroyed: {exc}")
            return self.repo.update_clone(
                clone.id, fence=fence, state=CloneState.FAILED, error=error, attempts=attempts
            )
        self._audit(clone, moref, instance_uuid, "ok", "destroyed")
        return self.repo.update_clone(
            clone.id,
            fence=fence,
            state=CloneState.FAILED,
            error=f"{reason}. The VM it made (instance UUID {instance_uuid}) was destroyed; "
            "nothing is left behind.",
            attempts=attempts,
            moref=None,
        )

    def _audit(self, clone: Clone, moref: str, instance_uuid: str, result: str, fate: str) -> None:
        self.repo.audit(
            actor="clones",
            source="service",
            command=f"remove unfinished clone {clone.name}",
            result=result,
            detail=f"{moref} (instance UUID {instance_uuid}) in {clone.environment}: {fate}",
        )


class Cloner(OnCore):
    """Clones one recorded clone at a time (the pool around it is `run_per_clone`)."""

    def __init__(self, core: Core) -> None:
        super().__init__(core)
        self.unmaker = Unmaker(core)

    # Kept whole: one try around the clone task, so each of its outcomes is recorded in one place.
    def clone_one(
        self,
        clone: Clone,
        env: Environment,
        actor: str,
        deployed_at: str,
        emit: Emitter,
        *,
        host: str | None = None,
        keep_attributes: Mapping[str, str] | None = None,
        new_uuid: bool = False,
        slot: AbstractContextManager[object] | None = None,
        on_full_copy: Callable[[LinkedCloneCheckFailed], bool] | None = None,
    ) -> Clone:
        """Clone one VM (while holding `slot`, if given), then label it; record the outcome.

        Once the clone task has made the VM, its moref and instance UUID are recorded before
        any later step (labels, disk mode): a later step that fails for good destroys the VM
        it made (`Unmaker`), and one cut short by vCenter going away leaves the record knowing
        the VM, for `resume` to finish. A clone task that seems to have failed is believed only
        once no VM carries the instance UUID it asked for (a reply lost and the call repeated
        by pyVmomi may hide a VM it made). A clone that comes out as a full copy is removed by
        the adapter; its removal is audited here, and `on_full_copy` hears of it while the slot
        is held: when it answers True the clone is made again, once (see `_make`)."""
        t = self.settings.type(clone.type)
        attempts = [0]
        request: CloneRequest | None = None
        # Every write for the clone is fenced: once another bot took the run over, this one
        # records nothing for it (not even a failure over what the other made of it).
        fence = self.runs.fence(emit.run_id)
        try:
            instance_uuid = (None if new_uuid else clone.instance_uuid) or str(uuid.uuid4())
            # Record the instance UUID before asking vCenter, so a lost reply or a crash can
            # still find the VM again by it (and never make a second one). Recorded before the
            # slot is taken: while a slot is held, the write lock is waited for only by the
            # run's heartbeat just before each ask (`_make`), one short write.
            clone = self.repo.update_clone(
                clone.id,
                fence=fence,
                state=CloneState.CLONING,
                instance_uuid=instance_uuid,
                customization="",
            )
            request = self.clone_request(
                clone, t, env.name, actor, keep_attributes, deployed_at=deployed_at, host=host
            )
            with slot or nullcontext():
                request, made = self._make(clone, request, emit, on_full_copy, attempts)
        except Fenced:
            raise  # the run is another bot's now: it records this clone, not us
        except VCenterUnreachable:
            self.repo.update_clone(clone.id, fence=fence, attempts=attempts[0])
            raise
        except Interrupted:  # the user stopped the process: waiting for a slot, or a backoff
            anyway = self._made_before_the_stop(clone, request, attempts[0], fence)
            if anyway is None:
                raise
            return self._finish(clone, anyway, request, emit, attempts[0])
        except LinkedCloneCheckFailed as exc:
            return self.repo.update_clone(
                clone.id,
                fence=fence,
                state=CloneState.FAILED,
                error=str(exc),
                attempts=attempts[0],
                moref=None if exc.removed else exc.moref,
            )
        except CloneUnread as exc:
            clone = self.repo.update_clone(
                clone.id, fence=fence, moref=exc.moref, attempts=attempts[0]
            )
            uuid_asked = clone.instance_uuid or ""
            return self.unmaker.unmake(clone, exc.moref, uuid_asked, exc, attempts[0], fence)
        except ClonesError as exc:
            clone, request = self._latest(clone, request)
            found = self._made_anyway(clone, request, exc, attempts[0], fence)
            if isinstance(found, Clone):
                return found  # recorded failed: nothing made, or it could not be told
            made = found
        return self._finish(clone, made, request, emit, attempts[0])

    def _latest(
        self, clone: Clone, request: CloneRequest | None
    ) -> tuple[Clone, CloneRequest | None]:
        """The clone's record and request as they are now: a full copy made again (`_make`)
        chose a new instance UUID, recorded first."""
        clone = self.repo.get_clone(clone.id)
        if request is not None and clone.instance_uuid:
            request = replace(request, instance_uuid=clone.instance_uuid)
        return clone, request

    def _made_before_the_stop(
        self, clone: Clone, request: CloneRequest | None, attempts: int, fence: Fence
    ) -> VmFacts | None:
        """The user stopped the process before this clone was asked for (again): the VM an
        earlier, refused ask made anyway (found by the instance UUID it asked for), to be
        finished and recorded; else None, the clone recorded planned again for `resume`. When
        that cannot be checked it stays cloning: `resume` looks for it by the same UUID."""
        if attempts and request is not None:
            clone, request = self._latest(clone, request)
            assert request is not None
            try:
                made = self.vcenter.vm_by_instance_uuid(request.instance_uuid)
            except ClonesError:
                return None
            if made is not None:
                return made
        self.repo.update_clone(clone.id, fence=fence, state=CloneState.PLANNED, attempts=attempts)
        return None

    def _made_anyway(
        self,
        clone: Clone,
        request: CloneRequest | None,
        why: ClonesError,
        attempts: int,
        fence: Fence,
    ) -> VmFacts | Clone:
        """After a clone task that failed: the VM it made anyway (found by the instance UUID
        it asked for), or the clone recorded failed (none was made, or it cannot be told)."""
        error = str(why)
        if request is not None:
            try:
                made = self.vcenter.vm_by_instance_uuid(request.instance_uuid)
            except VCenterUnreachable:
                self.repo.update_clone(clone.id, fence=fence, attempts=attempts)
                raise
            except ClonesError as check:
                made = None
                error += (
                    f" Whether vCenter made it anyway could not be checked ({check}); if it "
                    'did, "orphans" lists it (by the instance UUID recorded for it).'
                )
            if made is not None:
                return made
        return self.repo.update_clone(
            clone.id, fence=fence, state=CloneState.FAILED, error=error, attempts=attempts
        )

    def _finish(
        self,
        clone: Clone,
        made: VmFacts,
        request: CloneRequest | None,
        emit: Emitter,
        attempts: int,
    ) -> Clone:
        """Record the VM the clone task made, then label it (disk mode, custom attributes)."""
        assert request is not None, "a VM is made only once its request is"
        fence = self.runs.fence(emit.run_id)
        # The VM exists: the record knows it before anything else is asked of vCenter.
        clone = self.repo.update_clone(
            clone.id,
            fence=fence,
            moref=made.moref,
            instance_uuid=made.instance_uuid,
            attempts=attempts,
        )
        facts = made
        try:
            if not made.linked:
                raise LinkedCloneCheckFailed(
                    f"{clone.name} is not a linked clone (its disk has no parent backing).",
                    moref=made.moref,
                    removed=False,
                )
            # Labelling costs vCenter little: it happens after the slot is free, so the next
            # clone starts at once. Idempotent, so a transient fault just repeats it.
            for attempt in retrying(self.settings, emit, clone.name):
                with attempt:
                    facts = self.vcenter.finish_clone(made, request)
        except VCenterUnreachable:
            self.repo.update_clone(clone.id, fence=fence, attempts=attempts)
            raise
        except ClonesError as exc:
            return self.unmaker.unmake(clone, made.moref, made.instance_uuid, exc, attempts, fence)
        return self.repo.update_clone(
            clone.id,
            fence=fence,
            state=CloneState.READY,
            kept_attributes={},  # the successor carries them now
            moref=facts.moref,
            instance_uuid=facts.instance_uuid,
            delta_bytes=facts.unshared_bytes or facts.committed_bytes,
            error=None,
            attempts=attempts,
            host=facts.host or None,
            power_state="poweredOn" if facts.powered_on else "poweredOff",
        )

    def _make(
        self,
        clone: Clone,
        request: CloneRequest,
        emit: Emitter,
        on_full_copy: Callable[[LinkedCloneCheckFailed], bool] | None,
        attempts: list[int],
    ) -> tuple[CloneRequest, VmFacts]:
        """The clone task (transient faults retried), in the caller's slot. A full copy (the
        adapter removed it) is audited and told to `on_full_copy`; when that answers True it
        is made again, once, under a new instance UUID recorded first, as for any clone. That
        happens in the same slot (a rare write there): the type's next clone never starts
        between the two. Each ask renews the run's lease first (`assert_owned`: a write in the
        slot, one short transaction), so no other bot takes the run over while it is asked."""
        for second in (False, True):
            try:
                for attempt in retrying(self.settings, emit, clone.name, self.runs.halt):
                    with attempt:
                        # Still this process's run, just before each ask (a slot or a retry's
                        # backoff may have outlasted the run's lease): Fenced, nothing asked.
                        self.runs.assert_owned(emit.run_id)
                        attempts[0] += 1
                        return request, _clone_or_adopt(self.vcenter, request)
            except LinkedCloneCheckFailed as exc:
                self._record_full_copy(clone, exc)
                again = on_full_copy(exc) if on_full_copy is not None else False
                if second or not again:
                    raise
            emit(
                "clone_retry",
                clone=clone.name,
                message="came out as a full copy (removed): making it again as a linked clone",
            )
            clone = self.repo.update_clone(
                clone.id, fence=self.runs.fence(emit.run_id), instance_uuid=str(uuid.uuid4())
            )
            request = replace(request, instance_uuid=clone.instance_uuid or "")
        raise AssertionError("the second try returns or raises")

    def _record_full_copy(self, clone: Clone, exc: LinkedCloneCheckFailed) -> None:
        self.repo.audit(
            actor="clones",
            source="service",
            command=f"remove full copy {clone.name}",
            result="ok" if exc.removed else "error",
            detail=f"{exc.moref} in {clone.environment}: "
            + ("destroyed" if exc.removed else "NOT destroyed, remove it by hand"),
        )

    def clone_request(
        self,
        clone: Clone,
        t: TypeSettings,
        environment: str,
        actor: str,
        keep_attributes: Mapping[str, str] | None = None,
        *,
        deployed_at: str | None = None,
        host: str | None = None,
    ) -> CloneRequest:
        """What to ask vCenter for one clone (also used to finish an adopted one)."""
        assert clone.instance_uuid, "the instance UUID is recorded before cloning"
        provenance = {
            ATTR_MANAGED_BY: self.settings.managed_by,
            ATTR_ENVIRONMENT: environment,
            ATTR_DEPLOYED_FROM: t.parent,
            "Snapshot": t.snapshot,
            ATTR_DEPLOYED_BY: actor,
            ATTR_DEPLOYED_AT: deployed_at or self.clock().isoformat(timespec="seconds"),
        }
        attributes = {k: provenance[k] for k in CLONE_ATTRIBUTES}
        if self.settings.provenance_attributes:
            attributes.update({k: provenance[k] for k in PROVENANCE_ATTRIBUTES})
        return CloneRequest(
            parent=t.parent,
            snapshot=t.snapshot,
            name=clone.name,
            instance_uuid=clone.instance_uuid,
            folder=t.folder,
            resource_pool=t.resource_pool,
            datastore=t.datastore,
            attributes={
                **attributes,
                **extra_attributes(t, clone.name, environment),
                **dict(clone.kept_attributes),  # a refreshed VM's, recorded before its destroy
                **(keep_attributes or {}),
            },
            notes=provenance_note(provenance),
            host=host,
            customization_spec=t.customization_spec,
            disk_mode=t.disk_mode,
        )


def _clone_or_adopt(vcenter: VCenter, request: CloneRequest) -> VmFacts:
    """Ask for the clone; a DuplicateName is ours only if that VM carries the instance UUID
    recorded for it (an earlier attempt whose reply was lost), and is then adopted."""
    try:
        return vcenter.clone(request, finish=False)
    except VCenterFault as exc:
        if exc.fault != "DuplicateName":
            raise
        # A VM with this name exists. It is ours only if it carries the instance UUID we
        # recorded (an earlier attempt whose reply was lost); anything else is not touched.
        listing = vcenter.find_vms(request.folder)
        same_name = [vm for vm in listing.values() if vm.name == request.name]
        mine = next(
            (vm for vm in same_name if vm.instance_uuid == request.instance_uuid and vm.linked),
            None,
        )
        if mine is not None:
            return mine
        if not same_name and listing.unseen:
            unseen = next(iter(listing.unseen.values()))
            raise CannotSee(
                f"vCenter refused the name {request.name} (DuplicateName), and "
                f"{unseen.cannot_see(unseen.moref)}: it may be that VM, so nothing was "
                "created or touched. Grant the bot's account that privilege on folder "
                f"{request.folder}, then deploy again."
            ) from None
        if not same_name:
            raise VCenterFault(
                f"vCenter refused the name {request.name} (DuplicateName), though no VM of "
                f"that name is in folder {request.folder} now; nothing was created. Deploy "
                "again to retry, or check the folder in vCenter.",
                "DuplicateName",
                transient=False,
            ) from None
        raise VCenterFault(
            f"A VM named {request.name} already exists in folder {request.folder} and was "
            "not made by this deployment; it was left alone. Rename or remove it, or "
            "change the type's name_pattern.",
            "DuplicateName",
            transient=False,
        ) from None


def extra_attributes(t: TypeSettings, name: str, environment: str) -> dict[str, str]:
    """The type's configured asset-inventory attributes, filled in for one clone."""
    digits = "".join(ch for ch in name if ch.isdigit())
    n = int(digits) if digits else 0
    return {
        key: pattern.format(name=name, n=n, type=t.name, environment=environment)
        for key, pattern in t.attributes.items()
    }
