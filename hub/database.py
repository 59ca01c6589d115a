"""The hub's store: devices, enrollment tokens, releases, rollouts, results, audit log.

SQLite in WAL mode by default (one file, zero set-up). The CLI and the serving process
open it side by side; every write is a short transaction. Result ingestion is idempotent
on (device, record id), so relays may deliver a record any number of times.
"""

from __future__ import annotations

import importlib
import json
import sqlite3
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.sqlite_durable import immediate_transaction, open_durable
from hub.audit.chain import append as append_audit_entry
from hub.devices.results_identity import RESULTS_INDEX, RESULTS_TABLE, upgrade_results_table

SCHEMA = """
CREATE TABLE IF NOT EXISTS devices (
    device_id TEXT PRIMARY KEY,
    public_key BLOB NOT NULL,
    name TEXT NOT NULL,
    hostname TEXT NOT NULL,
    grp TEXT NOT NULL,
    site TEXT NOT NULL,
    labels TEXT NOT NULL DEFAULT '{}',
    status TEXT NOT NULL,
    enrolled_at TEXT NOT NULL,
    last_seen TEXT
);
CREATE TABLE IF NOT EXISTS enrollment_tokens (
    secret_sha256 TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    expires_at TEXT,
    uses INTEGER NOT NULL DEFAULT 0,
    max_uses INTEGER
);
CREATE TABLE IF NOT EXISTS releases (
    target TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    severity TEXT NOT NULL,
    category TEXT NOT NULL,
    length INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    torrent_target TEXT NOT NULL,
    info_hash_v1 TEXT NOT NULL,
    info_hash_v2 TEXT NOT NULL,
    published_at TEXT NOT NULL,
    UNIQUE (name, version)
);
CREATE TABLE IF NOT EXISTS rollouts (
    release TEXT NOT NULL,
    grp TEXT NOT NULL,
    state TEXT NOT NULL,
    stage_percent INTEGER NOT NULL,
    started_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (release, grp)
);
""" + RESULTS_TABLE.format(name="results") + ";\n" + RESULTS_INDEX + """;
CREATE TABLE IF NOT EXISTS transfer_stats (
    release TEXT NOT NULL,
    channel TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (release, channel)
);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '{}'
);
"""


SCHEMA_MODULES: tuple[str, ...] = (
    # Sub-packages that keep tables of their own, one line each: a module with a
    # `SCHEMA` string of idempotent statements (CREATE ... IF NOT EXISTS), applied when
    # a database is created and every time one is opened, so a hub created by an
    # earlier version gains the tables it lacks.
    "hub.inventory.schema",
    "hub.audit.chain",
    "hub.audit.witnesses",
    "hub.console.sessions",
    "hub.console.admin_accounts",
    "hub.compliance.schema",
    "hub.vulns.store",
    "hub.rollouts.holds",
    "hub.rollouts.control_windows",
)


_SCHEMAS_APPLIED: set[Path] = set()
"""Databases this process has already brought up to date: the API opens one connection
per request, and tables, once created, stay."""


def _apply_module_schemas(db: sqlite3.Connection, path: Path) -> None:
    for name in SCHEMA_MODULES:
        db.executescript(importlib.import_module(name).SCHEMA)
    _SCHEMAS_APPLIED.add(path.resolve())


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class DeviceRow:
    device_id: str
    public_key: bytes
    name: str
    hostname: str
    group: str
    site: str
    labels: dict[str, str]
    status: str
    enrolled_at: str
    last_seen: str | None


class HubDatabase:
    """Opens a connection per instance; create one per thread or task that needs it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = open_durable(path)
        self._db.row_factory = sqlite3.Row
        upgrade_results_table(self._db)
        if path.resolve() not in _SCHEMAS_APPLIED:
            _apply_module_schemas(self._db, path)

    @classmethod
    def create(cls, path: Path) -> HubDatabase:
        database = cls(path)
        database._db.executescript(SCHEMA)
        _apply_module_schemas(database._db, path)
        path.chmod(0o600)
        return database

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> HubDatabase:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        return immediate_transaction(self._db)

    @contextmanager
    def read_transaction(self) -> Iterator[sqlite3.Connection]:
        """One consistent read of several tables (a deferred transaction): it takes no
        write lock, so pages and reports never wait for, nor delay, writers."""
        self._db.execute("BEGIN")
        try:
            yield self._db
        finally:
            self._db.execute("COMMIT")

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        return self._db.execute(sql, params).fetchall()

    # audit -------------------------------------------------------------------

    def audit(
        self, db: sqlite3.Connection, actor: str, action: str, subject: str, **detail: Any
    ) -> None:
        """Append to the audit log inside the caller's transaction: hash-chained and
        signed (hub/audit/chain.py)."""
        append_audit_entry(self.path, db, actor, action, subject, detail)

    # devices -----------------------------------------------------------------

    def device(self, device_id: str) -> DeviceRow | None:
        rows = self.query("SELECT * FROM devices WHERE device_id = ?", (device_id,))
        return _device(rows[0]) if rows else None

    def devices(self) -> list[DeviceRow]:
        return [_device(row) for row in self.query("SELECT * FROM devices ORDER BY name")]

    def touch_device(self, device_id: str) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE devices SET last_seen = ? WHERE device_id = ?", (utc_now(), device_id)
            )

    # transfer statistics -----------------------------------------------------

    def set_transfer_bytes(self, release: str, channel: str, total: int) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO transfer_stats (release, channel, bytes, updated_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT(release, channel) DO UPDATE SET "
                "bytes = excluded.bytes, updated_at = excluded.updated_at",
                (release, channel, total, utc_now()),
            )

    def all_transfer_bytes(self) -> dict[tuple[str, str], int]:
        rows = self.query("SELECT release, channel, bytes FROM transfer_stats")
        return {(row["release"], row["channel"]): row["bytes"] for row in rows}

    def transfer_bytes(self, release: str) -> dict[str, int]:
        rows = self.query(
            "SELECT channel, bytes FROM transfer_stats WHERE release = ?", (release,)
        )
        return {row["channel"]: row["bytes"] for row in rows}


def _device(row: sqlite3.Row) -> DeviceRow:
    return DeviceRow(
        device_id=row["device_id"],
        public_key=bytes(row["public_key"]),
        name=row["name"],
        hostname=row["hostname"],
        group=row["grp"],
        site=row["site"],
        labels=json.loads(row["labels"]),
        status=row["status"],
        enrolled_at=row["enrolled_at"],
        last_seen=row["last_seen"],
    )
