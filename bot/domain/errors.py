"""Named errors. Each carries a message a user can act on; front ends show `str(error)`."""

from __future__ import annotations


class ClonesError(Exception):
    """Base of every error a user may see; its text says what went wrong and what to do."""


class UsageError(ClonesError):
    """The command text could not be understood; the message shows what to type instead."""


class ConfigError(ClonesError):
    """The configuration file, a lab spec or the environment is missing or malformed."""


class StorageError(ClonesError):
    """The database cannot be opened, read or written: a full disk, a read-only or damaged file,
    a path that is a folder, a file that is not the bot's database."""


class NotFoundError(ClonesError):
    """A type, environment, parent, snapshot or other named thing does not exist."""


class ConflictError(ClonesError):
    """The request clashes with the current state (busy environment, name taken, ...)."""


class Fenced(ConflictError):
    """A write refused because this process no longer holds what it acts under: the leadership
    lease (another bot took the schedules over, with a newer epoch) or a run (another bot
    took it over after its heartbeat went stale). The refused work is another bot's now."""


class CapacityError(ClonesError):
    """The datastore or a limit cannot take the requested deployment."""


class Interrupted(ClonesError):
    """The user stopped the process (Ctrl-C, SIGTERM) before this work started; its text says
    what stopped it."""


class PermissionDenied(ClonesError):
    """The user or channel may not run this command."""


class NotDelivered(ClonesError):
    """A direct message could not reach its person (deactivated, no DMs, a missing scope)."""


class VCenterError(ClonesError):
    """vCenter could not be reached, refused the login or answered with a fault."""


class VCenterUnreachable(VCenterError):
    """vCenter did not answer at all (network, TLS, DNS)."""


class CannotSee(VCenterError):
    """vCenter answered a read with a fault for an object instead of its properties
    (NoPermission, or NotAuthenticated after a new login): it may well exist, so nothing is
    recorded gone and nothing is done to it. The message names it, the fault and the privilege."""


class VCenterFault(VCenterError):
    """A vSphere fault raised by a task or a call.

    `fault` is the vSphere fault's type name (e.g. ``FileLocked``); `transient` says whether a
    retry may succeed; `reason` is the fault in plain words without the operation (e.g. "not
    enough free space on the datastore (InsufficientStorageSpace: ...)"), for a caller that
    names the operation itself.
    """

    def __init__(
        self, message: str, fault: str = "", transient: bool = False, *, reason: str = ""
    ) -> None:
        super().__init__(message)
        self.fault = fault
        self.transient = transient
        self.reason = reason or message


class LinkedCloneCheckFailed(VCenterError):
    """A clone came out as a full copy: its disk backing has no parent.

    `moref` is the copy's; `removed` says whether it was destroyed (else it is still there).
    """

    def __init__(self, message: str, *, moref: str = "", removed: bool = True) -> None:
        super().__init__(message)
        self.moref = moref
        self.removed = removed


class CloneUnread(VCenterError):
    """A clone task made its VM (`moref`), but reading the VM back failed: it exists, unverified."""

    def __init__(self, message: str, *, moref: str) -> None:
        super().__init__(message)
        self.moref = moref
