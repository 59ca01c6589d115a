"""Devices a rollout goes on without: the compatibility holds (hub/compat/hold.py).

One row per (rollout, device), written by the controller in the same transaction as its
audit entry and the signed documents that list the device in `held_devices`
(agent/wire/rollout.py). Holds only grow while the rollout lives: the evidence that put
a device there does not go away because the others did well.
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
