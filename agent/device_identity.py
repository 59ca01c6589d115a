"""The endpoint's own Ed25519 key: generated on the device, never leaves it.

It signs the enrollment request and every result record. Its file is 0600 from the
first byte; the key is never logged.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.atomic_file import write_private
from agent.errors import ConfigError
from agent.wire.enrollment import device_id_for


@dataclass(frozen=True)
class DeviceIdentity:
    private_key: Ed25519PrivateKey

    @property
    def public_key_raw(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )

    @property
    def device_id(self) -> str:
        return device_id_for(self.public_key_raw)

    def __repr__(self) -> str:  # never print key material
        return f"DeviceIdentity({self.device_id})"

    @classmethod
    def load_or_create(cls, path: Path) -> DeviceIdentity:
        if path.exists():
            return cls.load(path)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        write_private(path, pem)
        return cls(key)

    @classmethod
    def load(cls, path: Path) -> DeviceIdentity:
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except FileNotFoundError:
            raise ConfigError(
                f"{path}: no device key; run `meisitong-agent enroll` first"
            ) from None
        except (ValueError, TypeError):
            raise ConfigError(f"{path}: not a PEM Ed25519 private key") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise ConfigError(f"{path}: not an Ed25519 key")
        return cls(key)
