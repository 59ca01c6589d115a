"""Enrollment: the token an admin hands to a device, and the request the device sends.

The token carries the SHA-256 of the hub's trusted root metadata, so the device checks
the root it downloads instead of trusting first use (as `kubeadm join
--discovery-token-ca-cert-hash` does). The request is signed with the new device key to
prove the device holds it.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import Field

from agent.errors import SignatureError, WireFormatError
from agent.wire.canonical import canonical_json
from agent.wire.device_signature import sign_detached, verify_detached
from agent.wire.validation import NAME_PATTERN, StrictModel

TOKEN_PATTERN = re.compile(r"^mst1\.([A-Za-z0-9_-]{32,86})\.([0-9a-f]{64})$")


@dataclass(frozen=True)
class EnrollmentToken:
    secret: str
    root_sha256: str

    def __str__(self) -> str:
        return f"mst1.{self.secret}.{self.root_sha256}"

    @classmethod
    def parse(cls, text: str) -> EnrollmentToken:
        match = TOKEN_PATTERN.match(text.strip())
        if not match:
            raise WireFormatError(
                "enrollment token is malformed: expected mst1.SECRET.ROOTSHA256 as printed "
                "by `meisitong-hub token create`"
            )
        return cls(secret=match.group(1), root_sha256=match.group(2))


class EnrollRequest(StrictModel):
    token_secret: str = Field(min_length=32, max_length=86)
    device_id: str = Field(pattern=r"^dev-[0-9a-f]{20}$")
    public_key: str = Field(description="base64 of the raw 32-byte Ed25519 public key")
    name: str = Field(max_length=128)
    hostname: str = Field(max_length=255)
    group: str = Field(pattern=NAME_PATTERN)
    site: str = Field(pattern=NAME_PATTERN)
    labels: dict[str, str] = Field(default_factory=dict, max_length=64)
    proof: str = Field(default="", description="base64 signature of the request sans proof")

    def _signed_bytes(self) -> bytes:
        return canonical_json(self.model_dump(mode="json", exclude={"proof"}))

    def signed_with(self, key: Ed25519PrivateKey) -> EnrollRequest:
        proof = sign_detached(key, self._signed_bytes())
        return self.model_copy(update={"proof": proof})

    def public_key_raw(self) -> bytes:
        try:
            raw = base64.b64decode(self.public_key, validate=True)
        except ValueError:
            raise WireFormatError("enroll request: public_key is not base64") from None
        if len(raw) != 32:
            raise WireFormatError("enroll request: public_key is not a 32-byte Ed25519 key")
        return raw

    def verify_proof(self) -> None:
        """The device holds the private key of the public key it registers."""
        raw = self.public_key_raw()
        if device_id_for(raw) != self.device_id:
            raise SignatureError(f"enroll request: device_id {self.device_id} does not match key")
        try:
            verify_detached(raw, self.proof, self._signed_bytes())
        except (InvalidSignature, ValueError):
            raise SignatureError(
                f"enroll request for {self.device_id}: proof of key possession does not verify"
            ) from None


class EnrollResponse(StrictModel):
    device_id: str
    status: str = Field(pattern=r"^(accepted|pending)$")
    certificate: str = Field(
        default="", max_length=16384,
        description="PEM X.509 certificate the hub's device CA issued for the device key "
        "(accepted devices; mutual TLS with site peers)",
    )
    ca_certificate: str = Field(default="", max_length=16384, description="PEM, the device CA")


def device_id_for(public_key_raw: bytes) -> str:
    """A device is named by its key: `dev-` and 20 hex digits of the key's SHA-256."""
    import hashlib

    return "dev-" + hashlib.sha256(public_key_raw).hexdigest()[:20]
