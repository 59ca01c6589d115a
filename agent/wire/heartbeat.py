"""The heartbeat: a device says it is alive, signed by its own key.

A healthy idle device asks the hub only for static files (timestamp.json, which a CDN
may serve) and perhaps announces to the tracker; neither names the device in a way a
neighbour could not forge. So every `agent.heartbeat_interval` it posts this small
signed statement, and the hub records when it last heard from the device (`devices
list`, `plan`). `issued_at` must be recent and later than the last one the hub took,
so a captured heartbeat cannot keep a dead device looking alive.

`audit_head` (optional, so heartbeats of older agents parse and verify as they did) is
the hub's audit-chain head as this device's verified timestamp carried it
(agent/wire/audit_head.py): the device's signature makes it a witness the hub keeps for
auditors. Absent fields are left out of the signed bytes, not signed as null.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import Field

from agent.errors import SignatureError, WireFormatError
from agent.wire.audit_head import AuditHead
from agent.wire.canonical import canonical_json
from agent.wire.device_signature import sign_detached, verify_detached
from agent.wire.validation import StrictModel, parse_json_model

MAX_HEARTBEAT_BYTES = 2 * 1024


class Heartbeat(StrictModel):
    device_id: str = Field(pattern=r"^[0-9a-z-]{4,64}$")
    issued_at: str = Field(max_length=40, description="ISO 8601 UTC; the hub refuses stale ones")
    audit_head: AuditHead | None = None

    def signed_bytes(self) -> bytes:
        return canonical_json(self.model_dump(mode="json", exclude_none=True))


class SignedHeartbeat(StrictModel):
    heartbeat: Heartbeat
    signature: str = Field(max_length=200)

    @classmethod
    def sign(cls, heartbeat: Heartbeat, key: Ed25519PrivateKey) -> SignedHeartbeat:
        return cls(heartbeat=heartbeat,
                   signature=sign_detached(key, heartbeat.signed_bytes()))

    def verify(self, public_key_raw: bytes) -> None:
        try:
            verify_detached(public_key_raw, self.signature, self.heartbeat.signed_bytes())
        except (InvalidSignature, ValueError) as exc:
            raise SignatureError(
                f"heartbeat from device {self.heartbeat.device_id}: signature does not "
                f"verify ({type(exc).__name__})"
            ) from None

    def to_bytes(self) -> bytes:
        return canonical_json(self.model_dump(mode="json", exclude_none=True))

    @classmethod
    def from_bytes(cls, data: bytes, source: str) -> SignedHeartbeat:
        if len(data) > MAX_HEARTBEAT_BYTES:
            raise WireFormatError(f"{source}: larger than {MAX_HEARTBEAT_BYTES} bytes")
        return parse_json_model(cls, data, source)
