"""Enrollment tokens and device registration.

Only the SHA-256 of a token's secret is stored, so a copy of the database does not let
anyone enroll devices. A valid token accepts the device at once; without one a device
can still register and waits as `pending` until an admin accepts it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import sqlite3
from datetime import UTC, datetime, timedelta
from typing import Any

from agent.errors import AgentError
from agent.wire.enrollment import EnrollmentToken, EnrollRequest
from hub.database import HubDatabase, utc_now
from hub.errors import EnrollmentRefusedError, UnknownDeviceError, UnknownTokenError


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
    if row["revoked_at"]:
        return False
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
        _ensure_revocation_column(db)
        rows = db.execute(
            "SELECT * FROM enrollment_tokens WHERE secret_sha256 = ?", (token_hash,)
        ).fetchall()
        if not _token_is_valid(rows, utc_now()):
            raise EnrollmentRefusedError(
                "enrollment token is unknown, expired, used up or revoked")
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
            hostname=request.hostname, public_key=request.public_key_raw().hex(),
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


def _ensure_revocation_column(db: sqlite3.Connection) -> None:
    """Hubs made before tokens could be revoked get the column on first use."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(enrollment_tokens)")}
    if "revoked_at" not in columns:
        db.execute("ALTER TABLE enrollment_tokens ADD COLUMN revoked_at TEXT")


def list_tokens(database: HubDatabase) -> list[dict[str, Any]]:
    """Every token by its id (the first 12 hex digits of its secret's hash, as the audit
    log names it); the secret itself is never stored, so it cannot be shown again."""
    with database.transaction() as db:
        _ensure_revocation_column(db)
        rows = db.execute(
            "SELECT * FROM enrollment_tokens ORDER BY created_at").fetchall()
    now = utc_now()
    listed = []
    for row in rows:
        if row["revoked_at"]:
            state = f"revoked {row['revoked_at']}"
        elif row["expires_at"] and row["expires_at"] < now:
            state = "expired"
        elif row["max_uses"] is not None and row["uses"] >= row["max_uses"]:
            state = "used up"
        else:
            state = "valid"
        listed.append({
            "id": row["secret_sha256"][:12], "created_at": row["created_at"],
            "expires_at": row["expires_at"], "uses": row["uses"], "max_uses": row["max_uses"],
            "state": state,
        })
    return listed


def revoke_token(database: HubDatabase, token_id: str, actor: str) -> None:
    """Refuse every later enrollment with the token `token_id` (or the token text)."""
    if token_id.startswith("mst1."):
        token_id = _secret_hash(EnrollmentToken.parse(token_id).secret)[:12]
    if not re.fullmatch(r"[0-9a-f]{6,64}", token_id):
        raise UnknownTokenError(f"{token_id!r} is not a token id (see `token list`)")
    with database.transaction() as db:
        _ensure_revocation_column(db)
        rows = db.execute(
            "SELECT secret_sha256, revoked_at FROM enrollment_tokens "
            "WHERE substr(secret_sha256, 1, ?) = ?", (len(token_id), token_id)).fetchall()
        if not rows:
            raise UnknownTokenError(f"no enrollment token {token_id!r} (see `token list`)")
        if len(rows) > 1:
            raise UnknownTokenError(f"{token_id!r} matches several tokens; give more digits")
        if rows[0]["revoked_at"]:
            raise UnknownTokenError(f"token {token_id} was already revoked "
                                    f"({rows[0]['revoked_at']})")
        db.execute("UPDATE enrollment_tokens SET revoked_at = ? WHERE secret_sha256 = ?",
                   (utc_now(), rows[0]["secret_sha256"]))
        database.audit(db, actor, "token.revoke", rows[0]["secret_sha256"][:12])
