"""The gossip records a device holds, on disk (SQLite, WAL): its own and those relayed.

One row per (origin, key): the newest version seen. The digest is each origin's highest
version. Only records that were verified go in (see `record_check`); the store itself
trusts its callers. Each origin's certificate is kept beside its records, so a record
can be forwarded with what a third peer needs to verify it.

`handed_over` remembers which results and software inventories the hub has confirmed it
holds, so a relay asks the hub about each once, not every round.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from agent.wire.gossip import MAX_DELTA_BODY_CHARS, GossipRecord, RecordKind

SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    origin TEXT NOT NULL,
    key TEXT NOT NULL,
    version INTEGER NOT NULL,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    signature TEXT NOT NULL,
    handed_over INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (origin, key)
);
CREATE INDEX IF NOT EXISTS entries_by_version ON entries (origin, version);
CREATE TABLE IF NOT EXISTS certificates (
    origin TEXT PRIMARY KEY,
    der BLOB NOT NULL
);
"""

_COLUMNS = "origin, key, version, kind, body, signature"


class GossipStore:
    """One connection; use it from the trio thread only."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        Path(path).chmod(0o600)

    def close(self) -> None:
        self._db.close()

    def digest(self) -> dict[str, int]:
        rows = self._db.execute("SELECT origin, MAX(version) FROM entries GROUP BY origin")
        return {origin: int(version) for origin, version in rows}

    def version_of(self, origin: str, key: str) -> int:
        row = self._db.execute(
            "SELECT version FROM entries WHERE origin = ? AND key = ?", (origin, key)
        ).fetchone()
        return int(row[0]) if row else 0

    def next_version(self, origin: str) -> int:
        row = self._db.execute(
            "SELECT MAX(version) FROM entries WHERE origin = ?", (origin,)
        ).fetchone()
        return int(row[0] or 0) + 1

    def newer_than(self, digest: dict[str, int], limit: int,
                   budget: int = MAX_DELTA_BODY_CHARS) -> list[GossipRecord]:
        """Entries the holder of `digest` lacks, each origin's in version order, at most
        `limit`, and no more once their bodies pass `budget` characters (inventories are
        tens of kB): a cut-off list is still a prefix per origin, as Scuttlebutt needs."""
        records: list[GossipRecord] = []
        size = 0
        for origin, highest in sorted(self.digest().items()):
            known = digest.get(origin, 0)
            if highest <= known:
                continue
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM entries WHERE origin = ? AND version > ? "  # noqa: S608
                "ORDER BY version LIMIT ?",
                (origin, known, limit - len(records)),
            ).fetchall()
            for row in rows:
                if records and size + len(row[4]) > budget:
                    return records
                records.append(_record(row))
                size += len(row[4])
            if len(records) >= limit:
                break
        return records

    def put(self, record: GossipRecord, certificate_der: bytes) -> bool:
        """Store a verified record unless a version as new is there; True if stored."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            cursor = self._db.execute(
                f"INSERT INTO entries ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?) "  # noqa: S608
                "ON CONFLICT(origin, key) DO UPDATE SET version = excluded.version, "
                "kind = excluded.kind, body = excluded.body, signature = excluded.signature, "
                "handed_over = 0 WHERE excluded.version > entries.version",
                (record.origin, record.key, record.version, record.kind, record.body,
                 record.signature),
            )
            self._db.execute(
                "INSERT INTO certificates (origin, der) VALUES (?, ?) "
                "ON CONFLICT(origin) DO UPDATE SET der = excluded.der",
                (record.origin, certificate_der),
            )
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
        return cursor.rowcount == 1

    def certificate(self, origin: str) -> bytes | None:
        row = self._db.execute(
            "SELECT der FROM certificates WHERE origin = ?", (origin,)
        ).fetchone()
        return bytes(row[0]) if row else None

    def records(self, kind: RecordKind) -> list[GossipRecord]:
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM entries WHERE kind = ? ORDER BY origin, version",  # noqa: S608
            (kind,),
        ).fetchall()
        return [_record(row) for row in rows]

    def get(self, origin: str, key: str) -> GossipRecord | None:
        row = self._db.execute(
            f"SELECT {_COLUMNS} FROM entries WHERE origin = ? AND key = ?",  # noqa: S608
            (origin, key),
        ).fetchone()
        return _record(row) if row else None

    def not_handed_over(self, limit: int, kind: RecordKind = "result") -> list[GossipRecord]:
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM entries WHERE kind = ? AND handed_over = 0 "  # noqa: S608
            "ORDER BY origin, version LIMIT ?",
            (kind, limit),
        ).fetchall()
        return [_record(row) for row in rows]

    def mark_handed_over(self, keys: list[tuple[str, str]]) -> None:
        self._db.execute("BEGIN IMMEDIATE")
        self._db.executemany(
            "UPDATE entries SET handed_over = 1 WHERE origin = ? AND key = ?", keys
        )
        self._db.execute("COMMIT")


def _record(row: tuple[str, str, int, str, str, str]) -> GossipRecord:
    origin, key, version, kind, body, signature = row
    return GossipRecord.model_construct(
        origin=origin, key=key, version=version, kind=kind, body=body, signature=signature
    )
