"""The compliance tables (applied through hub.database.SCHEMA_MODULES): admin exceptions,
one per (device, release); hub/compliance/exceptions.py reads and writes them."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS compliance_exceptions (
    device_id TEXT NOT NULL,
    release TEXT NOT NULL,
    reason TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    PRIMARY KEY (device_id, release)
);
"""
