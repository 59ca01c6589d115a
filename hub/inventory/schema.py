"""The inventory tables (applied through hub.database.SCHEMA_MODULES).

- `inventory_latest`: one row per device, its newest record resolved to the whole
  package list (`packages`: zlib of the rows' JSON), the small facts as JSON
  (`summary`), and the signed record as received (`record`: evidence; a diff's base is
  in `inventory_bases`).
- `inventory_bases`: the last few full records of each device (signed, as received),
  which its diffs apply to.
- `inventory_history`: what changed when, one row per record that changed anything
  (the first record of a device included), newest last.
"""

SCHEMA = """
CREATE TABLE IF NOT EXISTS inventory_latest (
    device_id TEXT PRIMARY KEY,
    sequence INTEGER NOT NULL,
    collected_at TEXT NOT NULL,
    received_at TEXT NOT NULL,
    summary TEXT NOT NULL,
    packages BLOB NOT NULL,
    record BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS inventory_bases (
    device_id TEXT NOT NULL,
    digest TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    record BLOB NOT NULL,
    PRIMARY KEY (device_id, digest)
);
CREATE TABLE IF NOT EXISTS inventory_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    collected_at TEXT NOT NULL,
    received_at TEXT NOT NULL,
    kind TEXT NOT NULL,
    changes TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS inventory_history_by_device ON inventory_history (device_id, id);
"""
