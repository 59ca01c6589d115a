"""Admin exceptions: (device, release) taken out of compliance scope, with a reason and an
expiry. `meisitong-hub exceptions add|list|remove`.

Each change is audited in the same transaction as the row it changes, with everything
the row holds (device, release target, reason, expiry): the evidence verifier replays
exceptions from the signed audit chain, not from this table. An expired exception is
kept (for the record) but no longer counts: the device is back in scope with the
deadline it always had (publication + the policy's hours), not one counted from the
expiry.
"""

from __future__ import annotations

from datetime import UTC, datetime

from hub.compliance.facts import AdminException
from hub.database import HubDatabase, utc_now
from hub.errors import ComplianceInputError, UnknownDeviceError, UnknownReleaseError
from hub.rollouts.changes import find_release

MAX_REASON = 500
ADD_ACTION = "exception.add"
REMOVE_ACTION = "exception.remove"


def parse_instant(text: str, field: str) -> datetime:
    """An ISO 8601 date (its midnight UTC) or instant (no zone: UTC); the error names
    `field`."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ComplianceInputError(
            f"{field} {text!r}: not an ISO 8601 date or instant (e.g. 2026-12-31 or "
            "2026-12-31T18:00:00+01:00)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _device_id(database: HubDatabase, spec: str) -> str:
    rows = database.query(
        "SELECT device_id FROM devices WHERE (device_id = ? OR name = ?) AND status != "
        "'removed'", (spec, spec))
    if not rows:
        raise UnknownDeviceError(f"DEVICE {spec!r}: no enrolled device has that id or name "
                                 "(see `devices list`)")
    if len(rows) > 1:
        raise UnknownDeviceError(f"DEVICE {spec!r}: several devices have that name; give "
                                 "the device id")
    return str(rows[0]["device_id"])


def _release_target(database: HubDatabase, spec: str) -> str:
    try:
        return str(find_release(database, spec)["target"])
    except UnknownReleaseError as exc:
        raise UnknownReleaseError(f"RELEASE: {exc}") from None


def add_exception(database: HubDatabase, device: str, release: str, reason: str,
                  expires: str, actor: str, now: datetime | None = None) -> AdminException:
    """Except DEVICE (id or name) from RELEASE (NAME@VERSION, NAME or target) until
    `expires`; replaces an exception the pair already has."""
    now = now or datetime.now(UTC)
    reason = reason.strip()
    if not reason:
        raise ComplianceInputError("--reason: must say why (it is printed in the report)")
    if len(reason) > MAX_REASON:
        raise ComplianceInputError(f"--reason: {len(reason)} characters; at most {MAX_REASON}")
    expires_at = parse_instant(expires, "--expires")
    if expires_at <= now:
        raise ComplianceInputError(
            f"--expires {expires!r}: {expires_at.isoformat()} is not in the future")
    device_id = _device_id(database, device)
    target = _release_target(database, release)
    stamp = expires_at.isoformat(timespec="seconds")
    with database.transaction() as db:
        db.execute(
            "INSERT INTO compliance_exceptions (device_id, release, reason, expires_at, "
            "created_at, created_by) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(device_id, release) "
            "DO UPDATE SET reason = excluded.reason, expires_at = excluded.expires_at, "
            "created_at = excluded.created_at, created_by = excluded.created_by",
            (device_id, target, reason, stamp, utc_now(), actor))
        database.audit(db, actor, ADD_ACTION, device_id, release=target, reason=reason,
                       expires_at=stamp)
    return AdminException(device_id, target, reason, expires_at, actor, now)


def remove_exception(database: HubDatabase, device: str, release: str, actor: str) -> str:
    """Remove the pair's exception (expired or not); the device id."""
    device_id = _device_id(database, device)
    target = _release_target(database, release)
    with database.transaction() as db:
        removed = db.execute(
            "DELETE FROM compliance_exceptions WHERE device_id = ? AND release = ?",
            (device_id, target)).rowcount
        if not removed:
            raise ComplianceInputError(
                f"DEVICE {device!r} RELEASE {release!r}: no exception to remove (see "
                "`exceptions list`)")
        database.audit(db, actor, REMOVE_ACTION, device_id, release=target)
    return device_id


def read_exceptions(database: HubDatabase) -> list[AdminException]:
    rows = database.query("SELECT * FROM compliance_exceptions ORDER BY device_id, release")
    return [AdminException(row["device_id"], row["release"], row["reason"],
                           parse_instant(row["expires_at"], "expires_at"), row["created_by"],
                           parse_instant(row["created_at"], "created_at")) for row in rows]


def list_exceptions(database: HubDatabase, now: datetime | None = None
                    ) -> list[dict[str, object]]:
    now = now or datetime.now(UTC)
    names = {row["device_id"]: row["name"] for row in
             database.query("SELECT device_id, name FROM devices")}
    return [{"device_id": e.device_id, "device": names.get(e.device_id, ""),
             "release": e.release, "reason": e.reason,
             "expires_at": e.expires_at.isoformat(timespec="seconds"),
             "expired": e.expires_at <= now, "created_by": e.created_by,
             "created_at": e.created_at.isoformat(timespec="seconds") if e.created_at else None}
            for e in read_exceptions(database)]
