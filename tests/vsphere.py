"""Someone else at the vSphere Client: changes made to a lab's VMs behind the bot's back (rename,
destroy, power, relabel), over SOAP with pyVmomi, as an admin's script would. Tests use it to
check that the bot notices (status drift, resume) and never acts on what it does not own."""

from __future__ import annotations

from typing import Any

from pyVim.task import WaitForTask
from pyVmomi import vim as _vim
from pyVmomi import vmodl as _vmodl

from bot.adapters.lab import LabProcess
from bot.adapters.vcenter.session import Session
from bot.settings import VCenterSettings

vim: Any = _vim  # pyVmomi's dynamic types
vmodl: Any = _vmodl


class Admin:
    """A second vSphere session on a lab, independent of any `clones` process."""

    def __init__(self, lab: LabProcess) -> None:
        info = lab.info
        self.session = Session(
            VCenterSettings(
                url=info.url, user=info.user, password=info.password, insecure=True, timeout_s=10
            )
        )
        self.session.connect()

    def close(self) -> None:
        self.session.close()

    def _vm(self, moref: str) -> Any:
        return vim.VirtualMachine(moref, self.session.stub())

    def rename(self, moref: str, name: str) -> None:
        WaitForTask(self._vm(moref).Rename_Task(newName=name))

    def power(self, moref: str, on: bool) -> None:
        vm = self._vm(moref)
        WaitForTask(vm.PowerOnVM_Task() if on else vm.PowerOffVM_Task())

    def destroy(self, moref: str) -> None:
        vm = self._vm(moref)
        if vm.runtime.powerState == vim.VirtualMachinePowerState.poweredOn:
            WaitForTask(vm.PowerOffVM_Task())
        WaitForTask(vm.Destroy_Task())

    def tag(self, moref: str, attribute: str, value: str) -> None:
        """Set a custom attribute of the admin's own (defined for VMs first if need be)."""
        fields = self.session.content.customFieldsManager
        key = next((f.key for f in fields.field or [] if f.name == attribute), None)
        if key is None:
            key = fields.AddCustomFieldDef(name=attribute, moType=vim.VirtualMachine).key
        fields.SetField(entity=self._vm(moref), key=key, value=value)

    def custom_values(self, name: str) -> dict[str, str]:
        """A VM's custom attributes by name, as the vSphere Client shows them (found by name)."""
        content = self.session.content
        view = content.viewManager.CreateContainerView(
            content.rootFolder, [vim.VirtualMachine], True
        )
        try:
            vm = next(v for v in view.view if v.name == name)
        finally:
            view.Destroy()
        names = {f.key: f.name for f in content.customFieldsManager.field}
        return {names[v.key]: v.value for v in vm.customValue if v.key in names}

    def write_notes(self, moref: str, notes: str) -> None:
        """Replace a VM's Notes (its annotation), as the vSphere Client's "Edit Notes" does."""
        WaitForTask(self._vm(moref).ReconfigVM_Task(spec=vim.vm.ConfigSpec(annotation=notes)))

    def relabel(self, moref: str, attribute: str, value: str) -> None:
        fields = self.session.content.customFieldsManager
        key = next(f.key for f in fields.field if f.name == attribute)
        fields.SetField(entity=self._vm(moref), key=key, value=value)


def recent_tasks(admin: Admin) -> set[str]:
    """The keys of the tasks vCenter lists as recent (TaskManager.recentTask)."""
    return {str(t._moId) for t in admin.session.content.taskManager.recentTask or []}


def tasks_since(admin: Admin, before: set[str]) -> list[tuple[str, str, str]]:
    """(task key, what: "VirtualMachine.reset", ..., the VM's moref) of every task on a VM that
    vCenter started since `before` (`recent_tasks`), failed ones too: which VMs an operation
    reached. Clone tasks are left out: their entity is the VM cloned from (a parent), read,
    not changed. Read property by property: a task on another kind of object (a disk manager)
    may carry an entity pyVmomi will not decode as a whole `info`."""
    tasks = [
        t for t in admin.session.content.taskManager.recentTask or [] if str(t._moId) not in before
    ]
    what = _task_property(admin, tasks, "info.descriptionId")
    on_vms = [
        t
        for t in tasks
        if str(what.get(str(t._moId), "")).startswith("VirtualMachine.")
        and not str(what[str(t._moId)]).endswith(".cloneVm")
    ]
    entity = _task_property(admin, on_vms, "info.entity")
    return [
        (str(t._moId), str(what[str(t._moId)]), str(entity[str(t._moId)]._moId))
        for t in on_vms
        if entity.get(str(t._moId)) is not None
    ]


def property_spec(objects: list[Any], kind: Any, path: str) -> Any:
    """A PropertyCollector filter spec reading `path` of each of `objects` (all of type `kind`)."""
    return vmodl.query.PropertyCollector.FilterSpec(
        objectSet=[vmodl.query.PropertyCollector.ObjectSpec(obj=o) for o in objects],
        propSet=[vmodl.query.PropertyCollector.PropertySpec(type=kind, pathSet=[path])],
    )


def _task_property(admin: Admin, tasks: list[Any], path: str) -> dict[str, Any]:
    """One property of each task (by task key), in one PropertyCollector read."""
    if not tasks:
        return {}
    spec = property_spec(tasks, vim.Task, path)
    out: dict[str, Any] = {}
    for content in admin.session.content.propertyCollector.RetrieveContents([spec]) or []:
        for prop in content.propSet or []:
            out[str(content.obj._moId)] = prop.val
    return out


def run_task(task: Any) -> Any:
    """Wait for a task started through any session, as an admin's script would; its result."""
    WaitForTask(task)
    return task.info.result
