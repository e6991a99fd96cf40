"""Which engine we talk to and how we trust it (stdlib only): shared by the SSO login and the SDK connection.

- :class:`Endpoint`: the connection settings plus what is derived from them once: the scheme, ``host[:port]``
  as used in messages (never user info), the base URL of the SSO service, the timeout.
- :func:`engine_identity`: the engine as recorded on the nodes an instance owns (``ovirt.org/engine``): the host,
  and a port other than the scheme's default.
- **TLS**: ``ca_file`` when set; otherwise the system CA bundle (:func:`system_ca_bundle`) is passed
  explicitly (the SDK's pycurl wheel looks for a Red Hat path that does not exist on Debian/Ubuntu).
  ``insecure`` only when asked. A certificate failure names the CA file or says where to get the engine CA.
"""

from __future__ import annotations

import os
import ssl
import urllib.parse
from dataclasses import dataclass

from ..core.settings import ConnectionConfig

DEFAULT_TIMEOUT = 30.0
# Where Debian/Ubuntu/Alpine/RHEL keep the system CA bundle (the first one that exists is used).
SYSTEM_CA_BUNDLES = (
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
)


def system_ca_bundle() -> str | None:
    """The system's CA bundle file, or None when none of the usual places exists."""
    default = ssl.get_default_verify_paths().cafile
    for path in (default, *SYSTEM_CA_BUNDLES):
        if path and os.path.isfile(path):
            return path
    return None


@dataclass(frozen=True)
class Endpoint:
    """One engine: its connection settings and what messages and requests derive from them."""

    conn: ConnectionConfig
    scheme: str  # of the URI, "https" when absent
    where: str  # host[:port], for messages: never user info
    base: str  # scheme://host[:port], where the SSO service lives
    timeout: float  # seconds, for every request (DEFAULT_TIMEOUT when not configured)

    @classmethod
    def of(cls, conn: ConnectionConfig) -> Endpoint:
        parts = urllib.parse.urlsplit(conn.uri)
        host = parts.hostname or ""
        try:
            port = parts.port
        except ValueError:
            port = None
        hostport = f"[{host}]" if ":" in host else host
        if port:
            hostport += f":{port}"
        scheme = parts.scheme or "https"
        return cls(conn=conn, scheme=scheme, where=hostport or conn.uri, base=f"{scheme}://{hostport}",
                   timeout=conn.timeout if conn.timeout and conn.timeout > 0 else DEFAULT_TIMEOUT)

    @property
    def identity(self) -> str:
        """The engine as recorded on the nodes an instance owns (annotation ``ovirt.org/engine``, core/ownership.py):
        the host in lower case, and the port when it is not the scheme's default; never user info or a path."""
        return engine_identity(self.conn.uri)

    def ca_file(self) -> str | None:
        """The CA file to verify the engine with: ``ca_file``, else the system bundle; None when insecure."""
        return None if self.conn.insecure else (self.conn.ca_file or system_ca_bundle())

    def ca_hint(self, msg: str) -> str:
        """What to add to a TLS failure ``msg`` about a certificate: which CA file failed or where to get one."""
        if "certificate" not in msg.lower() or self.conn.insecure:
            return ""
        ca = self.conn.ca_file
        return (f" (ca_file {ca} does not vouch for this engine)" if ca else
                f" (set ca_file to the engine CA: {self.base}/ovirt-engine/services/pki-resource"
                "?resource=ca-certificate&format=X509-PEM-CA)")


_DEFAULT_PORTS = {"https": 443, "http": 80}


def engine_identity(uri: str) -> str:
    """``host[:port]`` of an engine API URL, as :attr:`Endpoint.identity` (``https://Engine.Example.com:443/...``
    and ``https://engine.example.com/...`` are one engine)."""
    parts = urllib.parse.urlsplit(uri)
    host = (parts.hostname or "").lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    shown = f"[{host}]" if ":" in host else host
    if port and port != _DEFAULT_PORTS.get((parts.scheme or "https").lower()):
        shown += f":{port}"
    return shown


__all__ = ["DEFAULT_TIMEOUT", "SYSTEM_CA_BUNDLES", "Endpoint", "engine_identity", "system_ca_bundle"]
