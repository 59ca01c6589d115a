"""Reading what devices run: the latest inventory of each device, and its history.

The readers every consumer uses (vulnerability matching, readiness, the compatibility
matrix, `devices show`, the console):

- `latest_software(database, device_ids=None) -> dict[device_id, DeviceSoftware]`:
  OS, kernel, architecture and every installed package, for every device that has
  reported (removed devices left out), or for those of `device_ids`.
- `latest(database, device_id) -> DeviceInventory | None`: that and the hardware,
  the Meisitong releases held, and when it was collected and received.
- `history(database, device_id, limit=20) -> list[InventoryChange]`: what changed
  when, newest first.

Rows are written by `hub.inventory.ingest` only, from records whose device signature
verified and whose package list matched its digest; these readers trust them.
"""

from __future__ import annotations

import json
import sqlite3
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from hub.database import HubDatabase
from hub.inventory.software import DeviceSoftware, InstalledPackage, OperatingSystem


@dataclass(frozen=True)
class Hardware:
    cpu_count: int = 0
    cpu_model: str = ""
    product_name: str = ""
    """The hardware model (DMI product name or device-tree model); records from agents
    before it was collected read as ""."""
    memory_bytes: int = 0
    disk_total_bytes: int = 0
    disk_free_bytes: int = 0
    """Of the agent's state directory's filesystem, when the record was collected."""


@dataclass(frozen=True)
class HeldRelease:
    """A Meisitong release the device's agent says is installed."""

    name: str
    version: str
    release: str


@dataclass(frozen=True)
class DeviceInventory:
    software: DeviceSoftware
    hardware: Hardware
    releases: tuple[HeldRelease, ...]
    sequence: int
    collected_at: str
    received_at: str
    package_count: int
    packages_digest: str


@dataclass(frozen=True)
class PackageChange:
    """One package between two records: `old_version` "" if it appeared, `new_version`
    "" if it went."""

    name: str
    architecture: str
    old_version: str
    new_version: str


@dataclass(frozen=True)
class InventoryChange:
    sequence: int
    collected_at: str
    received_at: str
    first: bool
    """The device's first record: `package_count` packages, no package changes listed."""
    package_count: int
    packages: tuple[PackageChange, ...] = ()
    facts: dict[str, tuple[str, str]] = field(default_factory=dict)
    """os, kernel, architecture, cpu_count, memory_bytes, disk_total_bytes, product_name:
    (before, after)."""
    releases: tuple[tuple[str, str, str], ...] = ()
    """(name, old version, new version) of Meisitong releases, "" for none."""


def encode_packages(rows: Iterable[tuple[str, str, str, str, str]]) -> bytes:
    return zlib.compress(json.dumps([list(row) for row in rows],
                                    separators=(",", ":")).encode("utf-8"), 6)


def decode_packages(blob: bytes) -> list[tuple[str, str, str, str, str]]:
    return [tuple(row) for row in json.loads(zlib.decompress(blob))]  # type: ignore[misc]


def _software(device_id: str, summary: dict[str, Any], blob: bytes,
              collected_at: str) -> DeviceSoftware:
    os_release = summary["os"]
    return DeviceSoftware(
        device_id=device_id,
        os=OperatingSystem(id=os_release["id"], version_id=os_release["version_id"],
                           codename=os_release["codename"],
                           pretty_name=os_release["pretty_name"]),
        kernel=summary["kernel"],
        architecture=summary["architecture"],
        packages=tuple(InstalledPackage(name=name, version=version, architecture=arch,
                                        source=source, source_version=source_version)
                       for name, version, arch, source, source_version
                       in decode_packages(blob)),
        reported_at=collected_at,
    )


def latest_software(database: HubDatabase,
                    device_ids: Iterable[str] | None = None) -> dict[str, DeviceSoftware]:
    """Every reporting device's software (removed devices left out), or `device_ids`'."""
    rows = database.query(
        "SELECT i.device_id, i.summary, i.packages, i.collected_at FROM inventory_latest i "
        "JOIN devices d ON d.device_id = i.device_id WHERE d.status != 'removed' "
        "ORDER BY i.device_id")
    wanted = None if device_ids is None else set(device_ids)
    return {row["device_id"]: _software(row["device_id"], json.loads(row["summary"]),
                                        bytes(row["packages"]), row["collected_at"])
            for row in rows if wanted is None or row["device_id"] in wanted}


def latest(database: HubDatabase, device_id: str) -> DeviceInventory | None:
    rows = database.query("SELECT * FROM inventory_latest WHERE device_id = ?", (device_id,))
    return _inventory(rows[0]) if rows else None


def _inventory(row: sqlite3.Row) -> DeviceInventory:
    summary = json.loads(row["summary"])
    return DeviceInventory(
        software=_software(row["device_id"], summary, bytes(row["packages"]),
                           row["collected_at"]),
        hardware=Hardware(**summary["hardware"]),
        releases=tuple(HeldRelease(**held) for held in summary["releases"]),
        sequence=row["sequence"],
        collected_at=row["collected_at"],
        received_at=row["received_at"],
        package_count=summary["package_count"],
        packages_digest=summary["packages_digest"],
    )


def history(database: HubDatabase, device_id: str, limit: int = 20) -> list[InventoryChange]:
    """What changed when, newest first (at most `limit` records that changed something)."""
    rows = database.query(
        "SELECT * FROM inventory_history WHERE device_id = ? ORDER BY id DESC LIMIT ?",
        (device_id, limit))
    changes = []
    for row in rows:
        change = json.loads(row["changes"])
        changes.append(InventoryChange(
            sequence=row["sequence"], collected_at=row["collected_at"],
            received_at=row["received_at"], first=change["first"],
            package_count=change["package_count"],
            packages=tuple(PackageChange(*item) for item in change["packages"]),
            facts={key: (before, after) for key, (before, after) in change["facts"].items()},
            releases=tuple(tuple(item) for item in change["releases"]),  # type: ignore[misc]
        ))
    return changes
