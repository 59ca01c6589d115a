"""Devices a rollout goes on without: the compatibility holds (hub/compat/hold.py).

One row per (rollout, device), written by the controller in the same transaction as its
audit entry and the signed documents that list the device in `held_devices`
(agent/wire/rollout.py). The controller never lifts a hold: the evidence that put a
device there does not go away because the others did well. An admin can
(`rollout unhold`, audited): the device is then in `rollout_hold_releases`, and the
controller does not hold it again for this rollout.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

SCHEMA = """
CREATE TABLE IF NOT EXISTS rollout_holds (
    release TEXT NOT NULL,
    grp TEXT NOT NULL,
    device_id TEXT NOT NULL,
    combination TEXT NOT NULL,
    held_at TEXT NOT NULL,
    PRIMARY KEY (release, grp, device_id)
);
CREATE TABLE IF NOT EXISTS rollout_hold_releases (
    release TEXT NOT NULL,
    grp TEXT NOT NULL,
    device_id TEXT NOT NULL,
    released_at TEXT NOT NULL,
    released_by TEXT NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (release, grp, device_id)
);
"""


def held_devices(db: sqlite3.Connection, release: str, group: str) -> tuple[str, ...]:
    rows = db.execute("SELECT device_id FROM rollout_holds WHERE release = ? AND grp = ? "
                      "ORDER BY device_id", (release, group)).fetchall()
    return tuple(row[0] for row in rows)


def add_holds(db: sqlite3.Connection, release: str, group: str, device_ids: Iterable[str],
              combination: str, held_at: str) -> None:
    """Inside the caller's transaction; a device already held keeps its first reason."""
    db.executemany(
        "INSERT INTO rollout_holds (release, grp, device_id, combination, held_at) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT(release, grp, device_id) DO NOTHING",
        [(release, group, device, combination, held_at) for device in device_ids])


def released_devices(db: sqlite3.Connection, release: str, group: str) -> set[str]:
    """Devices an admin released from a hold of this rollout: never held again."""
    rows = db.execute("SELECT device_id FROM rollout_hold_releases WHERE release = ? AND "
                      "grp = ?", (release, group)).fetchall()
    return {row[0] for row in rows}


def release_holds(db: sqlite3.Connection, release: str, group: str, device_ids: Iterable[str],
                  actor: str, reason: str, released_at: str) -> None:
    """Inside the caller's transaction: lift the holds of `device_ids` for good."""
    devices = list(device_ids)
    db.executemany("DELETE FROM rollout_holds WHERE release = ? AND grp = ? AND device_id = ?",
                   [(release, group, device) for device in devices])
    db.executemany(
        "INSERT INTO rollout_hold_releases (release, grp, device_id, released_at, "
        "released_by, reason) VALUES (?, ?, ?, ?, ?, ?) "
        "ON CONFLICT(release, grp, device_id) DO NOTHING",
        [(release, group, device, released_at, actor, reason) for device in devices])
