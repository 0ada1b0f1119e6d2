"""VM custom attributes: their definitions (keys learnt once, created when missing), reading a
VM's values by name, and setting values on a clone."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pyVmomi import vim as _vim

from bot.adapters.vcenter.lookup import Lookup
from bot.adapters.vcenter.session import Session
from bot.domain.errors import VCenterFault
from bot.domain.vsphere import CLONE_ATTRIBUTES

# pyVmomi's dynamic vSphere types, as Any (see faults.py).
vim: Any = _vim


class Attributes:
    """VM custom attribute definitions (cached by name) and values."""

    def __init__(self, session: Session, lookup: Lookup) -> None:
        self.session = session
        self.lookup = lookup
        self._lock = threading.RLock()
        self._field_keys: dict[str, int] = {}
        self._foreign_keys: set[int] = set()  # custom field keys that are not VM attributes

    def ensure_definitions(self, names: Iterable[str] = CLONE_ATTRIBUTES) -> None:
        """Define these VM custom attributes where vCenter does not have them yet."""
        call = self.session.call
        cfm = self.session.content.customFieldsManager
        with self._lock:
            missing = [n for n in names if n not in self._field_keys]
            if not missing:
                return
            existing = {
                f.name: f.key
                for f in call("reading custom attributes", lambda: cfm.field or [])
                if f.managedObjectType in (None, vim.VirtualMachine)
            }
            for name in missing:
                if name not in existing:
                    try:
                        fd = call(
                            f"defining custom attribute {name}",
                            lambda n=name: cfm.AddCustomFieldDef(  # type: ignore[misc]
                                name=n, moType=vim.VirtualMachine
                            ),
                        )
                        existing[name] = fd.key
                    except VCenterFault as exc:
                        if exc.fault != "DuplicateName":
                            raise
                        refreshed = {f.name: f.key for f in cfm.field or []}
                        existing[name] = refreshed[name]
            self._field_keys.update({n: existing[n] for n in names})

    def _load_definitions(self) -> None:
        """Learn the keys of every VM custom attribute defined in vCenter (none are created)."""
        cfm = self.session.content.customFieldsManager
        fields = self.session.call("reading custom attributes", lambda: cfm.field or [])
        with self._lock:
            for f in fields:
                if f.managedObjectType in (None, vim.VirtualMachine):
                    self._field_keys.setdefault(f.name, f.key)

    def missing_definitions(self, names: Iterable[str]) -> list[str]:
        """Which of these VM custom attributes vCenter does not define yet (none are created)."""
        wanted = list(names)
        with self._lock:
            known = all(n in self._field_keys for n in wanted)
        if not known:
            self._load_definitions()
        with self._lock:
            return [n for n in wanted if n not in self._field_keys]

    def values(self, values: Sequence[Any]) -> dict[str, str]:
        """A VM's `customValue` by attribute name (attributes of other object types left out)."""
        names = {v: k for k, v in self._field_keys.items()}
        keys = {cv.key for cv in values}
        if keys - set(names) - self._foreign_keys:
            # An attribute this process has not defined itself (e.g. a type's extra asset
            # attributes, set by an earlier run): learn every definition once.
            self._load_definitions()
            names = {v: k for k, v in self._field_keys.items()}
            with self._lock:
                self._foreign_keys |= keys - set(names)
        return {names[cv.key]: str(cv.value) for cv in values if cv.key in names}

    def set(self, moref: str, values: Mapping[str, str]) -> None:
        """Set these attributes on a VM (defining any that vCenter lacks), one call each."""
        self.ensure_definitions(values.keys())
        cfm = self.session.content.customFieldsManager
        vm = self.lookup.vm(moref)
        for name, value in values.items():
            key = self._field_keys[name]
            self.session.call(
                f"setting {name} on {moref}",
                lambda k=key, v=value: cfm.SetField(entity=vm, key=k, value=v),  # type: ignore[misc]
            )
