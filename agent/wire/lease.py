"""Disruption-budget lease requests: signed by the device key, answered by the hub.

A device asks for a lease before it installs or reboots and gives it back when the
deployment is over; the hub grants at most the policy's `max_concurrent` per group (and
label value). The signature stops one device from taking or dropping another's lease;
`issued_at` bounds how long a captured request can be replayed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import Field, field_validator

from agent.errors import SignatureError, WireFormatError
from agent.wire.canonical import canonical_json
from agent.wire.device_signature import sign_detached, verify_detached
from agent.wire.validation import NAME_PATTERN, StrictModel, parse_json_model

MAX_LEASE_REQUEST_BYTES = 8 * 1024


class LeaseRequest(StrictModel):
    action: Literal["acquire", "release"]
    device_id: str = Field(pattern=r"^[0-9a-z-]{4,64}$")
    group: str = Field(pattern=NAME_PATTERN)
    scope: str = Field(default="", max_length=64, pattern=r"^[A-Za-z0-9._=-]*$",
                       description="label value the budget is counted per, '' for the group")
    release: str = Field(min_length=1, max_length=512)
    ttl_seconds: int = Field(ge=1, le=86400)
    issued_at: str = Field(description="ISO 8601 UTC; the hub refuses stale requests")


class SignedLeaseRequest(StrictModel):
    request: LeaseRequest
    signature: str

    @classmethod
    def sign(cls, request: LeaseRequest, key: Ed25519PrivateKey) -> SignedLeaseRequest:
        return cls(
            request=request,
            signature=sign_detached(key, canonical_json(request.model_dump(mode="json"))),
        )

    def verify(self, public_key_raw: bytes) -> None:
        try:
            verify_detached(
                public_key_raw,
                self.signature,
                canonical_json(self.request.model_dump(mode="json")),
            )
        except (InvalidSignature, ValueError) as exc:
            raise SignatureError(
                f"lease request from device {self.request.device_id}: signature does not "
                f"verify ({type(exc).__name__})"
            ) from None

    def to_bytes(self) -> bytes:
        return canonical_json(self.model_dump(mode="json"))

    @classmethod
    def from_bytes(cls, data: bytes, source: str) -> SignedLeaseRequest:
        if len(data) > MAX_LEASE_REQUEST_BYTES:
            raise WireFormatError(f"{source}: larger than {MAX_LEASE_REQUEST_BYTES} bytes")
        return parse_json_model(cls, data, source)


class LeaseAnswer(StrictModel):
    granted: bool
    held: int = Field(ge=0, description="leases now held in the scope, this one included")
    max_concurrent: int | None = Field(default=None, description="None: no budget")
    expires_at: str | None = None
    retry_at: str | None = Field(default=None, description="when the next held lease expires")
    reason: str = Field(default="", max_length=1000)

    @field_validator("expires_at", "retry_at")
    @classmethod
    def _aware_timestamp(cls, value: str | None) -> str | None:
        """The agent computes with these (renewal times, the earliest retry): a value it
        cannot parse, or one without a UTC offset, must fail here, as a malformed answer,
        not later as a ValueError or TypeError inside the daemon's lease loop."""
        if value is None:
            return value
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"not an ISO 8601 time: {value[:40]!r}") from None
        if parsed.tzinfo is None:
            raise ValueError(f"time without a UTC offset: {value[:40]!r}")
        return value
