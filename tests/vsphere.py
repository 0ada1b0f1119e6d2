"""Someone else at the vSphere Client: changes made to a lab's VMs behind the bot's back (rename,
destroy, power, relabel), over SOAP with pyVmomi, as an admin's script would. Tests use it to
check that the bot notices (status drift, resume) and never acts on what it does not own."""

from __future__ import annotations

from typing import Any

from pyVim.task import WaitForTask
from pyVmomi import vim as _vim

from bot.adapters.lab import LabProcess
from bot.adapters.vcenter.session import Session
from bot.settings import VCenterSettings

vim: Any = _vim  # pyVmomi's dynamic types


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


def run_task(task: Any) -> Any:
    """Wait for a task started through any session, as an admin's script would; its result."""
    WaitForTask(task)
    return task.info.result
