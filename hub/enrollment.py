"""Enrollment tokens and device registration.

Only the SHA-256 of a token's secret is stored, so a copy of the database does not let
anyone enroll devices. A valid token accepts the device at once; without one a device
can still register and waits as `pending` until an admin accepts it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from datetime import UTC, datetime, timedelta

from agent.errors import AgentError
from agent.wire.enrollment import EnrollmentToken, EnrollRequest
from hub.database import HubDatabase, utc_now
from hub.errors import EnrollmentRefusedError, UnknownDeviceError


def _secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_token(
    database: HubDatabase,
    root_sha256: str,
    valid_for: timedelta | None = None,
    max_uses: int | None = None,
    actor: str = "admin",
) -> EnrollmentToken:
    secret = secrets.token_urlsafe(32)
    expires = (datetime.now(UTC) + valid_for).isoformat(timespec="seconds") if valid_for else None
    with database.transaction() as db:
        db.execute(
            "INSERT INTO enrollment_tokens (secret_sha256, created_at, expires_at, max_uses) "
            "VALUES (?, ?, ?, ?)",
            (_secret_hash(secret), utc_now(), expires, max_uses),
        )
        database.audit(
            db, actor, "token.create", _secret_hash(secret)[:12],
            expires_at=expires, max_uses=max_uses,
        )
    return EnrollmentToken(secret=secret, root_sha256=root_sha256)


def _token_is_valid(db_rows: list, now: str) -> bool:
    if not db_rows:
        return False
    row = db_rows[0]
    if row["expires_at"] and row["expires_at"] < now:
        return False
    return not (row["max_uses"] is not None and row["uses"] >= row["max_uses"])


def enroll_device(database: HubDatabase, request: EnrollRequest) -> str:
    """Register the device; returns its status, `accepted` or `pending`."""
    try:
        request.verify_proof()
    except AgentError as exc:
        raise EnrollmentRefusedError(str(exc)) from None
    token_hash = _secret_hash(request.token_secret)
    with database.transaction() as db:
        rows = db.execute(
            "SELECT * FROM enrollment_tokens WHERE secret_sha256 = ?", (token_hash,)
        ).fetchall()
        if not _token_is_valid(rows, utc_now()):
            raise EnrollmentRefusedError("enrollment token is unknown, expired or used up")
        # Constant-time re-check against timing probes of the index lookup.
        if not hmac.compare_digest(rows[0]["secret_sha256"], token_hash):
            raise EnrollmentRefusedError("enrollment token is unknown")
        existing = db.execute(
            "SELECT public_key FROM devices WHERE device_id = ?", (request.device_id,)
        ).fetchone()
        if existing and bytes(existing["public_key"]) != request.public_key_raw():
            raise EnrollmentRefusedError(
                f"device {request.device_id} is enrolled with another key"
            )
        db.execute(
            "UPDATE enrollment_tokens SET uses = uses + 1 WHERE secret_sha256 = ?", (token_hash,)
        )
        db.execute(
            "INSERT INTO devices (device_id, public_key, name, hostname, grp, site, labels, "
            "status, enrolled_at, last_seen) VALUES (?, ?, ?, ?, ?, ?, ?, 'accepted', ?, ?) "
            "ON CONFLICT(device_id) DO UPDATE SET name = excluded.name, "
            "hostname = excluded.hostname, labels = excluded.labels, "
            "last_seen = excluded.last_seen, status = 'accepted'",
            (
                request.device_id, request.public_key_raw(), request.name or request.hostname,
                request.hostname, request.group, request.site, json.dumps(request.labels),
                utc_now(), utc_now(),
            ),
        )
        database.audit(
            db, f"device:{request.device_id}", "device.enroll", request.device_id,
            group=request.group, site=request.site, name=request.name,
        )
    return "accepted"


def set_device_group(database: HubDatabase, device_id: str, group: str, actor: str) -> None:
    with database.transaction() as db:
        updated = db.execute(
            "UPDATE devices SET grp = ? WHERE device_id = ?", (group, device_id)
        ).rowcount
        if not updated:
            raise UnknownDeviceError(f"no enrolled device {device_id!r} (see `devices list`)")
        database.audit(db, actor, "device.group", device_id, group=group)


def remove_device(database: HubDatabase, spec: str, actor: str) -> str:
    """Decommission a device (by id or unique name): it stops counting in rollouts and
    forecasts, its leases are freed, and the hub refuses its results and lease requests.
    The row stays (status `removed`) so its history and audit trail remain readable;
    enrolling again with a valid token brings it back."""
    with database.transaction() as db:
        rows = db.execute(
            "SELECT device_id, status FROM devices WHERE device_id = ? OR name = ?", (spec, spec)
        ).fetchall()
        if not rows:
            raise UnknownDeviceError(f"no enrolled device {spec!r} (see `devices list`)")
        if len(rows) > 1:
            raise UnknownDeviceError(
                f"several devices are named {spec!r} "
                f"({', '.join(row['device_id'] for row in rows)}); give the device id")
        device_id = rows[0]["device_id"]
        if rows[0]["status"] == "removed":
            raise UnknownDeviceError(f"device {device_id} was already removed")
        db.execute("UPDATE devices SET status = 'removed' WHERE device_id = ?", (device_id,))
        exists = db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'leases'").fetchone()
        if exists:
            db.execute("DELETE FROM leases WHERE device_id = ?", (device_id,))
        database.audit(db, actor, "device.remove", device_id)
    return device_id
