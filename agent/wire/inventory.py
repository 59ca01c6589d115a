"""Software inventory records: what a device runs, signed by that device's Ed25519 key.

A record says the OS (os-release), kernel, architecture, hardware (CPU, RAM, disk), the
Meisitong releases the agent holds, and its installed Debian packages. 3,000 packages
are about 130 kB of JSON, so packages travel zlib-compressed, and after the first record
as a *diff*: the rows that changed or appeared and the keys (name:arch) that went, against
a *base*, the last full record the device sent (never a chain of diffs: a relay that
loses an intermediate record loses nothing). Every record names the SHA-256 of its whole
package list (`packages_digest`); whoever applies a diff checks the result against it,
so a diff applied to the wrong base is caught, never stored.

`sequence` grows with every record of a device (the agent takes the larger of its last
plus one and the time in milliseconds, so a lost state directory cannot make a hub
ignore a device for good); a receiver keeps the highest, so a replayed record is stale.

Everything here is bounded before it is decoded: the signed record's size, what its
compressed parts may expand to, the number of packages and every field's length and
alphabet. Violations are WireFormatError naming what and where.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import zlib
from collections.abc import Iterable
from typing import Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import Field, model_validator

from agent.errors import SignatureError, WireFormatError
from agent.wire.canonical import canonical_json
from agent.wire.decoding import decode_json
from agent.wire.device_signature import sign_detached, verify_detached
from agent.wire.validation import StrictModel, parse_json_model

MAX_INVENTORY_BYTES = 1024 * 1024
"""A signed record as it travels (HTTP body, gossip body)."""
MAX_UNPACKED_BYTES = 8 * 1024 * 1024
"""What a record's compressed package part may expand to (a zip bomb stops here)."""
MAX_PACKAGES = 30_000
MAX_RELEASES = 256
DIGEST_PATTERN = r"^[0-9a-f]{64}$"
SOFTWARE_FULL_KEY = "software-full"
SOFTWARE_DIFF_KEY = "software-diff"
"""Gossip keys: a device's latest full record and its latest diff (against a full)."""

PackageRow = tuple[str, str, str, str, str]
"""(name, version, architecture, source, source_version), as dpkg-query gives them."""

_NAME = re.compile(r"[a-z0-9][a-z0-9+.-]{0,127}")
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+~:_-]{0,127}")
_ARCH = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
_KEY = re.compile(r"[a-z0-9][a-z0-9+.-]{0,127}:[a-z0-9][a-z0-9-]{0,31}")


class OsRelease(StrictModel):
    id: str = Field(default="", max_length=64)
    version_id: str = Field(default="", max_length=64)
    codename: str = Field(default="", max_length=64)
    pretty_name: str = Field(default="", max_length=200)


class Hardware(StrictModel):
    cpu_count: int = Field(default=0, ge=0, le=1 << 20)
    cpu_model: str = Field(default="", max_length=200)
    product_name: str = Field(default="", max_length=200)
    """The hardware model: DMI's product name (/sys/class/dmi/id/product_name, e.g.
    "OptiPlex 7090"), or the device tree's model on boards without DMI ("Raspberry Pi
    4 Model B Rev 1.4"); "" when the device has neither (most VMs have DMI)."""
    memory_bytes: int = Field(default=0, ge=0, lt=2**62)
    disk_total_bytes: int = Field(default=0, ge=0, lt=2**62)
    disk_free_bytes: int = Field(default=0, ge=0, lt=2**62)


class HeldRelease(StrictModel):
    """A Meisitong release the agent's journal says is installed on the device."""

    name: str = Field(max_length=128)
    version: str = Field(max_length=128)
    release: str = Field(max_length=512, pattern=r"^releases/")


class InventoryRecord(StrictModel):
    device_id: str = Field(pattern=r"^[0-9a-z-]{4,64}$")
    sequence: int = Field(ge=1, lt=2**62)
    collected_at: str = Field(max_length=40, description="ISO 8601 UTC")
    kind: Literal["full", "diff"]
    os: OsRelease
    kernel: str = Field(default="", max_length=128)
    architecture: str = Field(default="", max_length=32)
    hardware: Hardware = Hardware()
    releases: list[HeldRelease] = Field(default_factory=list, max_length=MAX_RELEASES)
    package_count: int = Field(ge=0, le=MAX_PACKAGES)
    packages_digest: str = Field(pattern=DIGEST_PATTERN,
                                 description="SHA-256 of the whole package list")
    base_digest: str = Field(default="", pattern=r"^([0-9a-f]{64})?$",
                             description="diffs: the packages_digest of the full they apply to")
    packages: str = Field(default="", max_length=MAX_INVENTORY_BYTES,
                          description="full: base64 zlib of the package rows' JSON")
    changes: str = Field(default="", max_length=MAX_INVENTORY_BYTES,
                         description='diff: base64 zlib of {"changed": rows, "removed": keys}')
    agent_version: str = Field(default="", max_length=64)

    @model_validator(mode="after")
    def _one_shape(self) -> InventoryRecord:
        if self.kind == "full" and (self.base_digest or self.changes):
            raise ValueError("a full record carries no base_digest or changes")
        if self.kind == "diff" and (not self.base_digest or self.packages):
            raise ValueError("a diff names its base_digest and carries no packages")
        return self

    def full_rows(self, source: str) -> list[PackageRow]:
        """The package rows of a full record, validated."""
        rows = parse_rows(unpack(self.packages, f"{source}: packages"), f"{source}: packages")
        if len(rows) != self.package_count:
            raise WireFormatError(f"{source}: {len(rows)} packages, but package_count says "
                                  f"{self.package_count}")
        return rows

    def diff_parts(self, source: str) -> tuple[list[PackageRow], list[str]]:
        """(changed rows, removed keys) of a diff, validated."""
        value = unpack(self.changes, f"{source}: changes")
        if not isinstance(value, dict) or set(value) != {"changed", "removed"}:
            raise WireFormatError(f"{source}: changes must be an object of 'changed' and "
                                  "'removed'")
        removed = value["removed"]
        if not isinstance(removed, list) or len(removed) > MAX_PACKAGES or not all(
            isinstance(key, str) and _KEY.fullmatch(key) for key in removed
        ):
            raise WireFormatError(f"{source}: changes.removed must be at most {MAX_PACKAGES} "
                                  "keys NAME:ARCH")
        return parse_rows(value["changed"], f"{source}: changes.changed"), removed


class SignedInventory(StrictModel):
    record: InventoryRecord
    signature: str = Field(max_length=200)

    @classmethod
    def sign(cls, record: InventoryRecord, key: Ed25519PrivateKey) -> SignedInventory:
        return cls(record=record,
                   signature=sign_detached(key, canonical_json(record.model_dump(mode="json"))))

    def verify(self, public_key_raw: bytes) -> None:
        """Raise SignatureError unless the record was signed by this device key."""
        try:
            verify_detached(public_key_raw, self.signature,
                            canonical_json(self.record.model_dump(mode="json")))
        except (InvalidSignature, ValueError) as exc:
            raise SignatureError(
                f"inventory {self.record.sequence} from device {self.record.device_id}: "
                f"signature does not verify ({type(exc).__name__})"
            ) from None

    def to_bytes(self) -> bytes:
        return canonical_json(self.model_dump(mode="json"))

    @classmethod
    def from_bytes(cls, data: bytes, source: str) -> SignedInventory:
        if len(data) > MAX_INVENTORY_BYTES:
            raise WireFormatError(f"{source}: inventory record larger than "
                                  f"{MAX_INVENTORY_BYTES} bytes")
        return parse_json_model(cls, data, source)


# -- package rows ---------------------------------------------------------------------

def package_key(row: PackageRow) -> str:
    """What identifies an installed package: multiarch allows libc6:amd64 beside :i386."""
    return f"{row[0]}:{row[2]}"


def packages_digest(rows: Iterable[PackageRow]) -> str:
    """SHA-256 of the canonical JSON of the rows in key order: both sides compute it."""
    ordered = sorted(rows, key=package_key)
    return hashlib.sha256(canonical_json([list(row) for row in ordered])).hexdigest()


def pack(value: object) -> str:
    """Compact JSON, zlib, base64: what `packages` and `changes` carry."""
    return base64.b64encode(zlib.compress(canonical_json(value), 9)).decode("ascii")


def pack_rows(rows: Iterable[PackageRow]) -> list[list[str]]:
    """Rows as sent: a source equal to the name, or a source version equal to the
    version, is sent as "" (most rows), and restored by `parse_rows`."""
    return [[name, version, arch, "" if source == name else source,
             "" if source_version == version else source_version]
            for name, version, arch, source, source_version in sorted(rows, key=package_key)]


def unpack(text: str, source: str) -> object:
    """The JSON value of a `pack`ed text, never expanding past MAX_UNPACKED_BYTES."""
    try:
        compressed = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise WireFormatError(f"{source}: not base64") from None
    inflater = zlib.decompressobj()
    try:
        data = inflater.decompress(compressed, MAX_UNPACKED_BYTES)
    except zlib.error as exc:
        raise WireFormatError(f"{source}: not zlib data ({exc})") from None
    if inflater.unconsumed_tail or not inflater.eof:
        raise WireFormatError(f"{source}: expands past {MAX_UNPACKED_BYTES} bytes, or is cut")
    return decode_json(data, source)


def parse_rows(value: object, source: str) -> list[PackageRow]:
    """Validated rows (sources restored), each key once."""
    if not isinstance(value, list) or len(value) > MAX_PACKAGES:
        raise WireFormatError(f"{source}: must be a list of at most {MAX_PACKAGES} packages")
    rows: list[PackageRow] = []
    seen: set[str] = set()
    for index, item in enumerate(value):
        if not (isinstance(item, list) and len(item) == 5
                and all(isinstance(part, str) for part in item)):
            raise WireFormatError(f"{source}[{index}]: must be [name, version, architecture, "
                                  "source, source_version]")
        name, version, arch, src, src_version = item
        row = (name, version, arch, src or name, src_version or version)
        for text, pattern, what in ((row[0], _NAME, "name"), (row[1], _VERSION, "version"),
                                    (row[2], _ARCH, "architecture"), (row[3], _NAME, "source"),
                                    (row[4], _VERSION, "source version")):
            if not pattern.fullmatch(text):
                raise WireFormatError(f"{source}[{index}]: {what} {text[:80]!r} is not a "
                                      "Debian one")
        key = package_key(row)
        if key in seen:
            raise WireFormatError(f"{source}[{index}]: {key} listed twice")
        seen.add(key)
        rows.append(row)
    return rows


def diff_rows(base: Iterable[PackageRow], current: Iterable[PackageRow]
              ) -> tuple[list[PackageRow], list[str]]:
    """(rows new or changed since `base`, keys of `base` gone), both sorted."""
    before = {package_key(row): row for row in base}
    after = {package_key(row): row for row in current}
    changed = [row for key, row in sorted(after.items()) if before.get(key) != row]
    removed = sorted(key for key in before if key not in after)
    return changed, removed


def apply_diff(base: Iterable[PackageRow], changed: Iterable[PackageRow],
               removed: Iterable[str]) -> list[PackageRow]:
    """`base` with `removed` keys dropped and `changed` rows put in, in key order."""
    rows = {package_key(row): row for row in base}
    for key in removed:
        rows.pop(key, None)
    rows.update((package_key(row), row) for row in changed)
    return [rows[key] for key in sorted(rows)]


# -- relays ---------------------------------------------------------------------------

MAX_ASKED = 1024


class InventoryKey(StrictModel):
    device_id: str = Field(pattern=r"^[0-9a-z-]{4,64}$")
    sequence: int = Field(ge=1, lt=2**62)


class InventoryKeys(StrictModel):
    """Relay → hub: which of these records do you lack (hold nothing as new for)?"""

    records: list[InventoryKey] = Field(max_length=MAX_ASKED)


class MissingInventories(StrictModel):
    missing: list[InventoryKey] = Field(max_length=MAX_ASKED)
