"""TLS to vCenter: which certificate to trust, fingerprints, and the real reason of a failure.

Three ways to trust vCenter's certificate (`[vcenter]` in clones.toml):
- `ca_file`: a PEM file with the CA that issued it (vCenter's own CA, the VMCA, by default);
- `thumbprint = "SHA256:..."`: pin the certificate itself, the usual choice for a self-signed
  endpoint. The certificate is read once, its fingerprint compared, and then it becomes the only
  trust anchor of the connection's SSL context, so OpenSSL checks every later connection against
  exactly that certificate (pyVmomi's own thumbprint check runs only on a connection whose normal
  verification failed, and then switches verification off for the rest of the pool);
- neither: the system's CA store.
`insecure = true` verifies nothing (a lab on a trusted network only).

No pyVmomi here: `bot.adapters.vcenter.session` builds its SSL context with `context_for` and
turns `ssl.SSLError` into one sentence with `explain`.
"""

from __future__ import annotations

import contextlib
import hashlib
import socket
import ssl

from bot.certificates import (
    Inspection,
    PeerCertificate,
    ca_file_problem,
    fingerprint,
    format_fingerprint,
)

# OpenSSL verification error codes (X509_V_ERR_*) and what an admin does about each.
_UNTRUSTED = frozenset({2, 18, 19, 20, 21})  # issuer unknown, self-signed (in chain), ...
_EXPIRED, _NOT_YET_VALID = 10, 9
_HOSTNAME_MISMATCH, _IP_MISMATCH = 62, 64
_KEY_TOO_SMALL, _CA_KEY_TOO_SMALL, _MD_TOO_WEAK = 66, 67, 68


class ThumbprintMismatch(ssl.SSLError):
    """The endpoint's certificate is not the pinned one."""

    def __init__(self, expected: str, actual: str) -> None:
        super().__init__(f"certificate fingerprint is {actual}, not the pinned {expected}")
        self.expected = expected
        self.actual = actual


def peer_certificate(host: str, port: int, timeout: float) -> PeerCertificate:
    """Read the endpoint's certificate (no verification). OSError if it cannot be reached;
    ssl.SSLError if it does not speak TLS."""
    unverified = ssl.create_default_context()
    unverified.check_hostname = False
    unverified.verify_mode = ssl.CERT_NONE
    der = _handshake(unverified, host, port, timeout)
    details: dict[str, object] = {}
    # Decoded by trusting exactly this certificate once (the ssl module decodes only verified
    # certificates); an expired or weak one stays undecoded: its fingerprint is what counts.
    with contextlib.suppress(OSError):  # ssl.SSLError is an OSError
        details = _handshake_details(pinned_context(der), host, port, timeout)
    return PeerCertificate(
        der=der,
        sha256=fingerprint(der),
        sha1=format_fingerprint(hashlib.sha1(der).digest(), "SHA1"),
        subject=_name(details.get("subject")),
        issuer=_name(details.get("issuer")),
        not_after=str(details.get("notAfter") or ""),
        names=tuple(str(v) for _, v in details.get("subjectAltName") or ()),  # type: ignore[attr-defined]
    )


def _handshake(context: ssl.SSLContext, host: str, port: int, timeout: float) -> bytes:
    with (
        socket.create_connection((host, port), timeout=timeout) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    if not der:
        raise ssl.SSLError(f"{host}:{port} presented no certificate")
    return der


def _handshake_details(
    context: ssl.SSLContext, host: str, port: int, timeout: float
) -> dict[str, object]:
    with (
        socket.create_connection((host, port), timeout=timeout) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        return dict(tls.getpeercert() or {})


def _name(rdns: object) -> str:
    if not isinstance(rdns, tuple):
        return ""
    parts = [f"{k}={v}" for rdn in rdns for k, v in rdn]
    return ", ".join(parts)


def pinned_context(der: bytes) -> ssl.SSLContext:
    """An SSL context whose only trust anchor is this certificate (names are not checked:
    the pin replaces them)."""
    context = ssl.create_default_context(cadata=der)
    context.check_hostname = False
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN  # a CA-issued leaf as the anchor
    return context


def context_for(
    *,
    host: str,
    port: int,
    insecure: bool,
    ca_file: str | None,
    thumbprint: str | None,
    timeout: float,
) -> ssl.SSLContext:
    """The SSL context for an https endpoint, per the trust settings.

    With a thumbprint the endpoint is contacted once here; ThumbprintMismatch if its
    certificate is not the pinned one. ValueError for a ca_file that is not PEM.
    """
    if insecure:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if thumbprint:
        cert = peer_certificate(host, port, timeout)
        if cert.sha256 != thumbprint:
            raise ThumbprintMismatch(thumbprint, cert.sha256)
        return pinned_context(cert.der)
    if ca_file:
        problem = ca_file_problem(ca_file)
        if problem:
            raise ValueError(problem)
        return ssl.create_default_context(cafile=ca_file)
    return ssl.create_default_context()


def explain(exc: ssl.SSLError, *, where: str, pinned: bool, ca_file: str | None) -> str:
    """One sentence: the real reason a TLS connection to `where` (host:port) failed, and the fix."""
    if isinstance(exc, ThumbprintMismatch):
        return (
            f"TLS to vCenter at {where} failed: its certificate's fingerprint is {exc.actual}, "
            f"not the pinned {exc.expected}. If vCenter's certificate was renewed, check the new "
            "one and pin it (`clones thumbprint` prints it); otherwise something else answers "
            "at that address."
        )
    trust = f"ca_file {ca_file}" if ca_file else "the system's CA certificates"
    if isinstance(exc, ssl.SSLCertVerificationError):
        code = exc.verify_code
        reason = str(exc.verify_message or exc.reason or exc).rstrip(".")
        head = f"TLS to vCenter at {where} failed: {reason}."
        if pinned and code in _UNTRUSTED:
            return (
                f"TLS to vCenter at {where} failed: it presented another certificate than the "
                "pinned one (the certificate changed since the connection was made). Check it "
                "with `clones thumbprint` and pin it again if it is vCenter's."
            )
        if code in _UNTRUSTED:
            return (
                f"{head} Its certificate is not issued by a CA in {trust}: set [vcenter] ca_file "
                f"to vCenter's CA certificate (PEM; the VMCA root from {ca_download(where)}), or "
                'pin the certificate with thumbprint = "SHA256:..." (`clones thumbprint` prints '
                "it)."
            )
        if code in (_HOSTNAME_MISMATCH, _IP_MISMATCH):
            return (
                f"{head} Put a name the certificate lists in [vcenter] url (`clones thumbprint` "
                'shows them), or pin the certificate with thumbprint = "SHA256:...".'
            )
        if code in (_EXPIRED, _NOT_YET_VALID):
            return (
                f"{head} Renew vCenter's certificate (Certificate Management in the vSphere "
                "Client), and check this machine's clock."
            )
        if code in (_KEY_TOO_SMALL, _CA_KEY_TOO_SMALL, _MD_TOO_WEAK):
            return (
                f"{head} OpenSSL refuses a certificate this weak: replace it with one of at "
                "least 2048-bit RSA signed with SHA-256 (Certificate Management in the vSphere "
                "Client)."
            )
        return f"{head} Check vCenter's certificate and [vcenter] ca_file or thumbprint."
    reason = str(exc.reason or exc)
    if reason in ("WRONG_VERSION_NUMBER", "UNKNOWN_PROTOCOL", "RECORD_LAYER_FAILURE"):
        return (
            f"TLS to vCenter at {where} failed: the endpoint does not speak TLS on that port "
            f"({reason}). Check the port in [vcenter] url (https://host:port/sdk)."
        )
    return f"TLS to vCenter at {where} failed: {reason}. Check [vcenter] url and the certificate."


def ca_download(where: str) -> str:
    """Where vCenter offers its CA certificates for the endpoint `where` (host:port): the same
    host and port as its SDK (443 left out, an IPv6 address in brackets)."""
    host, _, port = where.rpartition(":")
    shown = f"[{host}]" if ":" in host else host
    return f"https://{shown}{'' if port in ('', '443') else ':' + port}/certs/download.zip"


def inspect(
    host: str,
    port: int,
    *,
    insecure: bool = False,
    ca_file: str | None = None,
    thumbprint: str | None = None,
    timeout: float = 10.0,
) -> Inspection:
    """Read an endpoint's certificate and try it against the trust settings. OSError when the
    endpoint cannot be reached, ssl.SSLError when it does not speak TLS."""
    cert = peer_certificate(host, port, timeout)
    where = f"{host}:{port}"
    try:
        context = context_for(
            host=host,
            port=port,
            insecure=insecure,
            ca_file=ca_file,
            thumbprint=thumbprint,
            timeout=timeout,
        )
        _handshake(context, host, port, timeout)
    except ssl.SSLError as exc:
        reason = explain(exc, where=where, pinned=bool(thumbprint), ca_file=ca_file)
        return Inspection(host, port, cert, False, reason)
    except ValueError as exc:  # a ca_file that is not PEM
        return Inspection(host, port, cert, False, f"{exc}.")
    if insecure:
        return Inspection(host, port, cert, False, "insecure = true: nothing is verified.")
    return Inspection(host, port, cert, True)
