"""TLS to the cloud: trust a private CA (``edge.cloud_ca_file``) and/or pin the certificate the
cloud (or its TLS proxy) presents by its SHA-256 fingerprint (``edge.cloud_cert_sha256``).

The pin is checked inside the TLS handshake (a :class:`ssl.SSLObject` subclass installed as the
context's ``sslobject_class``), so on a mismatch the connection fails before any HTTP byte, and the
edge's bearer token, is sent. Pinning alone (a self-signed certificate) skips the chain and host
name checks: the fingerprint is stronger than both. With a CA file as well, all checks apply.
"""

from __future__ import annotations

import hashlib
import ssl
from pathlib import Path


class CertificatePinError(ssl.SSLCertVerificationError):
    """The peer's certificate is not the pinned one."""


def normalise_fingerprint(text: str) -> str:
    """``AB:CD:...`` (``openssl x509 -fingerprint -sha256``) or plain hex -> lowercase hex."""
    return text.replace(":", "").strip().lower()


def certificate_sha256(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


def _pinned_object_class(expected: str) -> type[ssl.SSLObject]:
    class PinnedSSLObject(ssl.SSLObject):
        def do_handshake(self) -> None:
            super().do_handshake()  # raises SSLWantReadError until the handshake is complete
            der = self.getpeercert(binary_form=True)
            got = certificate_sha256(der) if der else "none"
            if got != expected:
                raise CertificatePinError(
                    f"cloud certificate SHA-256 {got} is not the pinned edge.cloud_cert_sha256 {expected}"
                )

    return PinnedSSLObject


def cloud_ssl_context(ca_file: Path | None, cert_sha256: str | None) -> ssl.SSLContext | bool:
    """The ``verify`` argument for the edge's HTTP client: True (system CAs) unless configured."""
    if ca_file is None and cert_sha256 is None:
        return True
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    if cert_sha256 is not None:
        if ca_file is None:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        context.sslobject_class = _pinned_object_class(normalise_fingerprint(cert_sha256))
    return context


__all__ = ["CertificatePinError", "certificate_sha256", "cloud_ssl_context", "normalise_fingerprint"]
