"""Certificates as a configuration names them: fingerprints (`thumbprint = "SHA256:..."`) and
CA files (`ca_file`), checked when the configuration is read. Standard library only: the ground
floor beside the domain, used by the settings and by the vCenter adapter's TLS."""

from __future__ import annotations

import hashlib
import re
import ssl
from dataclasses import dataclass
from pathlib import Path

THUMBPRINT_RE = re.compile(r"^(?:SHA-?256:)?((?:[0-9A-Fa-f]{2}:?){32})$", re.IGNORECASE)


def format_fingerprint(digest: bytes, algorithm: str = "SHA256") -> str:
    """`SHA256:AB:CD:...`: the algorithm, then the digest in colon-separated hex pairs."""
    return f"{algorithm}:" + ":".join(f"{b:02X}" for b in digest)


def fingerprint(der: bytes) -> str:
    """A certificate's SHA-256 fingerprint, as `thumbprint` takes it."""
    return format_fingerprint(hashlib.sha256(der).digest())


def parse_thumbprint(text: str) -> str:
    """`thumbprint` in its canonical form; ValueError (saying what to type) if malformed.

    Accepted: the SHA-256 fingerprint with or without a `SHA256:` prefix and colons, any case
    (`clones thumbprint` prints it; vSphere shows it as colon-separated hex).
    """
    value = text.strip().replace(" ", "")
    match = THUMBPRINT_RE.match(value)
    if match is None:
        hexdigits = re.sub(r"[^0-9A-Fa-f]", "", value.split(":", 1)[-1])
        if len(hexdigits) == 40:
            raise ValueError(
                "looks like a SHA-1 thumbprint; pin the SHA-256 fingerprint instead (run "
                '`clones thumbprint` and copy its line, e.g. thumbprint = "SHA256:AB:CD:...")'
            )
        raise ValueError(
            "is not a SHA-256 fingerprint; run `clones thumbprint` and copy its line "
            '(thumbprint = "SHA256:" followed by 32 hex pairs)'
        )
    digest = bytes.fromhex(match.group(1).replace(":", ""))
    return format_fingerprint(digest)


def ca_file_problem(path: str) -> str:
    """Why `path` cannot serve as ca_file ("" when it can): missing, DER, or no PEM certificate."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        return f"ca_file {path} cannot be read ({exc.strerror or exc})"
    if b"-----BEGIN CERTIFICATE-----" not in data:
        if data[:1] == b"\x30":  # an ASN.1 SEQUENCE: a DER (binary) certificate
            return (
                f"ca_file {path} is a DER (binary) certificate, not PEM; convert it with "
                f"`openssl x509 -inform der -in {path} -out ca.pem` and point ca_file at ca.pem"
            )
        return (
            f"ca_file {path} is not a PEM certificate file (no -----BEGIN CERTIFICATE----- "
            "block); use the CA certificate in PEM form, e.g. from vCenter's "
            "https://VCENTER/certs/download.zip (the .0 files under certs/lin)"
        )
    try:
        ssl.create_default_context(cadata=data.decode("ascii", errors="replace"))
    except ssl.SSLError as exc:
        return f"ca_file {path} holds a PEM block that is not a valid certificate ({exc.reason})"
    return ""


@dataclass(frozen=True)
class PeerCertificate:
    """The certificate an endpoint presents, read without verifying it."""

    der: bytes
    sha256: str
    sha1: str
    subject: str = ""  # empty when the certificate could not be decoded (see `peer_certificate`)
    issuer: str = ""
    not_after: str = ""
    names: tuple[str, ...] = ()

    @property
    def pem(self) -> str:
        return ssl.DER_cert_to_PEM_cert(self.der)


@dataclass(frozen=True)
class Inspection:
    """What `clones thumbprint` shows: the endpoint's certificate, and whether the current
    trust settings accept it (and if not, why)."""

    host: str
    port: int
    certificate: PeerCertificate
    trusted: bool
    reason: str = ""  # why not, when not trusted

    @property
    def toml_line(self) -> str:
        return f'thumbprint = "{self.certificate.sha256}"'
