"""What agents of a site say to each other (and relay to the hub) in gossip.

A `GossipRecord` is one versioned entry of one origin device, Scuttlebutt-style: each
origin numbers its own entries 1, 2, 3, …; a peer's digest `{origin: highest version}`
is all another peer needs to send exactly what it lacks. An entry is identified by
(origin, key); a newer version of a key (an inventory summary) replaces the older.

The origin signs the envelope (origin, version, kind, key, body) with its device key,
so a relay can neither forge an entry nor renumber one (which would make peers believe
they are up to date and never ask for the real entries). A result's body is moreover
the device-signed `SignedResult` itself, which the hub verifies on its own.

Messages of one exchange (client → server, then back): `digest`, `delta` (with the
server's digest), `delta`, `done`. Or `fetch` → `file`: a file of the peer's trusted TUF
metadata or targets, which the asking agent verifies with TUF like anything else.
"""

from __future__ import annotations

from typing import Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import BaseModel, ConfigDict, Field, model_validator

from agent.errors import SignatureError
from agent.wire.canonical import canonical_json
from agent.wire.device_signature import sign_detached, verify_detached
from agent.wire.inventory import MAX_INVENTORY_BYTES
from agent.wire.result import SignedResult
from agent.wire.validation import NAME_PATTERN, StrictModel

DEVICE_ID_PATTERN = r"^dev-[0-9a-f]{20}$"
MAX_RECORDS_PER_MESSAGE = 512
MAX_BODY_CHARS = 64 * 1024
MAX_RELAYED_RESULTS = 256
"""Results per batch upload to the hub; a relay sends more in several requests."""

MAX_DELTA_BODY_CHARS = 2 * 1024 * 1024
"""Bodies per delta message: with one software record past it (1 MiB at most), even
fully escaped, a delta stays under the 8 MiB frame limit (agent/gossip/framing.py)."""

RecordKind = Literal["result", "inventory", "software"]
"""`inventory` is the site summary below (addresses, deployments); `software` a
device-signed `SignedInventory` (agent/wire/inventory.py) under the key `software-full`
or `software-diff`, on its way to the hub."""
INVENTORY_KEY = "inventory"


class GossipRecord(StrictModel):
    origin: str = Field(pattern=DEVICE_ID_PATTERN)
    version: int = Field(ge=1, lt=2**62)
    kind: RecordKind
    key: str = Field(pattern=r"^[0-9a-z-]{1,64}$")
    body: str = Field(max_length=MAX_INVENTORY_BYTES, description="JSON text")
    signature: str = Field(max_length=200, description="base64 Ed25519 of the envelope")

    @model_validator(mode="after")
    def _bounded_body(self) -> GossipRecord:
        if self.kind != "software" and len(self.body) > MAX_BODY_CHARS:
            raise ValueError(f"a {self.kind} body of {len(self.body)} characters "
                             f"(at most {MAX_BODY_CHARS})")
        return self

    @staticmethod
    def _envelope(origin: str, version: int, kind: str, key: str, body: str) -> bytes:
        return canonical_json(
            {"origin": origin, "version": version, "kind": kind, "key": key, "body": body}
        )

    @classmethod
    def sign(
        cls, origin: str, version: int, kind: RecordKind, key: str, body: str,
        private_key: Ed25519PrivateKey,
    ) -> GossipRecord:
        signature = sign_detached(private_key, cls._envelope(origin, version, kind, key, body))
        return cls(origin=origin, version=version, kind=kind, key=key, body=body,
                   signature=signature)

    def verify(self, public_key_raw: bytes) -> None:
        """Raise SignatureError unless the origin's key signed this envelope."""
        try:
            verify_detached(
                public_key_raw,
                self.signature,
                self._envelope(self.origin, self.version, self.kind, self.key, self.body),
            )
        except (InvalidSignature, ValueError):
            raise SignatureError(
                f"gossip record {self.origin} v{self.version} ({self.kind} {self.key}): "
                "envelope signature does not verify with the origin's key"
            ) from None


class Inventory(StrictModel):
    """A device's summary of itself: where to reach it and what it holds."""

    site: str = Field(pattern=NAME_PATTERN)
    gossip: str = Field(default="", max_length=64, description="IP:PORT of its gossip server")
    p2p: str = Field(default="", max_length=64, description="IP:PORT libtorrent listens on")
    timestamp_version: int = Field(default=0, ge=0, lt=2**62,
                                   description="of its trusted TUF metadata")
    deployments: dict[str, str] = Field(default_factory=dict, max_length=256)


class DigestMessage(StrictModel):
    type: Literal["digest"] = "digest"
    digest: dict[str, int] = Field(default_factory=dict, max_length=4096)


class DeltaMessage(StrictModel):
    type: Literal["delta"] = "delta"
    digest: dict[str, int] | None = Field(default=None, max_length=4096)
    records: list[GossipRecord] = Field(default_factory=list, max_length=MAX_RECORDS_PER_MESSAGE)
    certificates: dict[str, str] = Field(
        default_factory=dict, max_length=MAX_RECORDS_PER_MESSAGE,
        description="origin -> base64 DER of its hub-issued certificate",
    )


class DoneMessage(StrictModel):
    type: Literal["done"] = "done"
    accepted: int = Field(ge=0)
    refused: int = Field(ge=0)


class FetchRequest(StrictModel):
    type: Literal["fetch"] = "fetch"
    path: str = Field(max_length=512, pattern=r"^(metadata|targets)/")


class FileAnswer(StrictModel):
    type: Literal["file"] = "file"
    status: int
    length: int = Field(default=0, ge=0)


class RecordKey(StrictModel):
    """What identifies a result everywhere: its device and the id that device gave it.
    A record id alone is not enough: any device can sign a record under another's id."""

    device_id: str = Field(pattern=r"^[0-9a-z-]{4,64}$")
    record_id: str = Field(pattern=r"^[0-9a-f-]{8,64}$")


class RecordIds(StrictModel):
    """Relay → hub: which of these results do you lack? (`record_ids` is what relays
    older than (device, record id) keys send; it is answered in `missing`.)"""

    records: list[RecordKey] = Field(default_factory=list, max_length=4 * MAX_RELAYED_RESULTS)
    record_ids: list[str] = Field(default_factory=list, max_length=4 * MAX_RELAYED_RESULTS)


class _HubAnswer(BaseModel):
    """Answers from the hub: unknown keys are ignored (a newer hub may add some)."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class MissingAnswer(_HubAnswer):
    missing_records: list[RecordKey] = Field(max_length=4 * MAX_RELAYED_RESULTS)


class RefusedResult(_HubAnswer):
    device_id: str = ""
    record_id: str = ""
    error: str = ""


class BatchAnswer(_HubAnswer):
    """`stored` and `duplicate` (record ids) are for relays older than `held`."""

    held: list[RecordKey] = Field(max_length=MAX_RELAYED_RESULTS)
    refused: list[RefusedResult] = Field(default_factory=list, max_length=MAX_RELAYED_RESULTS)
    stored: list[str] = Field(default_factory=list, max_length=MAX_RELAYED_RESULTS)


class RelayedResults(StrictModel):
    """Relay → hub: results it lacks, each signed by its own device."""

    results: list[SignedResult] = Field(max_length=MAX_RELAYED_RESULTS)
