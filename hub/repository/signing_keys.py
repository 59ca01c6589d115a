"""The Ed25519 keys the hub's TUF roles sign with, on disk.

Two homes, because the two kinds of key protect different things:

- offline keys (root, targets = the admin's release key) decide *what* may be installed.
  `init` writes them to a directory of their own so the admin can move it off the hub
  server; a compromised hub without them cannot sign a release. If
  MEISITONG_OFFLINE_KEY_PASSPHRASE is set they are encrypted with it at rest.
- online keys (snapshot, timestamp, rollout) are used unattended by the running hub; they
  can only vouch for freshness and for rollout documents inside `rollouts/*`.

Private keys are PKCS#8 PEM files, mode 0600 from the first byte, in 0700 directories.
Neither key bytes nor passphrases are ever logged or put into an exception message.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    KeySerializationEncryption,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)
from securesystemslib.signer import CryptoSigner, SSlibKey

from agent.atomic_file import write_private
from hub.errors import KeyMaterialError

logger = logging.getLogger(__name__)

PASSPHRASE_ENV = "MEISITONG_OFFLINE_KEY_PASSPHRASE"  # noqa: S105 (a variable name)

OFFLINE_ROLES = ("root", "targets")
"""Roles whose keys the admin keeps away from the hub server."""

ONLINE_ROLES = ("snapshot", "timestamp", "rollout")
"""Roles the running hub signs unattended."""

_ENCRYPTED_PEM_HEADER = b"-----BEGIN ENCRYPTED PRIVATE KEY-----"


def _offline_passphrase() -> bytes | None:
    value = os.environ.get(PASSPHRASE_ENV)
    return value.encode("utf-8") if value else None


def ensure_private_directory(directory: Path) -> None:
    """Create `directory` (and parents) and make it 0700 whatever the umask was."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(directory, 0o700)


@dataclass(frozen=True)
class KeyStore:
    """Where each role's private key file lives, and how to create and read it."""

    offline_dir: Path
    online_dir: Path

    def key_file(self, role: str) -> Path:
        if role in OFFLINE_ROLES:
            return self.offline_dir / f"{role}.pem"
        if role in ONLINE_ROLES:
            return self.online_dir / f"{role}.pem"
        raise KeyMaterialError(f"no key is kept for TUF role {role!r}")

    def create(self, role: str) -> tuple[CryptoSigner, bytes]:
        """A new key for `role`, in memory: the signer and the PEM `store` will write.

        Kept apart from `store` so `init` can sign everything before touching the disk.
        Refuses if a key file already exists, since replacing it would orphan whatever
        metadata the old key signed.
        """
        path = self.key_file(role)
        if path.exists():
            raise KeyMaterialError(
                f"refusing to overwrite the existing {role} key {path}; move it away first"
            )
        private_key = Ed25519PrivateKey.generate()
        encryption: KeySerializationEncryption = NoEncryption()
        passphrase = _offline_passphrase() if role in OFFLINE_ROLES else None
        if passphrase is not None:
            encryption = BestAvailableEncryption(passphrase)
        pem = private_key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, encryption)
        signer = CryptoSigner(private_key, SSlibKey.from_crypto(private_key.public_key()))
        return signer, pem

    def store(self, role: str, signer: CryptoSigner, pem: bytes) -> None:
        """Write a key made by `create` (0600 file in a 0700 directory)."""
        path = self.key_file(role)
        ensure_private_directory(path.parent)
        write_private(path, pem)
        logger.info(
            "stored %s key %s (%s) in %s",
            role,
            signer.public_key.keyid[:16],
            "encrypted" if pem.startswith(_ENCRYPTED_PEM_HEADER) else "unencrypted",
            path.parent,
        )

    def generate(self, role: str) -> CryptoSigner:
        """Create and store a new key for `role`."""
        signer, pem = self.create(role)
        self.store(role, signer, pem)
        return signer

    def load(self, role: str) -> CryptoSigner:
        """Read `role`'s key. Offline keys that are encrypted need the passphrase env."""
        path = self.key_file(role)
        try:
            pem = path.read_bytes()
        except FileNotFoundError:
            where = "offline" if role in OFFLINE_ROLES else "online"
            raise KeyMaterialError(
                f"the {role} signing key {path} is missing (is the {where} keys directory "
                f"available here?)"
            ) from None
        except OSError as exc:
            raise KeyMaterialError(
                f"cannot read the {role} signing key {path}: {exc.strerror}"
            ) from None
        password: bytes | None = None
        if pem.lstrip().startswith(_ENCRYPTED_PEM_HEADER):
            password = _offline_passphrase()
            if password is None:
                raise KeyMaterialError(
                    f"the {role} signing key {path} is encrypted; set {PASSPHRASE_ENV}"
                )
        try:
            private_key = load_pem_private_key(pem, password)
        except (ValueError, TypeError):
            # cryptography's message may describe the key's content: say only what to do.
            reason = "wrong passphrase or damaged file" if password else "not a PEM private key"
            raise KeyMaterialError(f"cannot load the {role} signing key {path}: {reason}") from None
        if not isinstance(private_key, Ed25519PrivateKey):
            raise KeyMaterialError(f"the {role} signing key {path} is not an Ed25519 key")
        return CryptoSigner(private_key, SSlibKey.from_crypto(private_key.public_key()))

    def load_expected(self, role: str, allowed_keyids: list[str]) -> CryptoSigner:
        """Load `role`'s key and check the metadata trusts it, so a swapped or stale file
        fails with a message naming it instead of producing metadata nobody accepts."""
        signer = self.load(role)
        if signer.public_key.keyid not in allowed_keyids:
            raise KeyMaterialError(
                f"the {role} signing key {self.key_file(role)} (key id "
                f"{signer.public_key.keyid[:16]}…) is not a key the metadata trusts for {role}"
            )
        return signer
