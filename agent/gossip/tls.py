"""Mutual TLS between agents of a site, with certificates the hub issued at enrollment.

Both ends present their device certificate and require the other's to chain to the
hub's device CA (TLS 1.3 only: Ed25519 certificates). Peers are dialled by address, so
there is no host name to check; who the peer is comes from its certificate instead:
the common name is a device id, and it must be the id of the certificate's own key.

`DeviceCertificates.verify` does the same check on certificates that travel inside
gossip messages (so a relayed record's origin can be verified without ever meeting it).
"""

from __future__ import annotations

import datetime as dt
import ssl
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import trio
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.x509.oid import NameOID

from agent.errors import CertificateRefusedError, ConfigError, GossipError
from agent.wire.enrollment import device_id_for

MAX_CACHED_CERTIFICATES = 4096
"""Verified certificates remembered (oldest forgotten first): a site's worth, bounded."""


@dataclass(frozen=True)
class DeviceCertificate:
    """What a verified certificate says: which device, which site, which key."""

    device_id: str
    site: str
    public_key_raw: bytes
    der: bytes = field(default=b"", compare=False)
    """The certificate itself, when it was presented in a TLS handshake (`peer_certificate`)."""


@dataclass
class DeviceCertificates:
    """Verifies device certificates against the hub's CA, caching by DER bytes."""

    ca: x509.Certificate
    _verified: dict[bytes, DeviceCertificate] = field(default_factory=dict)

    def verify(self, der: bytes, now: dt.datetime | None = None) -> DeviceCertificate:
        """Raise CertificateRefusedError unless `der` is a current certificate the CA
        issued for the key its common name names."""
        cached = self._verified.get(der)
        now = now or dt.datetime.now(dt.UTC)
        try:
            certificate = x509.load_der_x509_certificate(der)
            if cached is None:
                certificate.verify_directly_issued_by(self.ca)
        except (ValueError, TypeError) as exc:
            raise CertificateRefusedError(f"device certificate refused: {exc}") from None
        except Exception as exc:  # InvalidSignature has no message of its own
            raise CertificateRefusedError(
                f"device certificate refused: not issued by this hub's CA ({type(exc).__name__})"
            ) from None
        if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
            raise CertificateRefusedError(
                f"device certificate refused: valid {certificate.not_valid_before_utc} to "
                f"{certificate.not_valid_after_utc}, not now"
            )
        if cached is not None:
            return cached
        described = describe(certificate)
        if len(self._verified) >= MAX_CACHED_CERTIFICATES:  # a CA holder can mint any number
            self._verified.pop(next(iter(self._verified)))
        self._verified[der] = described
        return described

    def kept(
        self, stored: bytes | None, offered: bytes, now: dt.datetime | None = None
    ) -> bytes:
        """Which certificate of one origin to check its records with and keep: the one
        stored while it is valid, unless `offered` is valid, names the same device, key
        and site, and lasts longer. Whoever holds the device CA can mint a certificate
        for a real device key that expires in seconds (or names another site); were it
        to replace the real one, every record we relay would be refused downstream."""
        if not stored or stored == offered:
            return offered
        try:
            current = self.verify(stored, now)
        except CertificateRefusedError:
            return offered  # expired (or never valid): anything valid is better
        try:
            candidate = self.verify(offered, now)
        except CertificateRefusedError:
            return stored
        if candidate != current:
            return stored
        stored_until = x509.load_der_x509_certificate(stored).not_valid_after_utc
        offered_until = x509.load_der_x509_certificate(offered).not_valid_after_utc
        return offered if offered_until > stored_until else stored


def describe(certificate: x509.Certificate) -> DeviceCertificate:
    """Device id, site and key of a certificate whose chain was checked already."""
    key = certificate.public_key()
    if not isinstance(key, Ed25519PublicKey):
        raise CertificateRefusedError("device certificate refused: its key is not Ed25519")
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    sites = certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    device_id = str(names[0].value) if names else ""
    if device_id != device_id_for(raw):
        raise CertificateRefusedError(
            f"device certificate refused: common name {device_id!r} is not the id of its key"
        )
    return DeviceCertificate(device_id, str(sites[0].value) if sites else "", raw)


@dataclass(frozen=True)
class SiteCredentials:
    """This device's certificate and key, and the CA its peers must chain to."""

    certificate_file: Path
    key_file: Path
    ca_file: Path

    def load(self) -> tuple[DeviceCertificate, x509.Certificate, bytes]:
        """(this device, the CA, this device's certificate DER); ConfigError if absent."""
        try:
            own = x509.load_pem_x509_certificate(self.certificate_file.read_bytes())
            ca = x509.load_pem_x509_certificate(self.ca_file.read_bytes())
        except FileNotFoundError as exc:
            raise ConfigError(
                f"{exc.filename}: no hub-issued certificate; re-enroll with "
                "`meisitong-agent enroll` (hubs issue them since gossip exists)"
            ) from None
        except (OSError, ValueError) as exc:
            raise ConfigError(f"device certificate unreadable: {exc}") from None
        return describe(own), ca, own.public_bytes(serialization.Encoding.DER)

    def _context(self, purpose: ssl.Purpose) -> ssl.SSLContext:
        context = ssl.create_default_context(purpose, cafile=str(self.ca_file))
        context.minimum_version = ssl.TLSVersion.TLSv1_3
        context.check_hostname = False  # peers are dialled by address; see module doc
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_cert_chain(str(self.certificate_file), str(self.key_file))
        return context

    def server_context(self) -> ssl.SSLContext:
        return self._context(ssl.Purpose.CLIENT_AUTH)

    def client_context(self) -> ssl.SSLContext:
        return self._context(ssl.Purpose.SERVER_AUTH)


def peer_certificate(stream: trio.SSLStream[Any]) -> DeviceCertificate:
    """Who is on the other end of a completed handshake."""
    der = stream.getpeercert(binary_form=True)
    if not der:
        raise GossipError("peer presented no certificate")
    return replace(describe(x509.load_der_x509_certificate(der)), der=der)
