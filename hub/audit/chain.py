"""Appending to the audit log: each entry hash-chained to the one before and signed.

`HubDatabase.audit` calls `append` inside the caller's transaction, which is BEGIN
IMMEDIATE (hub.database): SQLite holds its one write lock from the read of the last
entry to the commit, so writers in different processes (the CLI and `serve`) take turns
and the chain never forks; `seq` as primary key refuses a fork even if a caller were not
in such a transaction. A rolled-back change rolls its audit entry back with it.

The entry text stays in the `audit` table (the log older hubs wrote); `audit_chain` holds
its place: seq, prev, hash and the signature (hub/audit/entry.py says what they cover).

Signing key: the hub's online timestamp key, which root.json lists, so a verifier trusts
it from the TUF root without a key of the hub's say-so. A database outside an initialized
hub directory (no root.json beside it: tests, API-only fixtures) gets unsigned entries,
which `audit verify` reports as such.

Upgrade: a hub created before the chain has audit rows and no chain. The first append (or
`adopt_unchained`, which `serve` runs at start) chains those rows in their id order and
then writes an `audit.chain-start` entry naming them: they are vouched for from that
moment, not from when they were written. After that, an `audit` row without a chain row
was written past the chain, and verify names it.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import Metadata, Root

from agent.sqlite_durable import immediate_transaction
from agent.wire.audit_head import AuditHead
from hub.audit.entry import CHAIN_START_ACTION, GENESIS_PREV, entry_hash, stored_detail
from hub.errors import KeyMaterialError
from hub.hub_dir import HubDir
from hub.repository.signing_keys import KeyStore

if TYPE_CHECKING:
    from hub.database import HubDatabase

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_chain (
    seq INTEGER PRIMARY KEY,
    audit_id INTEGER NOT NULL UNIQUE,
    prev TEXT NOT NULL,
    hash TEXT NOT NULL,
    key_id TEXT NOT NULL,
    signature TEXT NOT NULL
);
"""

SIGNING_ROLE = "timestamp"


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class _CachedSigner:
    stamp: tuple[int, int]
    signer: CryptoSigner


_signers: dict[Path, _CachedSigner] = {}


def entry_signer(database_path: Path) -> CryptoSigner | None:
    """The key entries of the database at `database_path` are signed with: the timestamp
    key of the hub directory holding it, checked against its root.json; None if that
    directory is no initialized hub. Cached per process while neither file changes."""
    hub_dir = HubDir(database_path.parent)
    root_file = hub_dir.metadata / "root.json"
    key_file = hub_dir.online_keys / f"{SIGNING_ROLE}.pem"
    try:
        root_mtime = root_file.stat().st_mtime_ns
    except FileNotFoundError:
        return None
    try:
        stamp = (root_mtime, key_file.stat().st_mtime_ns)
    except FileNotFoundError:
        raise KeyMaterialError(
            f"the {SIGNING_ROLE} key {key_file} is missing: audit entries cannot be signed"
        ) from None
    cached = _signers.get(database_path)
    if cached is not None and cached.stamp == stamp:
        return cached.signer
    try:
        root = Metadata[Root].from_bytes(root_file.read_bytes()).signed
        keyids = root.roles[SIGNING_ROLE].keyids
    except Exception as exc:  # noqa: BLE001 - any unreadable root means: cannot sign
        raise KeyMaterialError(f"cannot read the trusted keys from {root_file}: {exc}") from None
    signer = KeyStore(hub_dir.offline_keys, hub_dir.online_keys).load_expected(
        SIGNING_ROLE, list(keyids))
    _signers[database_path] = _CachedSigner(stamp, signer)
    return signer


def append(database_path: Path, db: sqlite3.Connection, actor: str, action: str,
           subject: str, detail: dict[str, Any]) -> int:
    """Append one entry in `db`'s transaction (opening one if there is none); its seq."""
    if not db.in_transaction:
        with immediate_transaction(db):
            return append(database_path, db, actor, action, subject, detail)
    signer = entry_signer(database_path)
    last = db.execute("SELECT seq, hash FROM audit_chain ORDER BY seq DESC LIMIT 1").fetchone()
    if last is None:
        last = _adopt(db, signer) or (0, GENESIS_PREV)
    return _write(db, signer, last[0] + 1, last[1], utc_now(), actor, action, subject, detail)


def adopt_unchained(database: HubDatabase) -> int:
    """Chain an older hub's audit rows if it has no chain yet; how many were adopted."""
    with database.transaction() as db:
        if db.execute("SELECT 1 FROM audit_chain LIMIT 1").fetchone() is not None:
            return 0
        adopted = _adopt(db, entry_signer(database.path))
    return 0 if adopted is None else adopted[0] - 1


def head(database: HubDatabase) -> AuditHead | None:
    """The last entry's (seq, hash), or None while the chain is empty."""
    rows = database.query("SELECT seq, hash FROM audit_chain ORDER BY seq DESC LIMIT 1")
    return AuditHead(seq=rows[0][0], hash=rows[0][1]) if rows else None


def _adopt(db: sqlite3.Connection, signer: CryptoSigner | None) -> tuple[int, str] | None:
    """With the chain empty: chain every audit row, then the chain-start entry naming
    them. Returns the last (seq, hash), or None if there was nothing to adopt."""
    rows = db.execute(
        "SELECT id, at, actor, action, subject, detail FROM audit ORDER BY id").fetchall()
    if not rows:
        return None
    seq, prev = 0, GENESIS_PREV
    for row in rows:
        seq += 1
        detail = stored_detail(row[5])
        digest = entry_hash(seq, row[1], row[2], row[3], row[4], detail, prev)
        _chain_row(db, signer, seq, row[0], prev, digest)
        prev = digest
    seq = _write(db, signer, seq + 1, prev, utc_now(), "hub", CHAIN_START_ACTION,
                 "audit log", {"adopted": len(rows), "first_seq": 1, "last_seq": seq})
    return seq, db.execute("SELECT hash FROM audit_chain WHERE seq = ?", (seq,)).fetchone()[0]


def _write(db: sqlite3.Connection, signer: CryptoSigner | None, seq: int, prev: str, at: str,
           actor: str, action: str, subject: str, detail: dict[str, Any]) -> int:
    text = json.dumps(detail, sort_keys=True)
    audit_id = db.execute(
        "INSERT INTO audit (at, actor, action, subject, detail) VALUES (?, ?, ?, ?, ?)",
        (at, actor, action, subject, text),
    ).lastrowid
    assert audit_id is not None  # an INSERT always sets it
    # What is hashed is what is stored, read back the way a verifier reads it.
    digest = entry_hash(seq, at, actor, action, subject, json.loads(text), prev)
    _chain_row(db, signer, seq, audit_id, prev, digest)
    return seq


def _chain_row(db: sqlite3.Connection, signer: CryptoSigner | None, seq: int, audit_id: int,
               prev: str, digest: str) -> None:
    key_id, signature = "", ""
    if signer is not None:
        key_id, signature = signer.public_key.keyid, signer.sign(bytes.fromhex(digest)).signature
    db.execute(
        "INSERT INTO audit_chain (seq, audit_id, prev, hash, key_id, signature) "
        "VALUES (?, ?, ?, ?, ?, ?)", (seq, audit_id, prev, digest, key_id, signature))
