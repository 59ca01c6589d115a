"""Ingest device-signed result records, idempotently per (device, record id), dropping any
that do not verify (see `results_identity` for why the device is part of the key)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from agent.errors import SignatureError
from agent.wire.result import SignedResult
from hub.database import HubDatabase, utc_now
from hub.errors import UnknownDeviceError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestOutcome:
    stored: bool
    """False when the record was already there (a retry or a relay's copy)."""


def ingest_result(database: HubDatabase, signed: SignedResult,
                  now: datetime | None = None) -> IngestOutcome:
    """Verify against the enrolled device key, then store once per (device, record id).
    `now` (the wall clock unless a simulation gives its own) is when it was received and
    the device last seen.

    Raises UnknownDeviceError or SignatureError; nothing is stored then.
    """
    record = signed.record
    device = database.device(record.device_id)
    if device is None:
        raise UnknownDeviceError(f"result {record.record_id}: device {record.device_id} unknown")
    if device.status == "removed":
        raise UnknownDeviceError(
            f"result {record.record_id}: device {record.device_id} was removed by an admin")
    try:
        signed.verify(device.public_key)
    except SignatureError:
        log.warning("dropped result %s: signature of %s does not verify",
                    record.record_id, record.device_id)
        raise
    received = utc_now() if now is None else now.astimezone(UTC).isoformat(timespec="seconds")
    with database.transaction() as db:
        cursor = db.execute(
            "INSERT INTO results (record_id, device_id, release, outcome, reason, started_at, "
            "finished_at, received_at, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(device_id, record_id) DO NOTHING",
            (
                record.record_id, record.device_id, record.release, record.outcome,
                record.reason, record.started_at, record.finished_at, received,
                signed.to_bytes(),
            ),
        )
        db.execute(
            "UPDATE devices SET last_seen = ? WHERE device_id = ?", (received, record.device_id)
        )
    return IngestOutcome(stored=cursor.rowcount == 1)
