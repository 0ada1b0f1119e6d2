"""Certificates the TLS tests make: a CA (trustme) and server certificates of each kind an admin
meets, written as PEM files the plain simulator serves (`clones-lab --plain`)."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa


@dataclass(frozen=True)
class ServerCert:
    cert: Path  # PEM, the leaf (and chain)
    key: Path  # PEM private key


@dataclass(frozen=True)
class Certs:
    ca: Path  # the CA that issued every server certificate below (PEM)
    other_ca: Path  # a CA that issued none of them
    good: ServerCert  # for localhost and 127.0.0.1
    name_only: ServerCert  # for localhost only: connecting to 127.0.0.1 is an IP mismatch
    weak: ServerCert  # for 127.0.0.1, but a 1024-bit RSA key (OpenSSL refuses it)
    ca_der: Path  # the CA in DER form (not PEM)


def _write(cert: trustme.LeafCert, folder: Path, name: str) -> ServerCert:
    out = ServerCert(folder / f"{name}.pem", folder / f"{name}-key.pem")
    cert.cert_chain_pems[0].write_to_path(str(out.cert))
    cert.private_key_pem.write_to_path(str(out.key))
    return out


def _weak(ca: trustme.CA, folder: Path) -> ServerCert:
    """A certificate for 127.0.0.1 issued by `ca`, with a key too small for OpenSSL's default
    security level (trustme makes only strong keys)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    issuer_key = serialization.load_pem_private_key(ca.private_key_pem.bytes(), None)
    issuer = x509.load_pem_x509_certificate(ca.cert_pem.bytes())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(issuer.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(issuer_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    out = ServerCert(folder / "weak.pem", folder / "weak-key.pem")
    out.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    out.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return out


def make_certs(folder: Path) -> Certs:
    folder.mkdir(parents=True, exist_ok=True)
    ca, other = trustme.CA(), trustme.CA()
    ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    other.cert_pem.write_to_path(str(folder / "other-ca.pem"))
    der = x509.load_pem_x509_certificate(ca.cert_pem.bytes()).public_bytes(
        serialization.Encoding.DER
    )
    (folder / "ca.der").write_bytes(der)
    return Certs(
        ca=folder / "ca.pem",
        other_ca=folder / "other-ca.pem",
        good=_write(ca.issue_cert("localhost", "127.0.0.1"), folder, "good"),
        name_only=_write(ca.issue_cert("localhost"), folder, "name-only"),
        weak=_weak(ca, folder),
        ca_der=folder / "ca.der",
    )
