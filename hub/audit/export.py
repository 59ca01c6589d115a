"""What an auditor takes away from the hub to check its audit log elsewhere
(hub/audit/verify.py): the chain as JSON objects, the devices' witnessed heads with
their public keys, and the TUF files that say which key signs the chain."""

from __future__ import annotations

from typing import Any

from hub.audit.entry import stored_detail
from hub.database import HubDatabase
from hub.hub_dir import HubDir


def export_chain(database: HubDatabase) -> list[dict[str, Any]]:
    """Every chain entry in seq order (seq, at, actor, action, subject, detail, prev,
    hash, key_id, signature, and audit_id, the row's local id, not hashed), then every
    audit row no chain entry holds (seq None): verify names those."""
    chained = database.query(
        "SELECT c.seq, c.audit_id, c.prev, c.hash, c.key_id, c.signature, a.at, a.actor, "
        "a.action, a.subject, a.detail FROM audit_chain c LEFT JOIN audit a "
        "ON a.id = c.audit_id ORDER BY c.seq")
    outside = database.query(
        "SELECT a.* FROM audit a WHERE NOT EXISTS "
        "(SELECT 1 FROM audit_chain c WHERE c.audit_id = a.id) ORDER BY a.id")
    entries = [_entry(row) for row in chained]
    entries += [{"seq": None, "audit_id": row["id"], "at": row["at"], "actor": row["actor"],
                 "action": row["action"], "subject": row["subject"],
                 "detail": stored_detail(row["detail"])} for row in outside]
    return entries


def _entry(row: Any) -> dict[str, Any]:
    return {
        "seq": row["seq"], "at": row["at"], "actor": row["actor"], "action": row["action"],
        "subject": row["subject"],
        "detail": None if row["detail"] is None else stored_detail(row["detail"]),
        "prev": row["prev"], "hash": row["hash"], "key_id": row["key_id"],
        "signature": row["signature"], "audit_id": row["audit_id"],
    }


def export_witnesses(database: HubDatabase) -> list[dict[str, Any]]:
    """Each device's witness: device_id, public_key (raw Ed25519, hex), heartbeat (the
    signed JSON text as received), seq and hash (for reading; verify trusts only the
    signed heartbeat), received_at."""
    rows = database.query(
        "SELECT w.*, d.public_key FROM audit_witnesses w JOIN devices d "
        "ON d.device_id = w.device_id ORDER BY w.device_id")
    return [{"device_id": row["device_id"], "public_key": bytes(row["public_key"]).hex(),
             "heartbeat": _text(row["heartbeat"]), "seq": row["seq"],
             "hash": row["hash"], "received_at": row["received_at"]} for row in rows]


def served_roots(hub_dir: HubDir) -> list[bytes]:
    """Every root version the hub serves (N.root.json), oldest first."""
    numbered = []
    for path in hub_dir.metadata.glob("*.root.json"):
        version = path.name.split(".", 1)[0]
        if version.isdigit():
            numbered.append((int(version), path))
    return [path.read_bytes() for _, path in sorted(numbered)]


def _text(value: bytes | str) -> str:
    """The stored heartbeat as text; bytes that are not UTF-8 are kept visibly broken
    (verify then refuses the witness) rather than failing the export."""
    return value if isinstance(value, str) else bytes(value).decode("utf-8", "replace")
