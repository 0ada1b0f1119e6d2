"""vSphere faults in the bot's words: which are transient, what each means in plain words, and
how a pyVmomi fault (or a lost connection) becomes a `bot.domain.errors` exception."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pyVmomi import vmodl as _vmodl

from bot.domain.errors import VCenterError, VCenterFault

log = logging.getLogger(__name__)

# pyVmomi's generated stubs type every optional property as `X | None`; this package is the
# only importer and checks what it reads, so it treats the dynamic vSphere types as Any.
vmodl: Any = _vmodl

# Faults after which the same clone may succeed if tried again a little later.
TRANSIENT_FAULTS = frozenset(
    {
        "FileLocked",
        "TaskInProgress",
        "HostCommunication",
        "HostNotConnected",
        "HostNotReachable",
        "Timedout",
        "ResourceInUse",
        "ConcurrentAccess",
        "RequestCanceled",
        "SystemError",
        "TooManyConcurrentNfcs",
    }
)

# vSphere faults in plain words, for the people who read them in Slack or a terminal.
FAULT_WORDS = {
    "InsufficientStorageSpace": "not enough free space on the datastore",
    "NoDiskSpace": "the datastore is full",
    "FileLocked": "a disk file is locked by another operation",
    "DuplicateName": "a VM with that name already exists",
    "TaskInProgress": "vCenter is busy with another task on the same VM",
    "HostCommunication": "vCenter lost contact with the host",
    "HostNotConnected": "the host is not connected to vCenter",
    "HostNotReachable": "the host cannot be reached",
    "Timedout": "the operation timed out",
    "InvalidArgument": "vCenter refused a setting of the request",
    "InvalidState": "the VM is not in a state that allows this",
    "ResourceInUse": "something it needs is in use",
    "SystemError": "vCenter reported an internal error",
    "ManagedObjectNotFound": "the object no longer exists in vCenter",
    "NoPermission": "the vCenter user lacks a permission for this",
    "NotAuthenticated": "the vCenter session is no longer valid",
    "InvalidLogin": "vCenter refused the user name or password",
    "ConcurrentAccess": "another client changed the same object at the same time",
    "RequestCanceled": "the request was cancelled",
    "TooManyConcurrentNfcs": "the host has too many disk copies in progress",
    "CustomizationFault": "vCenter refused the guest customization",
}


def fault_name(fault: Any) -> str:
    return str(getattr(fault, "_wsdlName", None) or type(fault).__name__)


def describe_fault(name: str, message: str = "") -> str:
    """A vSphere fault in plain words, then its name and vCenter's own message:
    "not enough free space on the datastore (InsufficientStorageSpace: Insufficient disk space
    on datastore 'TrainingDS'.)"."""
    detail = message.strip()
    if detail.removeprefix("*types.") == name:  # a type name, not a message (old simulators)
        detail = ""
    words = FAULT_WORDS.get(name)
    if words is None:
        return f"{name}: {detail}" if detail else name
    return f"{words} ({name}: {detail})" if detail else f"{words} ({name})"


def fault_error(fault: Any, what: str) -> VCenterError:
    """A vSphere fault (of a call or of a task) as a `VCenterFault` saying what failed."""
    if fault is None:
        return VCenterFault(f"vCenter reported a failure while {what}.", "Unknown")
    name = fault_name(fault)
    if isinstance(fault, vmodl.fault.ManagedObjectNotFound):
        name = "ManagedObjectNotFound"
    message = getattr(fault, "msg", None) or ""
    if not message:
        messages = [m.message for m in getattr(fault, "faultMessage", None) or [] if m.message]
        message = "; ".join(messages)
    reason = describe_fault(name, message)
    return VCenterFault(
        f"vCenter could not finish {what}: {reason}",
        name,
        name in TRANSIENT_FAULTS,
        reason=reason,
    )


def short(exc: BaseException) -> str:
    """The first line of a socket or HTTP error, for a one-sentence message."""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, socket.timeout):
        text = "timed out"
    return text.splitlines()[0][:200]


@contextmanager
def quiet() -> Iterator[None]:
    """Best-effort clean-up calls (destroying a view or filter) must never mask the real error."""
    try:
        yield
    except Exception as exc:  # clean-up only; the primary outcome is already decided
        log.debug("ignored clean-up failure: %s", exc)
