"""What an admin would write instead of the bot: a plain pyVmomi thread pool.

Each worker clones one VM from the parent's base snapshot with `CloneVM_Task` (linked, with the
clone's customization spec and Notes, as the bot asks for), waits for it with pyVim's
`WaitForTask`, sets the same custom attributes the bot sets (`SetField`, one call each), powers it
on and waits for that task too; the main thread polls `QueryEvents` once a second until every
clone's customization has an outcome. Used by `benchmarks/usable.py` as the peer.
"""

from __future__ import annotations

import copy
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from pyVim.connect import Disconnect, SmartConnect
from pyVim.task import WaitForTask
from pyVmomi import vim as _vim

from bot.adapters.lab import LabProcess
from bot.adapters.vcenter.operations import CUSTOMIZATION_EVENTS

vim: Any = _vim

OUTCOMES = CUSTOMIZATION_EVENTS  # vSphere's events that end a guest customization


@dataclass
class PeerRun:
    seconds: float
    clones: int
    customized: int
    morefs: list[str]


def _connect(lab: LabProcess) -> Any:
    url = urlsplit(lab.info.url)
    return SmartConnect(
        protocol=url.scheme,
        host=url.hostname or "127.0.0.1",
        port=url.port or 80,
        user=lab.info.user,
        pwd=lab.info.password,
        disableSslCertValidation=True,
    )


def _find(content: Any, kind: Any, name: str) -> Any:
    view = content.viewManager.CreateContainerView(content.rootFolder, [kind], True)
    try:
        return next(o for o in view.view if o.name == name)
    finally:
        view.Destroy()


# Kept whole: the admin's script, top to bottom, as one would write it.
def deploy(
    lab: LabProcess,
    plan: list[tuple[str, str, str]],  # (clone name, parent VM name, type)
    *,
    workers: int,
    spec_name: str,
    folder: str = "Training",
    pool: str = "Training",
    datastore: str = "TrainingDS",
    attributes: dict[str, str],
    snapshot: str = "clones-base",
    timeout_s: float = 300.0,
) -> PeerRun:
    """Clone, label and power on every clone in `plan` on `workers` threads; wait for every
    customization; return the time from the first call to the last clone's outcome."""
    si = _connect(lab)
    try:
        content = si.RetrieveContent()
        parents = {p: _find(content, vim.VirtualMachine, p) for _, p, _ in plan}
        snaps = {}
        for name, vm in parents.items():
            trees = list(vm.snapshot.rootSnapshotList)
            while trees:
                tree = trees.pop()
                if tree.name == snapshot:
                    snaps[name] = tree.snapshot
                trees.extend(tree.childSnapshotList or [])
        dc = _find(content, vim.Datacenter, "DC0")
        target = content.searchIndex.FindByInventoryPath(f"{dc.name}/vm/{folder}")
        cluster = _find(content, vim.ClusterComputeResource, pool)
        ds = _find(content, vim.Datastore, datastore)
        fields = content.customFieldsManager
        keys = {f.name: f.key for f in fields.field}
        custom = content.customizationSpecManager.GetCustomizationSpec(name=spec_name).spec
        since = datetime.now(UTC) - timedelta(seconds=30)
        started = time.perf_counter()

        def one(item: tuple[str, str, str]) -> str:
            name, parent, _ = item
            spec = vim.vm.CloneSpec(
                location=vim.vm.RelocateSpec(
                    pool=cluster.resourcePool,
                    datastore=ds,
                    diskMoveType="createNewChildDiskBacking",
                ),
                snapshot=snaps[parent],
                powerOn=False,
                template=False,
                config=vim.vm.ConfigSpec(annotation=f"Deployed by the peer script from {parent}"),
                customization=copy.deepcopy(custom),
            )
            spec.customization.identity.userData.computerName = vim.vm.customization.FixedName(
                name=name
            )
            task = parents[parent].CloneVM_Task(folder=target, name=name, spec=spec)
            WaitForTask(task)
            vm = task.info.result
            for attribute, value in attributes.items():
                fields.SetField(entity=vm, key=keys[attribute], value=value)
            WaitForTask(vm.PowerOnVM_Task())
            return str(vm._moId)

        with ThreadPoolExecutor(max_workers=workers) as pool_:
            futures = [pool_.submit(one, item) for item in plan]
            morefs = [f.result() for f in futures]
        wanted = set(morefs)
        outcome: dict[str, str] = {}
        deadline = time.monotonic() + timeout_s
        flt = vim.event.EventFilterSpec(
            eventTypeId=OUTCOMES,
            time=vim.event.EventFilterSpec.ByTime(beginTime=since),
            maxCount=1000,
        )
        while len(outcome) < len(wanted) and time.monotonic() < deadline:
            for event in content.eventManager.QueryEvents(flt) or []:
                vm = getattr(getattr(event, "vm", None), "vm", None)
                if vm is not None and str(vm._moId) in wanted:
                    outcome[str(vm._moId)] = type(event).__name__
            if len(outcome) < len(wanted):
                time.sleep(1.0)
        seconds = time.perf_counter() - started
        ok = sum(1 for v in outcome.values() if v.endswith("CustomizationSucceeded"))
        return PeerRun(seconds, len(morefs), ok, morefs)
    finally:
        Disconnect(si)


def remove(lab: LabProcess, morefs: list[str], workers: int = 8) -> None:
    """Power off and destroy the peer's VMs (not timed)."""
    si = _connect(lab)
    try:
        stub = si._stub

        def gone(moref: str) -> None:
            vm = vim.VirtualMachine(moref, stub)
            if vm.runtime.powerState == vim.VirtualMachinePowerState.poweredOn:
                WaitForTask(vm.PowerOffVM_Task())
            WaitForTask(vm.Destroy_Task())

        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(gone, morefs))
    finally:
        Disconnect(si)
