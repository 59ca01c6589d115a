"""From a collected snapshot to the next inventory record: full or diff, pure logic.

A diff is sent against the last full record (`base`) while it stays small (at most a
quarter of the packages, or 32 rows); a larger change, no base yet, or a hub that said
it lacks the base (409) or could not rebuild the list (422) makes the next one full.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import agent
from agent.wire.canonical import canonical_json
from agent.wire.inventory import (
    Hardware,
    HeldRelease,
    InventoryRecord,
    OsRelease,
    PackageRow,
    diff_rows,
    pack,
    pack_rows,
    package_key,
    packages_digest,
)

MIN_DIFF_ROWS = 32


@dataclass(frozen=True)
class Snapshot:
    """What the collector found (agent/inventory/collector.py)."""

    os: OsRelease
    kernel: str
    architecture: str
    hardware: Hardware
    packages: list[PackageRow]
    releases: list[HeldRelease] = field(default_factory=list)

    def fingerprint(self) -> str:
        """Changes when anything a record reports changes, except free disk space (which
        moves all the time; it goes out with the next record anyway)."""
        hardware = self.hardware.model_dump()
        hardware.pop("disk_free_bytes")
        return hashlib.sha256(canonical_json({
            "os": self.os.model_dump(), "kernel": self.kernel,
            "architecture": self.architecture, "hardware": hardware,
            "releases": [held.model_dump() for held in self.releases],
            "packages": packages_digest(self.packages),
        })).hexdigest()


def build_record(snapshot: Snapshot, device_id: str, sequence: int, collected_at: str,
                 base: InventoryRecord | None) -> InventoryRecord:
    """The record for `snapshot`: a diff against `base` (a full record) if one is given
    and the change is small, else a full record."""
    rows = sorted(snapshot.packages, key=package_key)
    common = dict(
        device_id=device_id, sequence=sequence, collected_at=collected_at, os=snapshot.os,
        kernel=snapshot.kernel, architecture=snapshot.architecture,
        hardware=snapshot.hardware, releases=snapshot.releases, package_count=len(rows),
        packages_digest=packages_digest(rows), agent_version=agent.__version__,
    )
    if base is not None and base.kind == "full":
        changed, removed = diff_rows(base.full_rows("this device's base record"), rows)
        if len(changed) + len(removed) <= max(MIN_DIFF_ROWS, len(rows) // 4):
            return InventoryRecord(
                kind="diff", base_digest=base.packages_digest,
                changes=pack({"changed": pack_rows(changed), "removed": removed}),
                **common)  # type: ignore[arg-type]
    return InventoryRecord(kind="full", packages=pack(pack_rows(rows)),
                           **common)  # type: ignore[arg-type]
