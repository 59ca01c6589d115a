"""Result records: what a device did with a release, signed by that device's Ed25519 key.

The signature covers the canonical JSON of the record, so any relay (the hub, a peer
gossiping it later) can verify it and nobody can alter or forge one.
"""

from __future__ import annotations

from enum import StrEnum

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import Field

from agent.errors import SignatureError, WireFormatError
from agent.wire.canonical import canonical_json
from agent.wire.device_signature import sign_detached, verify_detached
from agent.wire.health_signals import HealthSignals
from agent.wire.validation import StrictModel, parse_json_model

MAX_RECORD_BYTES = 64 * 1024


class Outcome(StrEnum):
    INSTALLED = "installed"
    REVERTED = "reverted"
    REVERT_FAILED = "revert-failed"
    FAILED = "failed"
    NOT_READY = "not-ready"
    DEFERRED = "deferred"
    SUPERSEDED = "superseded"
    """Ended before installing, nothing changed: a newer version of the same name was
    installed meanwhile, so this release would have been a downgrade."""


class ResultRecord(StrictModel):
    record_id: str = Field(pattern=r"^[0-9a-f-]{8,64}$")
    device_id: str = Field(pattern=r"^[0-9a-z-]{4,64}$")
    release: str = Field(pattern=r"^releases/")
    name: str
    version: str
    outcome: Outcome
    reason: str = ""
    started_at: str
    finished_at: str
    timings: dict[str, float] = Field(default_factory=dict)
    bytes_from_peers: int = Field(default=0, ge=0)
    bytes_from_hub: int = Field(default=0, ge=0)
    agent_version: str = ""
    signals: HealthSignals | None = None
    """Optional (agents before it did not send it): what the signature covers leaves it
    out when absent, so records signed before it existed still verify."""

    def signed_form(self) -> dict[str, object]:
        """The record as its device signs it: without `signals` when there are none."""
        data = self.model_dump(mode="json")
        if data.get("signals") is None:
            data.pop("signals", None)
        return data


class SignedResult(StrictModel):
    record: ResultRecord
    signature: str = Field(description="base64 Ed25519 signature of the record's canonical JSON")

    @classmethod
    def sign(cls, record: ResultRecord, key: Ed25519PrivateKey) -> SignedResult:
        return cls(
            record=record,
            signature=sign_detached(key, canonical_json(record.signed_form())),
        )

    def verify(self, public_key_raw: bytes) -> None:
        """Raise SignatureError unless the record was signed by this device key."""
        try:
            verify_detached(
                public_key_raw,
                self.signature,
                canonical_json(self.record.signed_form()),
            )
        except (InvalidSignature, ValueError) as exc:
            raise SignatureError(
                f"result {self.record.record_id} from device {self.record.device_id}: "
                f"signature does not verify ({type(exc).__name__})"
            ) from None

    def to_bytes(self) -> bytes:
        return canonical_json({"record": self.record.signed_form(),
                               "signature": self.signature})

    @classmethod
    def from_bytes(cls, data: bytes, source: str) -> SignedResult:
        if len(data) > MAX_RECORD_BYTES:
            raise WireFormatError(f"{source}: result record larger than {MAX_RECORD_BYTES} bytes")
        return parse_json_model(cls, data, source)
