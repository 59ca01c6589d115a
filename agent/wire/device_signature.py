"""Detached Ed25519 signatures as the wire carries them: base64 text over exact bytes.

Result records, lease requests, gossip envelopes and enrollment proofs all use these;
each caller turns a failure into its own SignatureError naming what was signed.
"""

from __future__ import annotations

import base64

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey


def sign_detached(key: Ed25519PrivateKey, data: bytes) -> str:
    return base64.b64encode(key.sign(data)).decode("ascii")


def verify_detached(public_key_raw: bytes, signature: str, data: bytes) -> None:
    """Raises cryptography's InvalidSignature, or ValueError for a malformed key or
    signature."""
    Ed25519PublicKey.from_public_bytes(public_key_raw).verify(
        base64.b64decode(signature, validate=True), data
    )
