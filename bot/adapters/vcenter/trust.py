"""The `Trust` port: an endpoint's certificate and whether trust settings accept it (for
`clones thumbprint`), with TLS and network failures as one sentence with the real reason."""

from __future__ import annotations

import ssl

from bot.adapters.vcenter import tls
from bot.certificates import Inspection
from bot.domain.errors import VCenterUnreachable


class TlsTrust:
    """Reads certificates over TLS (no pyVmomi involved)."""

    def inspect(
        self,
        host: str,
        port: int,
        *,
        insecure: bool = False,
        ca_file: str | None = None,
        thumbprint: str | None = None,
        timeout: float = 10.0,
    ) -> Inspection:
        try:
            return tls.inspect(
                host,
                port,
                insecure=insecure,
                ca_file=ca_file,
                thumbprint=thumbprint,
                timeout=timeout,
            )
        except ssl.SSLError as exc:
            raise VCenterUnreachable(
                tls.explain(exc, where=f"{host}:{port}", pinned=False, ca_file=None)
            ) from None
        except OSError as exc:
            raise VCenterUnreachable(f"{host}:{port} is unreachable ({exc}).") from None
