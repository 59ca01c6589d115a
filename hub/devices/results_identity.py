"""Results are identified by (device, record id), never by the record id alone.

A record id is chosen by the device that signs the record, so any enrolled device can
sign a record of its own under another device's id. When the hub keyed results by
record id alone, a peer that read a victim's `reverted` record id from gossip and got
its own record in first made the victim's delivery "already stored": the failure was
never counted, and the victim marked it delivered. Hubs created before this change have
`record_id` as the table's primary key; `upgrade_results_table` rebuilds it in place,
keeping every row and its rowid (rollouts use the rowid as a watermark of what they
have seen), the first time a newer hub opens the database.
"""

from __future__ import annotations

import sqlite3

from agent.sqlite_durable import immediate_transaction

RESULTS_TABLE = """
CREATE TABLE IF NOT EXISTS {name} (
    record_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    release TEXT NOT NULL,
    outcome TEXT NOT NULL,
    reason TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT NOT NULL,
    received_at TEXT NOT NULL,
    body BLOB NOT NULL,
    PRIMARY KEY (device_id, record_id)
)"""
RESULTS_INDEX = "CREATE INDEX IF NOT EXISTS results_by_release ON results (release, device_id)"
_COLUMNS = ("record_id, device_id, release, outcome, reason, started_at, finished_at, "
            "received_at, body")


def _keyed_by_record_id_alone(db: sqlite3.Connection) -> bool:
    primary_key = [row[1] for row in db.execute("PRAGMA table_info(results)") if row[5]]
    return primary_key == ["record_id"]


def upgrade_results_table(db: sqlite3.Connection) -> bool:
    """Rebuild an old `results` table keyed by record id alone; True if it did."""
    if not _keyed_by_record_id_alone(db):
        return False
    with immediate_transaction(db):
        if not _keyed_by_record_id_alone(db):  # another process upgraded it meanwhile
            return False
        db.execute(RESULTS_TABLE.format(name="results_by_device"))
        db.execute(
            f"INSERT INTO results_by_device (rowid, {_COLUMNS}) "  # noqa: S608
            f"SELECT rowid, {_COLUMNS} FROM results"
        )
        db.execute("DROP TABLE results")
        db.execute("ALTER TABLE results_by_device RENAME TO results")
        db.execute(RESULTS_INDEX)
    return True
