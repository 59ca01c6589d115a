"""The probe's second half, in the child process too: from what it found to the next
unsigned record (full, or a diff against the base file), and its fingerprint.

Parsing a few thousand package rows, diffing them against the base and compressing
them costs a few MiB of the process's heap at its peak; done in the daemon, that
high-water mark would stay in its RSS for good (measured: +3.5 MiB). Here it goes
when the child exits; the daemon only signs the compact record it prints.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from agent.errors import InventoryError, WireFormatError
from agent.inventory.records import Snapshot, build_record
from agent.wire.inventory import (
    Hardware,
    HeldRelease,
    OsRelease,
    PackageRow,
    SignedInventory,
    parse_rows,
)

log = logging.getLogger(__name__)


def snapshot_of(found: dict[str, Any], releases: list[list[str]]) -> Snapshot:
    """A Snapshot of the probe's findings; raises InventoryError if not its format."""
    try:
        rows: dict[str, PackageRow] = {}
        for row in found["packages"]:
            try:
                for parsed in parse_rows([row], "dpkg-query"):
                    rows[f"{parsed[0]}:{parsed[2]}"] = parsed
            except WireFormatError as exc:  # one odd local package must not hide the rest
                log.warning("inventory leaves out a package: %s", exc)
        return Snapshot(
            os=OsRelease(**found["os"]), kernel=found["kernel"],
            architecture=found["architecture"], hardware=Hardware(**found["hardware"]),
            packages=list(rows.values()),
            releases=[HeldRelease(name=name, version=version, release=release)
                      for name, version, release in releases],
        )
    except (KeyError, TypeError, ValueError) as exc:  # pydantic's ValidationError included
        raise InventoryError(f"inventory probe findings not understood: {exc}") from None


def build_output(found: dict[str, Any], releases: list[list[str]], device_id: str,
                 sequence: int, collected_at: str, base_path: Path | None) -> dict[str, Any]:
    """{"fingerprint", "record"}: what the child prints for the daemon to sign. A base
    file that is missing or unreadable makes the record a full one."""
    snapshot = snapshot_of(found, releases)
    base = None
    if base_path is not None:
        try:
            base = SignedInventory.from_bytes(base_path.read_bytes(), str(base_path)).record
        except (OSError, WireFormatError) as exc:
            log.info("inventory base unusable (%s): a full record", exc)
    record = build_record(snapshot, device_id, sequence, collected_at, base)
    return {"fingerprint": snapshot.fingerprint(), "record": record.model_dump(mode="json")}
