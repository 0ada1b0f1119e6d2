"""The connection to vCenter: one shared SOAP session, its TLS (trust settings in `tls`), the
login and the re-login after an expired session, and `call`, which turns pyVmomi and socket
errors into `bot.domain.errors` exceptions for every other module of this package."""

from __future__ import annotations

import http.client
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlparse

from pyVim import connect as pyvim_connect
from pyVim.connect import SmartStubAdapter, VimSessionOrientedStub
from pyVmomi import SoapStubAdapter
from pyVmomi import vim as _vim
from pyVmomi import vmodl as _vmodl
from pyVmomi.VmomiSupport import GetServiceVersions

from bot.adapters.vcenter import tls
from bot.adapters.vcenter.faults import fault_error, quiet, short
from bot.domain.errors import ConfigError, VCenterError, VCenterUnreachable
from bot.domain.vsphere import Endpoint
from bot.settings import VCenterSettings

T = TypeVar("T")

# pyVmomi's dynamic vSphere types, as Any (see faults.py).
vim: Any = _vim
vmodl: Any = _vmodl


class Session:
    """A shared, thread-safe session with one vCenter.

    One SOAP session is shared by all threads. An expired session is renewed by pyVmomi's
    session-oriented stub when a call fails with NotAuthenticated (it logs in again and repeats
    the call); by `relogin` when a read succeeds but carries NotAuthenticated per object (the
    lookup's reads ask for it); and before the first call after `session_check_s` of quiet,
    `call` checks the session (one read of currentSession) and logs in again if it has ended, so
    the first read after a night's idle is never the one that finds out.
    """

    def __init__(self, settings: VCenterSettings) -> None:
        self.settings = settings
        self._lock = threading.RLock()
        self._si: Any | None = None
        self._stub: Any | None = None  # the session-oriented stub: its login and its lock
        self._content: Any | None = None
        self._trust = ""  # how the TLS certificate is trusted, for `clones check`
        self._last_answer = 0.0  # time.monotonic() of the last call vCenter answered

    def connect(self) -> None:
        """Open the shared session: TLS as configured (bot.adapters.vcenter.tls), then
        SessionManager.Login.

        Login is called directly (pyVmomi's own login helper first reads currentSession, which
        a vCenter, or VMware's simulator, answers with NotAuthenticated before a login). The
        session-oriented stub logs in again the same way whenever a call gets NotAuthenticated
        (an expired session) and repeats the call.
        """
        with self._lock:
            if self._si is not None:
                return
            s = self.settings
            if not s.user or not s.password:
                raise ConfigError(
                    f"vCenter credentials are missing: set CLONES_VCENTER_USER (or [vcenter] user) "
                    f"and {s.password_env} in the environment."
                )
            url = urlparse(s.url)
            host = url.hostname or ""
            secure = url.scheme == "https"
            port = url.port or (443 if secure else 80)
            where = f"{host}:{port}"
            try:
                context = self._tls_context(host, port) if secure else None
                stub = _stub_adapter(host, port, url.path or "/sdk", secure, context, s.timeout_s)
                login = _login_method(s.user, s.password)
                session = VimSessionOrientedStub(stub, login, retryDelay=0.5, retryCount=3)
                si = vim.ServiceInstance("ServiceInstance", session)
                # The first call logs in: bad credentials fail here, clearly.
                content = si.RetrieveContent()
            except (VCenterError, ConfigError):
                raise
            except vim.fault.InvalidLogin:
                raise VCenterError(
                    f"vCenter at {where} refused the login for user {s.user!r}: check "
                    f"CLONES_VCENTER_USER (or [vcenter] user, e.g. svc@vsphere.local) and "
                    f"{s.password_env}."
                ) from None
            except ssl.SSLError as exc:
                raise VCenterUnreachable(self._tls_reason(exc, where)) from None
            except (OSError, http.client.HTTPException) as exc:
                raise VCenterUnreachable(
                    f"vCenter at {s.url} is unreachable ({short(exc)}). Check [vcenter] url and "
                    "the network; for the lab, run `clones lab up`."
                ) from None
            except Exception as exc:  # SmartStubAdapter raises bare Exception for non-vSphere
                if isinstance(exc, vmodl.MethodFault):
                    raise fault_error(exc, f"logging in to {where}") from None
                raise VCenterUnreachable(
                    f"{s.url} does not answer as a vCenter ({short(exc)}). Check [vcenter] url "
                    "(https://host:port/sdk)."
                ) from None
            self._si = si
            self._stub = session
            # Every read of si.content is a round trip; the content's morefs never change.
            self._content = content
            self._last_answer = time.monotonic()

    def _tls_context(self, host: str, port: int) -> ssl.SSLContext:
        s = self.settings
        try:
            context = tls.context_for(
                host=host,
                port=port,
                insecure=s.insecure,
                ca_file=s.ca_file,
                thumbprint=s.thumbprint,
                timeout=s.timeout_s,
            )
        except ValueError as exc:  # a ca_file that is not (or no longer) PEM
            raise ConfigError(f"[vcenter] {exc}.") from None
        if s.insecure:
            self._trust = "not verified (insecure = true)"
        elif s.thumbprint:
            self._trust = f"pinned certificate {s.thumbprint}"
        elif s.ca_file:
            self._trust = f"verified against ca_file {s.ca_file}"
        else:
            self._trust = "verified against the system's CA certificates"
        return context

    def _tls_reason(self, exc: ssl.SSLError, where: str) -> str:
        return tls.explain(
            exc, where=where, pinned=bool(self.settings.thumbprint), ca_file=self.settings.ca_file
        )

    def endpoint(self) -> Endpoint:
        """Who and what this connection talks to (connects first)."""
        content = self.content
        about = self.call("reading vCenter's version", lambda: content.about)
        session = self.call("reading the session", lambda: content.sessionManager.currentSession)
        url = urlparse(self.settings.url)
        return Endpoint(
            url=self.settings.url,
            product=str(getattr(about, "fullName", "") or ""),
            api_version=str(getattr(about, "apiVersion", "") or ""),
            user=str(getattr(session, "userName", "") or self.settings.user),
            trust=self._trust if url.scheme == "https" else "plain http (not encrypted)",
            instance_uuid=str(getattr(about, "instanceUuid", "") or ""),
        )

    def close(self) -> None:
        """Log out (best effort); the next call connects again."""
        with self._lock:
            si, self._si = self._si, None
            self._content = None
            self._stub = None
        if si is None:
            return
        with quiet():
            si.content.sessionManager.Logout()

    @property
    def content(self) -> Any:
        """The ServiceContent (read once per session: its morefs never change)."""
        self.connect()
        assert self._content is not None
        return self._content

    def stub(self) -> Any:
        """The session's SOAP stub, for building morefs (`vim.VirtualMachine(moref, stub)`)."""
        self.connect()
        assert self._si is not None
        return self._si._stub

    def relogin(self) -> None:
        """Log in again now if the session has ended (the login first asks whether it is alive:
        one round trip when it is). Serialised with the stub's own logins, so several threads
        hit by one expiry log in once."""
        with self._lock:
            stub = self._stub
        if stub is None:
            self.connect()
            return

        def login() -> None:
            with stub.lock:
                stub.loginMethod(stub.soapStub)

        self.call("logging in to vCenter again", login)

    def _check_if_idle(self) -> None:
        """Before the first call after `session_check_s` without one: is the session alive?"""
        if self._stub is None:
            return
        now = time.monotonic()
        with self._lock:
            if now - self._last_answer < self.settings.session_check_s:
                return
            self._last_answer = now  # one check, whichever thread comes first
        self.relogin()

    def call(self, what: str, fn: Callable[[], T]) -> T:
        """Run one vSphere call, turning pyVmomi and socket errors into `bot.domain.errors`
        (after `_check_if_idle`)."""
        self._check_if_idle()
        try:
            result = fn()
            self._last_answer = time.monotonic()
            return result
        except vmodl.MethodFault as exc:
            raise fault_error(exc, what) from None
        except ssl.SSLError as exc:  # the certificate changed under a running connection
            url = urlparse(self.settings.url)
            where = f"{url.hostname}:{url.port or 443}"
            raise VCenterUnreachable(self._tls_reason(exc, where)) from None
        except (OSError, http.client.HTTPException) as exc:
            raise VCenterUnreachable(
                f"Lost contact with vCenter while {what} ({short(exc)}). The work done so far "
                "is recorded; run the command again to resume once vCenter answers."
            ) from None

    def new_collector(self) -> Any:
        """A PropertyCollector of this session's own (the task waiter's)."""
        content = self.content
        return self.call(
            "creating a property collector", content.propertyCollector.CreatePropertyCollector
        )


def _login_method(user: str, password: str) -> Callable[[Any], None]:
    """Log in with SessionManager.Login: the session-oriented stub calls this for the first
    login and again after a call gets NotAuthenticated.

    The first login goes straight to Login (RetrieveServiceContent needs no session anywhere;
    pyVmomi's own helper reads currentSession first, which vCenter and VMware's simulator
    refuse before a login). A re-login first asks whether the session is alive: several
    threads hit by one expiry each ask for a re-login, and once one thread has logged in again
    the others find a live session (a second Login on a live session is refused, and would
    leave a spare session on vCenter).
    """
    logged_in = False

    def login(soap_stub: Any) -> None:
        nonlocal logged_in
        content = vim.ServiceInstance("ServiceInstance", soap_stub).RetrieveContent()
        manager = content.sessionManager
        if logged_in:
            try:
                if manager.currentSession is not None:
                    return  # another thread logged in again meanwhile
            except vim.fault.NotAuthenticated:
                pass
        manager.Login(userName=user, password=password)
        logged_in = True

    return login


def _stub_adapter(
    host: str,
    port: int,
    path: str,
    secure: bool,
    context: ssl.SSLContext | None,
    timeout_s: float,
) -> Any:
    if secure:
        return SmartStubAdapter(
            host=host,
            port=port,
            path=path,
            sslContext=context,
            httpConnectionTimeout=timeout_s,
            poolSize=32,
        )
    # Plain http (lab endpoints only): SmartStubAdapter cannot negotiate the API version over
    # http (it passes pyVmomi's negative-port convention to the version probe), so negotiate
    # with the same probe SmartConnect uses, then build the stub; a negative port means http.
    find_version = getattr(pyvim_connect, "__FindSupportedVersion")
    version = find_version(
        "http", host, port, path, GetServiceVersions("vim25"), None, None, 80, None
    )
    if version is None:
        raise VCenterUnreachable(f"http://{host}:{port}{path} does not answer as a vCenter.")
    return SoapStubAdapter(
        host=host,
        port=-port,
        path=path,
        version=version,
        httpConnectionTimeout=timeout_s,
        poolSize=32,
    )
