"""Heads of the audit chain that devices signed: the anchor the hub cannot forge.

An agent repeats, in its device-signed heartbeat, the audit head its verified timestamp
carried (agent/wire/audit_head.py). The hub keeps, per device, the heartbeat naming the
highest head, byte for byte as the device signed it, so an auditor can check the
signature with the device's public key and the head against the chain
(hub/audit/verify.py). The latest head is the strongest witness: its hash commits to
every entry up to it, and its seq to the chain being at least that long.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from agent.wire.audit_head import AuditHead

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_witnesses (
    device_id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL,
    issued_at TEXT NOT NULL,
    heartbeat BLOB NOT NULL,
    received_at TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class Witness:
    """A verified heartbeat that carried an audit head."""

    device_id: str
    head: AuditHead
    issued_at: str
    heartbeat: bytes
    """The signed heartbeat, exactly as received."""
    received_at: str


def record(db: sqlite3.Connection, witnesses: list[Witness]) -> None:
    """Keep each device's witness of the highest head (a later heartbeat naming the same
    head changes nothing: the first one already proves it)."""
    db.executemany(
        "INSERT INTO audit_witnesses (device_id, seq, hash, issued_at, heartbeat, received_at) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(device_id) DO UPDATE SET seq = excluded.seq, "
        "hash = excluded.hash, issued_at = excluded.issued_at, "
        "heartbeat = excluded.heartbeat, received_at = excluded.received_at "
        "WHERE excluded.seq > audit_witnesses.seq",
        [(w.device_id, w.head.seq, w.head.hash, w.issued_at, w.heartbeat, w.received_at)
         for w in witnesses])
