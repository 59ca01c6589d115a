"""Control windows: health signals a device measures while it has *not* got a release,
so the hub can compare the devices that installed it with devices of the same group
over the same period (hub/rollouts/concurrent_control.py), not only with the updated
devices' own windows from before their install.

A device of an active rollout's audience that is not in its current stage, of a release
whose RELEASE.toml declares `[signals]`, measures the same signals (same units and
processes, same window length) once per `signals.control_interval` and posts one of
these, signed by its own key, to `POST /api/v1/control-signals`. The signature covers
the canonical JSON of the record, signals included; a stored record can be verified
again by anyone holding the device's public key.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import Field

from agent.errors import SignatureError, WireFormatError
from agent.wire.canonical import canonical_json
from agent.wire.device_signature import sign_detached, verify_detached
from agent.wire.health_signals import SignalWindow
from agent.wire.validation import StrictModel, parse_json_model

MAX_CONTROL_BYTES = 4 * 1024
MAX_CONTROL_WINDOW_SECONDS = 3600 + 60
"""`[signals] window_seconds` is at most an hour; a minute more for a slow sample."""


class ControlWindow(StrictModel):
    device_id: str = Field(pattern=r"^[0-9a-z-]{4,64}$")
    release: str = Field(pattern=r"^releases/", max_length=300)
    """The release whose rollout this device is a control of (it runs the old version)."""
    window: SignalWindow

    def signed_bytes(self) -> bytes:
        return canonical_json(self.model_dump(mode="json"))


class SignedControlWindow(StrictModel):
    record: ControlWindow
    signature: str = Field(max_length=200)

    @classmethod
    def sign(cls, record: ControlWindow, key: Ed25519PrivateKey) -> SignedControlWindow:
        return cls(record=record, signature=sign_detached(key, record.signed_bytes()))

    def verify(self, public_key_raw: bytes) -> None:
        """Raise SignatureError unless this device's key signed these very signals."""
        try:
            verify_detached(public_key_raw, self.signature, self.record.signed_bytes())
        except (InvalidSignature, ValueError) as exc:
            raise SignatureError(
                f"control window of {self.record.release} from device "
                f"{self.record.device_id}: signature does not verify ({type(exc).__name__})"
            ) from None

    def to_bytes(self) -> bytes:
        return canonical_json(self.model_dump(mode="json"))

    @classmethod
    def from_bytes(cls, data: bytes, source: str) -> SignedControlWindow:
        if len(data) > MAX_CONTROL_BYTES:
            raise WireFormatError(f"{source}: larger than {MAX_CONTROL_BYTES} bytes")
        signed = parse_json_model(cls, data, source)
        if signed.record.window.seconds > MAX_CONTROL_WINDOW_SECONDS:
            raise WireFormatError(
                f"{source}: window.seconds {signed.record.window.seconds:g} is longer than "
                f"any [signals] window ({MAX_CONTROL_WINDOW_SECONDS} s)")
        return signed
