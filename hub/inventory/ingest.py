"""Take in a device-signed inventory record, sent by the device or relayed by a peer.

Checked before anything is written: the device is enrolled and not removed, its key
signed the record (a relay can neither forge nor alter one), the record is newer than
the latest taken from that device (else it is stale: answered, not stored), a diff's
base is a full record the hub holds for that device (else `InventoryBaseMissingError`,
409: the device sends a full next), and the package list, full or rebuilt from base and
diff, is the one `packages_digest` names (else `InventoryDigestMismatchError`, 422).
Then one transaction writes the latest row, the base (a full record), what changed
(history) and the device's last contact.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from dataclasses import dataclass
from typing import Any

from agent.errors import SignatureError
from agent.wire.inventory import (
    InventoryRecord,
    PackageRow,
    SignedInventory,
    apply_diff,
    diff_rows,
    package_key,
    packages_digest,
)
from hub.database import HubDatabase, utc_now
from hub.errors import InventoryBaseMissingError, InventoryDigestMismatchError, UnknownDeviceError
from hub.inventory.store import decode_packages, encode_packages

log = logging.getLogger(__name__)

BASES_KEPT = 3
"""Full records kept per device for its diffs to apply to (a diff names the newest one
its device sent; older ones serve diffs still travelling by gossip)."""
HISTORY_KEPT = 1000
"""History rows kept per device, newest: an enrolled device that changes every
`min_spacing`, or a hostile one posting as fast as it can, cannot grow the table
without bound."""
_FACTS = ("os", "kernel", "architecture", "cpu_count", "memory_bytes", "disk_total_bytes",
          "product_name")


@dataclass(frozen=True)
class InventoryOutcome:
    stored: bool
    """False when the hub holds this record or a newer one (a retry, a relay's copy)."""
    sequence: int
    """The device's latest sequence the hub now holds."""


def ingest_inventory(database: HubDatabase, signed: SignedInventory) -> InventoryOutcome:
    record = signed.record
    source = f"inventory {record.sequence} of {record.device_id}"
    device = database.device(record.device_id)
    if device is None:
        raise UnknownDeviceError(f"{source}: device {record.device_id} unknown")
    if device.status == "removed":
        raise UnknownDeviceError(f"{source}: device {record.device_id} was removed by an admin")
    try:
        signed.verify(device.public_key)
    except SignatureError:
        log.warning("dropped %s: the signature does not verify", source)
        raise
    previous = _latest_row(database, record.device_id)
    if previous is not None and record.sequence <= previous["sequence"]:
        return InventoryOutcome(stored=False, sequence=previous["sequence"])
    rows = _package_rows(database, record, source)
    summary = _summary(record)
    before_rows = decode_packages(bytes(previous["packages"])) if previous else None
    changes = _changes(json.loads(previous["summary"]) if previous else None, before_rows,
                       summary, rows)
    now = utc_now()
    with database.transaction() as db:
        row = db.execute("SELECT sequence FROM inventory_latest WHERE device_id = ?",
                         (record.device_id,)).fetchone()
        if row is not None and record.sequence <= row[0]:  # another request won the race
            return InventoryOutcome(stored=False, sequence=row[0])
        db.execute(
            "INSERT INTO inventory_latest (device_id, sequence, collected_at, received_at, "
            "summary, packages, record) VALUES (?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(device_id) DO UPDATE SET sequence = excluded.sequence, "
            "collected_at = excluded.collected_at, received_at = excluded.received_at, "
            "summary = excluded.summary, packages = excluded.packages, record = excluded.record",
            (record.device_id, record.sequence, record.collected_at, now,
             json.dumps(summary, sort_keys=True), encode_packages(rows), signed.to_bytes()))
        if record.kind == "full":
            _keep_base(db, signed)
        if changes is not None:
            db.execute(
                "INSERT INTO inventory_history (device_id, sequence, collected_at, received_at, "
                "kind, changes) VALUES (?, ?, ?, ?, ?, ?)",
                (record.device_id, record.sequence, record.collected_at, now, record.kind,
                 json.dumps(changes, sort_keys=True)))
            db.execute("DELETE FROM inventory_history WHERE device_id = ? AND id <= ("
                       "SELECT id FROM inventory_history WHERE device_id = ? "
                       "ORDER BY id DESC LIMIT 1 OFFSET ?)",
                       (record.device_id, record.device_id, HISTORY_KEPT))
        db.execute("UPDATE devices SET last_seen = ? WHERE device_id = ?",
                   (now, record.device_id))
    return InventoryOutcome(stored=True, sequence=record.sequence)


def held_sequences(database: HubDatabase, device_ids: list[str]) -> dict[str, int]:
    """The latest sequence held per device (devices without one left out)."""
    held: dict[str, int] = {}
    for start in range(0, len(device_ids), 500):
        chunk = device_ids[start:start + 500]
        marks = ",".join("?" * len(chunk))
        held.update((row["device_id"], row["sequence"]) for row in database.query(
            f"SELECT device_id, sequence FROM inventory_latest WHERE device_id IN ({marks})",  # noqa: S608
            tuple(chunk)))
    return held


def _latest_row(database: HubDatabase, device_id: str) -> sqlite3.Row | None:
    rows = database.query("SELECT sequence, summary, packages FROM inventory_latest "
                          "WHERE device_id = ?", (device_id,))
    return rows[0] if rows else None


def _package_rows(database: HubDatabase, record: InventoryRecord,
                  source: str) -> list[PackageRow]:
    """The whole package list the record states, checked against its digest."""
    if record.kind == "full":
        rows = sorted(record.full_rows(source), key=package_key)
    else:
        found = database.query(
            "SELECT record FROM inventory_bases WHERE device_id = ? AND digest = ?",
            (record.device_id, record.base_digest))
        if not found:
            raise InventoryBaseMissingError(
                f"{source}: a diff against base {record.base_digest[:16]}…, which the hub "
                "does not hold for this device; send a full record")
        base = SignedInventory.from_bytes(bytes(found[0]["record"]), f"{source} base").record
        changed, removed = record.diff_parts(source)
        rows = apply_diff(base.full_rows(f"{source} base"), changed, removed)
    if len(rows) != record.package_count or packages_digest(rows) != record.packages_digest:
        raise InventoryDigestMismatchError(
            f"{source}: its packages ({len(rows)}) do not give the digest it claims "
            f"({record.packages_digest[:16]}…, {record.package_count} packages)")
    return rows


def _keep_base(db: sqlite3.Connection, signed: SignedInventory) -> None:
    record = signed.record
    db.execute("INSERT INTO inventory_bases (device_id, digest, sequence, record) "
               "VALUES (?, ?, ?, ?) ON CONFLICT(device_id, digest) DO UPDATE SET "
               "sequence = excluded.sequence, record = excluded.record",
               (record.device_id, record.packages_digest, record.sequence, signed.to_bytes()))
    db.execute("DELETE FROM inventory_bases WHERE device_id = ? AND digest NOT IN ("
               "SELECT digest FROM inventory_bases WHERE device_id = ? "
               "ORDER BY sequence DESC LIMIT ?)",
               (record.device_id, record.device_id, BASES_KEPT))


def _summary(record: InventoryRecord) -> dict[str, Any]:
    return {
        "os": record.os.model_dump(), "kernel": record.kernel,
        "architecture": record.architecture, "hardware": record.hardware.model_dump(),
        "releases": [held.model_dump() for held in record.releases],
        "package_count": record.package_count, "packages_digest": record.packages_digest,
        "agent_version": record.agent_version,
    }


def _fact(summary: dict[str, Any], name: str) -> str:
    if name == "os":
        os_release = summary["os"]
        return " ".join(part for part in (os_release["id"], os_release["version_id"],
                                          os_release["codename"]) if part)
    if name in summary:
        return str(summary[name])
    # .get: records stored before a fact was collected (product_name) lack it.
    return str(summary["hardware"].get(name, ""))


def _changes(before: dict[str, Any] | None, before_rows: list[PackageRow] | None,
             after: dict[str, Any], rows: list[PackageRow]) -> dict[str, Any] | None:
    """The history entry from `before` to `after`; None if nothing it tracks changed."""
    if before is None or before_rows is None:
        return {"first": True, "package_count": len(rows), "packages": [], "facts": {},
                "releases": []}
    old = {package_key(row): row for row in before_rows}
    changed, removed = diff_rows(before_rows, rows)
    packages = [[row[0], row[2], old[key][1] if (key := package_key(row)) in old else "",
                 row[1]] for row in changed]
    packages += [[old[key][0], old[key][2], old[key][1], ""] for key in removed]
    facts = {name: [_fact(before, name), _fact(after, name)] for name in _FACTS
             if _fact(before, name) != _fact(after, name)}
    held_before = {held["name"]: held["version"] for held in before["releases"]}
    held_after = {held["name"]: held["version"] for held in after["releases"]}
    releases = [[name, held_before.get(name, ""), held_after.get(name, "")]
                for name in sorted(held_before.keys() | held_after.keys())
                if held_before.get(name) != held_after.get(name)]
    if not (packages or facts or releases):
        return None
    return {"first": False, "package_count": len(rows), "packages": sorted(packages),
            "facts": facts, "releases": releases}
