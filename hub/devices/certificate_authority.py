"""The hub's device certificate authority: one X.509 certificate per enrolled device.

Agents of a site talk to each other over mutual TLS (gossip, relayed metadata). What
makes a peer a peer is a certificate this authority issued for the device's own Ed25519
key at enrollment: the subject's common name is the device id (itself derived from the
key), the organisational unit its site. A peer holding no such certificate fails the
handshake.

The CA key is an online key: the hub issues certificates unattended, so it lives with
the other online keys (`online-keys/device-ca.pem`, 0600). It vouches only for "this
key was enrolled at this hub"; it cannot sign releases or metadata, so its compromise
lets an attacker join the gossip, where every record must still verify with its
device's own key. It is created on first use, under a file lock so two enrollments
racing on a fresh hub cannot create two authorities.
"""

from __future__ import annotations

import datetime as dt
import fcntl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from agent.atomic_file import write_atomic, write_private
from agent.wire.enrollment import device_id_for
from hub.database import HubDatabase
from hub.errors import CertificateAuthorityError
from hub.repository.signing_keys import ensure_private_directory

CA_LIFETIME = dt.timedelta(days=3650)
DEVICE_CERTIFICATE_LIFETIME = dt.timedelta(days=365)
CA_COMMON_NAME = "Meisitong device CA"


@dataclass(frozen=True)
class DeviceCertificateAuthority:
    key: Ed25519PrivateKey
    certificate: x509.Certificate

    @property
    def certificate_pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")

    @classmethod
    def load_or_create(cls, online_keys: Path) -> DeviceCertificateAuthority:
        """The authority kept in `online_keys`, created (once) if there is none."""
        ensure_private_directory(online_keys)
        key_file, cert_file = online_keys / "device-ca.pem", online_keys / "device-ca.crt"
        with open(online_keys / ".device-ca.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not key_file.exists():
                key = Ed25519PrivateKey.generate()
                certificate = _self_signed(key)
                write_private(key_file, key.private_bytes(
                    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                ))
                write_atomic(cert_file, certificate.public_bytes(serialization.Encoding.PEM))
                return cls(key, certificate)
        try:
            loaded = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
            certificate = x509.load_pem_x509_certificate(cert_file.read_bytes())
        except (OSError, ValueError, TypeError) as exc:
            raise CertificateAuthorityError(
                f"device CA in {online_keys} is unreadable ({type(exc).__name__}); "
                "restore device-ca.pem and device-ca.crt from backup"
            ) from None
        if not isinstance(loaded, Ed25519PrivateKey) or (
            certificate.public_key() != loaded.public_key()
        ):
            raise CertificateAuthorityError(
                f"device CA in {online_keys}: device-ca.pem is not the key of device-ca.crt"
            )
        return cls(loaded, certificate)

    def issue(self, public_key_raw: bytes, site: str, now: dt.datetime | None = None) -> str:
        """A PEM certificate for the device owning `public_key_raw`, in `site`."""
        device_id = device_id_for(public_key_raw)
        now = now or dt.datetime.now(dt.UTC)
        public_key = Ed25519PublicKey.from_public_bytes(public_key_raw)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([
                x509.NameAttribute(NameOID.COMMON_NAME, device_id),
                x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, site),
            ]))
            .issuer_name(self.certificate.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + DEVICE_CERTIFICATE_LIFETIME)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(digital_signature=True), critical=True)
            .add_extension(x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ), critical=False)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(device_id)]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                self.key.public_key()), critical=False)
            .sign(self.key, algorithm=None)
        )
        return certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")


def _key_usage(digital_signature: bool = False, key_cert_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=key_cert_sign,
        crl_sign=key_cert_sign, encipher_only=False, decipher_only=False,
    )


def _self_signed(key: Ed25519PrivateKey) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CA_COMMON_NAME)])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(key_cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .sign(key, algorithm=None)
    )


def certify_device(online_keys: Path, database: HubDatabase, device_id: str) -> dict[str, str]:
    """The fields an accepted device's enrollment response carries: its certificate (for
    the key and site the hub has enrolled, whatever the request said) and the CA's."""
    device = database.device(device_id)
    if device is None:
        raise CertificateAuthorityError(f"no enrolled device {device_id} to certify")
    authority = DeviceCertificateAuthority.load_or_create(online_keys)
    return {
        "certificate": authority.issue(device.public_key, device.site),
        "ca_certificate": authority.certificate_pem,
    }
